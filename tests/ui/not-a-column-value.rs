use seedbed::Factory;

#[derive(Factory)]
struct Session {
    #[factory(default = std::time::Duration::from_secs(60))]
    ttl: std::time::Duration,
}

fn main() {}
