use seedbed::Factory;

#[derive(Factory)]
#[factory(has_many(posts(Post, author)))]
struct User {
    id: i64,
}

#[derive(Factory)]
struct Post {
    author_id: i64,
}

fn main() {}
