//! The strategy benchmark behind `seedbed bench`: which isolation strategy suits a suite, measured
//! on the suite's own schema.
//!
//! [`run`] migrates the schema once, plans rows for it ([`RowPlan`]), then runs a synthetic suite
//! of `tests` tests under each [`Target`]: the four strategies, and the **baseline** that
//! `#[sqlx::test]` users live with (create a database, run every migration, drop it, for every
//! test). Each test writes `rows` rows into about `tables` tables chosen along the foreign-key
//! graph (a table comes with the parents its rows need). Every suite runs twice, serially and
//! with `jobs` parallel workers, and the [`Report`] holds, per target:
//!
//! - the **per-test overhead** (p50, p95, max): everything a test waits for that is not its own
//!   work: getting the database state and its first connection, and ending it (cleanup), timed
//!   around the writes, which are reported apart;
//! - the **suite wall time**, serial and parallel;
//! - the **one-off setup**: the first test of the strategy in the process, which builds what the
//!   strategy needs once (the migrated database, a template and its spares) unless an earlier
//!   run left it;
//! - the **peak connections** the run added on the server, sampled from `pg_stat_activity`, beside
//!   seedbed's connection budget;
//! - an **isolation check**: after the run, the databases the tests used have the rows and
//!   schemas migrations left and nothing more, and the databases that should be gone (clones,
//!   the baseline's) are.
//!
//! ## One process per test
//!
//! `cargo nextest` runs every test in a process of its own, where what a process pays before
//! its test starts (the program, its runtime, resolving the server, the isolation engine's first
//! connections) can outweigh what a strategy saves. With [`BenchConfig::processes`], each target
//! also runs as `tests` **test processes**, `jobs` at a time like `cargo nextest -j`: the bench
//! starts a program ([`ChildCommand`]; `seedbed bench` starts itself as `seedbed __bench-child`)
//! for every test, with a [`ChildSpec`] as arguments and the server's URL in
//! `SEEDBED_DATABASE_URL`. The program runs [`run_child`]: the test the in-process test of the
//! same number is, with the same rows (it reads the [`RowPlan`] the bench saved, and takes its
//! own part of the unique values), through the public API
//! ([`Isolation`](crate::Isolation)`::new(strategy)…acquire()`, the writes,
//! [`TestDb::finish`](crate::TestDb::finish)). Each process is timed from its spawn to its
//! exit, as nextest sees it, and reports its own overhead and writes ([`ChildReport`]); the
//! rest is its **start-up**. A **floor** runs the same way: processes that only connect to the
//! migrated database, `BEGIN`, write the same rows and `ROLLBACK`, the least a test process
//! writing them can cost. Per target the report holds a [`ProcessOutcome`]: the time per
//! process (p50, p95), its start-up, overhead and writes, the suite's wall time, a setup
//! process run before the others (not timed with them), peak connections and an isolation
//! check; [`Report::over_floor`] compares it with the floor, and
//! [`Report::processes_recommendation`] says what to choose under nextest. The test processes
//! run before the in-process suites, while the bench's own process holds nothing of the
//! isolation engine (its leases, pools and background work would be in their way).
//!
//! ## SQLite
//!
//! With [`BenchConfig::backend`] set to [`Backend::Sqlite`] (feature `sqlite`; `seedbed bench
//! --sqlite`, or a `sqlite:` `--database-url`), the same run measures the strategies on SQLite
//! files in the process's directory ([`Directory`](crate::backend::sqlite::Directory)). The
//! baseline is what `#[sqlx::test]` does on SQLite: a new database file, every migration, the
//! file removed. The floor's processes each open a copy of the migrated file of their own
//! (SQLite lets one writer into a file at a time, and the floor measures a process, not a
//! queue). SQLite has no server, so no connections are counted; the isolation check counts the
//! rows of the files the tests used and looks for the files that had to go. Rows are made the
//! same way: the declared types are read as the generator's ([`RowPlan::analyze_sqlite`]), and
//! CHECK constraints as the table's SQL text writes them.
//!
//! ## MySQL and MariaDB
//!
//! With [`BenchConfig::backend`] set to [`Backend::MySql`] (feature `mysql`; `seedbed bench
//! --mysql`, or a `mysql://` `--database-url`), the run measures the strategies on the process's
//! MySQL server. Rows are planned on a database of the run's own
//! (`seedbed_bench_plan_<pid>`, dropped at the end), where floor processes also write, each in a
//! transaction it rolls back. The baseline is what `#[sqlx::test]` does on MySQL: `CREATE
//! DATABASE` on a connection kept open, every migration, the writes, `DROP DATABASE`. Connections
//! are counted in `information_schema.PROCESSLIST`. Template's copies are emptied and given to
//! the next test rather than dropped, so the isolation check counts their rows as it does the
//! other strategies' databases. MySQL's types are read as the generator's (`tinyint(1)` as a
//! boolean, integer types with their own ranges, `ENUM` and `SET` labels, …;
//! [`RowPlan::analyze_mysql`]), and CHECK constraints as the server prints them.
//!
//! ## How rows are made
//!
//! From introspection only, so any schema works without factories:
//!
//! - **Types**: integers, `numeric`, floats, text types (with their length), `bool`, `uuid`, dates
//!   and times, `interval`, `json`/`jsonb`, `bytea`, `inet`/`cidr`/`macaddr`, `tsvector`, `xml`,
//!   bit strings, ranges, arrays (of those), enums (their labels), domains (their base type and
//!   their checks). Values travel as one `jsonb` parameter per statement and are read by each
//!   column's own input function ([`insert_sql`]).
//! - **CHECK constraints** the server prints in the usual shapes are satisfied: bounds
//!   (`x > 0`, `BETWEEN`), lengths, `IN` lists, regular expressions and `LIKE` patterns (values are
//!   generated to match them), `x IS NULL OR …` (left NULL), and orderings of two columns
//!   (`due_on >= issued_on`).
//! - **Keys**: identities, serials and `DEFAULT`s are left to the database; unique columns get
//!   values unique in the run; lookup tables that migrations filled get keys above their rows.
//! - **Foreign keys**: a NOT NULL key takes a parent written earlier in the same test (which is why
//!   parents are chosen with their children), or a row migrations inserted; a nullable one takes a
//!   parent when there is one, else NULL; a nullable self-reference is filled in two statements
//!   (the second half of the rows point at the first); keys made only of foreign keys (a
//!   composite primary key of two parents) never repeat a combination of parents. A cycle is
//!   written where one of its keys is nullable; a cycle of NOT NULL keys cannot be, and its tables
//!   are skipped with a note.
//! - **The probe**: before measuring, every table is written once in a transaction that is rolled
//!   back. A table whose rows the server refuses (a check it could not satisfy, a type it cannot
//!   generate in a NOT NULL column) is skipped with a note naming the table and the constraint or
//!   column, and so are the tables whose rows need it. When no table is left, [`run`] fails with
//!   [`crate::Error::BenchSchema`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), seedbed::Error> {
//! use seedbed::bench::{self, BenchConfig, NoProgress, Target};
//! use seedbed::isolation::MigrationSource;
//! use seedbed::Strategy;
//!
//! let config = BenchConfig {
//!     migrations: MigrationSource::Dir("migrations".into()),
//!     targets: vec![Target::Baseline, Target::Strategy(Strategy::Rollback)],
//!     tests: 20,
//!     ..BenchConfig::default()
//! };
//! let report = bench::run(&config, &NoProgress).await?;
//! if let Some(r) = report.recommendation() {
//!     println!("{}", r.text);
//! }
//!
//! // One process per test: the program hands its arguments to `ChildSpec::parse` and runs
//! // `run_child`, as `seedbed __bench-child` does.
//! let config = BenchConfig {
//!     in_process: false,
//!     processes: Some(bench::ProcessConfig {
//!         command: bench::ChildCommand::new("target/release/seedbed").arg("__bench-child"),
//!         tests: 20,
//!     }),
//!     ..config
//! };
//! let report = bench::run(&config, &NoProgress).await?;
//! if let Some(r) = report.processes_recommendation() {
//!     println!("under cargo nextest: {}", r.text);
//! }
//! # Ok(()) }
//! ```

