use seedbed::Factory;

#[derive(Factory)]
struct User {
    #[factory(unique, sequence = "user{n}@example.com")]
    email: String,
}

fn main() {}
