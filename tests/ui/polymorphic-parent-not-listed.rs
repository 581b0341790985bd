use seedbed::Factory;

#[derive(Debug, Clone, Factory)]
struct Article {
    #[factory(generated)]
    id: i64,
}

#[derive(Debug, Clone, Factory)]
struct User {
    #[factory(generated)]
    id: i64,
}

#[derive(Debug, Clone, Factory)]
struct Comment {
    #[factory(polymorphic(types(Article)))]
    commentable_id: i64,
    commentable_type: String,
}

fn main() {
    let _ = Comment::factory().commentable(User::factory()).build();
}
