#[seedbed::test(statement_timeout = "soon")]
async fn vague(pool: sqlx::PgPool) {
    let _ = pool;
}

fn main() {}
