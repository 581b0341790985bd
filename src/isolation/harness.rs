//! What `#[seedbed::test]` expands to: build the test's runtime, acquire its database, install its
//! context, run it with panics caught, finish the database, and print one block when it fails.
//!
//! Generated code reaches this module through `::seedbed::__private`; it is not a public API.

use std::any::Any;
use std::fmt::Debug;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres};

use super::builder::{Isolation, MigrationSource};
use super::isolated::Isolated;
use super::options::NamespaceMode;
use super::testdb::{Kept, Outcome, TestDb};
use crate::context::TestContext;
use crate::error::Error;
use crate::strategy::Strategy;

/// A fixture script embedded by the macro (`include_str!`).
#[derive(Debug, Clone, Copy)]
pub struct TestFixture {
    /// The path as written, for messages.
    pub path: &'static str,
    /// The SQL.
    pub contents: &'static str,
}

/// The runtime flavor of the test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// One thread (the default, as `#[tokio::test]`).
    CurrentThread,
    /// A multi-threaded runtime.
    MultiThread,
}

/// Everything the attribute says about a test.
#[derive(Debug, Clone)]
pub struct TestArgs {
    /// `module_path!()::name`.
    pub path: &'static str,
    /// `CARGO_MANIFEST_DIR` of the crate the test is in.
    pub crate_root: &'static str,
    /// The strategy named in the attribute.
    pub strategy: Option<Strategy>,
    /// Where migrations come from.
    pub migrations: MigrationSource,
    /// Fixture scripts, in order.
    pub fixtures: &'static [TestFixture],
    /// Suite data written once after the migrations (`seed = path`).
    pub seed: Option<&'static crate::isolation::Seed>,
    /// An existing database to isolate in (`database = "…"`): no CREATE DATABASE.
    pub database: Option<&'static str>,
    /// `databases(main = "…", audit = "…")`: the name of the test's own database (the first),
    /// and the others.
    pub databases: Option<(&'static str, &'static [NamedDatabase])>,
    /// Use `database` though seedbed did not create it (`allow_unmarked_database`).
    pub allow_unmarked_database: bool,
    /// Runtime flavor.
    pub flavor: Flavor,
    /// Worker threads of a multi-threaded runtime.
    pub worker_threads: Option<usize>,
    /// `statement_timeout` in milliseconds.
    pub statement_timeout_ms: Option<u64>,
    /// `lock_timeout` in milliseconds.
    pub lock_timeout_ms: Option<u64>,
    /// The role the test's connections act as (`role = "…"`).
    pub role: Option<&'static str>,
    /// Truncate: reset sequences.
    pub reset_sequences: bool,
    /// Namespace: a schema per test.
    pub schema_mode: bool,
    /// Namespace: keep the rows.
    pub keep_rows: bool,
}

impl TestArgs {
    /// Arguments with the defaults, for the test at `path`.
    pub fn new(path: &'static str, crate_root: &'static str) -> Self {
        Self {
            path,
            crate_root,
            strategy: None,
            migrations: MigrationSource::Default,
            fixtures: &[],
            seed: None,
            database: None,
            databases: None,
            allow_unmarked_database: false,
            flavor: Flavor::CurrentThread,
            worker_threads: None,
            statement_timeout_ms: None,
            lock_timeout_ms: None,
            role: None,
            reset_sequences: false,
            schema_mode: false,
            keep_rows: false,
        }
    }

    fn isolation(&self, own_connections: bool) -> Isolation {
        let mut iso = self.base_isolation(own_connections);
        if let Some((own, others)) = self.databases {
            iso = iso.own_name(own);
            for other in others {
                let mut this = self
                    .base_isolation(own_connections)
                    .migration_source((other.migrations)())
                    .test_name(format!("{}[{}]", self.path, other.name));
                this.fixtures.clear();
                this.database = None;
                iso.also.push(super::several::AlsoDb {
                    name: other.name.to_string(),
                    iso: Box::new(this.other_database().without_seed()),
                    acquire: other.backend,
                });
            }
        }
        iso
    }