mod child;
mod host;
mod isolation_check;
mod measure;
mod plan_file;
mod process;
mod report;
mod runner;
mod runner_env;

use std::fmt;
use std::str::FromStr;

pub use self::child::{
    ChildKind, ChildMigrations, ChildReport, ChildSpec, child_backend, run_child,
};
pub use self::measure::Summary;
pub use self::process::ChildCommand;
pub use self::report::{
    Environment, IsolationCheck, Measurements, OverFloor, ProcessMeasurements, ProcessOutcome,
    ProcessRun, Recommendation, Report, SchemaInfo, SuiteRun, TargetOutcome, TargetResult,
};
pub use self::runner::run;
use crate::error::{Error, Result};
use crate::isolation::{MigrationSource, Strategy};
pub use crate::rowgen::rows::{FillStats, RowPlan, RowWriter, Skipped, insert_sql};

/// What a suite runs under: a strategy, or the baseline.
///
/// ```
/// use seedbed::bench::Target;
/// use seedbed::Strategy;
///
/// let targets = Target::parse_list("baseline, rollback,template").unwrap();
/// assert_eq!(targets, [Target::Baseline, Target::Strategy(Strategy::Rollback),
///                      Target::Strategy(Strategy::Template)]);
/// let err = Target::parse_list("rollback,fast").unwrap_err().to_string();
/// assert!(err.contains("`fast`") && err.contains("baseline"), "{err}");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// What `#[sqlx::test]` does for every test: create a database, run every migration, drop it.
    Baseline,
    /// A seedbed isolation strategy.
    Strategy(Strategy),
}

