//! Rollback: the test runs inside one transaction on a migrated database shared with other
//! tests, and the transaction is rolled back at its end.
//!
//! The test's [`PgPool`] holds **one** connection. At the start of the test seedbed begins the
//! test's transaction on it through sqlx's transaction manager, so sqlx counts it: the code under
//! test calling `pool.begin()` … `commit()` gets a savepoint and its release, and its rollbacks
//! roll back to the savepoint. The connection is opened on seedbed's engine runtime and, after
//! the rollback, kept for the next test of the process, so a test pays for a `BEGIN` and a
//! `ROLLBACK`, not for a new connection (the pool is the test's alone while it runs; do not keep
//! it beyond the test). Each checkout of the connection runs inside a savepoint of its own, so
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

use std::future::Future;
use std::sync::atomic::{AtomicU8, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Executor, PgConnection, PgPool, Postgres, SqlSafeStr};
use sqlx_core::transaction::TransactionManager;

use crate::backend::postgres::server::Server;
use crate::error::{Error, Result};
use crate::sql::quote_literal;

type Tm = <Postgres as sqlx::Database>::TransactionManager;

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

const IDLE: u8 = 0;
const RUNNING: u8 = 1;
const FINISHING: u8 = 2;

/// One test's view of the pool.
#[derive(Debug, Default)]
pub(crate) struct RollbackState {
    phase: AtomicU8,
    violation: Mutex<Option<Violation>>,
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

    fn violation(&self) -> Option<Violation> {
        self.violation
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn phase(&self) -> u8 {
        self.phase.load(Ordering::SeqCst)
    }
}

/// What the pool's hooks see: the test currently using the pool, if any.
#[derive(Debug, Default)]
struct Hooks {
    current: Mutex<Option<Arc<RollbackState>>>,
    connections: AtomicU32,
}

impl Hooks {
    fn current(&self) -> Option<Arc<RollbackState>> {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set(&self, state: Option<Arc<RollbackState>>) {
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = state;
    }
}

/// A one-connection pool for Rollback tests, reused by the tests of a process one after another.
#[derive(Debug)]
pub(crate) struct RollbackPool {
    pub(crate) pool: PgPool,
    hooks: Arc<Hooks>,
    /// The connection's server process, learnt by the first test's first statement.
    backend_pid: AtomicU32,
    /// Connection budget for the pool's connection, given back when the pool goes.
    pub(crate) budget: Option<super::budget::Reservation>,
}

/// Where a Rollback test's token comes from: the first free candidate derived from the test's
/// name and the seed, held as an advisory lock by the test's own connection in the shared
/// database (the tests that could collide on its unique values are the ones sharing it).
#[derive(Debug, Clone, Copy)]
pub(crate) struct TokenClaim<'a> {
    /// The test's name.
    pub(crate) test: &'a str,
    /// The base seed.
    pub(crate) base_seed: u64,
}

impl TokenClaim<'_> {
    /// The token of `attempt`, and the name of its lock.
    fn candidate(&self, attempt: u32) -> (String, String) {
        let token = crate::context::token_for(self.test, self.base_seed, attempt);
        let lock = format!("token:{token}");
        (token, lock)
    }
}

/// How [`RollbackPool::start`] went.
#[derive(Debug)]
pub(crate) enum Started {
    /// The test runs, in its transaction, with its token.
    Running {
        state: Arc<RollbackState>,
        token: String,
    },
    /// The database is not a ready migrated database (being built, or left half-built): nothing
    /// was started.
    NotReady,
}

