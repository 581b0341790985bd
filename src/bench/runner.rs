//! Running the suites: one per target, serially and with parallel workers, timing each test.

use std::collections::BTreeSet;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection};

use super::host::Host;
use super::isolation_check::{Expected, Registered};
use super::measure::Summary;
use super::process::{Children, PlanFile};
use super::report::{
    Measurements, ProcessOutcome, Report, SchemaInfo, SuiteRun, TargetOutcome, TargetResult,
};
use super::{BenchConfig, Progress, Target};
use crate::backend::postgres::admin;
use crate::error::{Error, Result};
use crate::isolation::{Isolation, MigrationSource, Migrations};
use crate::rowgen::rows::{FillStats, RowPlan, RowWriter};

/// How long the isolation check waits for clones dropped in the background.
const DROP_WAIT: Duration = Duration::from_secs(30);

/// What every test of a run shares.
struct Shared {
    host: Host,
    plan: RowPlan,
    source: MigrationSource,
    migrations: Migrations,
    tables: usize,
    rows: usize,
    seed: u64,
}

/// One test's timings.
struct Sample {
    overhead: Duration,
    body: Duration,
    database: Option<String>,
    error: Option<String>,
}

/// Runs the benchmark `config` describes (see the [module docs](super)), telling `progress` how
/// it goes.
///
/// Errors are for what stops the whole run: migrations that cannot be read or applied
/// ([`Error::Migrations`], [`Error::Migration`]), no server ([`Error::NoServer`],
/// [`Error::Unreachable`]), a schema with no table to fill ([`Error::BenchSchema`]). A strategy
/// that cannot run is reported as unavailable, and failing tests are counted, without stopping
/// the others.
pub async fn run(config: &BenchConfig, progress: &dyn Progress) -> Result<Report> {
    validate(config)?;
    let started = Instant::now();
    let (source, migrations, label) = load_migrations(&config.migrations).await?;
    let host = Host::resolve(config.backend).await?;

    progress.phase("migrating and planning rows", 1);
    let planned = host.plan(&migrations, config.rows).await?;
    let (plan, expected, plan_database) = (planned.plan, planned.expected, planned.database);
    progress.test_done();
    for s in plan.skipped() {
        progress.note(&format!("skipped {s}"));
    }
    let floors = config.processes.as_ref().map_or(0, |_| config.jobs);
    let measured = measure(
        config,
        progress,
        host,
        (plan, expected, &plan_database),
        (source, migrations, label),
    )
    .await;
    host.forget_plan(&plan_database, floors).await;
    let mut report = measured?;
    report.elapsed = started.elapsed();
    Ok(report)
}

/// The run once the rows are planned: the test processes, then the in-process suites.
async fn measure(
    config: &BenchConfig,
    progress: &dyn Progress,
    host: Host,
    (plan, expected, plan_database): (RowPlan, Expected, &str),
    (source, migrations, label): (MigrationSource, Migrations, String),
) -> Result<Report> {
    let mut report = Report::new(config);
    report.environment = host.environment().await?;
    report.schema = SchemaInfo {
        source: label,
        migrations: migrations.len(),
        checksum: migrations.checksum().to_string(),
        tables: plan.schema_tables(),
        fillable: plan.tables().map(|t| t.unquoted()).collect(),
        skipped: plan.skipped().to_vec(),
    };
    let shared = Arc::new(Shared {
        host,
        plan,
        source,
        migrations,
        tables: config.tables,
        rows: config.rows,
        seed: config.seed,
    });
    report.results = config
        .targets
        .iter()
        .map(|&target| TargetResult {
            target,
            outcome: None,
            processes: None,
        })
        .collect();
    // The test processes run first, while this process holds nothing of the isolation engine:
    // after the in-process suites it would keep their leases (Truncate's slots), pools and
    // background work (Template's spares), which test processes would wait for or compete with.
    if let Some(processes) = &config.processes {
        host.prepare_floor(plan_database, config.jobs)?;
        let children = Arc::new(Children {
            command: processes.command.clone(),
            env: host.child_env(plan_database),
            plan: PlanFile::write(&shared.plan)?,
            migrations: super::process::child_migrations(&shared.source),
            tests: processes.tests,
            jobs: config.jobs,
            tables: config.tables,
            rows: config.rows,
            seed: config.seed,
        });
        report.floor = Some(children.floor(plan_database, progress).await);
        for result in &mut report.results {
            let outcome = children
                .target(host, result.target, &expected, progress)
                .await?;
            if let ProcessOutcome::Unavailable(why) = &outcome {
                progress.note(&format!(
                    "{} not measured in processes: {why}",
                    result.target
                ));
            }
            result.processes = Some(outcome);
        }
    }
    if config.in_process {
        for result in &mut report.results {
            let target = result.target;
            let outcome = run_target(&shared, target, config, progress, &expected).await?;
            if let TargetOutcome::Unavailable(why) = &outcome {
                progress.note(&format!("{target} not measured: {why}"));
            }
            result.outcome = Some(outcome);
        }
    }
    Ok(report)
}

