use seedbed::Factory;

#[derive(Factory)]
struct User {
    #[factory(default = "Ada".to_string(), faker = fake::faker::name::en::Name())]
    name: String,
}

fn main() {}
