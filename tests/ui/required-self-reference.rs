use seedbed::Factory;

#[derive(Factory)]
struct Comment {
    id: i64,
    #[factory(belongs_to = Comment)]
    parent_id: i64,
}

fn main() {}
