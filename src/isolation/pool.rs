//! The pools kept between the tests of a process: a test's connections, opened on the engine
//! runtime, reset at its end and handed to the next test of the same database and settings.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Executor, PgPool};

use super::engine;
use super::transaction::RollbackPool;
use crate::backend::postgres::server::Server;
use crate::error::{Error, Result};

/// Pools kept between the tests of the process, by database and settings.
pub(super) static ROLLBACK_POOLS: engine::FreeList<Arc<RollbackPool>> = engine::FreeList::new();
pub(super) static SHARED_POOLS: engine::FreeList<SharedPool> = engine::FreeList::new();

/// How many connections the pools of [`SHARED_POOLS`] open when they are made, by key: as many
/// as a test of that key last held at once, when that was more than the pool had.
pub(super) static WARM_CONNECTIONS: std::sync::Mutex<
    Option<std::collections::HashMap<String, usize>>,
> = std::sync::Mutex::new(None);

pub(super) fn warm_connections(key: &str) -> usize {
    WARM_CONNECTIONS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .as_ref()
        .and_then(|warm| warm.get(key).copied())
        .unwrap_or(1)
}

pub(super) fn remember_warm_connections(key: &str, held: u32) {
    let held = usize::try_from(held).unwrap_or(1);
    let mut warm = WARM_CONNECTIONS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let entry = warm
        .get_or_insert_with(Default::default)
        .entry(key.to_string())
        .or_insert(1);
    *entry = (*entry).max(held);
}

/// Options of a test's pool whose connections open as the test asks for them, each counted in
/// the connection budget when it opens (the process's free pass first), all given back when the
/// pool closes.
pub(super) fn budgeted_pool(server: &'static Server, max: u32) -> PgPoolOptions {
    // Held by the hook, so by the pool: the reservations go when the pool does.
    let on_connect = Arc::new(super::budget::PoolBudget::new(
        super::budget::postgres(server),
        max,
    ));
    PgPoolOptions::new()
        .max_connections(max.max(1))
        .min_connections(0)
        .test_before_acquire(false)
        .after_connect(move |conn, _meta| {
            let budget = Arc::clone(&on_connect);
            Box::pin(async move {
                server.note_version(conn);
                budget
                    .connection_opened()
                    .await
                    .map_err(|e| sqlx::Error::Configuration(e.to_string().into()))
            })
        })
}

