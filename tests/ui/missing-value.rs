use seedbed::Factory;

struct Cache;

#[derive(Factory)]
struct User {
    #[factory(default = 1)]
    id: i64,
    #[factory(skip)]
    cache: Cache,
}

fn main() {}