impl Target {
    /// Every target, in the order the report shows them.
    pub const ALL: [Target; 5] = [
        Target::Strategy(Strategy::Rollback),
        Target::Strategy(Strategy::Truncate),
        Target::Strategy(Strategy::Template),
        Target::Strategy(Strategy::Namespace),
        Target::Baseline,
    ];

    /// The lowercase name: a strategy's name, or `baseline`.
    pub fn name(self) -> &'static str {
        match self {
            Target::Baseline => "baseline",
            Target::Strategy(s) => s.name(),
        }
    }

    /// A comma-separated list of names (`rollback,truncate,baseline`), without repeats.
    pub fn parse_list(list: &str) -> Result<Vec<Target>> {
        let mut out = Vec::new();
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let t: Target = name.parse()?;
            if !out.contains(&t) {
                out.push(t);
            }
        }
        if out.is_empty() {
            return Err(Error::Config(
                "no strategy to measure: name some of rollback, truncate, template, namespace, \
                 baseline"
                    .into(),
            ));
        }
        Ok(out)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Target {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let wanted = s.trim().to_ascii_lowercase();
        Target::ALL
            .into_iter()
            .find(|t| t.name() == wanted)
            .ok_or_else(|| {
                Error::Config(format!(
                    "unknown strategy `{s}`: choose from rollback, truncate, template, namespace, \
                     baseline"
                ))
            })
    }
}

/// The database system a benchmark runs on.
///
/// ```
/// use seedbed::bench::{Backend, BenchConfig};
/// assert_eq!(BenchConfig::default().backend, Backend::Postgres);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// PostgreSQL: the process's server (`SEEDBED_DATABASE_URL`, `DATABASE_URL`, else the
    /// embedded server, or one installed with
    /// [`Server::install`](crate::server::Server::install)).
    #[default]
    Postgres,
    /// SQLite (feature `sqlite`): database files in the process's directory
    /// ([`Directory::get`](crate::backend::sqlite::Directory::get), or one installed with
    /// [`Directory::install`](crate::backend::sqlite::Directory::install)). The baseline is what
    /// `#[sqlx::test]` does on SQLite: a new database file and every migration per test.
    #[cfg(feature = "sqlite")]
    Sqlite,
    /// MySQL or MariaDB (feature `mysql`): the process's MySQL server (`SEEDBED_MYSQL_URL`, a
    /// `mysql://` `SEEDBED_DATABASE_URL` or `DATABASE_URL`, else the embedded server, or one
    /// installed with [`MySqlServer::install`](crate::backend::mysql::MySqlServer::install)).
    /// The baseline is what `#[sqlx::test]` does on MySQL: `CREATE DATABASE`, every migration,
    /// `DROP DATABASE` per test.
    #[cfg(feature = "mysql")]
    MySql,
}

