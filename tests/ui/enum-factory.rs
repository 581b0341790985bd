use seedbed::Factory;

#[derive(Factory)]
enum Role {
    Admin,
    Member,
}

fn main() {}