/// A pool for the tests of one database, kept between tests.
///
/// It opens one connection when it is made, on the engine runtime (a connection opened during a
/// test would be tied to that test's runtime, which dies with the test), and more only as a test
/// asks for them. A connection opened during a test is closed at its next checkout, and a pool
/// that opened one is closed when the test ends rather than kept, so the next test starts on
/// connections that live on the engine runtime.
///
/// The settings of the test that has the pool (its `application_name`, Namespace's token and
/// schema) are applied to every connection when the test starts, and by `after_connect` to a
/// connection the pool opens while the test runs: a connection without them would write rows
/// Namespace does not journal, which would outlive the test.
#[derive(Debug, Clone)]
pub(super) struct SharedPool {
    pub(super) pool: PgPool,
    pub(super) recycled_at: Arc<std::sync::Mutex<std::time::Instant>>,
    /// The current test's session settings (`None` between tests).
    pub(super) session: Arc<std::sync::Mutex<Option<String>>>,
    /// Connections opened so far, and how many `open` made: a pool that opened more (during a
    /// test, on that test's runtime, which dies with it) is not kept for the next test.
    pub(super) opened: Arc<std::sync::atomic::AtomicUsize>,
    pub(super) opened_by_open: usize,
    /// Connection budget for the pool's connections, given back when the pool goes.
    pub(super) budget: Arc<super::budget::PoolBudget>,
    /// The last test's connections on their way back to the pool (see [`keep`](Self::keep)),
    /// which the next test waits for.
    pub(super) returning: Arc<std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl SharedPool {
    /// Opens the pool and its first `warm` connections (at least one, at most `max`); call it on
    /// the engine runtime.
    pub(super) async fn open(
        server: &'static Server,
        options: PgConnectOptions,
        max: u32,
        warm: usize,
    ) -> Result<Self> {
        let recycled_at = Arc::new(std::sync::Mutex::new(std::time::Instant::now()));
        let cutoff = Arc::clone(&recycled_at);
        let session: Arc<std::sync::Mutex<Option<String>>> = Arc::new(std::sync::Mutex::new(None));
        let settings = Arc::clone(&session);
        let connections_opened = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = Arc::clone(&connections_opened);
        let budget = Arc::new(super::budget::PoolBudget::new(
            super::budget::postgres(server),
            max,
        ));
        let on_connect = Arc::clone(&budget);
        let pool = PgPoolOptions::new()
            .max_connections(max.max(1))
            .min_connections(0)
            .idle_timeout(None)
            .max_lifetime(None)
            .test_before_acquire(false)
            .after_connect(move |conn, _meta| {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                server.note_version(conn);
                let sql = settings
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone();
                let budget = Arc::clone(&on_connect);
                Box::pin(async move {
                    budget
                        .connection_opened()
                        .await
                        .map_err(|e| sqlx::Error::Configuration(e.to_string().into()))?;
                    if let Some(sql) = sql {
                        conn.execute(sqlx::raw_sql(sqlx::AssertSqlSafe(sql)))
                            .await?;
                    }
                    Ok(())
                })
            })
            .before_acquire(move |_conn, meta| {
                let cutoff = Arc::clone(&cutoff);
                Box::pin(async move {
                    let recycled = *cutoff
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    // Opened after the pool was last recycled: during a test, on its runtime.
                    let opened_during_a_test = recycled.elapsed() > meta.age;
                    Ok(!opened_during_a_test)
                })
            })
            .connect_lazy_with(options.clone());
        let mut first = match pool.acquire().await {
            Ok(conn) => conn,
            Err(e) if !server.reached() && matches!(e, sqlx::Error::Io(_)) => {
                // The process's first connection: wait for the server, or say it is unreachable.
                let conn = server.open(&options).await?;
                let _ = sqlx::Connection::close(conn).await;
                pool.acquire()
                    .await
                    .map_err(Error::db("connecting to the test database"))?
            }
            Err(e) => {
                let database = options.get_database().unwrap_or_default().to_string();
                return Err(Error::db(format!("connecting to {database}"))(e));
            }
        };
        // More connections, as many as the last test on this database held at once: a test
        // that runs two statements back to back through the pool needs a second one while the
        // first goes back (in a task of its own), and one opened during a test cannot be kept.
        let mut more = Vec::new();
        let wanted = warm.min(usize::try_from(max).unwrap_or(usize::MAX)).max(1) - 1;
        for _ in 0..wanted {
            match pool.acquire().await {
                Ok(conn) => more.push(conn),
                Err(_) => break,
            }
        }
        first.return_to_pool().await;
        drop(first);
        for mut conn in more {
            conn.return_to_pool().await;
        }
        *recycled_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = std::time::Instant::now();
        let opened_by_open = connections_opened.load(std::sync::atomic::Ordering::SeqCst);
        Ok(Self {
            pool,
            recycled_at,
            session,
            opened: connections_opened,
            opened_by_open,
            budget,
            returning: Arc::default(),
        })
    }

    /// Records the settings of the test taking the pool (`None` when it goes back), for the
    /// connections opened while it runs.
    pub(super) fn set_session(&self, sql: Option<&str>) {
        *self
            .session
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = sql.map(str::to_string);
    }

    /// The pool kept for `key` (or a new one) with `set` run on every connection, for a test.
    /// A kept pool whose sessions no longer work (the server ended one, or restarted) is closed
    /// and replaced by a new one.
    pub(super) async fn for_test(
        server: &'static Server,
        key: &str,
        database: &str,
        options: impl Fn() -> PgConnectOptions,
        max_connections: u32,
        set: &str,
    ) -> Result<Self> {
        if let Some(kept) = SHARED_POOLS.take(key) {
            if kept.on_every_connection(set).await {
                return Ok(kept);
            }
            kept.discard().await;
        }
        let shared = Self::open_new(server, key, options(), max_connections).await?;
        if shared.on_every_connection(set).await {
            return Ok(shared);
        }
        shared.discard().await;
        Err(Error::Connection {
            database: database.to_string(),
            message: "it failed as the test started".into(),
        })
    }

    /// A new pool for `key`, opened on the engine runtime with as many connections as a test of
    /// that key last held at once; idle kept pools give way to it when the budget is spent.
    pub(super) async fn open_new(
        server: &'static Server,
        key: &str,
        options: PgConnectOptions,
        max_connections: u32,
    ) -> Result<Self> {
        super::budget::on_shortage(evict_kept_pools);
        engine::run(SharedPool::open(
            server,
            options,
            max_connections,
            warm_connections(key),
        ))
        .await
    }

    /// [`for_test`](Self::for_test), with `claim` run on one connection right after `set`, in
    /// the same round trip; returns the last row `claim` gave.
    pub(super) async fn for_test_claiming(
        server: &'static Server,
        key: &str,
        database: &str,
        options: impl Fn() -> PgConnectOptions,
        max_connections: u32,
        set: &str,
        claim: &str,
    ) -> Result<(Self, sqlx::postgres::PgRow)> {
        loop {
            let (shared, fresh) = match SHARED_POOLS.take(key) {
                Some(kept) => (kept, false),
                None => (
                    Self::open_new(server, key, options(), max_connections).await?,
                    true,
                ),
            };
            shared.set_session(Some(set));
            let Some(mut conns) = shared.all_connections().await else {
                shared.discard().await;
                return Err(Error::Connection {
                    database: database.to_string(),
                    message: "it did not come back as the test started".into(),
                });
            };
            let Some(mut first) = conns.pop() else {
                shared.discard().await;
                return Err(Error::Connection {
                    database: database.to_string(),
                    message: "the pool had no connection open".into(),
                });
            };
            let sql = format!("{set}; {claim}");
            let (claimed, (rest_ok, rest)) = tokio::join!(
                first.fetch_all(sqlx::raw_sql(sqlx::AssertSqlSafe(sql))),
                Self::on_connections(conns, set)
            );
            first.return_to_pool().await;
            for mut conn in rest {
                conn.return_to_pool().await;
            }
            match claimed {
                Ok(mut rows) if rest_ok => {
                    let row = rows.pop().ok_or_else(|| {
                        Error::Internal(format!("starting the test on {database} said nothing"))
                    })?;
                    return Ok((shared, row));
                }
                // A kept pool whose sessions no longer work is replaced by a new one.
                _ if !fresh => shared.discard().await,
                Ok(_) => {
                    shared.discard().await;
                    return Err(Error::Connection {
                        database: database.to_string(),
                        message: "it failed as the test started".into(),
                    });
                }
                Err(e) => {
                    shared.discard().await;
                    return Err(Error::db(format!("starting the test on {database}"))(e));
                }
            }
        }
    }

    /// Every open connection of the pool, once the test has given them all back (`None` if one
    /// does not come back within 2 s).
    pub(super) async fn all_connections(
        &self,
    ) -> Option<Vec<sqlx::pool::PoolConnection<sqlx::Postgres>>> {
        let returning = self
            .returning
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(returning) = returning {
            let _ = returning.await;
        }
        all_connections(&self.pool).await
    }

    /// Runs `sql` on the given connections at once (one round trip of wall time). Returns
    /// whether it ran on every connection, and the connections.
    pub(super) async fn on_connections(
        conns: Vec<sqlx::pool::PoolConnection<sqlx::Postgres>>,
        sql: &str,
    ) -> (bool, Vec<sqlx::pool::PoolConnection<sqlx::Postgres>>) {
        let (failed, conns) = Self::on_connections_failures(conns, sql).await;
        (failed.is_empty(), conns)
    }

    /// Runs `sql` on the given connections at once, as [`on_connections`](Self::on_connections)
    /// does; returns how it failed on each connection where it did (`None` for a task that did
    /// not finish), and the connections.
    pub(super) async fn on_connections_failures(
        conns: Vec<sqlx::pool::PoolConnection<sqlx::Postgres>>,
        sql: &str,
    ) -> (
        Vec<Option<sqlx::Error>>,
        Vec<sqlx::pool::PoolConnection<sqlx::Postgres>>,
    ) {
        let mut tasks = tokio::task::JoinSet::new();
        for mut conn in conns {
            let sql = sql.to_string();
            tasks.spawn(async move {
                let done = conn.execute(sqlx::raw_sql(sqlx::AssertSqlSafe(sql))).await;
                (conn, done.err())
            });
        }
        let mut failed = Vec::new();
        let mut back = Vec::new();
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok((conn, error)) => {
                    failed.extend(error.map(Some));
                    back.push(conn);
                }
                Err(_) => failed.push(None),
            }
        }
        (failed, back)
    }

    /// Runs `sql` on every connection of the pool (at the start of a test), and on those the
    /// pool opens until the test ends. The connections are back in the pool when it returns, so
    /// the test's first query takes one of them rather than opening another.
    pub(super) async fn on_every_connection(&self, sql: &str) -> bool {
        self.set_session(Some(sql));
        match self.all_connections().await {
            Some(conns) => {
                let (ok, conns) = Self::on_connections(conns, sql).await;
                for mut conn in conns {
                    conn.return_to_pool().await;
                }
                ok
            }
            None => false,
        }
    }

    /// Resets every session of a test that ended (its settings, listens, temporary tables), then
    /// releases the advisory locks they hold, all in one round trip. `last`, if any, runs on every
    /// connection after its reset and before its locks go, so it must act on one of them alone:
    /// Namespace's cleanup acts on the connection holding the test's token (while it still
    /// holds it). Returns whether every reset worked, the outcome of `last` (the server's error
    /// if it raised one), and the connections.
    pub(super) async fn reset_sessions(
        &self,
        conns: Vec<sqlx::pool::PoolConnection<sqlx::Postgres>>,
        last: Option<String>,
    ) -> (
        bool,
        Result<()>,
        Vec<sqlx::pool::PoolConnection<sqlx::Postgres>>,
    ) {
        const RESET: &str = "CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; SET ROLE NONE; RESET ALL; \
                             UNLISTEN *; DISCARD TEMP; DISCARD SEQUENCES";
        const UNLOCK: &str = "SELECT pg_advisory_unlock_all()";
        self.set_session(None);
        if conns.is_empty() {
            return (false, Ok(()), conns);
        }
        // A query string's statements share one transaction unless it says otherwise: `last`
        // commits before the locks go, so nobody takes the test's token while its rows are
        // still there.
        let sql = match &last {
            // Read committed whatever the database's default: a connection that takes the
            // token after its holder let it go must see the holder's deletes, not fail on them.
            Some(last) => {
                format!("{RESET}; BEGIN ISOLATION LEVEL READ COMMITTED; {last}; COMMIT; {UNLOCK}")
            }
            None => format!("{RESET}; {UNLOCK}"),
        };
        let (failed, conns) = Self::on_connections_failures(conns, &sql).await;
        let healthy = failed.is_empty();
        // A connection that broke only makes the pool unfit to keep; an error the server raised
        // (the cleanup's) is the test's.
        let raised = failed
            .into_iter()
            .flatten()
            .find(|e| matches!(e, sqlx::Error::Database(_)));
        match raised {
            Some(e) if last.is_some() => (false, Err(Error::db("ending the test")(e)), conns),
            _ => (healthy, Ok(()), conns),
        }
    }

    /// Resets every session of a test that ended, as [`reset_sessions`](Self::reset_sessions)
    /// does, but leaves its advisory locks: one of them holds the test's lease.
    /// `query`, if any, runs on the first connection after its reset, in the same round trip:
    /// its last row's first column (an array of `int8`) is returned.
    pub(super) async fn reset_sessions_keeping_locks(
        &self,
        conns: Vec<sqlx::pool::PoolConnection<sqlx::Postgres>>,
        query: Option<String>,
    ) -> (
        bool,
        Option<Vec<i64>>,
        Vec<sqlx::pool::PoolConnection<sqlx::Postgres>>,
    ) {
        const RESET: &str = "CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; SET ROLE NONE; RESET ALL; UNLISTEN *; DISCARD TEMP";
        self.set_session(None);
        let mut conns = conns;
        let (Some(query), Some(mut first)) = (query, conns.pop()) else {
            let (ok, conns) = Self::on_connections(conns, RESET).await;
            return (ok, None, conns);
        };
        let sql = format!("{RESET}; {query}");
        let (read, (rest_ok, mut rest)) = tokio::join!(
            first.fetch_all(sqlx::raw_sql(sqlx::AssertSqlSafe(sql))),
            Self::on_connections(conns, RESET)
        );
        let read = read.ok().and_then(|mut rows| rows.pop()).and_then(|row| {
            use sqlx::Row;
            row.try_get::<Vec<i64>, _>(0).ok()
        });
        let ok = rest_ok && read.is_some();
        rest.insert(0, first);
        (ok, read, rest)
    }

    /// Puts the pool back for the next test (its connections given back from the engine
    /// runtime), or closes it if a reset failed or it opened connections during the test.
    pub(super) async fn keep(
        self,
        key: &str,
        conns: Vec<sqlx::pool::PoolConnection<sqlx::Postgres>>,
        healthy: bool,
    ) {
        // Given back (sqlx pings each connection on its way back) from the engine runtime (a
        // return on a test's runtime could be cut off when that runtime shuts down, losing the
        // connection), in a task the next test waits for rather than spins on (as it would for
        // dropped connections): the test ends without waiting for it, and a next test that
        // comes soon waits no longer than for the return itself.
        let returning = async move {
            for mut conn in conns {
                conn.return_to_pool().await;
            }
        };
        match engine::spawn_joinable(returning) {
            Some(handle) => {
                *self
                    .returning
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(handle);
            }
            None => return self.discard().await,
        }
        let only_its_own =
            self.opened.load(std::sync::atomic::Ordering::SeqCst) == self.opened_by_open;
        if !only_its_own {
            remember_warm_connections(key, self.pool.size());
        }
        if healthy && only_its_own {
            *self
                .recycled_at
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = std::time::Instant::now();
            SHARED_POOLS.put(key, self);
        } else {
            self.discard().await;
        }
    }

    /// Closes the pool (a connection is still out, or broke) and gives its budget back.
    pub(super) async fn discard(self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.pool.close()).await;
        self.budget.give_back().await;
    }
}

