#[seedbed::test(strategy = "truncate", namespace = "schema")]
async fn wrong_strategy(pool: sqlx::PgPool) {
    let _ = pool;
}

fn main() {}
