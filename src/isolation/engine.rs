//! Process-wide state of the isolation engine: a small background runtime that owns the
//! connections seedbed keeps across tests, and caches of what is resolved once per process.
//!
//! Every `#[tokio::test]` (and every `#[seedbed::test]`) runs on its own runtime, and a
//! connection opened on one runtime stops working when that runtime shuts down. Connections that
//! outlive a test (the control connection that claims tokens, the leases on Truncate databases)
//! therefore live on the engine runtime, and tests reach them through [`run`].

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use sqlx::PgConnection;
use tokio::runtime::Runtime;
use tokio::sync::OnceCell;

use super::migrations::Migrations;
use crate::backend::postgres::server::Server;
use crate::error::{Error, Result};

/// The engine runtime: one worker thread, started on first use, never shut down.
fn runtime() -> Result<&'static Runtime> {
    static RUNTIME: OnceLock<std::result::Result<Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("seedbed-engine")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| Error::Config(format!("cannot start seedbed's engine runtime: {e}")))
}

/// Whether the process's one test runtime stands in for the engine runtime (see
/// [`adopt_test_runtime`]).
static ADOPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Called by `#[seedbed::test]` before it acquires the test's database. When the process runs
/// this one test and exits (`cargo nextest`'s process-per-test mode), the test's runtime is the
/// only one the process has: what would live on the engine runtime (the control connection, the
/// connections kept for later tests) lives on it instead, and the process starts no thread of
/// its own and hands no query between threads.
///
/// A process that says it runs one test (the variable is inherited by the processes a test
/// starts) but runs a second adopts no more: what lived on the first test's runtime died with it,
/// and is forgotten (the caller forgets the pools it keeps); returns `true` then.
pub(crate) fn adopt_test_runtime() -> bool {
    static ADOPTIONS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    if !crate::util::env::one_test_per_process() {
        return false;
    }
    if ADOPTIONS.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
        ADOPTED.store(true, std::sync::atomic::Ordering::SeqCst);
        return false;
    }
    if ADOPTED.swap(false, std::sync::atomic::Ordering::SeqCst) {
        control().forget();
        builder().forget();
        return true;
    }
    false
}

/// Whether this process adopted its test's runtime (see [`adopt_test_runtime`]).
pub(crate) fn adopted() -> bool {
    ADOPTED.load(std::sync::atomic::Ordering::SeqCst)
}

/// Runs `fut` on the engine runtime and waits for it from whatever runtime the caller is on (or,
/// in a process that adopted its test's runtime, runs it right there).
pub(crate) async fn run<F, T>(fut: F) -> Result<T>
where
    F: Future<Output = Result<T>> + Send + 'static,
    T: Send + 'static,
{
    if adopted() {
        return fut.await;
    }
    let handle = runtime()?.spawn(fut);
    handle.await.map_err(|e| {
        Error::Internal(format!(
            "seedbed's engine task failed: {e}{}",
            if e.is_panic() { " (it panicked)" } else { "" }
        ))
    })?
}

/// Starts `fut` on the engine runtime (on the test's, in a process that adopted it) and returns
/// its handle, for someone to wait on later; `None` if there is no runtime to start it on.
pub(crate) fn spawn_joinable<F>(fut: F) -> Option<tokio::task::JoinHandle<()>>
where
    F: Future<Output = ()> + Send + 'static,
{
    if adopted()
        && let Ok(handle) = tokio::runtime::Handle::try_current()
    {
        return Some(handle.spawn(fut));
    }
    runtime().ok().map(|rt| rt.spawn(fut))
}

/// Starts `fut` on the engine runtime without waiting for it (cleanup from `Drop`).
pub(crate) fn spawn_detached<F>(fut: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    if adopted()
        && let Ok(handle) = tokio::runtime::Handle::try_current()
    {
        handle.spawn(fut);
        return;
    }
    if let Ok(rt) = runtime() {
        rt.spawn(fut);
    }
}

