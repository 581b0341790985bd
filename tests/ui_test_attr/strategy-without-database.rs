#[seedbed::test(strategy = "truncate")]
async fn no_database() {}

fn main() {}