impl RollbackPool {
    /// Opens the pool and its connection. Call it on the engine runtime, so the connection
    /// outlives the test that asked for it. When it is the process's first connection to the
    /// server, a server that is starting is waited for, and one that never answers is reported.
    pub(crate) async fn open(
        server: &'static Server,
        options: PgConnectOptions,
        acquire_timeout: Duration,
    ) -> Result<Self> {
        let hooks = Arc::new(Hooks::default());
        let on_connect = Arc::clone(&hooks);
        let on_acquire = Arc::clone(&hooks);
        let on_release = Arc::clone(&hooks);
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .acquire_timeout(acquire_timeout)
            .idle_timeout(None)
            .max_lifetime(None)
            .test_before_acquire(false)
            .after_connect(move |conn, _meta| {
                let hooks = Arc::clone(&on_connect);
                server.note_version(conn);
                Box::pin(async move {
                    hooks.connections.fetch_add(1, Ordering::SeqCst);
                    if let Some(state) = hooks.current()
                        && state.phase() != IDLE
                    {
                        // The test's connection was lost midway. The test fails; until it ends,
                        // its writes go into a transaction of their own, never committed.
                        state.record(Violation::ConnectionReplaced);
                        let begin = "BEGIN; SAVEPOINT seedbed_checkout";
                        Tm::begin(conn, Some(sqlx::AssertSqlSafe(begin).into_sql_str())).await?;
                    }
                    Ok(())
                })
            })
            .before_acquire(move |conn, _meta| {
                let hooks = Arc::clone(&on_acquire);
                Box::pin(async move {
                    if let Some(state) = hooks.current()
                        && state.phase() == RUNNING
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
                let hooks = Arc::clone(&on_release);
                Box::pin(async move {
                    if let Some(state) = hooks.current()
                        && state.phase() != IDLE
                    {
                        release_checkout(conn, &state).await;
                    }
                    Ok(true)
                })
            })
            .connect_lazy_with(options.clone());
        let database = options.get_database().unwrap_or_default().to_string();
        let conn = match pool.acquire().await {
            Ok(conn) => conn,
            Err(e) if !server.reached() && matches!(e, sqlx::Error::Io(_)) => {
                // The process's first connection: wait for the server, or say it is unreachable.
                let conn = server.open(&options).await?;
                let _ = sqlx::Connection::close(conn).await;
                pool.acquire()
                    .await
                    .map_err(Error::db(format!("connecting to {database}")))?
            }
            Err(e) => return Err(Error::db(format!("connecting to {database}"))(e)),
        };
        drop(conn);
        Ok(Self {
            pool,
            hooks,
            backend_pid: AtomicU32::new(0),
            budget: None,
        })
    }

    /// Begins a test: claims its token (and, with `check`, asks whether the database is a ready
    /// migrated one of seedbed's, in the same statement), then its transaction (counted by sqlx)
    /// and its fixtures. The first checkout's savepoint comes with the test's first
    /// query.
    pub(crate) async fn start(
        &self,
        app_name: &str,
        fixtures: &[String],
        set_role: Option<&str>,
        claim: &TokenClaim<'_>,
        check: bool,
    ) -> Result<Started> {
        let state = Arc::new(RollbackState::default());
        self.hooks.set(Some(Arc::clone(&state)));
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(Error::db("starting the test's transaction"))?;
        let (mut token, lock) = claim.candidate(0);
        let sql = format!(
            "SELECT pg_backend_pid(), pg_try_advisory_lock({}), {}",
            crate::backend::postgres::coord::key_sql("$1"),
            super::databases::ready_expression()
        );
        let (pid, mut taken, ready): (i32, bool, bool) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(lock)
            .fetch_one(&mut *conn)
            .await
            .map_err(Error::db("starting the test"))?;
        self.backend_pid
            .store(u32::try_from(pid).unwrap_or_default(), Ordering::SeqCst);
        if check && !ready {
            if taken {
                let _ = conn
                    .execute(sqlx::raw_sql("SELECT pg_advisory_unlock_all()"))
                    .await;
            }
            self.hooks.set(None);
            conn.return_to_pool().await;
            return Ok(Started::NotReady);
        }
        let mut attempt = 0;
        while !taken {
            attempt += 1;
            if attempt >= 1000 {
                return Err(Error::Internal(
                    "no free test token among 1000 candidates".into(),
                ));
            }
            let (next, lock) = claim.candidate(attempt);
            token = next;
            let sql = format!(
                "SELECT pg_try_advisory_lock({})",
                crate::backend::postgres::coord::key_sql("$1")
            );
            taken = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .bind(lock)
                .fetch_one(&mut *conn)
                .await
                .map_err(Error::db("claiming a test token"))?;
        }
        let begin = format!(
            "BEGIN; SET LOCAL application_name = {}",
            quote_literal(app_name)
        );
        Tm::begin(&mut conn, Some(sqlx::AssertSqlSafe(begin).into_sql_str()))
            .await
            .map_err(Error::db("starting the test's transaction"))?;
        for sql in fixtures {
            conn.execute(sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone())))
                .await
                .map_err(Error::db("applying a fixture"))?;
        }
        // The test's role (`SET LOCAL ROLE`), once the fixtures ran as the connecting user.
        if let Some(set_role) = set_role {
            conn.execute(sqlx::raw_sql(sqlx::AssertSqlSafe(set_role.to_string())))
                .await
                .map_err(Error::db(
                    "acting as the test's role (the user seedbed connects as must be a member of \
                     it: `GRANT <role> TO <user>`)",
                ))?;
        }
        // Back in the pool before the hooks work for the test: from the next checkout on, each
        // runs in a savepoint of its own.
        conn.return_to_pool().await;
        drop(conn);
        state.phase.store(RUNNING, Ordering::SeqCst);
        Ok(Started::Running { state, token })
    }

