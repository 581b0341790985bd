#[seedbed::test(migrations = "no/such/dir")]
async fn nowhere(pool: sqlx::PgPool) {
    let _ = pool;
}

fn main() {}
