//! One test process of the process-per-test runs: what `cargo nextest` starts for every test.
//!
//! `seedbed bench` starts a program (its own binary: `seedbed __bench-child …`) once per test,
//! with the arguments [`ChildSpec::to_args`] makes and the server's URL in
//! `SEEDBED_DATABASE_URL`. The program hands the arguments to [`ChildSpec::parse`] and the spec
//! to [`run_child`], on a current-thread runtime as `#[tokio::test]` builds, and prints the
//! [`ChildReport`] line on stdout. The test itself is what an in-process test of the run does:
//! the same tables, the same rows ([`RowPlan`] read from the file the parent wrote), through the
//! public API only:
//!
//! - a **strategy**: [`Isolation::new`]`(strategy)…acquire()`, a first query, the writes,
//!   [`TestDb::finish`](crate::TestDb::finish);
//! - the **baseline**: create a database, run every migration, write, drop it, as
//!   `#[sqlx::test]` does;
//! - the **floor**: connect to an already migrated database, `BEGIN`, the writes, `ROLLBACK`:
//!   the least a test process that writes these rows can cost.
//!
//! ```no_run
//! # async fn demo() -> Result<(), seedbed::Error> {
//! use seedbed::bench::{ChildSpec, run_child};
//! use seedbed::isolation::MigrationSource;
//!
//! let started = std::time::Instant::now();
//! let spec = ChildSpec::parse(std::env::args_os().skip(2))?;
//! let report = run_child(&spec, MigrationSource::Dir("migrations".into()), started).await?;
//! println!("{}", report.to_line());
//! # Ok(()) }
//! ```

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant};

use sqlx::postgres::PgConnectOptions;
use sqlx::types::JsonValue;
use sqlx::{Connection, PgConnection};

use super::Target;
use crate::backend::postgres::admin;
use crate::backend::postgres::server::Server;
use crate::error::{Error, Result};
use crate::isolation::{Isolation, MigrationSource, Migrations};
use crate::rowgen::rows::{RowPlan, RowWriter};
use crate::sql::QualifiedName;

/// The start of the line a test process prints its [`ChildReport`] on.
const LINE_PREFIX: &str = "seedbed-bench-child ";

/// The variable that tells a test process of a MySQL run that it runs on MySQL (`mysql`); its
/// server is then the one `SEEDBED_MYSQL_URL` names.
#[cfg(feature = "mysql")]
pub(crate) const BACKEND_VAR: &str = "SEEDBED_BENCH_BACKEND";

/// The database system a test process of the bench runs on, as its environment says: MySQL when
/// `SEEDBED_BENCH_BACKEND` is `mysql`, SQLite when `SEEDBED_DATABASE_URL` is a `sqlite:` URL,
/// else PostgreSQL. A program that runs [`run_child`] chooses its own migrations by it.
///
/// ```
/// use seedbed::bench::{Backend, child_backend};
/// // Nothing in this environment says SQLite or MySQL.
/// # if std::env::var_os("SEEDBED_BENCH_BACKEND").is_none()
/// #     && !std::env::var("SEEDBED_DATABASE_URL").is_ok_and(|u| u.starts_with("sqlite:")) {
/// assert_eq!(child_backend(), Backend::Postgres);
/// # }
/// ```
pub fn child_backend() -> super::Backend {
    #[cfg(feature = "mysql")]
    if std::env::var(BACKEND_VAR).is_ok_and(|b| b == "mysql") {
        return super::Backend::MySql;
    }
    #[cfg(feature = "sqlite")]
    if std::env::var("SEEDBED_DATABASE_URL").is_ok_and(|u| u.starts_with("sqlite:")) {
        return super::Backend::Sqlite;
    }
    super::Backend::Postgres
}

/// What a test process runs: a target of the run, or the floor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChildKind {
    /// A strategy, or the baseline.
    Target(Target),
    /// The least a test process can cost: connect to `database` (migrated), `BEGIN`, the writes,
    /// `ROLLBACK`.
    Floor {
        /// The migrated database it writes into.
        database: String,
    },
}

/// Where a test process's migrations come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChildMigrations {
    /// A directory (absolute, since the process may start anywhere).
    Dir(PathBuf),
    /// The program's own: the source it gives [`run_child`] (migrations embedded with
    /// `sqlx::migrate!()`, which cannot travel as an argument).
    Program,
    /// None: tests start from an empty database.
    None,
}

