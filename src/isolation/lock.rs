//! Database-level locks keyed by name: PostgreSQL advisory locks, so every test process on every
//! host that shares a server coordinates through the server itself.
//!
//! A [`DbLock`] holds a session-level advisory lock on its own connection. Releasing it is explicit
//! ([`DbLock::release`]); dropping it closes the connection, which ends the session, so the server
//! frees the lock even if the process panics or is killed.
//!
//! Advisory locks are scoped to a database: everyone who coordinates must lock in the same one,
//! the server's maintenance database (see [`crate::server::Server`]).

use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection};

use crate::error::{Error, Result};
use crate::server::Server;
use crate::util::hash::stable_hash;


/// The advisory-lock key of a lock name (all of seedbed's keys are derived from names starting
/// with `seedbed:`).
pub fn lock_key(name: &str) -> i64 {
    i64::from_ne_bytes(stable_hash(&format!("seedbed:{name}")).to_ne_bytes())
}

/// Whether a lock is held alone or shared with other holders of the shared mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// Only one holder.
    Exclusive,
    /// Any number of shared holders, excluded by an exclusive one.
    Shared,
}

/// A named advisory lock held on a dedicated connection to the maintenance database.
///
/// ```no_run
/// # async fn demo() -> Result<(), seedbed::Error> {
/// use std::time::Duration;
/// use seedbed::isolation::lock::{DbLock, LockMode};
///
/// let server = seedbed::server::Server::resolve().await?;
/// let lock = DbLock::acquire(server, "build:template", LockMode::Exclusive, Duration::from_secs(60)).await?;
/// // … only one process on any host gets here at a time …
/// lock.release().await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct DbLock {
    conn: PgConnection,
    name: String,
    key: i64,
    mode: LockMode,
}

impl DbLock {
    /// Waits at most `timeout` for the lock.
    pub async fn acquire(
        server: &Server,
        name: &str,
        mode: LockMode,
        timeout: Duration,
    ) -> Result<DbLock> {
        let mut conn = server.connect().await?;
        // A build can keep the lock's connection idle for as long as its migrations take.
        server.hold_session(&mut conn).await?;
        let key = lock_key(name);
        lock_on(&mut conn, name, mode, timeout).await?;
        Ok(DbLock {
            conn,
            name: name.to_string(),
            key,
            mode,
        })
    }

    /// Takes the lock if it is free, without waiting.
    pub async fn try_acquire(
        server: &Server,
        name: &str,
        mode: LockMode,
    ) -> Result<Option<DbLock>> {
        let mut conn = server.connect().await?;
        server.hold_session(&mut conn).await?;
        let key = lock_key(name);
        if try_lock_on(&mut conn, name, mode).await? {
            Ok(Some(DbLock {
                conn,
                name: name.to_string(),
                key,
                mode,
            }))
        } else {
            let _ = conn.close().await;
            Ok(None)
        }
    }

    /// The lock's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The connection holding the lock, for work done under it.
    pub fn connection(&mut self) -> &mut PgConnection {
        &mut self.conn
    }

    /// Releases the lock and closes its connection.
    pub async fn release(mut self) -> Result<()> {
        let sql = match self.mode {
            LockMode::Exclusive => "SELECT pg_advisory_unlock($1)",
            LockMode::Shared => "SELECT pg_advisory_unlock_shared($1)",
        };
        sqlx::query(sql)
            .bind(self.key)
            .execute(&mut self.conn)
            .await
            .map_err(Error::db(format!("releasing lock {}", self.name)))?;
        let _ = self.conn.close().await;
        Ok(())
    }
}

/// Takes a session-level advisory lock on an existing connection, waiting at most `timeout`.
pub async fn lock_on(
    conn: &mut PgConnection,
    name: &str,
    mode: LockMode,
    timeout: Duration,
) -> Result<()> {
    let key = lock_key(name);
    let started = Instant::now();
    let mut delay = Duration::from_millis(2);
    // Polling with pg_try_advisory_lock keeps the connection free of a server-side wait that
    // lock_timeout would have to cancel, and lets the wait be bounded precisely.
    loop {
        if try_lock_on(conn, name, mode).await? {
            return Ok(());
        }
        if started.elapsed() >= timeout {
            return Err(Error::Timeout {
                what: format!(
                    "the database lock `{name}` (key {key}), held by another test process; \
                     see pg_locks where locktype = 'advisory' to find it"
                ),
                waited: started.elapsed(),
            });
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(50));
    }
}

/// Tries once to take a session-level advisory lock on an existing connection.
pub async fn try_lock_on(conn: &mut PgConnection, name: &str, mode: LockMode) -> Result<bool> {
    let sql = match mode {
        LockMode::Exclusive => "SELECT pg_try_advisory_lock($1)",
        LockMode::Shared => "SELECT pg_try_advisory_lock_shared($1)",
    };
    sqlx::query_scalar(sql)
        .bind(lock_key(name))
        .fetch_one(conn)
        .await
        .map_err(Error::db(format!("taking lock {name}")))
}

/// Releases a session-level advisory lock taken with [`lock_on`] or [`try_lock_on`].
pub async fn unlock_on(conn: &mut PgConnection, name: &str, mode: LockMode) -> Result<()> {
    let sql = match mode {
        LockMode::Exclusive => "SELECT pg_advisory_unlock($1)",
        LockMode::Shared => "SELECT pg_advisory_unlock_shared($1)",
    };
    sqlx::query(sql)
        .bind(lock_key(name))
        .execute(conn)
        .await
        .map_err(Error::db(format!("releasing lock {name}")))?;
    Ok(())
}

/// Whether anyone holds the named lock (in any mode), seen from the lock table.
pub async fn is_held(conn: &mut PgConnection, name: &str) -> Result<bool> {
    let key = lock_key(name);
    // pg_locks splits a bigint key into classid (high half) and objid (low half), objsubid = 1.
    let bits = u64::from_ne_bytes(key.to_ne_bytes());
    let high = i64::try_from(bits >> 32).unwrap_or_default();
    let low = i64::try_from(bits & 0xffff_ffff).unwrap_or_default();
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
         AND classid::int8 = $1 AND objid::int8 = $2 AND objsubid = 1)",
    )
    .bind(high)
    .bind(low)
    .fetch_one(conn)
    .await
    .map_err(Error::db(format!("looking up lock {name}")))
}
