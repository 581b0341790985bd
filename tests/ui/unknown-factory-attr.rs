use seedbed::Factory;

#[derive(Factory)]
struct User {
    #[factory(defualt = false)]
    is_admin: bool,
}

fn main() {}
