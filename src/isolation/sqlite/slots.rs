//! Rollback and Truncate on SQLite: a test leases a *slot*, a copy of the migrated image that no
//! other test (thread or process) uses while the lease, a file lock, is held. Truncate empties
//! what the test wrote at its end; Rollback runs the test in one transaction and rolls it back.
//!
//! A process keeps the slots its finished tests gave back, their connections open, for its next
//! tests: a test then pays for a `BEGIN` and a `ROLLBACK` (Rollback) or for the cleaner (Truncate),
//! not for a lease and a connection. A Truncate slot carries an `.inuse` file while a process
//! holds its lease and may have written to it; a slot leased with that file present (its holder
//! died) is emptied before use. Rollback's slots are copies of the migrations alone, never
//! prepared for the cleaner: nothing a Rollback test writes is ever committed to them (a process
//! killed mid-test leaves an uncommitted WAL transaction, which SQLite discards), and each
//! connection reads a smaller schema.
//!
//! Rollback's containment: the test's connection carries SQLite commit and rollback hooks while
//! the test runs. A commit (a raw `COMMIT` that ended the test's transaction, and every statement
//! after it) is refused by SQLite's commit hook, so nothing reaches the slot; a raw `ROLLBACK`
//! is noticed; a second connection (the first closed or detached) is noticed; each fails the
//! test naming Template.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::{Sqlite, SqlitePool};
use sqlx_core::transaction::TransactionManager;

use super::super::engine::KeyedOnce;
use super::super::strategies::Ending;
use super::super::testdb::{Inner, Kept, Outcome};
use super::super::transaction::Violation;
use super::image;
use super::{Acquired, Isolation, PoolSettings, run_fixtures};
use crate::backend::sqlite::{Directory, SqlitePlan, admin, coord};
use crate::backend::{Clean, LockMode, Marker};
use crate::error::{Error, Result};
use crate::strategy::Strategy;

type Tm = <Sqlite as sqlx::Database>::TransactionManager;

/// Which strategy holds the slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Rollback,
    Truncate,
}

/// What Rollback's hooks record while a test runs.
#[derive(Debug, Default)]
struct Hooks {
    /// A test is running: commits are refused and rollbacks recorded.
    running: AtomicBool,
    /// A commit was refused.
    committed: AtomicBool,
    /// A transaction was rolled back (a raw `ROLLBACK`).
    rolled_back: AtomicBool,
    /// Connections the pool opened.
    connections: AtomicU32,
}

/// A leased slot with its pool.
#[derive(Debug)]
struct Slot {
    name: String,
    image: String,
    /// The pool settings it was opened with: it serves only tests that would open the same.
    settings: PoolSettings,
    kind: Kind,
    lease: coord::Lock,
    pool: SqlitePool,
    hooks: Arc<Hooks>,
    /// The `.inuse` file: present while a process holds the slot.
    inuse: PathBuf,
    /// Rollback: the connection is in a transaction begun for the next test (sqlx counts it),
    /// begun as the last test's was rolled back.
    begun: bool,
}

/// Slots this process's finished tests gave back, ready for its next tests.
fn idle() -> &'static Mutex<Vec<Slot>> {
    static IDLE: OnceLock<Mutex<Vec<Slot>>> = OnceLock::new();
    IDLE.get_or_init(|| Mutex::new(Vec::new()))
}

/// The cleaner's plan, read once per image (every slot of an image has the same).
async fn plan(slot: &Slot) -> Result<Arc<SqlitePlan>> {
    static PLANS: OnceLock<KeyedOnce<Arc<SqlitePlan>>> = OnceLock::new();
    PLANS
        .get_or_init(KeyedOnce::new)
        .get_or_try_init(&slot.image, async {
            let mut conn = slot
                .pool
                .acquire()
                .await
                .map_err(Error::db("reading the cleaner's plan"))?;
            Ok(Arc::new(<Sqlite as Clean>::plan(&mut conn).await?))
        })
        .await
}