/// Background work that must not be cut off by the end of the process (sweeping what dead
/// processes left, dropping a database): started with [`spawn_tracked`], waited for by
/// [`settle`].
fn tracked() -> &'static Mutex<Vec<tokio::task::JoinHandle<()>>> {
    static TRACKED: OnceLock<Mutex<Vec<tokio::task::JoinHandle<()>>>> = OnceLock::new();
    TRACKED.get_or_init(|| Mutex::new(Vec::new()))
}

/// Starts `fut` in the background, as [`spawn_detached`], and records it for [`settle`].
pub(crate) fn spawn_tracked<F>(fut: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    let handle = if adopted()
        && let Ok(handle) = tokio::runtime::Handle::try_current()
    {
        handle.spawn(fut)
    } else {
        match runtime() {
            Ok(rt) => rt.spawn(fut),
            Err(_) => return,
        }
    };
    let mut all = tracked().lock().unwrap_or_else(PoisonError::into_inner);
    all.retain(|h| !h.is_finished());
    all.push(handle);
}

/// Waits, at most `limit`, for the background work [`spawn_tracked`] started, in a process that
/// adopted its test's runtime: `#[seedbed::test]` calls it when its test has ended, so a process
/// that runs one test does not exit in the middle of it (a process that runs many lets it finish
/// on the engine runtime while its next tests run).
pub(crate) async fn settle(limit: std::time::Duration) {
    if !adopted() {
        return;
    }
    let pending: Vec<tokio::task::JoinHandle<()>> =
        std::mem::take(&mut *tracked().lock().unwrap_or_else(PoisonError::into_inner));
    let _ = tokio::time::timeout(limit, async {
        for handle in pending {
            let _ = handle.await;
        }
    })
    .await;
}

/// Migrations read once per process, by source.
pub(crate) async fn migrations(
    key: &str,
    load: impl Future<Output = Result<Migrations>>,
) -> Result<Arc<Migrations>> {
    static CACHE: OnceLock<KeyedOnce<Arc<Migrations>>> = OnceLock::new();
    CACHE
        .get_or_init(KeyedOnce::new)
        .get_or_try_init(key, async move { load.await.map(Arc::new) })
        .await
}

/// A value computed once per process and key (migrated databases, cleaning plans).
pub(crate) struct KeyedOnce<T> {
    cells: Mutex<HashMap<String, Arc<OnceCell<T>>>>,
}

impl<T: Clone> KeyedOnce<T> {
    pub(crate) fn new() -> Self {
        Self {
            cells: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) async fn get_or_try_init<F>(&self, key: &str, init: F) -> Result<T>
    where
        F: Future<Output = Result<T>>,
    {
        let cell = {
            let mut guard = self.cells.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(guard.entry(key.to_string()).or_default())
        };
        cell.get_or_try_init(|| init).await.cloned()
    }

    /// Forgets the value for `key` (what it named is gone): the next call computes it again.
    pub(crate) fn forget(&self, key: &str) {
        self.cells
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }
}

/// A connection to the maintenance database, on the engine runtime.
pub(crate) struct Control {
    conn: tokio::sync::Mutex<Option<PgConnection>>,
    /// Kept open between uses (the control connection, which holds locks) or closed after each
    /// (the builder, used rarely, so that idle processes hold one connection, not two).
    keep: bool,
    /// The session locks a kept connection holds for things still in use, taken again on a new
    /// connection if it is lost.
    held: Mutex<std::collections::HashSet<Held>>,
    /// The kept connection's server process (its pid and start time, so that a recycled pid is
    /// never mistaken for it): a replacement ends it, because a connection dropped after an error
    /// may still hold its locks on the server for a while (a half-open TCP connection, with idle
    /// timeouts off, for a long while).
    backend: Mutex<Option<(i32, String)>>,
}

/// A session lock the control connection holds for something still in use.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Held {
    /// The lease of a test database (see [`registry`](super::registry)).
    Lease(String),
    /// A slot of the connection budget.
    BudgetSlot(i64),
    /// A running test's token.
    Token(String),
    /// The lease of a Namespace test's schema (on the connection to its schema database).
    SchemaLease(String),
}

