use seedbed::Factory;

#[derive(Factory)]
struct Article {
    #[factory(generated)]
    id: i64,
}

#[derive(Factory)]
struct Comment {
    #[factory(polymorphic(types(Article), type_field = commentable_kind))]
    commentable_id: i64,
    commentable_type: String,
}

fn main() {}