fn validate(config: &BenchConfig) -> Result<()> {
    for (what, n) in [
        ("--tests", config.tests),
        ("--tables", config.tables),
        ("--rows", config.rows),
        ("--jobs", config.jobs),
    ] {
        if n == 0 {
            return Err(Error::Config(format!("{what} must be at least 1")));
        }
    }
    if config.targets.is_empty() {
        return Err(Error::Config(
            "no strategy to measure: name some of rollback, truncate, template, namespace, \
             baseline"
                .into(),
        ));
    }
    if let Some(p) = &config.processes {
        super::process::validate(p.tests, &p.command)?;
    }
    if !config.in_process && config.processes.is_none() {
        return Err(Error::Config(
            "nothing to run: neither the in-process suites nor the process-per-test runs".into(),
        ));
    }
    Ok(())
}

/// The migrations, a source tests can use from any directory, and a label for the report.
async fn load_migrations(
    source: &MigrationSource,
) -> Result<(MigrationSource, Migrations, String)> {
    let absolute = |dir: &PathBuf| -> Result<PathBuf> {
        if dir.is_absolute() {
            return Ok(dir.clone());
        }
        let cwd = std::env::current_dir().map_err(Error::io("cannot read", "."))?;
        Ok(cwd.join(dir))
    };
    match source {
        MigrationSource::Dir(dir) => {
            let dir = absolute(dir)?;
            let migrations = Migrations::from_dir(&dir).await?;
            let label = dir.display().to_string();
            Ok((MigrationSource::Dir(dir), migrations, label))
        }
        MigrationSource::Default => {
            let root = std::env::var_os("CARGO_MANIFEST_DIR")
                .map(PathBuf::from)
                .map_or_else(|| absolute(&PathBuf::from(".")), Ok)?;
            let dir = root.join("migrations");
            let migrations = Migrations::from_dir(&dir).await?;
            let label = dir.display().to_string();
            Ok((MigrationSource::Dir(dir), migrations, label))
        }
        MigrationSource::Migrator(m) => Ok((
            MigrationSource::Migrator(m),
            Migrations::from_migrator(m),
            "embedded migrations".into(),
        )),
        MigrationSource::Named(name, make) => Ok((
            MigrationSource::Named(name, *make),
            make()?,
            format!("migrations of {name}"),
        )),
        MigrationSource::Custom(make) => Ok((
            MigrationSource::Custom(*make),
            make()?,
            "custom migrations".into(),
        )),
        MigrationSource::None => Ok((
            MigrationSource::None,
            Migrations::none(),
            "no migrations".into(),
        )),
    }
}

async fn run_target(
    shared: &Arc<Shared>,
    target: Target,
    config: &BenchConfig,
    progress: &dyn Progress,
    expected: &Expected,
) -> Result<TargetOutcome> {
    let host = shared.host;
    let before = host.database_names().await?;
    let sampler = host.sampler().await?;

    // The first test builds what the strategy needs once.
    progress.phase(&format!("{target}: setup"), 1);
    let mut admin = Admin::default();
    let started = Instant::now();
    let first = run_test(shared, target, 0, &mut admin).await;
    let setup = started.elapsed();
    progress.test_done();
    let first_database = match first {
        Ok(Sample {
            error: None,
            database,
            ..
        }) => database,
        Ok(Sample { error: Some(e), .. }) => {
            close_admin(admin).await;
            let _ = sampler.finish().await;
            return Ok(TargetOutcome::Unavailable(e));
        }
        Err(e) => {
            close_admin(admin).await;
            let _ = sampler.finish().await;
            return Ok(TargetOutcome::Unavailable(e.to_string()));
        }
    };
    close_admin(admin).await;
    let after = host.database_names().await?;
    // Databases that appeared and stay: what the strategy built once (a template's clones, and the
    // baseline's database, go with their test).
    let must_go = host.must_go(target);
    let setup_built = target != Target::Baseline
        && after.difference(&before).any(|n| {
            let own_clone = must_go && Some(n) == first_database.as_ref();
            !(host.per_test_database(n) || own_clone)
        });

    let mut used: BTreeSet<String> = first_database.into_iter().collect();
    let serial = run_suite(shared, target, 1, config.tests, 1, progress, &mut used).await;
    let parallel = run_suite(
        shared,
        target,
        config.jobs,
        config.tests,
        1 + config.tests,
        progress,
        &mut used,
    )
    .await;
    let peak_connections = sampler.finish().await;

    progress.phase(&format!("{target}: isolation check"), 1);
    let (stay, gone) = if must_go {
        (BTreeSet::new(), used)
    } else {
        (used, BTreeSet::new())
    };
    let registered = if target == Target::Strategy(crate::isolation::Strategy::Template) {
        Registered::ByThisProcess
    } else {
        Registered::Unchecked
    };
    let isolation = host
        .check(expected, &stay, &gone, DROP_WAIT, registered)
        .await;
    progress.test_done();
    Ok(TargetOutcome::Measured(Box::new(Measurements {
        setup: if target == Target::Baseline {
            Duration::ZERO
        } else {
            setup
        },
        setup_built,
        serial,
        parallel,
        peak_connections,
        isolation,
    })))
}

