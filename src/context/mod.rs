//! The test context: a test's name, seed and token, and the per-test state factories draw on
//! (sequences, the random number generator).
//!
//! `#[seedbed::test]` installs a context for the test as a task-local, so factory calls inside the
//! test reach it without being passed it. Outside any test, a process-wide context is used.
//!
//! - **Seed**: `SEEDBED_SEED` if set, else a random number chosen once per process, mixed with
//!   the test's name. The same `SEEDBED_SEED` and test name give the same values on every run,
//!   whatever runs beside the test; a failing test prints the `SEEDBED_SEED` that reproduces it.
//! - **Token**: six lowercase letters and digits derived from the name and seed, unique among the
//!   tests running at once against one server (the isolation engine claims it there). Under
//!   strategies where tests share a database, unique factory values carry it, so parallel tests
//!   never collide.
//!
//! ```
//! use seedbed::context::TestContext;
//!
//! let ctx = TestContext::builder("my_crate::tests::lists_posts").seed(42).build();
//! assert_eq!(ctx.seed(), TestContext::builder("my_crate::tests::lists_posts").seed(42).build().seed());
//! assert_eq!(ctx.token().len(), 6);
//! assert_eq!(ctx.next_sequence("User"), 1);
//! assert_eq!(ctx.next_sequence("User"), 2);
//! assert_eq!(ctx.next_sequence("Post"), 1);
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use rand::SeedableRng;
use rand::rngs::ChaCha8Rng;

mod locale;
pub(crate) mod state;

pub use self::locale::{LOCALE_VAR, Locale};
pub use self::state::{InsertEvent, InsertObserver, InsertStats, StatementKind, TableStats};
pub use crate::util::hash::{stable_hash, stable_hash_bytes};

tokio::task_local! {
    static CURRENT: Arc<TestContext>;
}

/// The random number generator every factory value comes from: ChaCha8, portable and
/// reproducible across platforms and versions of rand.
pub type SeedRng = ChaCha8Rng;

/// A test's identity and the state its factories share.
#[derive(Debug)]
pub struct TestContext {
    name: String,
    base_seed: u64,
    seed: u64,
    token: String,
    shares_database: bool,
    /// Sequence counters by the stable hash of their key (see [`TestContext::next_sequence_by_hash`]).
    sequences: Mutex<HashMap<u64, u64, BuildHasherDefault<KeyHashHasher>>>,
    rng: Mutex<SeedRng>,
    /// What factories write: the reuse scope and the insert statistics.
    factory: state::ContextState,
}

/// Builds a [`TestContext`].
#[derive(Debug, Clone)]
pub struct TestContextBuilder {
    name: String,
    base_seed: Option<u64>,
    token: Option<String>,
    shares_database: bool,
}

impl TestContextBuilder {
    /// Uses this base seed instead of `SEEDBED_SEED` or the process's random one.
    pub fn seed(mut self, base_seed: u64) -> Self {
        self.base_seed = Some(base_seed);
        self
    }

    /// Uses this token instead of the one derived from name and seed (the isolation engine
    /// passes the token it claimed on the server).
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Whether the test shares its database with other tests running at once (Rollback,
    /// Truncate, Namespace): then unique factory values carry the token.
    pub fn shares_database(mut self, shares: bool) -> Self {
        self.shares_database = shares;
        self
    }

    /// The context.
    pub fn build(self) -> TestContext {
        let base_seed = self.base_seed.unwrap_or_else(process_base_seed);
        let seed = mix_seed(base_seed, &self.name);
        let token = self
            .token
            .unwrap_or_else(|| token_for(&self.name, base_seed, 0));
        TestContext {
            name: self.name,
            base_seed,
            seed,
            token,
            shares_database: self.shares_database,
            sequences: Mutex::new(HashMap::default()),
            rng: Mutex::new(SeedRng::seed_from_u64(seed)),
            factory: state::ContextState::default(),
        }
    }
}

impl TestContext {
    /// A builder for the context of the test `name` (its path, e.g. `crate::module::test`).
    pub fn builder(name: impl Into<String>) -> TestContextBuilder {
        TestContextBuilder {
            name: name.into(),
            base_seed: None,
            token: None,
            shares_database: false,
        }
    }

