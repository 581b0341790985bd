use seedbed::Factory;

#[derive(Factory)]
struct Envelope<T> {
    body: T,
}

fn main() {}
