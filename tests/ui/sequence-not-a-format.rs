use seedbed::Factory;

#[derive(Factory)]
struct User {
    #[factory(sequence = 42)]
    email: String,
}

fn main() {}
