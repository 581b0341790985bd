//! The state of one build: its sequence number, its random stream and the test's token.

use std::cell::Cell;
use std::sync::Arc;

use rand::SeedableRng;

use crate::context::TestContext;
use crate::factory::{Locale, Table, UniqueValue};

/// One build of one factory, as the generated `build()` sees it: the context it runs in, the
/// build's sequence number `n`, and the build's own random stream.
///
/// Every build draws one sequence number from its factory's counter in the current test context
/// (whether or not any field uses it), and gets a random stream of its own ([`BuildRng`]), seeded
/// from the test's seed, the factory's name and `n`. So the `n`-th build of a factory in a test
/// has the same values on every run and on every machine, whatever other factories built before
/// it and whatever runs in parallel. An overridden field draws nothing: that can only change the
/// random fields after it in the same build, never another build.
///
/// ```
/// use std::sync::Arc;
/// use seedbed::context::TestContext;
/// use seedbed::factory::{BuildCtx, Factory};
/// use seedbed::factory::fake::{Fake, Faker};
///
/// #[derive(seedbed::Factory)]
/// pub struct Point {
///     pub x: i32,
/// }
///
/// let draw = || {
///     let ctx = Arc::new(TestContext::builder("tests::points").seed(7).build());
///     ctx.sync_scope(|| {
///         let mut b = BuildCtx::start(Point::TABLE);
///         (b.n(), Faker.fake_with_rng::<u32, _>(b.rng()))
///     })
/// };
/// assert_eq!(draw(), draw());
/// assert_eq!(draw().0, 1);
/// ```
#[derive(Debug)]
pub struct BuildCtx {
    ctx: Arc<TestContext>,
    table: &'static Table,
    n: u64,
    /// Made on first use: a build whose random fields are all overridden pays nothing for it.
    rng: Option<BuildRng>,
    /// Inside [`stubbed`]: generated fields get stand-in values.
    stub: bool,
}

thread_local! {
    /// Whether builds on this thread are stubbed (see [`stubbed`]).
    static STUBBING: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with every build it makes stubbed, as `build_stubbed()` does: the fields the
/// database would generate (`#[factory(generated)]`) get plausible stand-ins instead of their
/// type's default: integer ids from 1001 on (the build's sequence number plus 1000, distinct per
/// factory in a test), text ids `stub-<n>`, random UUIDs, random times and dates; and the
/// parents built for unset `belongs_to` associations are stubbed too, so keys point at ids that
/// look like ids. Nothing touches a database.
///
/// ```
/// use seedbed::factory::{FactoryBuilder, stubbed};
///
/// #[derive(Debug, seedbed::Factory)]
/// #[factory(table = "users")]
/// pub struct User {
///     #[factory(generated)]
///     pub id: i64,
///     #[factory(default = "Ada")]
///     pub name: String,
/// }
///
/// assert_eq!(User::factory().build().id, 0);
/// let stub = stubbed(|| User::factory().build());
/// assert!(stub.id > 1000);
/// assert_ne!(User::factory().build_stubbed().id, stub.id);
/// ```
pub fn stubbed<R>(f: impl FnOnce() -> R) -> R {
    /// Puts the previous mode back, however `f` ends.
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            STUBBING.with(|s| s.set(self.0));
        }
    }
    let _restore = Restore(STUBBING.with(|s| s.replace(true)));
    f()
}

impl BuildCtx {
    /// Starts a build of the factory of `table` in the current test context.
    pub fn start(table: &'static Table) -> Self {
        let ctx = TestContext::current();
        let n = ctx.next_sequence_by_hash(table.factory_hash());
        Self {
            ctx,
            table,
            n,
            rng: None,
            stub: STUBBING.with(Cell::get),
        }
    }

    /// The suite's faker locale for the crate at `root` ([`Locale::suite`]); English when its
    /// setting cannot be read (the test's start reports that).
    pub fn locale(&self, root: &str) -> Locale {
        Locale::suite(std::path::Path::new(root)).unwrap_or_default()
    }

    /// Whether this build is stubbed ([`stubbed`], `build_stubbed()`).
    pub fn stubbing(&self) -> bool {
        self.stub
    }

    /// The build's sequence number: 1 for the first build of this factory in the test context.
    pub fn n(&self) -> u64 {
        self.n
    }

    /// The build's random stream, for fakers.
    pub fn rng(&mut self) -> &mut BuildRng {
        let (seed, factory, n) = (self.ctx.seed(), self.table.factory_hash(), self.n);
        self.rng.get_or_insert_with(|| build_rng(seed, factory, n))
    }

    /// The test context the build runs in.
    pub fn context(&self) -> &TestContext {
        &self.ctx
    }

    /// The test's token.
    pub fn token(&self) -> &str {
        self.ctx.token()
    }

    /// `value` made unique: the sequence number appended, and the token when the test shares its
    /// database (see [`UniqueValue`]).
    pub fn unique<T: UniqueValue>(&self, value: T) -> T {
        self.tokened(value.with_sequence(self.n))
    }

    /// `value` with the token appended when the test shares its database, else unchanged.
    pub fn tokened<T: UniqueValue>(&self, value: T) -> T {
        if self.ctx.shares_database() {
            value.with_token(self.ctx.token())
        } else {
            value
        }
    }
}

/// The random stream of one build: Xoshiro256++, a fixed, documented algorithm, so the same seed
/// gives the same values on every platform and with every version of rand (rand's `StdRng` and
/// `SmallRng` promise neither).
///
/// The test context's own generator is ChaCha8 ([`SeedRng`](crate::context::SeedRng)); builds do not draw from it in turn
/// but each get a stream of their own, which is what makes a build's values independent of the
/// builds before it. Xoshiro256++ is seeded in a few nanoseconds, where a ChaCha8 stream costs a
/// 256-byte block computation per build (about 15% of building an 8-field model); fake data
/// needs statistical quality, not cryptographic strength.
pub type BuildRng = rand::rngs::Xoshiro256PlusPlus;

/// The random stream of build `n` of the factory whose key hashes to `factory_hash`, in a test
/// whose seed is `seed`.
pub(crate) fn build_rng(seed: u64, factory_hash: u64, n: u64) -> BuildRng {
    BuildRng::seed_from_u64(splitmix64(seed ^ splitmix64(factory_hash ^ splitmix64(n))))
}

/// SplitMix64's finaliser: a fast bijective mixer of 64-bit words.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use rand::RngExt;

    use super::*;

    #[test]
    fn streams_differ_by_seed_factory_and_build() {
        let draw = |s, f, n| build_rng(s, f, n).random::<u64>();
        assert_eq!(draw(1, 2, 3), draw(1, 2, 3));
        assert_ne!(draw(1, 2, 3), draw(2, 2, 3));
        assert_ne!(draw(1, 2, 3), draw(1, 3, 3));
        assert_ne!(draw(1, 2, 3), draw(1, 2, 4));
    }
}