/// Records a lock just taken on the control connection, so that it is taken again if that
/// connection is lost and replaced while its owner still runs.
pub(crate) fn hold(lock: Held) {
    control().hold(lock);
}

/// Whether this process holds `lock` on the control connection (a session advisory lock is
/// re-entrant: taking it again from the same session would succeed, so callers check first).
pub(crate) fn is_held(lock: &Held) -> bool {
    control().held_set().contains(lock)
}

/// The budget slots this process holds.
pub(crate) fn held_budget_slots() -> Vec<i64> {
    control()
        .held_set()
        .iter()
        .filter_map(|h| match h {
            Held::BudgetSlot(slot) => Some(*slot),
            _ => None,
        })
        .collect()
}

/// Forgets a lock given back on the control connection.
pub(crate) fn let_go(lock: &Held) {
    control().let_go(lock);
}

/// The process's control connection: token claims and leases, quick statements only.
pub(crate) fn control() -> &'static Control {
    static CONTROL: OnceLock<Control> = OnceLock::new();
    CONTROL.get_or_init(|| Control::new(true))
}

/// The process's builder connection: `CREATE DATABASE` and `DROP DATABASE`, which take tens of
/// milliseconds and would hold up the control connection. Opened for each use.
pub(crate) fn builder() -> &'static Control {
    static BUILDER: OnceLock<Control> = OnceLock::new();
    BUILDER.get_or_init(|| Control::new(false))
}

/// A boxed, sendable future borrowing a connection.
pub(crate) type ConnFuture<'c, T> = std::pin::Pin<Box<dyn Future<Output = Result<T>> + Send + 'c>>;

impl Control {
    /// A connection slot, kept open between uses or not.
    pub(crate) fn new(keep: bool) -> Self {
        Self {
            conn: tokio::sync::Mutex::new(None),
            keep,
            held: Mutex::new(std::collections::HashSet::new()),
            backend: Mutex::new(None),
        }
    }