    fn base_isolation(&self, own_connections: bool) -> Isolation {
        let mut iso = Isolation::configured()
            .strategy(self.strategy)
            .crate_root(self.crate_root)
            .migration_source(self.migrations.clone())
            .test_name(self.path)
            .reset_sequences(self.reset_sequences)
            .namespace_mode(if self.schema_mode {
                NamespaceMode::Schema
            } else {
                NamespaceMode::Data
            })
            .keep_rows(self.keep_rows)
            .own_connections(own_connections);
        for fixture in self.fixtures {
            iso = iso.fixture(fixture.contents);
        }
        if let Some(ms) = self.statement_timeout_ms {
            iso = iso.statement_timeout(Duration::from_millis(ms));
        }
        if let Some(ms) = self.lock_timeout_ms {
            iso = iso.lock_timeout(Duration::from_millis(ms));
        }
        if let Some(role) = self.role {
            iso = iso.role(role);
        }
        if let Some(seed) = self.seed {
            iso = iso.seed_data(seed);
        }
        if let Some(database) = self.database {
            iso = iso
                .database(database)
                .allow_unmarked_database(self.allow_unmarked_database);
        }
        iso
    }

    fn runtime(&self) -> tokio::runtime::Runtime {
        let built = match self.flavor {
            Flavor::CurrentThread => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build(),
            Flavor::MultiThread => {
                let mut b = tokio::runtime::Builder::new_multi_thread();
                if let Some(n) = self.worker_threads {
                    b.worker_threads(n.max(1));
                }
                b.enable_all().build()
            }
        };
        match built {
            Ok(rt) => rt,
            // A test harness may panic: it is how a test fails.
            Err(e) => panic!(
                "seedbed: cannot build the tokio runtime for {}: {e}",
                self.path
            ),
        }
    }
}

/// What a test function returns: `()` or a `Result`.
pub trait TestTermination {
    /// Whether the test passed.
    fn is_success(&self) -> bool;
    /// The failure, for the report.
    fn failure(&self) -> Option<String>;
}

impl TestTermination for () {
    fn is_success(&self) -> bool {
        true
    }
    fn failure(&self) -> Option<String> {
        None
    }
}

impl<T, E: Debug> TestTermination for Result<T, E> {
    fn is_success(&self) -> bool {
        self.is_ok()
    }
    fn failure(&self) -> Option<String> {
        self.as_ref().err().map(|e| format!("{e:?}"))
    }
}

/// The test function forms `#[seedbed::test]` accepts.
#[diagnostic::on_unimplemented(
    message = "a #[seedbed::test] function cannot take `{Self}`",
    label = "unsupported test function form",
    note = "it may take nothing, `seedbed::TestDb`, `sqlx::PgPool`, \
            `sqlx::pool::PoolConnection<sqlx::Postgres>`, \
            `(sqlx::postgres::PgPoolOptions, sqlx::postgres::PgConnectOptions)` or \
            `sqlx::postgres::PgConnectOptions` (with the `sqlite` or `mysql` feature, the same \
            forms for SQLite or MySQL: `seedbed::TestDb<sqlx::Sqlite>`, `sqlx::MySqlPool`, …), \
            and return `()` or a `Result`"
)]
pub trait TestFn {
    /// What the test returns.
    type Output;
    /// Runs the test.
    fn run_test(self, args: TestArgs) -> Self::Output;
}