/// The connection a worker's baseline tests create and drop their databases on: like sqlx's
/// test harness, it stays open from test to test.
#[derive(Default)]
struct Admin {
    postgres: Option<PgConnection>,
    #[cfg(feature = "mysql")]
    mysql: Option<sqlx::MySqlConnection>,
}

async fn close_admin(admin: Admin) {
    if let Some(conn) = admin.postgres {
        let _ = conn.close().await;
    }
    #[cfg(feature = "mysql")]
    if let Some(conn) = admin.mysql {
        let _ = conn.close().await;
    }
}

/// `tests` tests with `jobs` workers; test numbers start at `first`.
async fn run_suite(
    shared: &Arc<Shared>,
    target: Target,
    jobs: usize,
    tests: usize,
    first: usize,
    progress: &dyn Progress,
    used: &mut BTreeSet<String>,
) -> SuiteRun {
    progress.phase(
        &format!(
            "{target}: {tests} tests, {jobs} job{}",
            if jobs == 1 { "" } else { "s" }
        ),
        tests as u64,
    );
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..jobs.min(tests) {
        let (shared, next, tx) = (Arc::clone(shared), Arc::clone(&next), tx.clone());
        workers.push(tokio::spawn(async move {
            let mut admin = Admin::default();
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= tests {
                    break;
                }
                let sample = match run_test(&shared, target, first + k, &mut admin).await {
                    Ok(s) => s,
                    Err(e) => Sample {
                        overhead: Duration::ZERO,
                        body: Duration::ZERO,
                        database: None,
                        error: Some(e.to_string()),
                    },
                };
                if tx.send(sample).is_err() {
                    break;
                }
            }
            close_admin(admin).await;
        }));
    }
    drop(tx);
    let mut samples = Vec::with_capacity(tests);
    while let Some(sample) = rx.recv().await {
        progress.test_done();
        samples.push(sample);
    }
    let wall = started.elapsed();
    for w in workers {
        let _ = w.await;
    }
    let ok: Vec<&Sample> = samples.iter().filter(|s| s.error.is_none()).collect();
    used.extend(samples.iter().filter_map(|s| s.database.clone()));
    let failures = samples.len() - ok.len() + (tests - samples.len());
    SuiteRun {
        jobs: jobs.min(tests),
        tests,
        wall,
        overhead: Summary::of(&ok.iter().map(|s| s.overhead).collect::<Vec<_>>()),
        body: Summary::of(&ok.iter().map(|s| s.body).collect::<Vec<_>>()),
        failures,
        first_failure: samples.iter().find_map(|s| s.error.clone()),
    }
}

