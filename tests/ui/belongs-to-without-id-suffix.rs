use seedbed::Factory;

#[derive(Debug, Factory)]
struct User {
    id: i64,
}

#[derive(Factory)]
struct Post {
    #[factory(belongs_to = User)]
    author: i64,
}

fn main() {}
