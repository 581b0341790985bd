//! The four strategies on MySQL and MariaDB, where DDL commits and there are no template
//! databases:
//!
//! - **Rollback**: a test leases a *slot* (a copy of the migrated database no other test uses
//!   while a named lock is held) and runs in one InnoDB transaction on its one connection; the
//!   code's `begin`/`commit` become savepoints. A statement that commits implicitly (DDL,
//!   `LOCK TABLES`, a raw `BEGIN` or `COMMIT`) or a raw `ROLLBACK` is detected at the end: the
//!   test fails naming the strategy that contains it, and the slot is dropped.
//! - **Truncate**: a test leases a slot and empties the tables it wrote at its end
//!   ([`Clean`](crate::backend::Clean)).
//! - **Template**: a test leases a database of its own, a copy of the migrated database with the
//!   fixtures, taken from a set made ahead (by replaying the template's definitions and copying
//!   its rows) and recycled: when the test passes and its schema is unchanged, the copy is emptied
//!   back to the template's rows and serves the next test; when the test changed the schema, the
//!   copy is dropped.
//! - **Namespace**: one shared database; each connection of the test's pool records the rows it
//!   inserts under a key ([`Journal`](crate::backend::Journal)), removed at the test's end.
//!
//! A process keeps the slots and pools its finished tests gave back for its next tests. Leases
//! are named locks held by a connection: a process killed mid-test loses them with its
//! connections, and the next holder of its slot empties it first.

pub(crate) mod budget;
mod image;
mod namespace;
mod slots;
mod sweep;

pub use self::sweep::{MySqlEntry, MySqlSwept, list, sweep};

use std::sync::Arc;
use std::time::Duration;

use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::{MySql, MySqlPool};

use super::builder::Isolation;
use super::options::NamespaceMode;
use super::strategies::Ending;
use super::testdb::{Inner, TestDb};
use crate::backend::mysql::{Flavor, MySqlServer};
use crate::error::{Error, Result};
use crate::strategy::Strategy;

/// What a MySQL strategy gives the test.
struct Acquired {
    database: String,
    pool: MySqlPool,
    state: Box<dyn Ending<MySql>>,
    /// The token the test's context carries, when the strategy claimed one.
    token: Option<String>,
}

pub(super) async fn acquire(iso: Isolation) -> Result<TestDb<MySql>> {
    let (name, strategy, ctx_builder, base_seed) = iso.start()?;
    if let Some(role) = &iso.role {
        return Err(Error::Config(format!(
            "role = \"{role}\" makes a PostgreSQL test act as a database role; seedbed does not \
             switch MySQL users: remove it from this test"
        )));
    }
    if iso.database.is_some() {
        return Err(Error::Config(
            "`.database(…)` names an existing PostgreSQL database; on MySQL seedbed makes its \
             own databases: remove it"
                .into(),
        ));
    }
    if iso.own_connections && strategy == Strategy::Namespace {
        return Err(Error::Config(
            "Namespace on MySQL records a test's rows through the connections of the pool it \
             hands the test (a MySQL URL cannot carry the session variable); a test that builds \
             its own pool from connect options writes around it. Use strategy = \"template\" \
             or \"truncate\""
                .into(),
        ));
    }
    if strategy == Strategy::Rollback && iso.own_connections {
        return Err(Error::Config(
            "Rollback holds a test in one transaction on the one connection of the pool it hands \
             the test; a test that builds its own pool from connect options writes around it. \
             Use strategy = \"template\" or \"truncate\""
                .into(),
        ));
    }
    // A process that runs one test on its one runtime reuses its maintenance connections.
    crate::backend::mysql::set_parking(super::engine::adopted());
    let server = MySqlServer::get().await?;
    let acquired = match strategy {
        Strategy::Rollback => slots::acquire(&iso, server, slots::Kind::Rollback).await?,
        Strategy::Truncate => slots::acquire(&iso, server, slots::Kind::Truncate).await?,
        Strategy::Template => slots::acquire(&iso, server, slots::Kind::Template).await?,
        Strategy::Namespace => {
            if iso.namespace.mode() == NamespaceMode::Schema {
                return Err(Error::Config(
                    "MySQL has no schemas inside a database, so Namespace's schema mode cannot \
                     run on it: use namespace's data mode, or strategy = \"template\" for a \
                     database of the test's own"
                        .into(),
                ));
            }
            namespace::acquire(&iso, server, &name, base_seed).await?
        }
    };
    let ctx_builder = match &acquired.token {
        Some(token) => ctx_builder.token(token.clone()),
        None => ctx_builder,
    };
    Ok(TestDb {
        inner: Arc::new(Inner {
            strategy,
            pool: acquired.pool,
            ctx: Arc::new(ctx_builder.build()),
            database: acquired.database,
            server,
            state: std::sync::Mutex::new(Some(acquired.state)),
            kept: std::sync::Mutex::new(None),
            others: std::sync::OnceLock::new(),
        }),
    })
}