/// Every open connection of `pool`, once the test has given them all back (`None` if one does
/// not come back within 2 s).
pub(super) async fn all_connections(
    pool: &PgPool,
) -> Option<Vec<sqlx::pool::PoolConnection<sqlx::Postgres>>> {
    // A connection the test dropped goes back to the pool in a task of its own: wait for it
    // rather than let `acquire` open another.
    let back = crate::util::wait::until(
        || pool.num_idle() >= pool.size() as usize,
        Duration::from_secs(2),
    )
    .await;
    if !back {
        return None;
    }
    let mut conns = Vec::with_capacity(pool.size() as usize);
    while let Some(conn) = pool.try_acquire() {
        conns.push(conn);
    }
    Some(conns)
}

/// Forgets the pools kept for the next test: they lived on a runtime that has ended (see
/// [`engine::adopt_test_runtime`]).
pub(crate) fn forget_kept_pools() {
    drop(ROLLBACK_POOLS.take_all());
    drop(SHARED_POOLS.take_all());
    super::schema_pool::forget_holders();
}

/// Closes the pools kept for the next test (Rollback's and the others') and gives their budget
/// back now (a reservation found the budget spent); returns how many slots it gave back.
/// Closes the pools this process keeps idle to `database` (other tests' of the same slot, with
/// other settings): nothing of the process may stay connected to a database being kept for a
/// failed test.
pub(super) async fn close_kept_pools_of(database: &str) {
    for kept in SHARED_POOLS.take_prefixed(&format!("{database}|")) {
        kept.discard().await;
    }
}

pub(super) fn evict_kept_pools() -> std::pin::Pin<Box<dyn Future<Output = usize> + Send + 'static>>
{
    Box::pin(async {
        let mut freed = 0;
        for rp in ROLLBACK_POOLS.take_all() {
            rp.close().await;
            if let Some(reservation) = Arc::try_unwrap(rp).ok().and_then(|rp| rp.budget) {
                freed += reservation.give_back().await.unwrap_or(0);
            }
        }
        for kept in SHARED_POOLS.take_all() {
            let budget = Arc::clone(&kept.budget);
            let _ = tokio::time::timeout(Duration::from_secs(5), kept.pool.close()).await;
            freed += budget.give_back().await;
        }
        freed
    })
}
