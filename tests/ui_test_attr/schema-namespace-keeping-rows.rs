#[seedbed::test(namespace = "schema", cleanup = "none")]
async fn kept_rows_in_a_dropped_schema(pool: sqlx::PgPool) {
    let _ = pool;
}

fn main() {}