/// The forms that name their backend by type, for the backend `$db`: the test handle, the pool,
/// a pooled connection, pool options with connect options, and connect options alone.
macro_rules! test_fn_forms {
    ($db:ty, $pool:ty, $pool_options:ty, $connect_options:ty) => {
        impl<Fut> TestFn for fn(TestDb<$db>) -> Fut
        where
            Fut: Future,
            Fut::Output: TestTermination,
        {
            type Output = Fut::Output;
            fn run_test(self, args: TestArgs) -> Fut::Output {
                run_with_db::<$db, _, _>(args, false, self)
            }
        }

        impl<Fut> TestFn for fn($pool) -> Fut
        where
            Fut: Future,
            Fut::Output: TestTermination,
        {
            type Output = Fut::Output;
            fn run_test(self, args: TestArgs) -> Fut::Output {
                run_with_db::<$db, _, _>(args, false, |db| self(db.pool()))
            }
        }

        impl<Fut> TestFn for fn(PoolConnection<$db>) -> Fut
        where
            Fut: Future,
            Fut::Output: TestTermination,
        {
            type Output = Fut::Output;
            fn run_test(self, args: TestArgs) -> Fut::Output {
                let path = args.path;
                run_with_db::<$db, _, _>(args, false, move |db| async move {
                    let conn = match db.pool().acquire().await {
                        Ok(conn) => conn,
                        Err(e) => panic!("seedbed: cannot get a connection for {path}: {e}"),
                    };
                    self(conn).await
                })
            }
        }

        impl<Fut> TestFn for fn($pool_options, $connect_options) -> Fut
        where
            Fut: Future,
            Fut::Output: TestTermination,
        {
            type Output = Fut::Output;
            fn run_test(self, args: TestArgs) -> Fut::Output {
                run_with_db::<$db, _, _>(args, true, |db| {
                    self(
                        <$pool_options>::new().max_connections(5),
                        db.connect_options(),
                    )
                })
            }
        }

        impl<Fut> TestFn for fn($connect_options) -> Fut
        where
            Fut: Future,
            Fut::Output: TestTermination,
        {
            type Output = Fut::Output;
            fn run_test(self, args: TestArgs) -> Fut::Output {
                run_with_db::<$db, _, _>(args, true, |db| self(db.connect_options()))
            }
        }
    };
}

test_fn_forms!(Postgres, PgPool, PgPoolOptions, PgConnectOptions);
#[cfg(feature = "sqlite")]
test_fn_forms!(
    sqlx::Sqlite,
    sqlx::SqlitePool,
    sqlx::sqlite::SqlitePoolOptions,
    sqlx::sqlite::SqliteConnectOptions
);
#[cfg(feature = "mysql")]
test_fn_forms!(
    sqlx::MySql,
    sqlx::MySqlPool,
    sqlx::mysql::MySqlPoolOptions,
    sqlx::mysql::MySqlConnectOptions
);

impl<Fut> TestFn for fn() -> Fut
where
    Fut: Future,
    Fut::Output: TestTermination,
{
    type Output = Fut::Output;
    fn run_test(self, args: TestArgs) -> Fut::Output {
        let rt = args.runtime();
        let ctx = Arc::new(TestContext::builder(args.path).build());
        let report_ctx = Arc::clone(&ctx);
        rt.block_on(async move {
            let outcome = ctx.scope(CatchUnwind::new(self())).await;
            match outcome {
                Ok(out) => {
                    if let Some(failure) = out.failure() {
                        eprintln!(
                            "{}",
                            failure_block::<Postgres>(&args, &report_ctx, None, &failure, None)
                        );
                    }
                    out
                }
                Err(panic) => {
                    let failure = panic_message(&*panic);
                    eprintln!(
                        "{}",
                        failure_block::<Postgres>(&args, &report_ctx, None, &failure, None)
                    );
                    std::panic::resume_unwind(panic)
                }
            }
        })
    }
}

/// Another database of a test, named in `databases(…)`.
#[derive(Debug)]
pub struct NamedDatabase {
    /// Its name, for `TestDb::named`.
    pub name: &'static str,
    /// Its migrations.
    pub migrations: fn() -> MigrationSource,
    /// Its backend, when it is not the test's own (`sqlite("…")`).
    pub backend: Option<AcquireAny>,
}

pub use super::several::{AcquireAny, AcquiringAny, AnyTestDb, acquire_any};

/// Checks at compile time that a test function has a supported form.
pub fn assert_test_fn<F: TestFn>(_f: F) {}

