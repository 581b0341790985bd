//! Where a run's databases live: a PostgreSQL server, (feature `sqlite`) a directory of SQLite
//! files, or (feature `mysql`) a MySQL or MariaDB server. What differs between them in a run is
//! here: the database the rows are planned on, listing databases, counting connections, the
//! isolation check, a baseline test and the report's environment.

use std::collections::BTreeSet;
use std::time::Duration;

use sqlx::{Connection, PgConnection};

use super::isolation_check::{self, Expected, Registered};
use super::measure::Sampler;
use super::report::{Environment, IsolationCheck};
use super::{Backend, runner_env};
use crate::backend::postgres::server::Server;
use crate::error::{Error, Result};
use crate::isolation::{Migrations, databases};
use crate::rowgen::rows::RowPlan;

/// The databases of a run.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Host {
    Postgres(&'static Server),
    #[cfg(feature = "sqlite")]
    Sqlite(&'static crate::backend::sqlite::Directory),
    #[cfg(feature = "mysql")]
    MySql(&'static crate::backend::mysql::MySqlServer),
}

/// What planning found: the rows, what a migrated database holds, and the database the floor
/// writes into.
pub(crate) struct Planned {
    pub(crate) plan: RowPlan,
    pub(crate) expected: Expected,
    pub(crate) database: String,
}

impl Host {
    /// The process's server or SQLite directory, as tests would find it.
    pub(crate) async fn resolve(backend: Backend) -> Result<Host> {
        match backend {
            Backend::Postgres => Ok(Host::Postgres(Server::resolve().await?)),
            #[cfg(feature = "sqlite")]
            Backend::Sqlite => Ok(Host::Sqlite(
                crate::backend::sqlite::Directory::get().await?,
            )),
            #[cfg(feature = "mysql")]
            Backend::MySql => Ok(Host::MySql(
                crate::backend::mysql::MySqlServer::get().await?,
            )),
        }
    }

    /// Migrates a database to plan rows on (kept for the floor), plans them, and reads what the
    /// migrated database holds.
    pub(crate) async fn plan(self, migrations: &Migrations, rows: usize) -> Result<Planned> {
        match self {
            Host::Postgres(server) => {
                let plan_db = databases::ensure(server, migrations, "bench").await?;
                let mut conn = PgConnection::connect_with(&server.database_options(&plan_db.name))
                    .await
                    .map_err(Error::db(format!("connecting to {}", plan_db.name)))?;
                let planned = async {
                    let plan = RowPlan::analyze(&mut conn, rows).await?;
                    let expected = isolation_check::expected(&mut conn).await?;
                    Ok::<_, Error>((plan, expected))
                }
                .await;
                let _ = conn.close().await;
                let (plan, expected) = planned?;
                Ok(Planned {
                    plan,
                    expected,
                    database: plan_db.name.clone(),
                })
            }
            #[cfg(feature = "sqlite")]
            Host::Sqlite(dir) => sqlite::plan(dir, migrations, rows).await,
            #[cfg(feature = "mysql")]
            Host::MySql(server) => mysql::plan(server, migrations, rows).await,
        }
    }

    /// Removes what [`plan`](Self::plan) made that must not outlive the run.
    #[cfg_attr(
        not(feature = "sqlite"),
        expect(unused_variables, reason = "what SQLite removes")
    )]
    pub(crate) async fn forget_plan(self, database: &str, floors: usize) {
        match self {
            // The migrated database is the engine's own, shared with later runs.
            Host::Postgres(_) => {}
            #[cfg(feature = "sqlite")]
            Host::Sqlite(dir) => sqlite::forget_plan(dir, database, floors),
            #[cfg(feature = "mysql")]
            Host::MySql(server) => mysql::forget_plan(server, database).await,
        }
    }

    /// Makes what the floor's test processes write into, `jobs` of them at once.
    #[cfg_attr(
        not(feature = "sqlite"),
        expect(unused_variables, reason = "what SQLite copies")
    )]
    pub(crate) fn prepare_floor(self, database: &str, jobs: usize) -> Result<()> {
        match self {
            // Floor processes write into the migrated database, each in its own transaction.
            Host::Postgres(_) => Ok(()),
            #[cfg(feature = "sqlite")]
            Host::Sqlite(dir) => sqlite::prepare_floor(dir, database, jobs),
            // Floor processes write into the migrated database, each in its own transaction.
            #[cfg(feature = "mysql")]
            Host::MySql(_) => Ok(()),
        }
    }

    /// The names of the databases there are now.
    pub(crate) async fn database_names(self) -> Result<BTreeSet<String>> {
        match self {
            Host::Postgres(server) => isolation_check::database_names(server).await,
            #[cfg(feature = "sqlite")]
            Host::Sqlite(dir) => isolation_check::sqlite_database_names(dir),
            #[cfg(feature = "mysql")]
            Host::MySql(server) => mysql::database_names(server).await,
        }
    }

    /// Starts counting the server's connections (nothing to count on SQLite).
    pub(crate) async fn sampler(self) -> Result<Sampler> {
        match self {
            Host::Postgres(server) => Sampler::start(server).await,
            #[cfg(feature = "sqlite")]
            Host::Sqlite(_) => Ok(Sampler::none()),
            #[cfg(feature = "mysql")]
            Host::MySql(server) => Sampler::on(server.maintenance().await?).await,
        }
    }

    /// The isolation check (see [`isolation_check::check`]).
    pub(crate) async fn check(
        self,
        expected: &Expected,
        stay: &BTreeSet<String>,
        gone: &BTreeSet<String>,
        wait: Duration,
        registered: Registered,
    ) -> IsolationCheck {
        let checked = match self {
            Host::Postgres(server) => {
                isolation_check::check(server, expected, stay, gone, wait, registered).await
            }
            #[cfg(feature = "sqlite")]
            Host::Sqlite(dir) => {
                isolation_check::check_sqlite(dir, expected, stay, gone, wait, registered).await
            }
            // No registry on MySQL: a lease is a named lock, gone with its session.
            #[cfg(feature = "mysql")]
            Host::MySql(server) => mysql::check(server, expected, stay, gone, wait).await,
        };
        checked.unwrap_or_else(|e| IsolationCheck {
            problems: vec![format!("the isolation check failed: {e}")],
            ..IsolationCheck::default()
        })
    }

    /// Where the run is, for the report.
    pub(crate) async fn environment(self) -> Result<Environment> {
        match self {
            Host::Postgres(server) => runner_env::environment(server).await,
            #[cfg(feature = "sqlite")]
            Host::Sqlite(dir) => runner_env::sqlite_environment(dir).await,
            #[cfg(feature = "mysql")]
            Host::MySql(server) => runner_env::mysql_environment(server).await,
        }
    }

    /// The environment test processes find this host by.
    #[cfg_attr(
        not(feature = "sqlite"),
        expect(unused_variables, reason = "what SQLite's URL names")
    )]
    pub(crate) fn child_env(self, floor_database: &str) -> Vec<(&'static str, String)> {
        match self {
            Host::Postgres(server) => vec![(
                "SEEDBED_DATABASE_URL",
                server.url_for(server.maintenance_database()),
            )],
            #[cfg(feature = "sqlite")]
            Host::Sqlite(dir) => vec![
                ("SEEDBED_DATABASE_URL", dir.url(floor_database)),
                (
                    crate::backend::sqlite::DIR_VAR,
                    dir.path().display().to_string(),
                ),
            ],
            // Test processes find the embedded server as a test would (its state file), and a
            // server named by URL by that URL. The floor's database travels as an argument.
            #[cfg(feature = "mysql")]
            Host::MySql(server) => vec![
                (super::child::BACKEND_VAR, "mysql".to_string()),
                (
                    crate::backend::mysql::URL_VAR,
                    if server.origin() == "embedded" {
                        "embedded".to_string()
                    } else {
                        server.url_for("")
                    },
                ),
            ],
        }
    }

    /// Whether the databases `target`'s tests used must be gone after the run: the baseline's,
    /// and PostgreSQL's and SQLite's Template copies (dropped, or kept for this process's next
    /// test). MySQL's Template copies are emptied and given to the next test: they stay, and
    /// are checked.
    pub(crate) fn must_go(self, target: super::Target) -> bool {
        match target {
            super::Target::Baseline => true,
            super::Target::Strategy(crate::isolation::Strategy::Template) => match self {
                #[cfg(feature = "mysql")]
                Host::MySql(_) => false,
                _ => true,
            },
            super::Target::Strategy(_) => false,
        }
    }

    /// Whether the database `name` that a strategy's first test made is that test's own (a
    /// Template clone or a SQLite copy), not something built once for every test.
    pub(crate) fn per_test_database(self, name: &str) -> bool {
        match self {
            Host::Postgres(_) => name.starts_with("seedbed_c_"),
            #[cfg(feature = "sqlite")]
            Host::Sqlite(_) => name.starts_with("seedbed_clone_"),
            // Slots and copies serve test after test.
            #[cfg(feature = "mysql")]
            Host::MySql(_) => false,
        }
    }
}

