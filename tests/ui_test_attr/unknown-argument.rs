#[seedbed::test(isolation = "rollback")]
async fn wrong_key(pool: sqlx::PgPool) {
    let _ = pool;
}

fn main() {}