    /// The context of the running test if there is one (installed with [`TestContext::scope`]),
    /// else the process-wide context.
    pub fn current() -> Arc<TestContext> {
        CURRENT
            .try_with(Arc::clone)
            .unwrap_or_else(|_| Arc::clone(process_context()))
    }

    /// The context of the running test, if inside one.
    pub fn current_test() -> Option<Arc<TestContext>> {
        CURRENT.try_with(Arc::clone).ok()
    }

    /// The process-wide context used outside tests.
    pub fn process() -> Arc<TestContext> {
        Arc::clone(process_context())
    }

    /// Runs `fut` with this context installed as the current one.
    pub async fn scope<F: Future>(self: Arc<Self>, fut: F) -> F::Output {
        CURRENT.scope(self, fut).await
    }

    /// Runs `f` with this context installed as the current one (synchronous code).
    pub fn sync_scope<R>(self: Arc<Self>, f: impl FnOnce() -> R) -> R {
        CURRENT.sync_scope(self, f)
    }

    /// The test's name (its path).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The seed given to the run (`SEEDBED_SEED`): what a user sets to reproduce the test.
    pub fn base_seed(&self) -> u64 {
        self.base_seed
    }

    /// The test's own seed: the base seed mixed with the test's name.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The test's token.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Whether unique factory values must carry the token (the test shares its database).
    pub fn shares_database(&self) -> bool {
        self.shares_database
    }

    /// The next value of the sequence `key` (one per factory), counting from 1.
    pub fn next_sequence(&self, key: &str) -> u64 {
        self.next_sequence_by_hash(stable_hash(key))
    }

    /// [`TestContext::next_sequence`] for a key whose [`stable_hash`] is already known (factories
    /// compute theirs at compile time): the same counter, without hashing the key on every call.
    ///
    /// ```
    /// use seedbed::context::TestContext;
    /// use seedbed::context::stable_hash;
    ///
    /// let ctx = TestContext::builder("t").seed(1).build();
    /// assert_eq!(ctx.next_sequence("User"), 1);
    /// assert_eq!(ctx.next_sequence_by_hash(stable_hash("User")), 2);
    /// ```
    pub fn next_sequence_by_hash(&self, key_hash: u64) -> u64 {
        let mut sequences = self
            .sequences
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let slot = sequences.entry(key_hash).or_insert(0);
        *slot += 1;
        *slot
    }

    /// Runs `f` with the context's random number generator.
    pub fn with_rng<R>(&self, f: impl FnOnce(&mut SeedRng) -> R) -> R {
        let mut rng = self.rng.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut rng)
    }

    /// Makes every factory that needs a `M` (a `belongs_to = M` association left unset) use
    /// `model` instead of creating one, for the rest of the test (see
    /// [`TestDb::reuse`](crate::TestDb::reuse), the usual way to call it).
    ///
    /// ```
    /// use seedbed::context::TestContext;
    ///
    /// #[derive(Debug, Clone, seedbed::Factory)]
    /// #[factory(table = "organizations")]
    /// pub struct Org {
    ///     #[factory(generated)]
    ///     pub id: i64,
    /// }
    ///
    /// let ctx = TestContext::builder("t").seed(1).build();
    /// ctx.reuse(&Org { id: 7 });
    /// assert_eq!(ctx.reused::<Org, _>(|org| org.id), Some(7));
    /// ctx.stop_reusing::<Org>();
    /// assert_eq!(ctx.reused::<Org, _>(|org| org.id), None);
    /// ```
    pub fn reuse<M: Clone + Send + Sync + 'static>(&self, model: &M) {
        self.factory.reuse(model.clone());
    }

    /// Ends [`reuse`](Self::reuse) of the `M` set before: factories create their own again.
    pub fn stop_reusing<M: 'static>(&self) {
        self.factory.stop_reusing::<M>();
    }

    /// `f` of the `M` being reused, if one is.
    pub fn reused<M: 'static, R>(&self, f: impl FnOnce(&M) -> R) -> Option<R> {
        self.factory.reused(f)
    }

    /// Rows and statements per table that factories inserted in this context.
    ///
    /// ```
    /// let ctx = seedbed::context::TestContext::builder("t").build();
    /// assert_eq!(ctx.insert_stats().total_rows(), 0);
    /// ```
    pub fn insert_stats(&self) -> state::InsertStats {
        self.factory.stats()
    }

    /// Calls `observer` after every statement a factory runs in this context: the hook for code
    /// that must know what factories wrote (an insert log, a namespace's cleanup).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use seedbed::context::TestContext;
    ///
    /// let ctx = TestContext::builder("t").build();
    /// let rows = Arc::new(AtomicUsize::new(0));
    /// let seen = Arc::clone(&rows);
    /// ctx.on_insert(move |event| {
    ///     seen.fetch_add(event.rows, Ordering::Relaxed);
    /// });
    /// assert_eq!(rows.load(Ordering::Relaxed), 0);
    /// ```
    pub fn on_insert(&self, observer: impl Fn(&state::InsertEvent<'_>) + Send + Sync + 'static) {
        self.factory.observe(Arc::new(observer));
    }

    /// The factory state of the context (reuse scope, statistics, insert observers).
    pub(crate) fn factory_state(&self) -> &state::ContextState {
        &self.factory
    }
}

