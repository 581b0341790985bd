use seedbed::Factory;

#[derive(Factory)]
struct User {
    #[factory(sequence = "user{id}@example.com")]
    email: String,
}

fn main() {}
