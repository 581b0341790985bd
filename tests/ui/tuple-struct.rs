use seedbed::Factory;

#[derive(Factory)]
struct Email(String);

fn main() {}