/// When a kept pool's connections were opened, so that none opened on a finished test's runtime
/// serves a later test: every `#[seedbed::test]` runs on a runtime of its own, and a connection
/// dies with the runtime it was opened on. A pool's first connection is opened on the engine
/// runtime, which lives as long as the process; those a test opens while it runs serve that test
/// alone.
#[derive(Debug)]
struct Freshness {
    /// When the pool's engine-opened connections were opened (before this, any connection may
    /// serve).
    warmed: std::sync::Mutex<std::time::Instant>,
    /// When the current test started (after this, connections are the current test's).
    test_started: std::sync::Mutex<std::time::Instant>,
}

impl Freshness {
    fn new() -> Arc<Self> {
        let now = std::time::Instant::now();
        Arc::new(Self {
            warmed: std::sync::Mutex::new(now),
            test_started: std::sync::Mutex::new(now),
        })
    }

    fn mark(cell: &std::sync::Mutex<std::time::Instant>) {
        *cell
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = std::time::Instant::now();
    }

    /// The pool's connections opened so far were opened on the engine runtime.
    fn warmed(&self) {
        Self::mark(&self.warmed);
    }

    /// A test starts using the pool.
    fn test_started(&self) {
        Self::mark(&self.test_started);
    }

    /// Whether a connection `age` old may serve now.
    fn serves(&self, age: Duration) -> bool {
        let read = |cell: &std::sync::Mutex<std::time::Instant>| {
            *cell
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        let Some(opened) = std::time::Instant::now().checked_sub(age) else {
            return true;
        };
        opened <= read(&self.warmed) || opened >= read(&self.test_started)
    }
}

/// What a test's pool is opened with: a pool a process keeps serves only tests that would open
/// the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PoolSettings {
    max_connections: u32,
    acquire_timeout: Duration,
    statement_timeout: Duration,
    lock_timeout: Duration,
}

impl PoolSettings {
    fn of(iso: &Isolation) -> Self {
        Self {
            max_connections: iso.max_connections,
            acquire_timeout: iso.acquire_timeout,
            statement_timeout: iso.statement_timeout,
            lock_timeout: iso.lock_timeout,
        }
    }

    /// The session settings each test connection starts with: the statement and lock timeouts.
    fn session_sql(&self, server: &MySqlServer) -> String {
        // Whole seconds, at least one: InnoDB's lock wait is counted in seconds.
        let lock = self.lock_timeout.as_secs().max(1);
        let statement = match server.flavor() {
            Ok(Flavor::MariaDb) => format!(
                "SET SESSION max_statement_time = {:.3};",
                self.statement_timeout.as_secs_f64()
            ),
            // MySQL bounds SELECTs alone.
            _ => format!(
                "SET SESSION max_execution_time = {};",
                self.statement_timeout.as_millis()
            ),
        };
        format!("SET SESSION innodb_lock_wait_timeout = {lock}; {statement}")
    }

    /// The settings a kept connection's next test starts with, as they were set up (see
    /// [`restore_settings`]), kept in user variables of the session.
    fn snapshot_sql(server: &MySqlServer) -> String {
        let saved: Vec<String> = kept_settings(server)
            .iter()
            .map(|v| format!("{} = @@session.{v}", saved_as(v)))
            .collect();
        format!("SET {};", saved.join(", "))
    }

    /// The test's pool options, with at most `max` connections, opened as asked and kept.
    fn pool_options(&self, max: u32) -> MySqlPoolOptions {
        MySqlPoolOptions::new()
            .max_connections(max)
            .min_connections(0)
            .acquire_timeout(self.acquire_timeout)
            .idle_timeout(None)
            .max_lifetime(None)
            .test_before_acquire(false)
    }