/// The seed of test `i`.
pub(super) fn test_seed(seed: u64, i: usize) -> u64 {
    let mut z = seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

async fn run_test(shared: &Shared, target: Target, i: usize, admin: &mut Admin) -> Result<Sample> {
    match target {
        Target::Strategy(strategy) => strategy_test(shared, strategy, i).await,
        Target::Baseline => baseline_test(shared, i, admin).await,
    }
}

/// A test under a strategy: acquire, first query, writes, finish.
async fn strategy_test(
    shared: &Shared,
    strategy: crate::isolation::Strategy,
    i: usize,
) -> Result<Sample> {
    let seed = test_seed(shared.seed, i);
    let tables = shared.plan.choose_tables(shared.tables, seed);
    let started = Instant::now();
    let isolation = Isolation::new(strategy)
        .migration_source(shared.source.clone())
        .test_name(format!("seedbed_bench::{strategy}::test_{i}"))
        .seed(shared.seed);
    match shared.host {
        Host::Postgres(_) => {
            let db = isolation.acquire().await?;
            strategy_body(shared, db, started, &tables, seed).await
        }
        #[cfg(feature = "sqlite")]
        Host::Sqlite(_) => {
            let db = isolation.acquire_on::<sqlx::Sqlite>().await?;
            strategy_body(shared, db, started, &tables, seed).await
        }
        #[cfg(feature = "mysql")]
        Host::MySql(_) => {
            let db = isolation.acquire_on::<sqlx::MySql>().await?;
            strategy_body(shared, db, started, &tables, seed).await
        }
    }
}

/// A connection of a strategy test's pool, after its first query: what a test waits for before
/// its own work.
pub(super) async fn first_connection<DB: crate::backend::Backend>(
    pool: &sqlx::Pool<DB>,
    database: &str,
) -> Result<sqlx::pool::PoolConnection<DB>>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
{
    let mut conn = pool
        .acquire()
        .await
        .map_err(Error::db(format!("connecting to {database}")))?;
    sqlx::raw_sql("SELECT 1")
        .execute(&mut *conn)
        .await
        .map_err(Error::db(format!("the first query on {database}")))?;
    Ok(conn)
}

/// The floor's test on `conn`, connected since `started`: `BEGIN`, the writes, `ROLLBACK`.
/// Returns the time from `started` until the writes, the writes' and the ending's; `database`
/// names the database in errors.
pub(super) async fn floor_on<C>(
    conn: &mut C,
    started: Instant,
    database: &str,
    plan: &RowPlan,
    tables: &[crate::sql::QualifiedName],
    (rows, seed): (usize, u64),
) -> Result<(Duration, Duration, Duration)>
where
    C: RowWriter + Connection,
    C::Database: sqlx::Database<Connection = C>,
{
    let mut tx = conn
        .begin()
        .await
        .map_err(Error::db(format!("BEGIN on {database}")))?;
    let ready = started.elapsed();
    let w = Instant::now();
    plan.fill(&mut *tx, tables, rows, seed).await?;
    let writes = w.elapsed();
    let e = Instant::now();
    tx.rollback()
        .await
        .map_err(Error::db(format!("ROLLBACK on {database}")))?;
    Ok((ready, writes, e.elapsed()))
}

/// A strategy test once its database is acquired: a first query, the writes, finish.
async fn strategy_body<DB: crate::backend::Backend>(
    shared: &Shared,
    db: crate::TestDb<DB>,
    started: Instant,
    tables: &[crate::sql::QualifiedName],
    seed: u64,
) -> Result<Sample>
where
    DB::Connection: RowWriter,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
{
    let database = db.database().to_string();
    let pool = db.pool();
    let mut clock = Clock::start(started);
    let work: Result<()> = async {
        let mut conn = first_connection(&pool, &database).await?;
        let filled = clock
            .writes(shared.plan.fill(&mut *conn, tables, shared.rows, seed))
            .await;
        drop(conn);
        filled
    }
    .await;
    Ok(clock.end(database, work, db.finish()).await)
}

/// A test as `#[sqlx::test]` runs it: create a database, migrate it, write, drop it.
async fn baseline_test(shared: &Shared, i: usize, admin: &mut Admin) -> Result<Sample> {
    #[cfg_attr(
        not(any(feature = "sqlite", feature = "mysql")),
        allow(
            clippy::infallible_destructuring_match,
            reason = "the other hosts exist with their backends' features"
        )
    )]
    let server = match shared.host {
        Host::Postgres(server) => server,
        #[cfg(feature = "sqlite")]
        Host::Sqlite(dir) => return sqlite_baseline_test(shared, dir, i).await,
        #[cfg(feature = "mysql")]
        Host::MySql(server) => return mysql_baseline_test(shared, server, i, admin).await,
    };
    let seed = test_seed(shared.seed, i);
    let tables = shared.plan.choose_tables(shared.tables, seed);
    // Like sqlx's test harness, the connection that creates and drops databases stays open.
    let admin = match &mut admin.postgres {
        Some(conn) => conn,
        None => admin.postgres.insert(server.connect().await?),
    };
    let name = format!("seedbed_bench_b_{}_{i}", std::process::id());
    // Left by a crashed run of a process with the same id: not timed.
    admin::drop_database(admin, &name).await?;
    let started = Instant::now();
    admin::create_database(admin, &name, None, admin::CloneMethod::Default).await?;
    let mut clock = Clock::start(started);
    let work: Result<()> = async {
        let mut conn = PgConnection::connect_with(&server.database_options(&name))
            .await
            .map_err(Error::db(format!("connecting to {name}")))?;
        let result = async {
            shared
                .migrations
                .apply_at(&mut conn, &server.url_for(&name))
                .await?;
            clock
                .writes(shared.plan.fill(&mut conn, &tables, shared.rows, seed))
                .await
        }
        .await;
        let _ = conn.close().await;
        result
    }
    .await;
    let dropped = admin::drop_database(admin, &name);
    Ok(clock.end(name.clone(), work, dropped).await)
}

