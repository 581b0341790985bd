#[seedbed::test(strategy = "rollbak")]
async fn typo(pool: sqlx::PgPool) {
    let _ = pool;
}

fn main() {}
