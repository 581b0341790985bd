//! Rollback: the test runs inside one transaction on a migrated database shared with other
//! tests, and the transaction is rolled back at its end.
//!
//! The test's [`PgPool`] holds **one** connection. When the pool opens it, seedbed begins the
//! test's transaction through sqlx's transaction manager, so sqlx counts it: the code under test
//! calling `pool.begin()` … `commit()` gets a savepoint and its release, and its rollbacks roll
//! back to the savepoint. Each checkout of the connection runs inside a savepoint of its own, so
//! one failed statement (a unique violation the test provokes on purpose, say) does not poison
//! the rest of the test: when the connection comes back to the pool in a failed state, seedbed
//! rolls back to the checkout's savepoint.
//!
//! What one transaction cannot contain is reported, never leaked silently:
//!
//! - **a second connection held at once** waits at most the acquire timeout (5 s by default) and
//!   gets sqlx's `PoolTimedOut`; seedbed's failure report explains it and names Template;
//! - **a connection the pool had to replace** (its transaction, and the test's data, gone) fails
//!   the test;
//! - **a raw `COMMIT` or `ROLLBACK`** sent by the code under test ends the test's transaction;
//!   seedbed notices when the connection comes back (its checkout savepoint is gone), fails the
//!   test naming Template, and empties the shared database of what was committed;
//! - **`LISTEN`** (e.g. `PgListener::connect_with(&pool)`) can never receive a notification,
//!   since notifications are delivered at commit: the test fails naming Template.
//!
//! Before the rollback, `SET CONSTRAINTS ALL IMMEDIATE` runs the checks of deferred constraints,
//! so a violation fails the test as it would at commit.
//!
//! What Rollback changes for the code under test: `now()` (and `current_timestamp`) is frozen
//! at the start of the test's transaction for the whole test (use `clock_timestamp()` where time
//! must pass); sequences are not rolled back, so generated ids keep growing across tests; the
//! isolation level cannot be changed (`SET TRANSACTION ISOLATION LEVEL` must come first in a
//! transaction); and the code sees one connection.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, Executor, PgConnection, PgPool};

use crate::error::{Error, Result};

const CHECKOUT_SAVEPOINT: &str = "seedbed_checkout";

/// What went wrong that one transaction could not contain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Violation {
    /// The transaction was ended by the code under test (raw `COMMIT`/`ROLLBACK`).
    TransactionEnded,
    /// The pool opened a second connection: the first, with the test's transaction, was lost.
    ConnectionReplaced,
    /// The code under test issued `LISTEN` on the test's connection.
    Listen,
    /// The test still held the connection when it ended.
    HeldAtEnd,
}

impl Violation {
    pub(crate) fn explain(&self) -> &'static str {
        match self {
            Violation::TransactionEnded => {
                "the code under test ended the test's transaction (a raw COMMIT or ROLLBACK): \
                 what it wrote afterwards was committed to the shared database (seedbed has \
                 emptied it again). Code that commits needs its own database: use \
                 strategy = \"template\" (or \"truncate\")"
            }
            Violation::ConnectionReplaced => {
                "the test's connection was closed and the pool opened another: the test's \
                 transaction, and everything it wrote, was lost midway. Rollback holds the test \
                 in one connection; if the code closes or detaches connections, use \
                 strategy = \"template\""
            }
            Violation::Listen => {
                "the code under test LISTENs on the test's connection: notifications are \
                 delivered at commit, and Rollback never commits. Use strategy = \"template\""
            }
            Violation::HeldAtEnd => {
                "the test still held the pool's only connection when it ended (a PoolConnection \
                 or Transaction kept alive, or a PgListener). Rollback gives the test one \
                 connection: drop it before the test returns, or use strategy = \"template\""
            }
        }
    }
}

/// State shared between the test's pool hooks and the engine.
#[derive(Debug, Default)]
pub(crate) struct RollbackState {
    connections: AtomicU32,
    finishing: AtomicBool,
    violation: Mutex<Option<Violation>>,
    backend_pid: AtomicU32,
}

impl RollbackState {
    fn record(&self, v: Violation) {
        let mut slot = self
            .violation
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(v);
        }
    }

    pub(crate) fn violation(&self) -> Option<Violation> {
        self.violation
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The backend pid of the test's connection (0 before it is opened).
    pub(crate) fn backend_pid(&self) -> u32 {
        self.backend_pid.load(Ordering::Relaxed)
    }

    /// Whether the pool ever opened its connection.
    pub(crate) fn connected(&self) -> bool {
        self.connections.load(Ordering::Relaxed) > 0
    }
}

