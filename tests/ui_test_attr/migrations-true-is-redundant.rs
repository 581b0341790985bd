#[seedbed::test(migrations = true)]
async fn redundant(pool: sqlx::PgPool) {
    let _ = pool;
}

fn main() {}
