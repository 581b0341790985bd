//! Truncate: tests run on a migrated database and really commit; after each test (and before, so
//! a crashed test leaves nothing for the next) the cleaner empties the tables that have rows and
//! restores the lookup rows migrations inserted. See [`cleaner`](super::cleaner).
//!
//! Two tests cannot share a database at once, so each concurrently running test gets its own
//! copy: a **slot**, cloned once from the migrated base database (`<base>_1`, `<base>_2`, …) and
//! reused by later tests. A process holds a slot through a session advisory lock on a connection
//! of its own (its *lease*), so slots are shared safely between threads, between processes
//! (`cargo nextest`) and between hosts, and a process that dies frees its slots. The number of
//! slots is bounded (`SEEDBED_TRUNCATE_DATABASES`, default: the number of CPUs, at least 2); a
//! test that finds them all busy waits for one. The cost: one clone per slot, paid once per server
//! and migrations checksum (about 15–40 ms each), and the disk space of those copies.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection};

use super::cleaner;
use super::engine;
use super::lock::{self, DbLock, LockMode};
use super::marker::{self, Marker};
use super::migrated;
use crate::error::{Error, Result};
use crate::server::Server;

/// The marker kind of a Truncate slot.
pub const SLOT_KIND: &str = "truncate-slot";

/// How long a test waits for a free slot before failing.
const SLOT_WAIT: Duration = Duration::from_secs(600);

/// One database a test can have to itself.
#[derive(Debug)]
pub(crate) struct Slot {
    /// The database's name.
    pub(crate) database: String,
    /// The lease: a connection to the slot holding its advisory lock (on the engine runtime).
    conn: tokio::sync::Mutex<PgConnection>,
    in_use: AtomicBool,
    needs_clean: AtomicBool,
    /// How to empty it, read on first use.
    plan: tokio::sync::OnceCell<cleaner::CleaningPlan>,
    /// Connection budget for the lease's connection.
    _budget: Option<super::budget::Reservation>,
}

/// A slot lent to one test; returned to the process's set on drop.
#[derive(Debug)]
pub(crate) struct Lease {
    pub(crate) slot: Arc<Slot>,
    cleaned: bool,
}

impl Drop for Lease {
    fn drop(&mut self) {
        if !self.cleaned {
            self.slot.needs_clean.store(true, Ordering::SeqCst);
        }
        self.slot.in_use.store(false, Ordering::SeqCst);
    }
}

fn held() -> &'static Mutex<HashMap<String, Vec<Arc<Slot>>>> {
    static HELD: OnceLock<Mutex<HashMap<String, Vec<Arc<Slot>>>>> = OnceLock::new();
    HELD.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The most slots per base database.
pub(crate) fn max_slots() -> Result<usize> {
    engine::env_count("SEEDBED_TRUNCATE_DATABASES", 1, engine::cpus().max(2))
}

/// Lends a slot of `base` to a test, clean.
pub(crate) async fn lease(
    server: &'static Server,
    base: &str,
    reset_sequences: bool,
) -> Result<Lease> {
    let max = max_slots()?;
    let started = Instant::now();
    let mut told = false;
    let mut delay = Duration::from_millis(5);
    loop {
        if let Some(slot) = take_held(base) {
            return ready(slot, reset_sequences).await;
        }
        let ours: Vec<String> = held_names(base);
        let base_name = base.to_string();
        let found =
            engine::run(async move { lease_new(server, &base_name, &ours, max).await }).await?;
        if let Some(slot) = found {
            let slot = Arc::new(slot);
            held()
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(base.to_string())
                .or_default()
                .push(Arc::clone(&slot));
            return ready(slot, reset_sequences).await;
        }
        if !told && started.elapsed() > Duration::from_secs(10) {
            eprintln!(
                "seedbed: waiting for a Truncate database of {base}: all {max} are in use by other \
                 tests (raise SEEDBED_TRUNCATE_DATABASES to run more at once)"
            );
            told = true;
        }
        if started.elapsed() > SLOT_WAIT {
            return Err(Error::Timeout {
                what: format!("a free Truncate database of {base} (all {max} in use)"),
                waited: started.elapsed(),
            });
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(100));
    }
}

/// Lends a database the user named (not a slot seedbed made): it is prepared for the cleaner on
/// first use, and tests wait for each other on it.
pub(crate) async fn lease_existing(
    server: &'static Server,
    database: &str,
    reset_sequences: bool,
) -> Result<Lease> {
    let started = Instant::now();
    let mut delay = Duration::from_millis(5);
    loop {
        if let Some(slot) = take_held(database) {
            return ready(slot, reset_sequences).await;
        }
        let name = database.to_string();
        let found = if held_names(database).is_empty() {
            engine::run(async move {
                let Some(slot) = try_slot(server, &name).await? else {
                    return Ok(None);
                };
                {
                    let mut conn = slot.conn.lock().await;
                    if !cleaner::is_prepared(&mut conn).await? {
                        let schema = cleaner::read_schema(&mut conn).await?;
                        cleaner::prepare(&mut conn, &schema).await?;
                    }
                }
                Ok(Some(slot))
            })
            .await?
        } else {
            None
        };
        if let Some(slot) = found {
            let slot = Arc::new(slot);
            held()
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(database.to_string())
                .or_default()
                .push(Arc::clone(&slot));
            return ready(slot, reset_sequences).await;
        }
        if started.elapsed() > SLOT_WAIT {
            return Err(Error::Timeout {
                what: format!("database {database}, in use by another test"),
                waited: started.elapsed(),
            });
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(100));
    }
}