    /// Forgets the connection (it lived on a runtime that has ended, and its session's locks
    /// with it) and what it held.
    pub(crate) fn forget(&self) {
        if let Ok(mut conn) = self.conn.try_lock() {
            *conn = None;
        }
        self.held_set().clear();
        *self.backend.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    fn held_set(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<Held>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a lock just taken on this (kept) connection.
    pub(crate) fn hold(&self, lock: Held) {
        self.held_set().insert(lock);
    }

    /// Forgets a lock given back on this connection.
    pub(crate) fn let_go(&self, lock: &Held) {
        self.held_set().remove(lock);
    }

    /// Ends the previous connection's server process, if any, and waits (at most 2 s) until it
    /// is gone with its locks; then notes `me`, `conn`'s own.
    async fn replace_backend(&self, conn: &mut PgConnection, me: Option<(i32, String)>) {
        let old = self
            .backend
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some((pid, started)) = old {
            let _ = sqlx::query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE pid = $1 AND backend_start::text = $2",
            )
            .bind(pid)
            .bind(&started)
            .execute(&mut *conn)
            .await;
            for _ in 0..100 {
                let alive: bool = sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM pg_stat_activity \
                     WHERE pid = $1 AND backend_start::text = $2)",
                )
                .bind(pid)
                .bind(&started)
                .fetch_one(&mut *conn)
                .await
                .unwrap_or(false);
                if !alive {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
        *self.backend.lock().unwrap_or_else(PoisonError::into_inner) = me;
    }

    /// Takes the recorded locks again on a new connection (the server ended the old one's
    /// session, and its locks with it), and says which another process took in the meantime.
    async fn retake_held(&self, conn: &mut PgConnection, me: Option<(i32, String)>) {
        self.replace_backend(conn, me).await;
        let locks: Vec<Held> = self.held_set().iter().cloned().collect();
        if locks.is_empty() {
            return;
        }
        let mut lost = Vec::new();
        for lock in &locks {
            let taken = match lock {
                Held::Lease(name) => super::registry::try_lease(conn, name).await,
                Held::BudgetSlot(slot) => super::budget::try_slot(conn, *slot).await,
                Held::Token(token) => {
                    crate::backend::postgres::coord::try_lock_on(
                        conn,
                        &format!("token:{token}"),
                        crate::backend::postgres::coord::LockMode::Exclusive,
                    )
                    .await
                }
                Held::SchemaLease(name) => super::schema_pool::try_lease(conn, name).await,
            };
            if !matches!(taken, Ok(true)) {
                lost.push(format!("{lock:?}"));
            }
        }
        if lost.is_empty() {
            tracing::warn!(
                "a connection to the server was lost and reopened; its {} lock(s) were \
                 taken again",
                locks.len()
            );
        } else {
            tracing::warn!(
                "a connection to the server was lost and reopened; {} of its {} lock(s) \
                 could not be taken again (another process took them meanwhile): {}",
                lost.len(),
                locks.len(),
                lost.join(", ")
            );
        }
    }

    /// Runs `f` with the connection to the maintenance database (opened on first use, reopened
    /// after an error), on the engine runtime.
    ///
    /// The future is boxed: its type would otherwise carry the closure's higher-ranked lifetime
    /// into every caller, and rustc then fails to prove those callers' futures `Send`.
    pub(crate) fn with<F, T>(
        &'static self,
        server: &'static Server,
        f: F,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<T>> + Send + 'static>>
    where
        F: for<'c> FnOnce(&'c mut PgConnection) -> ConnFuture<'c, T> + Send + 'static,
        T: Send + 'static,
    {
        Box::pin(run(self.use_conn(server, None, f)))
    }

    /// Like [`with`](Self::with), for a connection to `database` (a slot used with that
    /// database only).
    pub(crate) fn with_database<F, T>(
        self: &std::sync::Arc<Self>,
        server: &'static Server,
        database: &str,
        f: F,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<T>> + Send + 'static>>
    where
        F: for<'c> FnOnce(&'c mut PgConnection) -> ConnFuture<'c, T> + Send + 'static,
        T: Send + 'static,
    {
        let this = std::sync::Arc::clone(self);
        let database = database.to_string();
        Box::pin(run(async move {
            this.use_conn(server, Some(database), f).await
        }))
    }

    async fn use_conn<F, T>(
        &self,
        server: &'static Server,
        database: Option<String>,
        f: F,
    ) -> Result<T>
    where
        F: for<'c> FnOnce(&'c mut PgConnection) -> ConnFuture<'c, T> + Send + 'static,
        T: Send + 'static,
    {
        let (slot, keep) = (&self.conn, self.keep);
        let mut guard = slot.lock().await;
        if guard.is_none() {
            let options = match &database {
                None => server.maintenance_options(),
                Some(db) => server.database_options(db),
            };
            let mut conn = server.open(&options).await?;
            if keep {
                // It holds leases and locks until the process ends: the server's idle timeouts
                // must not end it, and what a lost one held is taken back.
                let me = hold_and_identify(server, &mut conn).await?;
                self.retake_held(&mut conn, me).await;
            }
            *guard = Some(conn);
        }
        let conn = guard
            .as_mut()
            .ok_or_else(|| Error::Internal("the control connection was missing".into()))?;
        let result = f(conn).await;
        if let Err(e) = &result
            && is_connection_error(e)
        {
            // The connection itself failed: open a new one next time.
            *guard = None;
        }
        if !keep && let Some(conn) = guard.take() {
            let _ = sqlx::Connection::close(conn).await;
        }
        result
    }
}

/// Exempts a kept connection from the server's idle timeouts (see
/// [`Server::hold_session`]) and returns its server process (pid and start time), in one round
/// trip.
async fn hold_and_identify(
    server: &Server,
    conn: &mut PgConnection,
) -> Result<Option<(i32, String)>> {
    let major = conn.server_version_num().unwrap_or(server.version_num()) / 10_000;
    let hold = if major >= 14 {
        "SET idle_in_transaction_session_timeout = 0; SET idle_session_timeout = 0;"
    } else {
        "SET idle_in_transaction_session_timeout = 0;"
    };
    let sql = format!(
        "{hold} SELECT pg_backend_pid(), \
         (SELECT backend_start::text FROM pg_stat_get_activity(pg_backend_pid()))"
    );
    let row = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .fetch_optional(&mut *conn)
        .await
        .map_err(Error::db("turning off idle timeouts for seedbed's session"))?;
    Ok(row.and_then(|row| {
        use sqlx::Row;
        Some((row.try_get(0).ok()?, row.try_get(1).ok()?))
    }))
}

/// Whether an error means the connection is unusable (rather than a statement failing on it).
pub(crate) fn is_connection_error(err: &Error) -> bool {
    match err {
        Error::Database {
            source: sqlx::Error::Io(_) | sqlx::Error::Protocol(_) | sqlx::Error::Tls(_),
            ..
        } => true,
        // The server ended the session (57P01 admin_shutdown, 57P02 crash_shutdown, …) or the
        // connection failed (class 08).
        Error::Database {
            source: sqlx::Error::Database(db),
            ..
        } => db
            .code()
            .is_some_and(|code| code.starts_with("57P") || code.starts_with("08")),
        _ => false,
    }
}

/// Objects kept between tests, by key: pools whose connections live on the engine runtime, so
/// the next test reuses them instead of connecting again.
pub(crate) struct FreeList<T> {
    items: Mutex<Vec<(String, T)>>,
}

impl<T> FreeList<T> {
    pub(crate) const fn new() -> Self {
        Self {
            items: Mutex::new(Vec::new()),
        }
    }

