use seedbed::Factory;

#[derive(Debug, Factory)]
struct User {
    id: i64,
}

#[derive(Factory)]
struct Post {
    #[factory(belongs_to = User, default = 1)]
    author_id: i64,
}

fn main() {}
