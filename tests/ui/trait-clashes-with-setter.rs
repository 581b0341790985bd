use seedbed::Factory;

#[derive(Factory)]
#[factory(traits(is_admin(is_admin = true)))]
struct User {
    #[factory(default = false)]
    is_admin: bool,
}

fn main() {}