/// The test's pool: one connection, holding the test's transaction.
pub(crate) fn pool(
    options: PgConnectOptions,
    acquire_timeout: Duration,
    fixtures: Arc<Vec<String>>,
) -> (PgPool, Arc<RollbackState>) {
    let state = Arc::new(RollbackState::default());
    let on_connect = Arc::clone(&state);
    let on_acquire = Arc::clone(&state);
    let on_release = Arc::clone(&state);
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .acquire_timeout(acquire_timeout)
        .idle_timeout(None)
        .max_lifetime(None)
        .test_before_acquire(false)
        .after_connect(move |conn, _meta| {
            let state = Arc::clone(&on_connect);
            let fixtures = Arc::clone(&fixtures);
            Box::pin(async move {
                if state.connections.fetch_add(1, Ordering::SeqCst) > 0 {
                    state.record(Violation::ConnectionReplaced);
                }
                // The test's transaction and the first checkout's savepoint, in one round trip.
                // The transaction is begun through sqlx so that sqlx counts it (code under test
                // calling `begin()` then gets a savepoint), and its guard is forgotten so it stays
                // open: it ends when the connection closes at the end of the test.
                let begin = format!("BEGIN; SAVEPOINT {CHECKOUT_SAVEPOINT}");
                let tx = conn.begin_with(sqlx::AssertSqlSafe(begin)).await?;
                std::mem::forget(tx);
                let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
                    .fetch_one(&mut *conn)
                    .await?;
                state
                    .backend_pid
                    .store(u32::try_from(pid).unwrap_or_default(), Ordering::Relaxed);
                for sql in fixtures.iter() {
                    conn.execute(sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone())))
                        .await?;
                }
                Ok(())
            })
        })
        .before_acquire(move |conn, _meta| {
            let state = Arc::clone(&on_acquire);
            Box::pin(async move {
                if !state.finishing.load(Ordering::SeqCst)
                    && let Err(e) = conn
                        .execute(sqlx::raw_sql("SAVEPOINT seedbed_checkout"))
                        .await
                {
                    note_lost_transaction(&state, &e);
                }
                Ok(true)
            })
        })
        .after_release(move |conn, _meta| {
            let state = Arc::clone(&on_release);
            Box::pin(async move {
                release_checkout(conn, &state).await;
                Ok(true)
            })
        })
        .connect_lazy_with(options);
    (pool, state)
}

/// Ends a checkout: releases its savepoint, or rolls back to it when a statement failed.
async fn release_checkout(conn: &mut PgConnection, state: &RollbackState) {
    let Err(e) = conn
        .execute(sqlx::raw_sql("RELEASE SAVEPOINT seedbed_checkout"))
        .await
    else {
        return;
    };
    if sql_state(&e).as_deref() == Some("25P02") {
        // A statement failed during the checkout: undo the checkout, keep the test going.
        if let Err(e) = conn
            .execute(sqlx::raw_sql(
                "ROLLBACK TO SAVEPOINT seedbed_checkout; RELEASE SAVEPOINT seedbed_checkout",
            ))
            .await
        {
            note_lost_transaction(state, &e);
        }
        return;
    }
    note_lost_transaction(state, &e);
}

fn note_lost_transaction(state: &RollbackState, err: &sqlx::Error) {
    match sql_state(err).as_deref() {
        // no active transaction / savepoint does not exist: the transaction was ended.
        Some("25P01") | Some("3B001") => state.record(Violation::TransactionEnded),
        _ => {}
    }
}

fn sql_state(err: &sqlx::Error) -> Option<String> {
    match err {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    }
}

/// Ends the test: checks deferred constraints and what could not be contained, then closes the
/// pool (closing the connection rolls its transaction back). Returns the violation, if any.
pub(crate) async fn finish(
    pool: &PgPool,
    state: &RollbackState,
    control_check: impl AsyncFnOnce(u32) -> Result<bool>,
) -> Result<Option<Violation>> {
    if !state.connected() {
        pool.close().await;
        return Ok(state.violation());
    }
    state.finishing.store(true, Ordering::SeqCst);
    let deferred = match tokio::time::timeout(Duration::from_secs(2), pool.acquire()).await {
        Ok(Ok(mut conn)) => {
            let checked = conn
                .execute(sqlx::raw_sql("SET CONSTRAINTS ALL IMMEDIATE"))
                .await;
            if let Err(e) = &checked {
                note_lost_transaction(state, e);
            }
            // Detach so returning it does not run the checkout hooks, then close: the server
            // rolls the transaction back.
            let _ = conn.detach().close().await;
            checked.err()
        }
        _ => {
            // Still held: find out whether it is listening.
            let pid = state.backend_pid();
            if pid != 0 && control_check(pid).await? {
                state.record(Violation::Listen);
            } else {
                state.record(Violation::HeldAtEnd);
            }
            // The connection is still out: the pool closes once the test drops it.
            let pool = pool.clone();
            tokio::spawn(async move { pool.close().await });
            return Ok(state.violation());
        }
    };
    pool.close().await;
    if let Some(violation) = state.violation() {
        return Ok(Some(violation));
    }
    match deferred {
        Some(e) if sql_state(&e).is_some() => Err(Error::Database {
            context: "a deferred constraint fails at the end of the test (it would fail at \
                      commit)"
                .into(),
            source: e,
        }),
        _ => Ok(None),
    }
}
