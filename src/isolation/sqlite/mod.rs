//! The four strategies on SQLite, where a database is a file:
//!
//! - **Template**: the migrated image (migrations and fixtures) is built once per checksum under
//!   a file lock; each test gets its own copy of the file, removed when the test passes and kept
//!   for inspection when it fails.
//! - **Truncate**: a test leases a copy of the migrated image (a *slot*, by file lock) and
//!   empties the tables it wrote at its end, children first, the rows migrations inserted put
//!   back.
//! - **Rollback**: a test leases a slot the same way and runs in one transaction on its one
//!   connection; the code's `begin`/`commit` become savepoints, and a raw `COMMIT` (or a
//!   connection closed midway) is detected, reported naming Template, and cleaned up.
//! - **Namespace**: one shared database in WAL mode; each connection of the test's pool records
//!   the rows it inserts under the test's token, and they are removed by token at the end.
//!   SQLite lets one writer at a time into a file, so tests writing at once wait for each other.
//!
//! Slots are leased per test, so tests running at once (threads or processes) never share a
//! file under Rollback and Truncate. Clones whose process died are swept by the next process.

mod image;
mod namespace;
mod slots;
mod sweep;
mod template;

pub use self::sweep::{SqliteSwept, sweep};

use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{Sqlite, SqlitePool};

use super::builder::Isolation;
use super::options::NamespaceMode;
use super::strategies::Ending;
use super::testdb::{Inner, TestDb};
use crate::backend::sqlite::Directory;
use crate::error::{Error, Result};
use crate::strategy::Strategy;

/// What a SQLite strategy gives the test.
struct Acquired {
    database: String,
    pool: SqlitePool,
    state: Box<dyn Ending<Sqlite>>,
    /// The token the test's context carries, when the strategy claimed one.
    token: Option<String>,
}

pub(super) async fn acquire(iso: Isolation) -> Result<TestDb<Sqlite>> {
    let (name, strategy, ctx_builder, base_seed) = iso.start()?;
    if let Some(role) = &iso.role {
        return Err(Error::Config(format!(
            "role = \"{role}\" makes a PostgreSQL test act as a database role; SQLite has no \
             roles: remove it from this test"
        )));
    }
    if iso.database.is_some() {
        return Err(Error::Config(
            "`.database(…)` names an existing PostgreSQL database; on SQLite seedbed makes its \
             own database files: remove it"
                .into(),
        ));
    }
    if iso.own_connections && strategy == Strategy::Namespace {
        return Err(Error::Config(
            "Namespace on SQLite records a test's rows through the connections of the pool it \
             hands the test; a test that builds its own pool from connect options writes around \
             it. Use strategy = \"template\" or \"truncate\""
                .into(),
        ));
    }
    let dir = Directory::get().await?;
    let acquired = match strategy {
        Strategy::Rollback => slots::acquire(&iso, dir, slots::Kind::Rollback).await?,
        Strategy::Truncate => slots::acquire(&iso, dir, slots::Kind::Truncate).await?,
        Strategy::Template => template::acquire(&iso, dir).await?,
        Strategy::Namespace => {
            if iso.namespace.mode() == NamespaceMode::Schema {
                return Err(Error::Config(
                    "SQLite has no schemas, so Namespace's schema mode cannot run on it: use \
                     namespace's data mode, or strategy = \"template\" for a database of the \
                     test's own"
                        .into(),
                ));
            }
            namespace::acquire(&iso, dir, &name, base_seed).await?
        }
    };
    let ctx_builder = match &acquired.token {
        Some(token) => ctx_builder.token(token.clone()),
        None => ctx_builder,
    };
    let ctx = Arc::new(ctx_builder.build());
    Ok(TestDb {
        inner: Arc::new(Inner {
            strategy,
            pool: acquired.pool,
            ctx,
            database: acquired.database,
            server: dir,
            state: std::sync::Mutex::new(Some(acquired.state)),
            kept: std::sync::Mutex::new(None),
            others: std::sync::OnceLock::new(),
        }),
    })
}

/// What a test's pool is opened with, from the test's [`Isolation`]: a pool a process keeps
/// (a slot's, a recycled Template copy's, a Namespace pool) serves only tests that would open the
/// same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PoolSettings {
    max_connections: u32,
    acquire_timeout: Duration,
    /// SQLite has no statement timeout; waiting for another writer is its lock timeout.
    busy_timeout: Duration,
}

impl PoolSettings {
    fn of(iso: &Isolation) -> Self {
        Self {
            max_connections: iso.max_connections,
            acquire_timeout: iso.acquire_timeout,
            busy_timeout: iso.lock_timeout.max(Duration::from_millis(1)),
        }
    }

    /// Options for the test's connections to `database`.
    fn connect_options(&self, dir: &Directory, database: &str) -> SqliteConnectOptions {
        dir.connect_options(database)
            .busy_timeout(self.busy_timeout)
    }

    /// The test's pool options, with at most `max` connections: opened as asked, kept open, not
    /// pinged before use (a SQLite connection is in-process).
    fn pool_options(&self, max: u32) -> SqlitePoolOptions {
        SqlitePoolOptions::new()
            .max_connections(max)
            .min_connections(0)
            .acquire_timeout(self.acquire_timeout)
            .idle_timeout(None)
            .max_lifetime(None)
            .test_before_acquire(false)
    }

    /// The test's pool on `options`, its connections opened as the test asks.
    fn pool(&self, options: SqliteConnectOptions) -> SqlitePool {
        self.pool_options(self.max_connections)
            .connect_lazy_with(options)
    }
}

/// Closes `pool`, waiting at most a few seconds for connections a test still holds (a leaked
/// `PoolConnection` or a task still running): they close when dropped.
async fn close(pool: &SqlitePool) {
    let _ = tokio::time::timeout(Duration::from_secs(5), pool.close()).await;
}

/// Runs the attribute's fixtures on `conn`, named by position when one fails.
async fn run_fixtures(conn: &mut sqlx::SqliteConnection, fixtures: &[String]) -> Result<()> {
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