/// One test process's instructions, as arguments.
///
/// ```
/// use std::path::PathBuf;
/// use seedbed::bench::{ChildKind, ChildMigrations, ChildSpec, Target};
/// use seedbed::Strategy;
///
/// let spec = ChildSpec {
///     kind: ChildKind::Target(Target::Strategy(Strategy::Template)),
///     test: 3,
///     tests: 21,
///     plan: PathBuf::from("/tmp/plan.json"),
///     tables: 6,
///     rows: 20,
///     seed: 42,
///     migrations: ChildMigrations::Program,
/// };
/// let args = spec.to_args();
/// assert_eq!(args[..2], ["--target", "template"]);
/// assert_eq!(ChildSpec::parse(args).unwrap(), spec);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildSpec {
    /// What to run.
    pub kind: ChildKind,
    /// The test's number in the run: its tables and values come from it, as the in-process
    /// test of the same number.
    pub test: usize,
    /// How many test processes the run numbers (`test` is below it): their unique values are
    /// interleaved so that none collide ([`RowPlan::interleave`]).
    pub tests: usize,
    /// The row plan the parent saved ([`RowPlan::save`]).
    pub plan: PathBuf,
    /// Tables the test writes (about).
    pub tables: usize,
    /// Rows it writes into each.
    pub rows: usize,
    /// The run's seed.
    pub seed: u64,
    /// Its migrations.
    pub migrations: ChildMigrations,
}

impl ChildSpec {
    /// The arguments that [`parse`](Self::parse) reads back.
    pub fn to_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        let mut push = |key: &str, value: &OsStr| {
            args.push(key.into());
            args.push(value.to_os_string());
        };
        match &self.kind {
            ChildKind::Target(t) => push("--target", t.name().as_ref()),
            ChildKind::Floor { database } => {
                push("--target", "floor".as_ref());
                push("--database", database.as_ref());
            }
        }
        push("--test", self.test.to_string().as_ref());
        push("--tests", self.tests.to_string().as_ref());
        push("--plan", self.plan.as_os_str());
        push("--tables", self.tables.to_string().as_ref());
        push("--rows", self.rows.to_string().as_ref());
        push("--seed", self.seed.to_string().as_ref());
        match &self.migrations {
            ChildMigrations::Dir(dir) => push("--migrations", dir.as_os_str()),
            ChildMigrations::None => args.push("--no-migrations".into()),
            ChildMigrations::Program => {}
        }
        args
    }

    /// Reads the arguments [`to_args`](Self::to_args) made; [`Error::Config`] names what is
    /// missing or wrong.
    pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<ChildSpec> {
        let bad = |what: String| Error::Config(format!("bench test process: {what}"));
        let mut target = None;
        let mut database = None;
        let mut plan = None;
        let mut migrations = ChildMigrations::Program;
        let mut numbers: [(&str, Option<u64>); 5] = [
            ("--test", None),
            ("--tests", None),
            ("--tables", None),
            ("--rows", None),
            ("--seed", None),
        ];
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let key = arg.to_string_lossy().into_owned();
            if key == "--no-migrations" {
                migrations = ChildMigrations::None;
                continue;
            }
            let value = args
                .next()
                .ok_or_else(|| bad(format!("{key} needs a value")))?;
            match key.as_str() {
                "--target" => target = Some(value.to_string_lossy().into_owned()),
                "--database" => database = Some(value.to_string_lossy().into_owned()),
                "--plan" => plan = Some(PathBuf::from(value)),
                "--migrations" => migrations = ChildMigrations::Dir(PathBuf::from(value)),
                _ => {
                    let slot = numbers
                        .iter_mut()
                        .find(|(k, _)| *k == key)
                        .ok_or_else(|| bad(format!("unknown argument {key}")))?;
                    let text = value.to_string_lossy();
                    slot.1 = Some(
                        text.parse()
                            .map_err(|_| bad(format!("{key} wants a number, got {text:?}")))?,
                    );
                }
            }
        }
        let number = |key: &str| -> Result<u64> {
            numbers
                .iter()
                .find(|(k, _)| *k == key)
                .and_then(|(_, v)| *v)
                .ok_or_else(|| bad(format!("{key} is missing")))
        };
        let count = |key: &str| -> Result<usize> {
            usize::try_from(number(key)?).map_err(|_| bad(format!("{key} is too large")))
        };
        let target = target.ok_or_else(|| bad("--target is missing".into()))?;
        let kind = if target == "floor" {
            ChildKind::Floor {
                database: database.ok_or_else(|| bad("the floor needs --database".into()))?,
            }
        } else {
            ChildKind::Target(Target::from_str(&target)?)
        };
        let spec = ChildSpec {
            kind,
            test: count("--test")?,
            tests: count("--tests")?,
            plan: plan.ok_or_else(|| bad("--plan is missing".into()))?,
            tables: count("--tables")?,
            rows: count("--rows")?,
            seed: number("--seed")?,
            migrations,
        };
        if spec.test >= spec.tests {
            return Err(bad(format!(
                "--test {} must be below --tests {}",
                spec.test, spec.tests
            )));
        }
        Ok(spec)
    }

    fn migration_source(&self, program: MigrationSource) -> MigrationSource {
        match &self.migrations {
            ChildMigrations::Dir(dir) => MigrationSource::Dir(dir.clone()),
            ChildMigrations::Program => program,
            ChildMigrations::None => MigrationSource::None,
        }
    }
}

