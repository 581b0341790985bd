use seedbed::Factory;

#[derive(Factory)]
struct User {
    #[factory(generated, unique)]
    id: i64,
}

fn main() {}
