use seedbed::Factory;

#[derive(Factory)]
struct Post {
    #[factory(references = id)]
    author_id: i64,
}

fn main() {}
