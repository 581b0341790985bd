#[seedbed::test]
async fn three(a: sqlx::PgPool, b: sqlx::PgPool, c: sqlx::PgPool) {
    let _ = (a, b, c);
}

fn main() {}
