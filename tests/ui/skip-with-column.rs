use seedbed::Factory;

#[derive(Factory)]
struct User {
    #[factory(skip, column = "cache")]
    cache: Vec<u8>,
}

fn main() {}
