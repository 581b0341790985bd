use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

#[seedbed::test(strategy = "rollback")]
async fn builds_its_own_pool(opts: PgPoolOptions, connect: PgConnectOptions) {
    let _ = (opts, connect);
}

fn main() {}