fn run_with_db<DB, F, Fut>(args: TestArgs, own_connections: bool, test: F) -> Fut::Output
where
    DB: Isolated,
    F: FnOnce(TestDb<DB>) -> Fut,
    Fut: Future,
    Fut::Output: TestTermination,
{
    let rt = args.runtime();
    let stale = super::engine::adopt_test_runtime();
    rt.block_on(async move {
        if stale {
            super::pool::forget_kept_pools();
            #[cfg(feature = "mysql")]
            super::mysql::forget_kept();
        }
        let db = match args.isolation(own_connections).acquire_on::<DB>().await {
            Ok(db) => db,
            Err(e) => {
                let note = server_fault(&e.to_string())
                    .map(|n| format!("\n{n}"))
                    .unwrap_or_default();
                panic!(
                    "seedbed: cannot prepare the database for {}: {e}{note}",
                    args.path
                )
            }
        };
        let keep = db.handle();
        let ctx = Arc::clone(db.context());
        let outcome = Arc::clone(&ctx).scope(CatchUnwind::new(test(db))).await;
        let passed = matches!(&outcome, Ok(out) if out.is_success());
        let finished = keep
            .handle()
            .finish_with(if passed {
                Outcome::Passed
            } else {
                Outcome::Failed
            })
            .await;
        let isolation_error = finished.err();
        // Background work of the test's (a drop, the run's sweep) ends before the process can.
        super::engine::settle(Duration::from_secs(60)).await;
        match outcome {
            Ok(out) if out.is_success() => {
                if let Some(e) = isolation_error {
                    let failure = e.to_string();
                    eprintln!(
                        "{}",
                        failure_block(&args, &ctx, Some(&keep), &failure, None)
                    );
                    panic!("{e}");
                }
                out
            }
            Ok(out) => {
                let failure = out.failure().unwrap_or_default();
                eprintln!(
                    "{}",
                    failure_block(&args, &ctx, Some(&keep), &failure, isolation_error.as_ref())
                );
                out
            }
            Err(panic) => {
                let failure = panic_message(&*panic);
                eprintln!(
                    "{}",
                    failure_block(&args, &ctx, Some(&keep), &failure, isolation_error.as_ref())
                );
                std::panic::resume_unwind(panic)
            }
        }
    })
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "the test panicked".into()
    }
}

/// The block printed when a test fails: what ran, how to reproduce it, what to look at.
fn failure_block<DB: Isolated>(
    args: &TestArgs,
    ctx: &TestContext,
    db: Option<&TestDb<DB>>,
    failure: &str,
    isolation_error: Option<&Error>,
) -> String {
    let short = args.path.rsplit("::").next().unwrap_or(args.path);
    let mut out = String::from("\n──── seedbed: test failed ────\n");
    out.push_str(&format!("test:     {}\n", args.path));
    if let Some(db) = db {
        out.push_str(&format!("strategy: {}\n", db.strategy()));
        out.push_str(&format!("database: {}\n", db.database()));
        if let Some(url) = db.url() {
            out.push_str(&format!("url:      {url}\n"));
        }
        out.push_str(&kept_lines(db, args, short));
        out.push_str(&db.describe_others());
    }
    out.push_str(&format!(
        "seed:     {seed} (re-run with the same data: SEEDBED_SEED={seed} cargo test {short})\n",
        seed = ctx.base_seed()
    ));
    out.push_str(&format!("token:    {}\n", ctx.token()));
    if let Some(e) = isolation_error {
        out.push_str(&format!("isolation: {e}\n"));
    }
    if let Some(note) = server_fault(failure) {
        out.push_str(&format!("server:   {note}\n"));
    }
    if db.is_some_and(|d| d.strategy() == Strategy::Rollback)
        && (failure.contains("PoolTimedOut") || failure.contains("pool timed out"))
    {
        out.push_str(
            "note:     the code held a second connection at once. Rollback gives a test one \
             connection (its transaction lives there); close the first before taking another, or \
             use strategy = \"template\"\n",
        );
    }
    if db.is_some_and(|d| d.strategy() == Strategy::Rollback)
        && (failure.contains("InvalidSavePointStatement")
            || failure.contains("cannot start a transaction within a transaction"))
    {
        out.push_str(
            "note:     the code began a transaction of its own kind (`begin_with(\"BEGIN \
             IMMEDIATE\")`, a raw BEGIN) inside the test's transaction, where only savepoints \
             can start: use strategy = \"template\" (or \"truncate\")\n",
        );
    }
    if db.is_some_and(|d| d.strategy() == Strategy::Namespace)
        && !args.fixtures.is_empty()
        && failure.contains("duplicate key value")
    {
        out.push_str(
            "note:     under Namespace, fixtures are loaded once into the shared database and \
             shared, read-only, by every test that names them; a row the test writes with the key \
             of a fixture row (or of another test's row) collides. Let the database choose keys, \
             make them from the test's token, or use strategy = \"template\"\n",
        );
    }
    out.push_str("──────────────────────────────");
    out
}