/// The baseline on SQLite: a new database file, every migration, the writes, the file removed.
#[cfg(feature = "sqlite")]
async fn sqlite_baseline_test(
    shared: &Shared,
    dir: &crate::backend::sqlite::Directory,
    i: usize,
) -> Result<Sample> {
    let seed = test_seed(shared.seed, i);
    let tables = shared.plan.choose_tables(shared.tables, seed);
    let name = format!("seedbed_bench_b_{}_{i}", std::process::id());
    let ran = super::host::sqlite::baseline(dir, &name, &shared.migrations, async |conn| {
        shared
            .plan
            .fill(conn, &tables, shared.rows, seed)
            .await
            .map(|_| ())
    })
    .await;
    Ok(finished_baseline(name, ran))
}

/// The baseline on MySQL: `CREATE DATABASE`, every migration, the writes, `DROP DATABASE`, on a
/// connection kept open between tests.
#[cfg(feature = "mysql")]
async fn mysql_baseline_test(
    shared: &Shared,
    server: &'static crate::backend::mysql::MySqlServer,
    i: usize,
    admin: &mut Admin,
) -> Result<Sample> {
    use super::host::mysql;
    let seed = test_seed(shared.seed, i);
    let tables = shared.plan.choose_tables(shared.tables, seed);
    let name = mysql::baseline_database(i);
    let conn = match &mut admin.mysql {
        Some(conn) => conn,
        None => admin.mysql.insert(server.maintenance().await?),
    };
    let ran = mysql::baseline(server, conn, &name, &shared.migrations, async |conn| {
        shared
            .plan
            .fill(conn, &tables, shared.rows, seed)
            .await
            .map(|_| ())
    })
    .await;
    Ok(finished_baseline(name, ran))
}

/// The sample of a baseline test that timed itself: the time until the writes, the writes' and
/// the ending's.
#[cfg(any(feature = "sqlite", feature = "mysql"))]
fn finished_baseline(name: String, ran: Result<(Duration, Duration, Duration)>) -> Sample {
    match ran {
        Ok((ready, writes, end)) => Sample {
            overhead: ready + end,
            body: writes,
            database: Some(name),
            error: None,
        },
        Err(e) => Sample {
            overhead: Duration::ZERO,
            body: Duration::ZERO,
            database: Some(name),
            error: Some(e.to_string()),
        },
    }
}

/// The timings of one test: its overhead is everything from `started` to the writes, and the
/// ending; the writes are timed apart.
struct Clock {
    started: Instant,
    ready: Option<Instant>,
    body: Duration,
}

impl Clock {
    fn start(started: Instant) -> Clock {
        Clock {
            started,
            ready: None,
            body: Duration::ZERO,
        }
    }

    /// Runs the test's writes, timing them.
    async fn writes(&mut self, fill: impl Future<Output = Result<FillStats>>) -> Result<()> {
        let t = Instant::now();
        self.ready = Some(t);
        let filled = fill.await;
        self.body = t.elapsed();
        filled.map(|_| ())
    }

    /// Runs the test's ending (finish, drop) and makes the sample: an error of the work first,
    /// else the ending's.
    async fn end(
        self,
        database: String,
        work: Result<()>,
        ending: impl Future<Output = Result<()>>,
    ) -> Sample {
        let t = Instant::now();
        let ended = ending.await;
        let end = t.elapsed();
        let until_ready = self
            .ready
            .map_or(self.started.elapsed(), |r| r - self.started);
        Sample {
            overhead: until_ready + end,
            body: self.body,
            database: Some(database),
            error: match (work, ended) {
                (Err(e), _) | (Ok(()), Err(e)) => Some(e.to_string()),
                (Ok(()), Ok(())) => None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_seeds_differ() {
        assert_ne!(test_seed(1, 1), test_seed(1, 2));
    }
}
