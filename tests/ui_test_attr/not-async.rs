#[seedbed::test]
fn not_async(pool: sqlx::PgPool) {
    let _ = pool;
}

fn main() {}