    /// The test's pool on `options`, each connection counted in `budget` as it opens, set up by
    /// `session_sql` and `extra`, and served while `fresh` says it may (always, without `fresh`:
    /// a pool of one connection whose loss the strategy detects itself). A connection's opening
    /// time is read back from its age, a little late when the thread is held up between the two
    /// clocks: `fresh` may then turn away a connection the engine opened, and the pool opens
    /// another. With `begin`, a connection also begins a transaction with it, in the same round
    /// trip, which sqlx then counts as open.
    fn pool(
        &self,
        server: &MySqlServer,
        options: MySqlConnectOptions,
        budget: &Arc<super::budget::PoolBudget>,
        extra: Option<Arc<dyn Fn() -> String + Send + Sync>>,
        fresh: Option<&Arc<Freshness>>,
        begin: Option<String>,
    ) -> MySqlPool {
        let setup = Arc::new(format!(
            "{} {}",
            self.session_sql(server),
            Self::snapshot_sql(server)
        ));
        let fresh = fresh.map(Arc::clone);
        let on_connect = Arc::clone(budget);
        let on_close = Arc::clone(budget);
        self.pool_options(budget.max())
            .before_acquire(move |_conn, meta| {
                let serves = fresh.as_ref().is_none_or(|fresh| fresh.serves(meta.age));
                if !serves {
                    // Turned away, it closes: its budget serves the connection opened instead.
                    on_close.connection_closed();
                }
                Box::pin(async move { Ok(serves) })
            })
            .after_connect(move |conn, _| {
                let mut sql = setup.as_str().to_string();
                if let Some(extra) = &extra {
                    sql.push_str(&extra());
                }
                let budget = Arc::clone(&on_connect);
                let begin = begin.clone();
                Box::pin(async move {
                    budget
                        .connection_opened()
                        .await
                        .map_err(|e| sqlx::Error::Configuration(e.to_string().into()))?;
                    match begin {
                        Some(begin) => {
                            use sqlx_core::sql_str::SqlSafeStr;
                            use sqlx_core::transaction::TransactionManager;
                            sql.push_str(&begin);
                            <MySql as sqlx::Database>::TransactionManager::begin(
                                conn,
                                Some(sqlx::AssertSqlSafe(sql).into_sql_str()),
                            )
                            .await?;
                        }
                        None => {
                            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                                .execute(&mut *conn)
                                .await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect_lazy_with(options)
    }
}

/// The session settings a test may change on a connection that serves the next test, put back
/// at its end: the time zone, the SQL mode, the character sets, the timeouts seedbed set.
fn kept_settings(server: &MySqlServer) -> [&'static str; 7] {
    let statement_timeout = match server.flavor() {
        Ok(Flavor::MariaDb) => "max_statement_time",
        _ => "max_execution_time",
    };
    [
        "time_zone",
        "sql_mode",
        "character_set_client",
        "character_set_results",
        "collation_connection",
        "innodb_lock_wait_timeout",
        statement_timeout,
    ]
}

/// The user variable a kept setting is saved in as its connection is set up.
fn saved_as(setting: &str) -> String {
    format!("@seedbed__{setting}")
}

/// `setting = @saved, …` for every kept setting: a `SET SESSION` list that puts them back as
/// the connection was set up.
fn restore_settings(server: &MySqlServer) -> String {
    let restored: Vec<String> = kept_settings(server)
        .iter()
        .map(|v| format!("{v} = {}", saved_as(v)))
        .collect();
    restored.join(", ")
}

/// Forgets the slots, pools and parked connection this process keeps for its next tests: their
/// connections lived on a test runtime that has ended (a process that said it runs one test, and
/// runs another). Dropped, they close, and the server frees their leases.
pub(super) fn forget_kept() {
    slots::forget_idle();
    namespace::forget_idle();
    crate::backend::mysql::set_parking(false);
}

/// Gives up the slots and pools this process keeps for its next tests, and their connection
/// budget with them (a test's pool found the budget spent); how many budget slots that freed.
async fn evict_idle() -> usize {
    slots::evict_idle().await + namespace::evict_idle().await
}

/// A connection of a test's pool, opened by the engine (to ready, end or empty the test's
/// database), waiting while the server has no connection to spare as
/// [`MySqlServer::connect_waiting`] does: sqlx's pool fails at once on errors 1040, 1203 and 1226.
/// The connections a test opens itself from its pool are sqlx's, and fail at once.
async fn acquire_waiting(
    pool: &MySqlPool,
) -> std::result::Result<sqlx::pool::PoolConnection<MySql>, sqlx::Error> {
    let started = std::time::Instant::now();
    let mut delay = Duration::from_millis(10);
    let mut told = false;
    loop {
        match pool.acquire().await {
            Err(e)
                if crate::backend::mysql::is_out_of_connections(&e)
                    && started.elapsed() < crate::backend::mysql::FULL_WAIT =>
            {
                if !told && started.elapsed() > Duration::from_secs(10) {
                    told = true;
                    tracing::warn!(
                        "a test's pool waits for a connection to the MySQL server, which has \
                         none to spare ({e}): run fewer tests at once (cargo nextest -j, \
                         --test-threads) or raise max_connections"
                    );
                }
                let jitter = Duration::from_millis(u64::from(std::process::id() % 7));
                tokio::time::sleep(delay + jitter).await;
                delay = (delay * 2).min(Duration::from_millis(640));
            }
            other => return other,
        }
    }
}

/// Closes `pool`, waiting at most a few seconds for connections a test still holds.
async fn close(pool: &MySqlPool) {
    let _ = tokio::time::timeout(Duration::from_secs(5), pool.close()).await;
}

/// Runs the attribute's fixtures on `conn`, named by position when one fails.
async fn run_fixtures(conn: &mut sqlx::MySqlConnection, fixtures: &[String]) -> Result<()> {
    for (i, sql) in fixtures.iter().enumerate() {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
            .execute(&mut *conn)
            .await
            .map_err(Error::db(format!(
                "applying fixture {} of {}",
                i + 1,
                fixtures.len()
            )))?;
    }
    Ok(())
}
