#[seedbed::test(migrations = "migrations", migrator = "crate::M")]
async fn both(pool: sqlx::PgPool) {
    let _ = pool;
}

fn main() {}