/// What a test process measured of itself, printed as one line on its stdout
/// ([`to_line`](Self::to_line)) for the parent, which times the whole process from outside.
///
/// ```
/// use std::time::Duration;
/// use seedbed::bench::ChildReport;
///
/// let report = ChildReport {
///     database: "seedbed_bench_3f2a".into(),
///     overhead: Duration::from_micros(1200),
///     writes: Duration::from_micros(4100),
///     total: Duration::from_micros(9800),
/// };
/// let stdout = format!("some output of the test\n{}\n", report.to_line());
/// assert_eq!(ChildReport::from_output(&stdout), Some(report));
/// assert_eq!(ChildReport::from_output("nothing"), None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildReport {
    /// The database the test ran on.
    pub database: String,
    /// The test's overhead, timed as in-process tests time theirs: getting the database state
    /// and a first connection, and ending it (for the floor: connecting, `BEGIN`, `ROLLBACK`).
    pub overhead: Duration,
    /// The writes.
    pub writes: Duration,
    /// From the start of the program's `main` (the `started` given to [`run_child`]) to the
    /// end of the test.
    pub total: Duration,
}

impl ChildReport {
    /// The line a test process prints.
    pub fn to_line(&self) -> String {
        let us = |d: Duration| JsonValue::from(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        let doc = JsonValue::Object(
            [
                ("database", JsonValue::String(self.database.clone())),
                ("overhead_us", us(self.overhead)),
                ("writes_us", us(self.writes)),
                ("total_us", us(self.total)),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        );
        format!("{LINE_PREFIX}{doc}")
    }

    /// The report in a test process's stdout (its last report line), if there is one.
    pub fn from_output(stdout: &str) -> Option<ChildReport> {
        let line = stdout
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix(LINE_PREFIX))?;
        let doc: JsonValue = line.parse().ok()?;
        let us = |key: &str| doc.get(key)?.as_u64().map(Duration::from_micros);
        Some(ChildReport {
            database: doc.get("database")?.as_str()?.to_string(),
            overhead: us("overhead_us")?,
            writes: us("writes_us")?,
            total: us("total_us")?,
        })
    }
}

/// Runs the test `spec` describes, as a test process does (see
/// [one process per test](super#one-process-per-test)); `program` is the program's own
/// migrations (for [`ChildMigrations::Program`]) and `started` the start of its `main`.
///
/// It reads the [`RowPlan`] the bench saved, takes its part of the unique values
/// ([`RowPlan::interleave`]), chooses the tables and values of test `spec.test` as the
/// in-process test of that number does, then:
///
/// - for a **strategy**: [`Isolation::new`]`(strategy)…acquire()` (the server resolved from
///   the environment), a first query, the writes, [`TestDb::finish`](crate::TestDb::finish);
/// - for the **baseline**: create a database, run every migration, write, drop it, as
///   `#[sqlx::test]` does;
/// - for the **floor**: connect to the migrated database named in the spec (on the server of
///   `SEEDBED_DATABASE_URL`), `BEGIN`, the writes, `ROLLBACK`.
///
/// A program runs it on a current-thread runtime (as `#[tokio::test]` builds) and prints the
/// report's [line](ChildReport::to_line) on stdout. Errors are the test's failure: the program
/// should print it and exit with a failure.
pub async fn run_child(
    spec: &ChildSpec,
    program: MigrationSource,
    started: Instant,
) -> Result<ChildReport> {
    let mut plan = RowPlan::load(&spec.plan)?;
    plan.interleave(spec.test as u64, spec.tests as u64)?;
    let seed = super::runner::test_seed(spec.seed, spec.test);
    let tables = plan.choose_tables(spec.tables, seed);
    let url = std::env::var("SEEDBED_DATABASE_URL").ok();
    let elsewhere: Option<Result<(String, Duration, Duration)>> = match child_backend() {
        super::Backend::Postgres => None,
        #[cfg(feature = "sqlite")]
        super::Backend::Sqlite => {
            Some(sqlite_child(spec, program.clone(), &plan, &tables, seed).await)
        }
        #[cfg(feature = "mysql")]
        super::Backend::MySql => {
            Some(mysql_child(spec, program.clone(), &plan, &tables, seed).await)
        }
    };
    if let Some(ran) = elsewhere {
        let (database, overhead, writes) = ran?;
        return Ok(ChildReport {
            database,
            overhead,
            writes,
            total: started.elapsed(),
        });
    }
    let (database, overhead, writes) = match &spec.kind {
        ChildKind::Floor { database } => {
            let url = url.ok_or_else(|| {
                Error::Config(
                    "the floor test process reads its server from SEEDBED_DATABASE_URL, which is \
                     not set"
                        .into(),
                )
            })?;
            let options = PgConnectOptions::from_str(&url)
                .map_err(|e| {
                    Error::Config(format!("SEEDBED_DATABASE_URL is not a valid URL: {e}"))
                })?
                .database(database);
            let t = Instant::now();
            let mut conn = PgConnection::connect_with(&options)
                .await
                .map_err(Error::db(format!("connecting to {database}")))?;
            let timed =
                super::runner::floor_on(&mut conn, t, database, &plan, &tables, (spec.rows, seed))
                    .await;
            let _ = conn.close().await;
            let (ready, writes, end) = timed?;
            (database.clone(), ready + end, writes)
        }
        ChildKind::Target(Target::Strategy(strategy)) => {
            let t = Instant::now();
            let db = child_isolation(spec, program, *strategy).acquire().await?;
            strategy_child(db, t, &plan, &tables, spec.rows, seed).await?
        }
        ChildKind::Target(Target::Baseline) => {
            baseline(spec, program, &plan, &tables, seed).await?
        }
    };
    Ok(ChildReport {
        database,
        overhead,
        writes,
        total: started.elapsed(),
    })
}

/// The isolation of a strategy's test process. One test in this process, as
/// `#[seedbed::test]` runs under nextest: the engine works on this runtime.
fn child_isolation(
    spec: &ChildSpec,
    program: MigrationSource,
    strategy: crate::isolation::Strategy,
) -> Isolation {
    crate::isolation::engine::adopt_test_runtime();
    Isolation::new(strategy)
        .migration_source(spec.migration_source(program))
        .test_name(format!("seedbed_bench::{strategy}::process_{}", spec.test))
        .seed(spec.seed)
}

/// A strategy's test once its database is acquired: a first query, the writes, finish, and
/// the wait `#[seedbed::test]` makes before its process exits.
async fn strategy_child<DB: crate::backend::Backend>(
    db: crate::TestDb<DB>,
    acquiring: Instant,
    plan: &RowPlan,
    tables: &[QualifiedName],
    rows: usize,
    seed: u64,
) -> Result<(String, Duration, Duration)>
where
    DB::Connection: RowWriter,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
{
    let database = db.database().to_string();
    let pool = db.pool();
    let mut conn = super::runner::first_connection(&pool, &database).await?;
    // From the start of the lease (its connections, the checks before it) to the test's first
    // connection: what the floor's connecting stands for.
    let ready = acquiring.elapsed();
    let w = Instant::now();
    let filled = plan.fill(&mut *conn, tables, rows, seed).await;
    let writes = w.elapsed();
    drop(conn);
    let e = Instant::now();
    let finished = db.finish().await;
    let end = e.elapsed();
    crate::isolation::engine::settle(std::time::Duration::from_secs(60)).await;
    filled?;
    finished?;
    Ok((database, ready + end, writes))
}

/// A test process on SQLite (`SEEDBED_DATABASE_URL` is a `sqlite:` URL, `SEEDBED_SQLITE_DIR`
/// the run's directory).
#[cfg(feature = "sqlite")]
async fn sqlite_child(
    spec: &ChildSpec,
    program: MigrationSource,
    plan: &RowPlan,
    tables: &[QualifiedName],
    seed: u64,
) -> Result<(String, Duration, Duration)> {
    use super::host::sqlite;
    let dir = crate::backend::sqlite::Directory::get().await?;
    match &spec.kind {
        ChildKind::Floor { database } => {
            let slot = std::env::var("NEXTEST_TEST_GLOBAL_SLOT")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let database = sqlite::floor_database(database, slot);
            let (ready, writes, end) =
                sqlite::floor(dir, &database, plan, tables, spec.rows, seed).await?;
            Ok((database, ready + end, writes))
        }
        ChildKind::Target(Target::Strategy(strategy)) => {
            let t = Instant::now();
            let db = child_isolation(spec, program, *strategy)
                .acquire_on::<sqlx::Sqlite>()
                .await?;
            strategy_child(db, t, plan, tables, spec.rows, seed).await
        }
        ChildKind::Target(Target::Baseline) => {
            let migrations = child_migrations(spec, program).await?;
            let name = format!("seedbed_bench_b_{}_{}", std::process::id(), spec.test);
            let (ready, writes, end) = sqlite::baseline(dir, &name, &migrations, async |conn| {
                plan.fill(conn, tables, spec.rows, seed).await.map(|_| ())
            })
            .await?;
            Ok((name, ready + end, writes))
        }
    }
}

/// A test process on MySQL (`SEEDBED_BENCH_BACKEND=mysql`, the server in `SEEDBED_MYSQL_URL`).
#[cfg(feature = "mysql")]
async fn mysql_child(
    spec: &ChildSpec,
    program: MigrationSource,
    plan: &RowPlan,
    tables: &[QualifiedName],
    seed: u64,
) -> Result<(String, Duration, Duration)> {
    use super::host::mysql;
    use crate::backend::mysql::MySqlServer;
    use sqlx::MySqlConnection;
    match &spec.kind {
        ChildKind::Floor { database } => {
            // As a test process finds it, without a connection of its own.
            let server = MySqlServer::from_env().await?;
            let (ready, writes, end) =
                mysql::floor(&server, database, plan, tables, spec.rows, seed).await?;
            Ok((database.clone(), ready + end, writes))
        }
        ChildKind::Target(Target::Strategy(strategy)) => {
            let t = Instant::now();
            let db = child_isolation(spec, program, *strategy)
                .acquire_on::<sqlx::MySql>()
                .await?;
            strategy_child(db, t, plan, tables, spec.rows, seed).await
        }
        ChildKind::Target(Target::Baseline) => {
            let t = Instant::now();
            let migrations = child_migrations(spec, program).await?;
            let server = MySqlServer::from_env().await?;
            let mut admin = MySqlConnection::connect_with(&server.options())
                .await
                .map_err(|e| server.explain(e, Duration::ZERO))?;
            let before = t.elapsed();
            let name = mysql::baseline_database(spec.test);
            let ran = mysql::baseline(&server, &mut admin, &name, &migrations, async |conn| {
                plan.fill(conn, tables, spec.rows, seed).await.map(|_| ())
            })
            .await;
            let _ = admin.close().await;
            let (ready, writes, end) = ran?;
            // As the PostgreSQL baseline counts it: from the start (reading the migrations,
            // connecting) until the database is migrated, and its drop.
            Ok((name, before + ready + end, writes))
        }
    }
}

/// The migrations of a test process, read as `#[sqlx::test]` reads them.
async fn child_migrations(spec: &ChildSpec, program: MigrationSource) -> Result<Migrations> {
    Ok(match spec.migration_source(program) {
        MigrationSource::Dir(dir) => Migrations::from_dir(dir).await?,
        MigrationSource::Migrator(m) => Migrations::from_migrator(m),
        MigrationSource::Custom(make) | MigrationSource::Named(_, make) => make()?,
        MigrationSource::Default => Migrations::from_dir("migrations").await?,
        MigrationSource::None => Migrations::none(),
    })
}

/// What `#[sqlx::test]` does in a test process: connect to the server, create a database, run
/// every migration on it, write, drop it.
async fn baseline(
    spec: &ChildSpec,
    program: MigrationSource,
    plan: &RowPlan,
    tables: &[QualifiedName],
    seed: u64,
) -> Result<(String, Duration, Duration)> {
    let t = Instant::now();
    let migrations = child_migrations(spec, program).await?;
    let server = Server::resolve().await?;
    let mut admin = server.connect().await?;
    let name = format!("seedbed_bench_b_{}_{}", std::process::id(), spec.test);
    if admin::create_database(&mut admin, &name, None, admin::CloneMethod::Default)
        .await
        .is_err()
    {
        // Left by a crashed process with the same id.
        admin::drop_database(&mut admin, &name).await?;
        admin::create_database(&mut admin, &name, None, admin::CloneMethod::Default).await?;
    }
    let work = async {
        let mut conn = PgConnection::connect_with(&server.database_options(&name))
            .await
            .map_err(Error::db(format!("connecting to {name}")))?;
        let result = async {
            migrations
                .apply_at(&mut conn, &server.url_for(&name))
                .await?;
            let ready = t.elapsed();
            let w = Instant::now();
            plan.fill(&mut conn, tables, spec.rows, seed).await?;
            Ok::<_, Error>((ready, w.elapsed()))
        }
        .await;
        let _ = conn.close().await;
        result
    }
    .await;
    let e = Instant::now();
    let dropped = admin::drop_database(&mut admin, &name).await;
    let _ = admin.close().await;
    let end = e.elapsed();
    let (ready, writes) = work?;
    dropped?;
    Ok((name, ready + end, writes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    const FLOOR: &[&str] = &[
        "--target",
        "floor",
        "--database",
        "seedbed_bench_x",
        "--test",
        "0",
        "--tests",
        "3",
        "--plan",
        "/tmp/p.json",
        "--tables",
        "6",
        "--rows",
        "20",
        "--seed",
        "42",
        "--no-migrations",
    ];

    #[test]
    fn the_floor_and_its_database_travel_as_arguments() {
        let spec = ChildSpec::parse(args(FLOOR)).unwrap();
        assert_eq!(
            spec.kind,
            ChildKind::Floor {
                database: "seedbed_bench_x".into()
            }
        );
        assert_eq!(spec.migrations, ChildMigrations::None);
        assert_eq!(ChildSpec::parse(spec.to_args()).unwrap(), spec);
        let dir = ChildSpec {
            migrations: ChildMigrations::Dir("/work/migrations".into()),
            ..spec
        };
        assert_eq!(ChildSpec::parse(dir.to_args()).unwrap(), dir);
    }

    #[test]
    fn bad_arguments_are_named() {
        let err = |list: Vec<&str>| ChildSpec::parse(args(&list)).unwrap_err().to_string();
        let without = |key: &str| {
            let i = FLOOR.iter().position(|a| *a == key).unwrap();
            let mut list = FLOOR.to_vec();
            list.drain(i..i + 2);
            list
        };
        assert!(err(without("--plan")).contains("--plan is missing"));
        assert!(err(without("--database")).contains("the floor needs --database"));
        assert!(err(without("--seed")).contains("--seed is missing"));
        let mut list = FLOOR.to_vec();
        list.extend(["--jobs", "2"]);
        assert!(err(list).contains("unknown argument --jobs"));
        let mut list = FLOOR.to_vec();
        list[7] = "0"; // --tests 0
        assert!(err(list).contains("--test 0 must be below --tests 0"));
        let mut list = FLOOR.to_vec();
        list[1] = "fast";
        assert!(err(list).contains("unknown strategy `fast`"));
        let mut list = FLOOR.to_vec();
        list[13] = "many";
        assert!(err(list).contains("--rows wants a number, got \"many\""));
        assert!(err(vec!["--target"]).contains("--target needs a value"));
    }
}
