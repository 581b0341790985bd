//! Database-level locks keyed by name: PostgreSQL advisory locks, so every test process on every
//! host that shares a server coordinates through the server itself.
//!
//! A [`DbLock`] holds a session-level advisory lock on its own connection. Releasing it is explicit
//! ([`DbLock::release`]); dropping it closes the connection, which ends the session, so the server
//! frees the lock even if the process panics or is killed.
//!
//! Advisory locks are scoped to a database: everyone who coordinates must lock in the same one,
//! the server's maintenance database (see [`Server`]).

use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection};

use super::server::Server;
use crate::error::{Error, Result};
use crate::sql::quote_literal;

/// The one lock-key scheme of seedbed: the SQL expression of the advisory-lock key of the lock
/// whose name `name` (a SQL text expression: a literal, a parameter, a column) gives. The server
/// computes it from `seedbed:<name>`, so every process, whatever Rust built it, and every
/// PL/pgSQL function agree; every key of seedbed's is written through this function (or
/// [`key_of`], [`slot_key_sql`]). Processes of seedbed versions before this scheme hashed some
/// names on the client: they and the `seedbed` command must be upgraded together.
pub(crate) fn key_sql(name: &str) -> String {
    format!("hashtextextended('seedbed:' || ({name}), 0)")
}

/// The SQL expression of the key of the lock named `name` (a literal name).
pub(crate) fn key_of(name: &str) -> String {
    key_sql(&quote_literal(name))
}

/// The two-part key of slot `slot` (a SQL integer expression) of the numbered locks named `name`
/// (the connection budget's slots): `(hashtext('seedbed:<name>'), slot)`, in the space of
/// two-`int4` advisory keys, apart from [`key_sql`]'s.
pub(crate) fn slot_key_sql(name: &str, slot: &str) -> String {
    format!(
        "hashtext({}), ({slot})::int4",
        quote_literal(&format!("seedbed:{name}"))
    )
}

/// The condition on a row of `pg_locks` (aliased `alias`) that it is the lock whose key is the SQL
/// expression `key`: the server shows a `bigint` key as its high and low halves.
pub(crate) fn pg_locks_match(alias: &str, key: &str) -> String {
    format!(
        "{alias}.locktype = 'advisory' AND {alias}.objsubid = 1 \
         AND {alias}.classid::int8 = (({key}) >> 32) & 4294967295 \
         AND {alias}.objid::int8 = ({key}) & 4294967295"
    )
}

pub use crate::backend::LockMode;

/// A named advisory lock held on a dedicated connection to the maintenance database.
///
/// ```no_run
/// # async fn demo() -> Result<(), seedbed::Error> {
/// use std::time::Duration;
/// use seedbed::backend::postgres::coord::{DbLock, LockMode};
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
    mode: LockMode,
}

impl DbLock {
    /// Waits at most `timeout` for the lock.
    ///
    /// A wait longer than a moment (another process building a database, say) lets go of its
    /// connection between tries: on a server with few connections to spare, processes waiting
    /// for a lock must not hold the connections its holder needs to finish.
    pub async fn acquire(
        server: &Server,
        name: &str,
        mode: LockMode,
        timeout: Duration,
    ) -> Result<DbLock> {
        /// How long one connection keeps trying before it is closed for a pause.
        const HELD_TRIES: Duration = Duration::from_millis(250);
        let started = Instant::now();
        let mut pause = Duration::from_millis(20);
        loop {
            let mut conn = server.connect().await?;
            // A build can keep the lock's connection idle for as long as its migrations take.
            server.hold_session(&mut conn).await?;
            let remaining = timeout.saturating_sub(started.elapsed());
            match lock_on(&mut conn, name, mode, remaining.min(HELD_TRIES)).await {
                Ok(()) => {
                    return Ok(DbLock {
                        conn,
                        name: name.to_string(),
                        mode,
                    });
                }
                Err(Error::Timeout { what, .. }) => {
                    let _ = conn.close().await;
                    if started.elapsed() + pause >= timeout {
                        return Err(Error::Timeout {
                            what,
                            waited: started.elapsed(),
                        });
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(200));
                }
                Err(e) => {
                    let _ = conn.close().await;
                    return Err(e);
                }
            }
        }
    }

    /// Takes the lock if it is free, without waiting.
    pub async fn try_acquire(
        server: &Server,
        name: &str,
        mode: LockMode,
    ) -> Result<Option<DbLock>> {
        let mut conn = server.connect().await?;
        server.hold_session(&mut conn).await?;
        if try_lock_on(&mut conn, name, mode).await? {
            Ok(Some(DbLock {
                conn,
                name: name.to_string(),
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
        unlock_on(&mut self.conn, &self.name, self.mode).await?;
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
                    "the database lock `{name}`, held by another test process; find its holder \
                     with SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND \
                     ((classid::int8 << 32) | objid::int8) = hashtextextended('seedbed:{name}', 0)"
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
    let function = match mode {
        LockMode::Exclusive => "pg_try_advisory_lock",
        LockMode::Shared => "pg_try_advisory_lock_shared",
    };
    let sql = format!("SELECT {function}({})", key_sql("$1"));
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(name)
        .fetch_one(conn)
        .await
        .map_err(Error::db(format!("taking lock {name}")))
}

/// Releases a session-level advisory lock taken with [`lock_on`] or [`try_lock_on`].
pub async fn unlock_on(conn: &mut PgConnection, name: &str, mode: LockMode) -> Result<()> {
    let function = match mode {
        LockMode::Exclusive => "pg_advisory_unlock",
        LockMode::Shared => "pg_advisory_unlock_shared",
    };
    let sql = format!("SELECT {function}({})", key_sql("$1"));
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(name)
        .execute(conn)
        .await
        .map_err(Error::db(format!("releasing lock {name}")))?;
    Ok(())
}

/// Whether anyone holds the named lock (in any mode), seen from the lock table.
pub async fn is_held(conn: &mut PgConnection, name: &str) -> Result<bool> {
    let sql = format!(
        "SELECT EXISTS (SELECT 1 FROM pg_locks l WHERE l.granted \
         AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
         AND {})",
        pg_locks_match("l", &key_sql("$1"))
    );
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(name)
        .fetch_one(conn)
        .await
        .map_err(Error::db(format!("looking up lock {name}")))
}
