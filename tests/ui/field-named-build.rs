use seedbed::Factory;

#[derive(Factory)]
struct Artifact {
    #[factory(default = 1)]
    build: i32,
}

fn main() {}
