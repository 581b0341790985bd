#[seedbed::test(seed = 3)]
async fn seed_is_a_function(pool: sqlx::PgPool) {
    let _ = pool;
}

fn main() {}
