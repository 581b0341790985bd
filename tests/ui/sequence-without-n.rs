use seedbed::Factory;

#[derive(Factory)]
struct User {
    #[factory(sequence = "user@example.com")]
    email: String,
}

fn main() {}
