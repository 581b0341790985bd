#[seedbed::test(fixtures("users", "fixtures/orgs.sql"))]
async fn mixed(pool: sqlx::PgPool) {
    let _ = pool;
}

fn main() {}