/// The process-per-test runs of a benchmark: every test in a process of its own, as
/// `cargo nextest` runs them.
///
/// ```
/// use seedbed::bench::{ChildCommand, ProcessConfig};
///
/// let processes = ProcessConfig {
///     command: ChildCommand::new("target/release/seedbed").arg("__bench-child"),
///     tests: 50,
/// };
/// assert_eq!(processes.tests, 50);
/// ```
#[derive(Debug, Clone)]
pub struct ProcessConfig {
    /// How to start a test process: a program that hands the arguments after these to
    /// [`ChildSpec::parse`] and runs [`run_child`] (see the [`child`](ChildSpec) docs).
    pub command: ChildCommand,
    /// Test processes per target, and for the floor (each target's setup process not counted);
    /// they run [`BenchConfig::jobs`] at a time.
    pub tests: usize,
}

/// What [`run`] measures, and on what.
///
/// ```
/// let config = seedbed::bench::BenchConfig::default();
/// assert_eq!(config.targets.len(), 5);
/// assert!(config.tests > 0 && config.jobs > 0);
/// assert!(config.in_process && config.processes.is_none());
/// ```
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// The database system to run on.
    pub backend: Backend,
    /// The migrations of the schema (a relative directory is taken from the current directory).
    pub migrations: MigrationSource,
    /// What to measure, in this order.
    pub targets: Vec<Target>,
    /// Tests per suite (each suite runs once serially and once in parallel).
    pub tests: usize,
    /// Tables each test writes (about: parents come with their children).
    pub tables: usize,
    /// Rows each test writes into each of its tables.
    pub rows: usize,
    /// Parallel workers of the parallel run.
    pub jobs: usize,
    /// The seed of the generated rows and of the tables each test chooses.
    pub seed: u64,
    /// Whether to run the in-process suites (serial and parallel).
    pub in_process: bool,
    /// The process-per-test runs, if wanted (they need a program to start for each test).
    pub processes: Option<ProcessConfig>,
}

impl Default for BenchConfig {
    fn default() -> Self {
        Self {
            backend: Backend::Postgres,
            migrations: MigrationSource::Default,
            targets: Target::ALL.to_vec(),
            tests: 100,
            tables: 6,
            rows: 20,
            jobs: std::thread::available_parallelism().map_or(2, |n| n.get()),
            seed: 42,
            in_process: true,
            processes: None,
        }
    }
}

/// Hears how a run goes: `seedbed bench` draws a progress bar with it.
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use seedbed::bench::Progress;
///
/// #[derive(Default)]
/// struct Count(AtomicU64);
///
/// impl Progress for Count {
///     fn test_done(&self) {
///         self.0.fetch_add(1, Ordering::Relaxed);
///     }
/// }
/// let count = Count::default();
/// count.test_done();
/// assert_eq!(count.0.load(Ordering::Relaxed), 1);
/// ```
pub trait Progress: Send + Sync {
    /// A phase starts (`rollback, 2 jobs`), with the number of tests it will run.
    fn phase(&self, name: &str, tests: u64) {
        let _ = (name, tests);
    }

    /// A test of the current phase ended.
    fn test_done(&self) {}

    /// Something worth telling (a skipped table, a strategy not available).
    fn note(&self, text: &str) {
        let _ = text;
    }
}

/// A [`Progress`] that ignores everything.
///
/// ```
/// use seedbed::bench::{NoProgress, Progress};
/// NoProgress.phase("rollback", 10);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}
