use seedbed::Factory;

#[derive(Factory)]
struct Invoice {
    #[factory(unique, default = 1000)]
    number: i64,
}

fn main() {}