fn take_held(base: &str) -> Option<Arc<Slot>> {
    let guard = held().lock().unwrap_or_else(PoisonError::into_inner);
    guard.get(base)?.iter().find_map(|slot| {
        slot.in_use
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
            .then(|| Arc::clone(slot))
    })
}

fn held_names(base: &str) -> Vec<String> {
    held()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(base)
        .map(|slots| slots.iter().map(|s| s.database.clone()).collect())
        .unwrap_or_default()
}

/// Cleans the slot before use if it may hold data (new to this process, or its last test did
/// not finish), and resets its sequences if the test asks.
async fn ready(slot: Arc<Slot>, reset_sequences: bool) -> Result<Lease> {
    let mut lease = Lease {
        slot,
        cleaned: false,
    };
    // Sequences are reset before the test too: the slot's previous test may not have asked.
    if reset_sequences || lease.slot.needs_clean.load(Ordering::SeqCst) {
        clean(&mut lease, reset_sequences).await?;
    }
    lease.cleaned = false;
    Ok(lease)
}

/// Empties the slot (on the engine runtime, through the lease connection).
pub(crate) async fn clean(lease: &mut Lease, reset_sequences: bool) -> Result<usize> {
    let slot = Arc::clone(&lease.slot);
    let n = engine::run(async move {
        let mut conn = slot.conn.lock().await;
        let plan = match slot.plan.get() {
            Some(plan) => plan,
            None => {
                let plan = cleaner::CleaningPlan::load(&mut conn).await?;
                slot.plan.get_or_init(|| async { plan }).await
            }
        };
        cleaner::clean(&mut conn, plan, reset_sequences).await
    })
    .await?;
    lease.slot.needs_clean.store(false, Ordering::SeqCst);
    lease.cleaned = true;
    Ok(n)
}

/// Finds a slot no process holds, or makes a new one if fewer than `max` exist. Runs on the
/// engine runtime.
async fn lease_new(
    server: &'static Server,
    base: &str,
    ours: &[String],
    max: usize,
) -> Result<Option<Slot>> {
    let mut control = server.connect().await?;
    let existing = list_slots(&mut control, base).await?;
    for name in existing.iter().filter(|n| !ours.contains(n)) {
        if let Some(slot) = try_slot(server, name).await? {
            let _ = control.close().await;
            return Ok(Some(slot));
        }
    }
    if existing.len() >= max {
        let _ = control.close().await;
        return Ok(None);
    }
    let _ = control.close().await;
    let mut guard = DbLock::acquire(
        server,
        &format!("truncate-slots:{base}"),
        LockMode::Exclusive,
        Duration::from_secs(120),
    )
    .await?;
    let result = async {
        let conn = guard.connection();
        let existing = list_slots(conn, base).await?;
        if existing.len() >= max {
            return Ok(None);
        }
        let n = (1..)
            .find(|i| !existing.contains(&slot_name(base, *i)))
            .unwrap_or(existing.len() + 1);
        let name = slot_name(base, n);
        migrated::create_database(
            conn,
            &name,
            Some(base),
            migrated::clone_method(server, base)?,
        )
        .await?;
        marker::write(conn, &name, &Marker::new(SLOT_KIND).with("base", base)).await?;
        try_slot(server, &name).await
    }
    .await;
    guard.release().await?;
    result
}

fn slot_name(base: &str, n: usize) -> String {
    format!("{base}_{n}")
}

async fn list_slots(conn: &mut PgConnection, base: &str) -> Result<Vec<String>> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT datname::text FROM pg_database WHERE starts_with(datname, $1) ORDER BY datname",
    )
    .bind(format!("{base}_"))
    .fetch_all(&mut *conn)
    .await
    .map_err(Error::db(format!(
        "listing the Truncate databases of {base}"
    )))?;
    let mut slots = Vec::new();
    for name in names {
        if marker::read(conn, &name)
            .await?
            .is_some_and(|m| m.kind == SLOT_KIND && m.get("base") == Some(base))
        {
            slots.push(name);
        }
    }
    Ok(slots)
}

/// Connects to a slot and takes its lease, if no one holds it.
async fn try_slot(server: &'static Server, name: &str) -> Result<Option<Slot>> {
    let budget = super::budget::reserve(server, 1).await?;
    let mut conn = PgConnection::connect_with(&server.database_options(name))
        .await
        .map_err(Error::db(format!("connecting to Truncate database {name}")))?;
    if lock::try_lock_on(&mut conn, "lease", LockMode::Exclusive).await? {
        // Cleaning waits at most this long for locks a test left behind (an open transaction on
        // a connection it kept), then fails and is retried before the next use.
        sqlx::raw_sql("SET lock_timeout = '30s'")
            .execute(&mut conn)
            .await
            .map_err(Error::db(format!("setting up Truncate database {name}")))?;
        // The connection holds the lease for as long as the process uses the database.
        server.hold_session(&mut conn).await?;
        Ok(Some(Slot {
            database: name.to_string(),
            conn: tokio::sync::Mutex::new(conn),
            in_use: AtomicBool::new(true),
            needs_clean: AtomicBool::new(true),
            plan: tokio::sync::OnceCell::new(),
            _budget: Some(budget),
        }))
    } else {
        let _ = conn.close().await;
        Ok(None)
    }
}