/// The MySQL side of a run.
#[cfg(feature = "mysql")]
#[path = "host_mysql.rs"]
pub(crate) mod mysql;

/// The SQLite side of a run.
#[cfg(feature = "sqlite")]
pub(crate) mod sqlite {
    use std::time::Instant;

    use sqlx::{Connection, SqliteConnection};

    use super::*;
    use crate::backend::sqlite::{Directory, admin};
    use crate::sql::QualifiedName;

    /// The database a floor process in `slot` writes into: its own copy of the migrated
    /// database, so that floor processes do not wait for each other's write lock.
    pub(crate) fn floor_database(database: &str, slot: usize) -> String {
        format!("{database}_f{slot}")
    }

    pub(super) async fn plan(
        dir: &'static Directory,
        migrations: &Migrations,
        rows: usize,
    ) -> Result<Planned> {
        let database = format!("seedbed_bench_plan_{}", std::process::id());
        admin::drop_database(dir, &database)?;
        admin::create(dir, &database).await?;
        let planned = async {
            let mut conn = dir.connect(&database).await?;
            let planned = async {
                migrations.apply_at(&mut conn, &dir.url(&database)).await?;
                let plan = RowPlan::analyze_sqlite(&mut conn, rows).await?;
                let expected = isolation_check::expected_sqlite(&mut conn).await?;
                Ok::<_, Error>((plan, expected))
            }
            .await;
            let _ = conn.close().await;
            planned
        }
        .await;
        match planned {
            Ok((plan, expected)) => Ok(Planned {
                plan,
                expected,
                database,
            }),
            Err(e) => {
                let _ = admin::drop_database(dir, &database);
                Err(e)
            }
        }
    }

