#[seedbed::test(strategy = "template", database = "app_test")]
async fn clones_need_create_database(pool: sqlx::PgPool) {
    let _ = pool;
}

fn main() {}
