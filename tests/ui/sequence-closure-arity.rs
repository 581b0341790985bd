use seedbed::Factory;

#[derive(Factory)]
struct User {
    #[factory(sequence = |n, token, extra| format!("{n}{token}{extra}"))]
    email: String,
}

fn main() {}