    pub(super) fn prepare_floor(dir: &Directory, database: &str, jobs: usize) -> Result<()> {
        for slot in 0..jobs {
            let copy = floor_database(database, slot);
            admin::drop_database(dir, &copy)?;
            admin::clone(dir, &copy, database)?;
        }
        Ok(())
    }

    pub(super) fn forget_plan(dir: &Directory, database: &str, floors: usize) {
        for slot in 0..floors {
            let _ = admin::drop_database(dir, &floor_database(database, slot));
        }
        let _ = admin::drop_database(dir, database);
    }

    /// A test as `#[sqlx::test]` runs it on SQLite: a new database file, every migration, the
    /// writes, the file removed. Returns the database, the time until the writes, the writes'
    /// time and the time of the removal.
    pub(crate) async fn baseline(
        dir: &Directory,
        name: &str,
        migrations: &Migrations,
        write: impl AsyncFnOnce(&mut SqliteConnection) -> Result<()>,
    ) -> Result<(Duration, Duration, Duration)> {
        // Left by a crashed run of a process with the same id: not timed.
        admin::drop_database(dir, name)?;
        let started = Instant::now();
        admin::create(dir, name).await?;
        let work = async {
            let mut conn =
                SqliteConnection::connect_with(&dir.connect_options(name).create_if_missing(false))
                    .await
                    .map_err(Error::db(format!("opening {}", dir.url(name))))?;
            let result = async {
                migrations.apply_at(&mut conn, &dir.url(name)).await?;
                let ready = started.elapsed();
                let w = Instant::now();
                write(&mut conn).await?;
                Ok::<_, Error>((ready, w.elapsed()))
            }
            .await;
            let _ = conn.close().await;
            result
        }
        .await;
        let e = Instant::now();
        let dropped = admin::drop_database(dir, name);
        let end = e.elapsed();
        let (ready, writes) = work?;
        dropped?;
        Ok((ready, writes, end))
    }

    /// The floor on SQLite: open the process's copy of the migrated database (its journal in
    /// memory), `BEGIN`, the writes, `ROLLBACK`. Returns the time until the writes, the writes', and the ending's.
    pub(crate) async fn floor(
        dir: &Directory,
        database: &str,
        plan: &RowPlan,
        tables: &[QualifiedName],
        rows: usize,
        seed: u64,
    ) -> Result<(Duration, Duration, Duration)> {
        let t = Instant::now();
        // The journal in memory, as seedbed's own Template copies have it: the least a
        // transaction that is rolled back costs.
        let options = dir
            .connect_options(database)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Memory);
        let mut conn = SqliteConnection::connect_with(&options)
            .await
            .map_err(Error::db(format!("opening {}", dir.url(database))))?;
        let timed = super::super::runner::floor_on(
            &mut conn,
            t,
            &dir.url(database),
            plan,
            tables,
            (rows, seed),
        )
        .await;
        let _ = conn.close().await;
        timed
    }
}