pub(super) async fn acquire(
    iso: &Isolation,
    dir: &'static Directory,
    kind: Kind,
) -> Result<Acquired> {
    let image_kind = match kind {
        Kind::Truncate => image::Kind::Slots,
        Kind::Rollback => image::Kind::Plain,
    };
    let image = image::ready(iso, dir, image_kind).await?;
    let kept = {
        let mut idle = idle().lock().unwrap_or_else(PoisonError::into_inner);
        let settings = PoolSettings::of(iso);
        let found = idle
            .iter()
            .position(|s| s.image == image && s.kind == kind && s.settings == settings);
        found.map(|i| idle.swap_remove(i))
    };
    let mut slot = match kept {
        Some(slot) => slot,
        None => lease(iso, dir, &image, kind).await?,
    };
    let reset = kind == Kind::Truncate && iso.truncate.reset_sequences;
    if kind == Kind::Rollback {
        slot.hooks.committed.store(false, Ordering::SeqCst);
        slot.hooks.rolled_back.store(false, Ordering::SeqCst);
    }
    // A slot given back by the last Rollback test is in a transaction begun for this one: with
    // no fixtures, nothing is asked of the connection as the test starts.
    let ready = (kind == Kind::Truncate || slot.begun) && iso.fixtures.is_empty() && !reset;
    if !ready {
        let mut conn = slot
            .pool
            .acquire()
            .await
            .map_err(Error::db(format!("connecting to {}", dir.url(&slot.name))))?;
        if kind == Kind::Rollback && !slot.begun {
            Tm::begin(&mut conn, None)
                .await
                .map_err(Error::db("starting the test's transaction"))?;
            slot.begun = true;
        }
        if reset {
            // The test's AUTOINCREMENT counters start where migrations left them, whoever held
            // the slot before.
            crate::backend::sqlite::clean::restore_sequences(&mut conn).await?;
        }
        if kind == Kind::Rollback {
            slot.hooks.running.store(true, Ordering::SeqCst);
        }
        run_fixtures(&mut conn, &iso.fixtures).await?;
        conn.return_to_pool().await;
    }
    slot.hooks
        .running
        .store(kind == Kind::Rollback, Ordering::SeqCst);
    let database = slot.name.clone();
    let pool = slot.pool.clone();
    let reset_sequences = iso.truncate.reset_sequences;
    Ok(Acquired {
        database,
        pool,
        token: None,
        state: Box::new(Leased {
            slot: Mutex::new(Some(slot)),
            reset_sequences,
        }),
    })
}

/// Leases the first free slot of `image`, made from the image if it does not exist yet, and
/// emptied if its last holder died holding it.
async fn lease(iso: &Isolation, dir: &Directory, image: &str, kind: Kind) -> Result<Slot> {
    for n in 0..10_000 {
        let name = format!("{image}_{n}");
        let Some(lease) = coord::try_take(dir, &format!("lease:{name}"), LockMode::Exclusive)?
        else {
            continue;
        };
        let ready =
            admin::read_marker(dir, &name)?.is_some_and(|m| m.get("state") == Some("ready"));
        if !ready {
            admin::drop_database(dir, &name)?;
            admin::clone(dir, &name, image)?;
            // WAL: a transaction appends to the log instead of making and removing a journal
            // file, and a process killed mid-test leaves the file consistent.
            let mut conn = dir.connect(&name).await?;
            sqlx::raw_sql("PRAGMA journal_mode = WAL")
                .execute(&mut conn)
                .await
                .map_err(Error::db("switching a slot to WAL mode"))?;
            let _ = sqlx::Connection::close(conn).await;
            let marker = Marker::new("slot")
                .with("image", image)
                .with("state", "ready");
            admin::write_marker(dir, &name, &marker)?;
        }
        let hooks = Arc::new(Hooks::default());
        let settings = PoolSettings::of(iso);
        let options = settings.connect_options(dir, &name);
        let pool = match kind {
            Kind::Truncate => settings.pool(options),
            Kind::Rollback => with_hooks(&settings, options, &hooks),
        };
        let inuse = dir.path().join(format!("{name}.inuse"));
        let slot = Slot {
            name,
            image: image.to_string(),
            settings,
            kind,
            lease,
            pool,
            hooks,
            inuse,
            begun: false,
        };
        if kind == Kind::Truncate {
            if slot.inuse.exists() {
                clean(&slot, true).await?;
            } else {
                std::fs::write(&slot.inuse, b"")
                    .map_err(Error::io("marking the slot in use", &slot.inuse))?;
            }
        }
        return Ok(slot);
    }
    Err(Error::Internal(format!(
        "no free slot among 10000 of {image}"
    )))
}

