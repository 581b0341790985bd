use seedbed::Factory;

#[derive(Factory)]
#[factory(traits(admin(is_admn = true)))]
struct User {
    #[factory(default = false)]
    is_admin: bool,
}

fn main() {}
