use seedbed::Factory;

#[derive(Debug, Clone, Factory)]
struct User {
    id: i64,
}

#[derive(Factory)]
struct Post {
    #[factory(belongs_to = User, references = uid)]
    author_id: i64,
}

fn main() {}