/// The one-connection pool of a Rollback slot, its connection watched by the hooks.
fn with_hooks(
    settings: &PoolSettings,
    options: sqlx::sqlite::SqliteConnectOptions,
    hooks: &Arc<Hooks>,
) -> SqlitePool {
    let hooks = Arc::clone(hooks);
    settings
        .pool_options(1)
        .after_connect(move |conn, _| {
            let hooks = Arc::clone(&hooks);
            Box::pin(async move {
                hooks.connections.fetch_add(1, Ordering::SeqCst);
                let mut handle = conn.lock_handle().await?;
                let on_commit = Arc::clone(&hooks);
                handle.set_commit_hook(move || {
                    if on_commit.running.load(Ordering::SeqCst) {
                        on_commit.committed.store(true, Ordering::SeqCst);
                        return false;
                    }
                    true
                });
                let on_rollback = Arc::clone(&hooks);
                handle.set_rollback_hook(move || {
                    if on_rollback.running.load(Ordering::SeqCst) {
                        on_rollback.rolled_back.store(true, Ordering::SeqCst);
                    }
                });
                Ok(())
            })
        })
        .connect_lazy_with(options)
}

/// Empties the slot (children first, the lookup rows put back).
async fn clean(slot: &Slot, reset_sequences: bool) -> Result<()> {
    let plan = plan(slot).await?;
    let mut conn = slot
        .pool
        .acquire()
        .await
        .map_err(Error::db("connecting to empty the test database"))?;
    <Sqlite as Clean>::clean(&mut conn, &plan, reset_sequences).await?;
    conn.return_to_pool().await;
    Ok(())
}

/// The statement that ends a Rollback test, built once per image: the check for a violated
/// deferred foreign key on the image's tables that declare one (`DEFERRABLE INITIALLY
/// DEFERRED`; SQLite's catalog does not say, so their `CREATE` statements are read; immediate
/// keys are checked by SQLite as each statement runs), then `ROLLBACK; BEGIN`.
async fn rollback_end(slot: &Slot, conn: &mut sqlx::SqliteConnection) -> Result<Arc<String>> {
    static ENDS: OnceLock<KeyedOnce<Arc<String>>> = OnceLock::new();
    ENDS.get_or_init(KeyedOnce::new)
        .get_or_try_init(&slot.image, async {
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT name FROM sqlite_schema WHERE type = 'table' \
                 AND upper(sql) LIKE '%DEFERRABLE%INITIALLY%DEFERRED%'",
            )
            .fetch_all(&mut *conn)
            .await
            .map_err(Error::db("looking for deferred foreign keys"))?;
            if tables.is_empty() {
                return Ok(Arc::new("ROLLBACK; BEGIN".to_string()));
            }
            let parts: Vec<String> = tables
                .iter()
                .map(|t| {
                    format!(
                        "SELECT \"table\" FROM pragma_foreign_key_check({})",
                        crate::sql::quote_literal(t)
                    )
                })
                .collect();
            Ok(Arc::new(format!(
                "{} LIMIT 1; ROLLBACK; BEGIN",
                parts.join(" UNION ALL ")
            )))
        })
        .await
}

/// A test's leased slot, until its end.
#[derive(Debug)]
struct Leased {
    slot: Mutex<Option<Slot>>,
    reset_sequences: bool,
}

const EXPLAIN_COMMIT: &str = "the code under test committed on the test's connection (a raw \
    COMMIT, or statements after a raw COMMIT or ROLLBACK ended the test's transaction): SQLite \
    refused the commit, so nothing reached the database, and the statements it covered failed. \
    Code that commits needs its own database: use strategy = \"template\" (or \"truncate\")";

const EXPLAIN_ROLLBACK: &str = "the code under test ended the test's transaction with a raw \
    ROLLBACK: what it wrote before was rolled back midway. Code that ends transactions itself \
    needs its own database: use strategy = \"template\" (or \"truncate\")";

#[async_trait]
impl Ending<Sqlite> for Leased {
    async fn finish(self: Box<Self>, inner: &Inner<Sqlite>, outcome: Outcome) -> Result<()> {
        let slot = self
            .slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(slot) = slot else {
            return Ok(());
        };
        match slot.kind {
            Kind::Truncate if outcome != Outcome::Passed => {
                let kept = keep_failed(inner.server, slot, inner.ctx.name()).await?;
                inner.keep(Kept::Database(kept));
                Ok(())
            }
            Kind::Truncate => {
                clean(&slot, self.reset_sequences).await?;
                give_back(slot).await;
                Ok(())
            }
            Kind::Rollback => finish_rollback(slot).await,
        }
    }
}

