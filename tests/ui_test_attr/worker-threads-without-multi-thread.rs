#[seedbed::test(worker_threads = 4)]
async fn threads(pool: sqlx::PgPool) {
    let _ = pool;
}

fn main() {}
