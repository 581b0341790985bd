use seedbed::Factory;

#[derive(Factory)]
struct User {
    email: String,
    #[factory(column = "email")]
    contact: String,
}

fn main() {}