/// Keeps the database of a failed Truncate test as the test left it: its pool closed (SQLite
/// folds the WAL into the file), the file moved, under the slot's lease, to a name of the copies
/// Template keeps for failed tests and marked kept for `test` (`seedbed sweep --sqlite --kept`
/// removes it), and the slot's own files removed, so its next user makes it again from the
/// image. Returns the kept database's name.
async fn keep_failed(dir: &Directory, slot: Slot, test: &str) -> Result<String> {
    super::close(&slot.pool).await;
    let kept = super::template::unique_name();
    let from = dir.file(&slot.name)?;
    let to = dir.file(&kept)?;
    std::fs::rename(&from, &to).map_err(Error::io("keeping the failed test's database", &from))?;
    // A log the close could not fold into the file (a connection the test kept) goes with it:
    // SQLite finds a database's log by its name.
    let wal = |path: &std::path::Path| {
        let mut name = path.as_os_str().to_owned();
        name.push("-wal");
        std::path::PathBuf::from(name)
    };
    if wal(&from).exists() {
        std::fs::rename(wal(&from), wal(&to))
            .map_err(Error::io("keeping the failed test's log", wal(&from)))?;
    }
    let marked = admin::write_marker(
        dir,
        &kept,
        &Marker::new("kept")
            .with("test", test)
            .with("from", &slot.name),
    );
    let removed = admin::drop_database(dir, &slot.name);
    let _ = std::fs::remove_file(&slot.inuse);
    slot.lease.release();
    marked?;
    removed?;
    Ok(kept)
}

async fn finish_rollback(slot: Slot) -> Result<()> {
    let mut conn = match tokio::time::timeout(Duration::from_secs(2), slot.pool.acquire()).await {
        Ok(Ok(conn)) => conn,
        _ => {
            // The test kept the connection (and its transaction) beyond its end. Its commits stay
            // refused, and the lease is held until the pool has closed (when the test lets the
            // connection go, its transaction rolls back), so no other test gets the slot
            // meanwhile.
            super::super::engine::spawn_detached(async move {
                slot.pool.close().await;
                drop(slot);
            });
            return Err(isolation(Violation::HeldAtEnd.explain()));
        }
    };
    slot.hooks.running.store(false, Ordering::SeqCst);
    let violation = if slot.hooks.committed.load(Ordering::SeqCst) {
        Some(EXPLAIN_COMMIT)
    } else if slot.hooks.rolled_back.load(Ordering::SeqCst) {
        Some(EXPLAIN_ROLLBACK)
    } else if slot.hooks.connections.load(Ordering::SeqCst) > 1 {
        Some(Violation::ConnectionReplaced.explain())
    } else {
        None
    };
    if let Some(message) = violation {
        let _ = Tm::rollback(&mut conn).await;
        drop(conn);
        super::close(&slot.pool).await;
        slot.lease.release();
        return Err(isolation(message));
    }
    // One statement to the connection: deferred foreign keys checked (as a commit would), the
    // test's transaction rolled back, and the next test's begun (sqlx still counts one).
    let end = rollback_end(&slot, &mut conn).await?;
    let ended = sqlx::raw_sql(sqlx::AssertSqlSafe(end.as_str().to_owned()))
        .fetch_all(&mut *conn)
        .await;
    conn.return_to_pool().await;
    drop(conn);
    let deferred: Option<String> = match &ended {
        Ok(rows) => rows.first().and_then(|r| sqlx::Row::try_get(r, 0).ok()),
        Err(_) => None,
    };
    if ended.is_ok() && slot.hooks.connections.load(Ordering::SeqCst) == 1 {
        give_back(slot).await;
    } else {
        super::close(&slot.pool).await;
        slot.lease.release();
    }
    ended.map_err(Error::db("rolling back the test's transaction"))?;
    if let Some(table) = deferred {
        return Err(Error::Config(format!(
            "a deferred foreign key of table {table} fails at the end of the test (it would fail \
             at commit)"
        )));
    }
    Ok(())
}

fn isolation(message: &str) -> Error {
    Error::Isolation {
        strategy: Strategy::Rollback,
        message: message.into(),
    }
}

/// The slot goes back to the process's idle list, empty (its `.inuse` file stays while the
/// process holds it). A process that runs one test closes it instead, so SQLite folds the WAL
/// into the file and the next process opens it without recovering a log, and leaves it unmarked:
/// the next process need not empty it again.
async fn give_back(slot: Slot) {
    if crate::util::env::one_test_per_process() {
        super::close(&slot.pool).await;
        let _ = std::fs::remove_file(&slot.inuse);
        return;
    }
    idle()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(slot);
}
