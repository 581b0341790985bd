use seedbed::Factory;

#[derive(Factory)]
#[factory(transient(is_admin: bool = true))]
struct User {
    #[factory(default = false)]
    is_admin: bool,
}

fn main() {}