/// Hashes the sequence map's keys, which are already [`stable_hash`]es: passes them through.
#[derive(Default)]
struct KeyHashHasher(u64);

impl Hasher for KeyHashHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

fn process_context() -> &'static Arc<TestContext> {
    static PROCESS: OnceLock<Arc<TestContext>> = OnceLock::new();
    PROCESS.get_or_init(|| Arc::new(TestContext::builder("<process>").build()))
}

/// The run's base seed: `SEEDBED_SEED` (any text; numbers are used as they are), else random,
/// chosen once per process.
pub fn process_base_seed() -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    *SEED.get_or_init(|| match std::env::var("SEEDBED_SEED") {
        Ok(v) if !v.trim().is_empty() => parse_seed(v.trim()),
        _ => std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish(),
    })
}

/// Parses a `SEEDBED_SEED` value: a decimal number, else the hash of the text.
///
/// ```
/// # use seedbed::context::parse_seed;
/// assert_eq!(parse_seed("12345"), 12345);
/// assert_eq!(parse_seed("release-42"), parse_seed("release-42"));
/// ```
pub fn parse_seed(text: &str) -> u64 {
    text.parse().unwrap_or_else(|_| stable_hash(text))
}

/// The test's seed: the base seed mixed with its name.
fn mix_seed(base_seed: u64, name: &str) -> u64 {
    stable_hash(&format!("{base_seed}:{name}"))
}

/// The `attempt`-th candidate token for a test: six base-36 characters.
///
/// ```
/// # use seedbed::context::token_for;
/// let t = token_for("tests::a", 7, 0);
/// assert_eq!(t.len(), 6);
/// assert!(t.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
/// assert_ne!(t, token_for("tests::a", 7, 1));
/// assert_eq!(t, token_for("tests::a", 7, 0));
/// ```
pub fn token_for(name: &str, base_seed: u64, attempt: u32) -> String {
    const ALPHABET: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut h = stable_hash(&format!("token:{attempt}:{base_seed}:{name}"));
    let mut out = String::with_capacity(6);
    for _ in 0..6 {
        out.push(char::from(ALPHABET[(h % 36) as usize]));
        h /= 36;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_depend_on_name_and_base() {
        let a = TestContext::builder("t::a").seed(1).build();
        let a2 = TestContext::builder("t::a").seed(1).build();
        let b = TestContext::builder("t::b").seed(1).build();
        let a3 = TestContext::builder("t::a").seed(2).build();
        assert_eq!(a.seed(), a2.seed());
        assert_eq!(a.token(), a2.token());
        assert_ne!(a.seed(), b.seed());
        assert_ne!(a.seed(), a3.seed());
        let draw = |c: &TestContext| c.with_rng(rand::RngExt::random::<u64>);
        assert_eq!(draw(&a), draw(&a2));
    }

    #[tokio::test]
    async fn scope_installs_the_context() {
        assert!(TestContext::current_test().is_none());
        let ctx = Arc::new(TestContext::builder("t::scoped").seed(3).build());
        let token = ctx.token().to_string();
        let seen = Arc::clone(&ctx)
            .scope(async { TestContext::current().token().to_string() })
            .await;
        assert_eq!(seen, token);
        assert_eq!(TestContext::current().name(), "<process>");
    }
}
