use seedbed::Factory;

#[derive(Factory)]
struct User {
    #[factory(faker = "Name()")]
    name: String,
}

fn main() {}
