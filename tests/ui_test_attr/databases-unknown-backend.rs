#[seedbed::test(databases(main = "migrations", archive = oracle("migrations/archive")))]
async fn on_a_backend_seedbed_has_not(db: seedbed::TestDb) {
    let _ = db;
}

fn main() {}