    /// Ends a test: checks deferred constraints and what could not be contained, and rolls the
    /// transaction back. Returns the violation, if any, and whether the pool can serve another
    /// test.
    pub(crate) async fn finish<L: Future<Output = Result<bool>>>(
        &self,
        state: &RollbackState,
        is_listening: impl FnOnce(u32) -> L,
    ) -> Result<(Option<Violation>, bool)> {
        let connections = self.hooks.connections.load(Ordering::SeqCst);
        state.phase.store(FINISHING, Ordering::SeqCst);
        let mut conn = match tokio::time::timeout(Duration::from_secs(2), self.pool.acquire()).await
        {
            Ok(Ok(conn)) => conn,
            _ => {
                // Still held: find out whether it is listening.
                let pid = self.backend_pid.load(Ordering::SeqCst);
                if pid != 0 && is_listening(pid).await? {
                    state.record(Violation::Listen);
                } else {
                    state.record(Violation::HeldAtEnd);
                }
                self.hooks.set(None);
                return Ok((state.violation(), false));
            }
        };
        // Session advisory locks survive a rollback: release them so the next test starts clean.
        let checked = conn
            .execute(sqlx::raw_sql(
                "SELECT pg_advisory_unlock_all(); SET CONSTRAINTS ALL IMMEDIATE",
            ))
            .await;
        if let Err(e) = &checked {
            note_lost_transaction(state, e);
        }
        // The rollback is queued, not awaited: it goes to the server with the ping sqlx sends as
        // the connection returns to the pool, one round trip fewer per test. If it fails, so
        // does that ping, and sqlx closes the connection: the next test then opens another, on
        // its own runtime, and its pool is not kept.
        let rolled_back = Tm::get_transaction_depth(&conn) == 1;
        Tm::start_rollback(&mut conn);
        state.phase.store(IDLE, Ordering::SeqCst);
        self.hooks.set(None);
        // The connection goes back to the pool from the engine runtime: a return spawned on the
        // test's runtime could be cut off when that runtime shuts down, losing the connection.
        let _ = super::engine::run(async move {
            drop(conn);
            Ok(())
        })
        .await;
        let violation = state.violation();
        // Reused only while it still has the connection opened on the engine runtime.
        let reusable = violation.is_none()
            && rolled_back
            && connections == 1
            && self.hooks.connections.load(Ordering::SeqCst) == 1;
        if violation.is_some() {
            return Ok((violation, reusable));
        }
        match checked {
            Err(e) if sql_state(&e).is_some() => Err(Error::Database {
                context: "a deferred constraint fails at the end of the test (it would fail at \
                          commit)"
                    .into(),
                source: e,
            }),
            _ => Ok((None, reusable)),
        }
    }

    /// Closes the pool (when it cannot serve another test).
    pub(crate) async fn close(&self) {
        self.hooks.set(None);
        let pool = self.pool.clone();
        // A connection the test still holds comes back (and is closed) when the test drops it.
        tokio::spawn(async move { pool.close().await });
    }
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
