//! `build()` of a derived factory against the hand-written struct literal it replaces.
//!
//! The model has 8 fields: a generated id, a sequence, 2 fakers, 2 defaults, a nullable column
//! and a text default. Three ways to make it, in one run:
//!
//! - `factory`: `User::factory().build()` in the process-wide test context (sequence counter,
//!   reproducible random stream per build, token rules);
//! - `hand_written`: a struct literal with the same fake calls on one long-lived generator of the
//!   kind builds use (Xoshiro256++) and a local counter: the least a person could write, with none
//!   of the factory's guarantees. `factory / hand_written` is the builder's overhead;
//! - `hand_written_chacha`: the same literal on one long-lived ChaCha8 (the test context's
//!   generator type);
//! - `hand_written_context`: the same literal drawing on the test context (its sequence counter
//!   and its ChaCha8 behind a lock): reproducibility by hand.
//!
//! Target: `factory` at most 1.3× `hand_written`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use fake::Fake;
use fake::faker::company::en::CompanyName;
use fake::faker::name::en::Name;
use rand::SeedableRng;
use rand::rngs::ChaCha8Rng;
use seedbed::context::TestContext;
use seedbed::factory::BuildRng;
use seedbed::prelude::*;

/// A user row, as the reference schema has it (plus a company name, for a second faker).
#[derive(Debug, Clone, Factory)]
#[factory(table = "users")]
pub struct User {
    /// Identity column.
    #[factory(generated)]
    pub id: i64,
    /// Unique address.
    #[factory(sequence = "user{n}@example.com")]
    pub email: String,
    /// A person's name.
    #[factory(faker = Name())]
    pub display_name: String,
    /// Where they work.
    #[factory(faker = CompanyName())]
    pub company: String,
    /// Administrator flag.
    #[factory(default = false)]
    pub is_admin: bool,
    /// `member`.
    #[factory(default = 3)]
    pub role_id: i16,
    /// Who invited them, if anyone.
    pub invited_by_id: Option<i64>,
    /// Their time zone.
    #[factory(default = "UTC")]
    pub timezone: String,
}

fn hand_written<R: rand::Rng>(rng: &mut R, n: &mut u64) -> User {
    *n += 1;
    User {
        id: 0,
        email: format!("user{n}@example.com"),
        display_name: Name().fake_with_rng(rng),
        company: CompanyName().fake_with_rng(rng),
        is_admin: false,
        role_id: 3,
        invited_by_id: None,
        timezone: "UTC".to_string(),
    }
}

fn hand_written_context() -> User {
    let ctx = TestContext::current();
    let n = ctx.next_sequence("bench::User");
    User {
        id: 0,
        email: format!("user{n}@example.com"),
        display_name: ctx.with_rng(|rng| Name().fake_with_rng(rng)),
        company: ctx.with_rng(|rng| CompanyName().fake_with_rng(rng)),
        is_admin: false,
        role_id: 3,
        invited_by_id: None,
        timezone: "UTC".to_string(),
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("build_user");
    group.bench_function("factory", |b| b.iter(|| black_box(User::factory().build())));
    group.bench_function("hand_written", |b| {
        let mut rng = BuildRng::seed_from_u64(42);
        let mut n = 0;
        b.iter(|| black_box(hand_written(&mut rng, &mut n)))
    });
    group.bench_function("hand_written_chacha", |b| {
        let mut rng = ChaCha8Rng::seed_from_u64(42);
        let mut n = 0;
        b.iter(|| black_box(hand_written(&mut rng, &mut n)))
    });
    group.bench_function("hand_written_context", |b| {
        b.iter(|| black_box(hand_written_context()))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