    /// Takes one kept under `key`.
    pub(crate) fn take(&self, key: &str) -> Option<T> {
        let mut items = self.items.lock().unwrap_or_else(PoisonError::into_inner);
        let i = items.iter().rposition(|(k, _)| k == key)?;
        Some(items.swap_remove(i).1)
    }

    /// Takes every one kept under a key that starts with `prefix`.
    pub(crate) fn take_prefixed(&self, prefix: &str) -> Vec<T> {
        let mut items = self.items.lock().unwrap_or_else(PoisonError::into_inner);
        let mut taken = Vec::new();
        let mut i = 0;
        while i < items.len() {
            if items[i].0.starts_with(prefix) {
                taken.push(items.swap_remove(i).1);
            } else {
                i += 1;
            }
        }
        taken
    }

    /// Takes every one kept.
    pub(crate) fn take_all(&self) -> Vec<T> {
        let mut items = self.items.lock().unwrap_or_else(PoisonError::into_inner);
        items.drain(..).map(|(_, item)| item).collect()
    }

    /// Keeps one under `key`.
    pub(crate) fn put(&self, key: &str, item: T) {
        self.items
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((key.to_string(), item));
    }
}

/// A set of keys shared by the process: "is this already being done (or done) for this key?".
pub(crate) struct KeySet {
    keys: OnceLock<Mutex<std::collections::HashSet<String>>>,
}

impl KeySet {
    pub(crate) const fn new() -> Self {
        Self {
            keys: OnceLock::new(),
        }
    }

    fn set(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
        self.keys
            .get_or_init(|| Mutex::new(std::collections::HashSet::new()))
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds `key`; `false` when it was there already.
    pub(crate) fn insert(&self, key: &str) -> bool {
        self.set().insert(key.to_string())
    }

    /// Removes `key`.
    pub(crate) fn remove(&self, key: &str) {
        self.set().remove(key);
    }

    /// Whether `key` is there.
    pub(crate) fn contains(&self, key: &str) -> bool {
        self.set().contains(key)
    }
}

/// The number of CPUs, as the default size of what scales with parallel tests.
pub(crate) fn cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}
