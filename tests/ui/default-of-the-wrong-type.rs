use seedbed::Factory;

#[derive(Factory)]
struct User {
    #[factory(default = 3.5)]
    role_id: i16,
}

fn main() {}