/// What the server itself did to a failed test, if anything (see
/// [`Server::fault_note`](crate::server::Server::fault_note)).
fn server_fault(failure: &str) -> Option<String> {
    crate::backend::postgres::server::Server::resolved()?.fault_note(failure)
}

/// What the failure block says about the state the failed test left: where it is kept and the
/// command that opens it, or, under Rollback, how to re-run the test keeping it.
fn kept_lines<DB: Isolated>(db: &TestDb<DB>, args: &TestArgs, short: &str) -> String {
    let open = |url: &str| match url.strip_prefix("sqlite://") {
        Some(path) => format!("sqlite3 '{}'", path.split('?').next().unwrap_or(path)),
        None => format!("psql '{url}'"),
    };
    match db.kept_state() {
        Some(Kept::Database(name)) => {
            let url = db.url().unwrap_or_else(|| name.clone());
            let tools = if url.starts_with("sqlite:") {
                "`seedbed sweep --sqlite --kept` removes it"
            } else {
                "`seedbed list` shows it, `seedbed sweep --kept` removes it"
            };
            format!(
                "kept:     database {name}, as the test left it ({tools})\n\
                 open it:  {}\n",
                open(&url)
            )
        }
        Some(Kept::Rows { database, token }) => {
            let url = db.url().unwrap_or_else(|| database.clone());
            let (list, sweep) = if url.starts_with("sqlite:") {
                (
                    format!("SELECT tbl, rid FROM seedbed_journal WHERE token = '{token}'"),
                    "seedbed sweep --sqlite --kept",
                )
            } else {
                (
                    format!(
                        "SELECT relid::regclass AS table_name, pk FROM seedbed.journal \
                         WHERE token = '{token}'"
                    ),
                    "seedbed sweep --kept",
                )
            };
            format!(
                "kept:     the test's rows in {database}, journaled under token {token} \
                 (`{sweep}` removes them)\n\
                 list them: {} \"{list}\"\n",
                if url.starts_with("sqlite:") {
                    open(&url)
                } else {
                    format!("{} -c", open(&url))
                }
            )
        }
        None if db.strategy() == Strategy::Rollback => {
            let how = if args.strategy == Some(Strategy::Rollback) {
                "change its attribute's strategy = \"rollback\" to \"template\"".to_string()
            } else {
                format!("SEEDBED_STRATEGY=template cargo test {short}")
            };
            format!(
                "state:    rolled back. To keep a failed test's database, re-run it under \
                 Template: {how}\n"
            )
        }
        None => String::new(),
    }
}

/// Polls a future and turns a panic inside it into an `Err`, so the harness can clean up and
/// report before the panic continues.
struct CatchUnwind<F> {
    fut: Pin<Box<F>>,
}

impl<F> CatchUnwind<F> {
    fn new(fut: F) -> Self {
        Self { fut: Box::pin(fut) }
    }
}

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn Any + Send>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let fut = self.get_mut().fut.as_mut();
        match std::panic::catch_unwind(AssertUnwindSafe(|| fut.poll(cx))) {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}
