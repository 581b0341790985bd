#[seedbed::test]
async fn generic<T>(pool: sqlx::PgPool) {
    let _ = pool;
}

fn main() {}
