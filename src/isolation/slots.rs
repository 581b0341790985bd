//! Truncate: tests run on a migrated database and really commit; after each test (and before, when
//! the database may hold what an earlier test left) the cleaner empties the tables that have rows
//! and restores the lookup rows migrations inserted. See [`crate::backend::postgres::clean`].
//!
//! Two tests cannot share a database at once, so each concurrently running test gets its own
//! copy: a **slot**, cloned once from the migrated base database (`<base>_1`, `<base>_2`, …) and
//! reused by later tests. A slot is held through a **lease**, a session advisory lock taken inside
//! the slot, so slots are shared safely between threads, processes (`cargo nextest`) and hosts,
//! and a process that dies frees its slots. The number of slots is bounded
//! (`SEEDBED_TRUNCATE_DATABASES`, default: the number of CPUs, at least 2); a test that finds them
//! all busy waits for one. The cost: one clone per slot, paid once per server and migrations
//! checksum (about 15–40 ms each), and the disk space of those copies.
//!
//! - A process that runs many tests (`cargo test`) holds each slot it takes on a connection of its
//!   own, and keeps it for its next tests.
//! - A process that runs one test (`cargo nextest`) takes the lease on the test's own first
//!   connection, so it opens no other: it goes straight to the slot numbered after nextest's slot
//!   for the test (`NEXTEST_TEST_GLOBAL_SLOT`), which no other test of the run holds, and looks
//!   for another only if that one is taken or missing. The same statement that takes the lease
//!   reads whether the slot's last test left it emptied (a mark the cleaner writes), so a slot is
//!   emptied before its test only when it may hold rows.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection};

use super::databases;
use super::engine;
use super::registry;
use crate::backend::postgres::admin;
use crate::backend::postgres::clean;
use crate::backend::postgres::coord::{self, DbLock, LockMode};
use crate::backend::postgres::marker::{self, Marker};
use crate::backend::postgres::server::Server;
use crate::error::{Error, Result};

/// The marker kind of a Truncate slot.
pub const SLOT_KIND: &str = "truncate-slot";

/// The marker kind of a Truncate database kept for a failed test.
pub const KEPT_KIND: &str = "truncate-kept";

/// How long a test waits for a free slot before failing.
const SLOT_WAIT: Duration = Duration::from_secs(600);

/// One database a test can have to itself.
#[derive(Debug)]
pub(crate) struct Slot {
    /// The database's name.
    pub(crate) database: String,
    /// The connection holding the lease, kept for the process's later tests (on the engine
    /// runtime); `None` when the test's own connection holds it (a process that runs one test).
    lease: Option<tokio::sync::Mutex<Option<PgConnection>>>,
    in_use: AtomicBool,
    /// Emptied by this process after its last test (else it may hold what a test left).
    clean: AtomicBool,
    /// How to empty it, read on first use.
    plan: tokio::sync::OnceCell<clean::CleaningPlan>,
    /// Connection budget for the lease's connection.
    _budget: Option<super::budget::Reservation>,
}

/// A slot lent to one test; returned to the process's set on drop.
#[derive(Debug)]
pub(crate) struct Lease {
    pub(crate) slot: Arc<Slot>,
}

impl Lease {
    /// Whether the slot may hold rows of an earlier test, so it must be emptied before this one.
    pub(crate) fn needs_clean(&self) -> bool {
        !self.slot.clean.load(Ordering::SeqCst)
    }

    /// The test starts writing: until it is emptied again, the slot is not known empty (a test
    /// that never finishes leaves it to be emptied before the next).
    pub(crate) fn begin_test(&self) {
        self.slot.clean.store(false, Ordering::SeqCst);
    }

    /// Whether the test's own connection holds the lease (so its sessions must not be reset).
    pub(crate) fn held_by_the_test(&self) -> bool {
        self.slot.lease.is_none()
    }

    /// The query that reads which tables the test wrote, when the slot's plan is known and its
    /// tables note their writes (see [`clean::prepare_tracked`]).
    pub(crate) fn written_query(&self) -> Option<String> {
        self.slot.plan.get().and_then(|p| p.written_query())
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.slot.in_use.store(false, Ordering::SeqCst);
    }
}

fn held() -> &'static Mutex<HashMap<String, Vec<Arc<Slot>>>> {
    static HELD: OnceLock<Mutex<HashMap<String, Vec<Arc<Slot>>>>> = OnceLock::new();
    HELD.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The most slots per base database.
pub(crate) fn max_slots() -> Result<usize> {
    crate::util::env::count("SEEDBED_TRUNCATE_DATABASES", 1, engine::cpus().max(2))
}

/// The statement that takes a slot's lease (key `$1`) on the connection it runs on and, when it
/// gets it, takes away the mark its last test's cleaner left (`mark`: the database has the mark's
/// table), in one round trip. It returns whether the lease was taken, whether the slot was marked
/// empty, and the database's marker.
fn claim_statement(key: &str, mark: bool) -> String {
    // `key` is the lock's key expression, over a literal name: nothing of the user's reaches
    // this text.
    // Marked emptied, and nothing written since (a session the last test left behind could
    // have written after the mark).
    let emptied = if mark {
        "EXISTS (SELECT 1 FROM d) AND NOT EXISTS (SELECT 1 FROM seedbed.dirty)"
    } else {
        "false"
    };
    let taken = if mark {
        ", d AS (DELETE FROM seedbed.clean_mark WHERE (SELECT got FROM l) RETURNING 1)"
    } else {
        ""
    };
    // A slot says it is seedbed's and ready by a table in it; a database the user named by its
    // marker (whether seedbed made it).
    let ours = if mark {
        format!("NULL::text, {}", databases::ready_expression())
    } else {
        "(SELECT shobj_description(oid, 'pg_database') FROM pg_database \
          WHERE datname = current_database()), false"
            .to_string()
    };
    // A database closed to new connections is being kept for a failed test: a session that
    // connected just before it was closed must not take its lease once its keeper lets go.
    format!(
        "WITH l AS MATERIALIZED (SELECT CASE WHEN (SELECT datallowconn FROM pg_database \
                                  WHERE datname = current_database()) \
                             THEN pg_try_advisory_lock({key}) ELSE false END AS got){taken} \
         SELECT (SELECT got FROM l), {emptied}, {ours}"
    )
}

/// What [`claim_statement`] found.
#[derive(Debug, Clone)]
pub(crate) struct Claimed {
    /// The lease was taken.
    pub(crate) got: bool,
    /// The slot's last test left it emptied.
    pub(crate) emptied: bool,
    /// The marker of a database the user named.
    pub(crate) marker: Option<Marker>,
    /// A slot is a ready database of seedbed's (see [`databases::READY_TABLE`]).
    pub(crate) ready: bool,
}

/// The statement that takes the lease of a slot (or a database the user named, with
/// `prepared = false`), to run in the same round trip as the test's session settings: see
/// [`claim_statement`]. The result is read by [`read_claim`].
pub(crate) fn claim_sql(prepared: bool) -> String {
    claim_statement(&coord::key_of("lease"), prepared)
}

/// Reads the row [`claim_sql`] returned.
pub(crate) fn read_claim(row: &sqlx::postgres::PgRow) -> Result<Claimed> {
    use sqlx::Row;
    let got: bool = row
        .try_get(0)
        .map_err(Error::db("taking a Truncate database's lease"))?;
    let emptied: bool = row
        .try_get(1)
        .map_err(Error::db("taking a Truncate database's lease"))?;
    let comment: Option<String> = row
        .try_get(2)
        .map_err(Error::db("taking a Truncate database's lease"))?;
    let ready: bool = row
        .try_get(3)
        .map_err(Error::db("taking a Truncate database's lease"))?;
    Ok(Claimed {
        got,
        emptied,
        marker: comment.as_deref().and_then(Marker::parse),
        ready,
    })
}

/// Whether `claimed` is a slot: a ready database of seedbed's, named as the slots of its base
/// are (only seedbed makes those names, by cloning the base).
pub(crate) fn is_slot_of(claimed: &Claimed, _base: &str) -> bool {
    claimed.ready
}

/// Records a slot whose lease the test's own connection took (a process that runs one test), with
/// its cleaning plan when it was read with the lease.
pub(crate) fn held_by_test(
    database: &str,
    base: &str,
    emptied: bool,
    plan: Option<clean::CleaningPlan>,
) -> Lease {
    let slot = Arc::new(Slot {
        database: database.to_string(),
        lease: None,
        in_use: AtomicBool::new(true),
        clean: AtomicBool::new(emptied),
        plan: tokio::sync::OnceCell::new_with(plan),
        _budget: None,
    });
    held()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(base.to_string())
        .or_default()
        .push(Arc::clone(&slot));
    Lease { slot }
}

/// The slot a process that runs one test tries first: the one numbered after nextest's slot for
/// the test, which no other test of the run holds (`None` outside nextest).
pub(crate) fn preferred_slot(base: &str) -> Option<String> {
    let slot = crate::util::env::nextest_slot()?;
    let max = max_slots().ok()?;
    Some(slot_name(base, slot % max + 1))
}

/// The slots of `base` that exist, are not this process's and whose lease no session holds now
/// (seen in `pg_locks`, without connecting to them), in order, and how many exist.
pub(crate) async fn candidates(
    server: &'static Server,
    base: &str,
) -> Result<(Vec<String>, usize)> {
    let ours = held_names(base);
    let base_name = base.to_string();
    let (existing, leased) = engine::control()
        .with(server, move |conn| {
            Box::pin(async move {
                let existing = list_slots(conn, &base_name).await?;
                let leased = leased_slots(conn, &base_name).await?;
                Ok((existing, leased))
            })
        })
        .await?;
    let count = existing.len();
    Ok((
        existing
            .into_iter()
            .filter(|n| !ours.contains(n) && !leased.contains(n))
            .collect(),
        count,
    ))
}

/// The databases named like the slots of `base` whose lease a session holds now.
async fn leased_slots(conn: &mut PgConnection, base: &str) -> Result<Vec<String>> {
    let sql = format!(
        "SELECT d.datname::text FROM pg_locks l JOIN pg_database d ON d.oid = l.database \
         WHERE l.granted AND {} AND starts_with(d.datname, $1)",
        coord::pg_locks_match("l", &coord::key_of("lease"))
    );
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(format!("{base}_"))
        .fetch_all(conn)
        .await
        .map_err(Error::db(format!(
            "looking for the free Truncate databases of {base}"
        )))
}

/// Makes a new slot of `base` if fewer than the most exist (under a database-level lock), and
/// returns its name; `None` when all exist already (the caller waits for one to come free). The
/// slot is `preferred` (see [`preferred_slot`]) if that one is missing, else the first number
/// free.
pub(crate) async fn create_slot(
    server: &'static Server,
    base: &str,
    preferred: Option<String>,
) -> Result<Option<String>> {
    let max = max_slots()?;
    let base = base.to_string();
    engine::run(async move {
        let mut guard = DbLock::acquire(
            server,
            &format!("truncate-slots:{base}"),
            LockMode::Exclusive,
            Duration::from_secs(120),
        )
        .await?;
        let result = async {
            let conn = guard.connection();
            // A slot a dead process left closed is one the set can use again.
            if let Some(name) = reopen_stale(conn, &base).await?.into_iter().next() {
                return Ok(Some(name));
            }
            let existing = list_slots(conn, &base).await?;
            // Only the slots numbered up to the most count: those a larger
            // SEEDBED_TRUNCATE_DATABASES made earlier are still used, but do not keep the ones
            // this setting prefers from being made.
            let in_range: Vec<String> = (1..=max)
                .map(|n| slot_name(&base, n))
                .filter(|n| existing.contains(n))
                .collect();
            if in_range.len() >= max {
                return Ok(None);
            }
            let name = match preferred.filter(|p| !existing.contains(p)) {
                Some(name) => name,
                None => {
                    let n = (1..=max)
                        .find(|i| !existing.contains(&slot_name(&base, *i)))
                        .unwrap_or(max);
                    slot_name(&base, n)
                }
            };
            if admin::database_exists(conn, &name).await? {
                return Err(not_a_slot(&name, &base));
            }
            admin::create_database(
                conn,
                &name,
                Some(&base),
                admin::clone_method(server, &base)?,
            )
            .await?;
            marker::write(
                conn,
                &name,
                &Marker::new(SLOT_KIND).with("base", base.as_str()),
            )
            .await?;
            Ok(Some(name))
        }
        .await;
        guard.release().await?;
        result
    })
    .await
}

/// The error for a database named like a slot that is not one.
pub(crate) fn not_a_slot(name: &str, base: &str) -> Error {
    Error::ForeignDatabase {
        database: name.to_string(),
        message: format!(
            "it exists on the server but is not a Truncate database of {base} made by seedbed; \
             seedbed will not touch it. Drop or rename it"
        ),
    }
}

/// Waits a moment between rounds of looking for a free slot, saying after 10 s why; fails after
/// ten minutes.
pub(crate) struct SlotWait {
    started: Instant,
    delay: Duration,
    told: bool,
}

impl SlotWait {
    pub(crate) fn new() -> Self {
        Self {
            started: Instant::now(),
            delay: Duration::from_millis(5),
            told: false,
        }
    }

    pub(crate) async fn wait(&mut self, what: &str) -> Result<()> {
        if !self.told && self.started.elapsed() > Duration::from_secs(10) {
            tracing::warn!(
                "waiting for {what}: all are in use by other tests (raise \
                 SEEDBED_TRUNCATE_DATABASES to run more at once)"
            );
            self.told = true;
        }
        if self.started.elapsed() > SLOT_WAIT {
            return Err(Error::Timeout {
                what: format!("{what} (all in use)"),
                waited: self.started.elapsed(),
            });
        }
        tokio::time::sleep(self.delay).await;
        self.delay = (self.delay * 2).min(Duration::from_millis(100));
        Ok(())
    }
}

/// Lends a slot of `base` to a test in a process that runs many: one this process holds and no
/// test of it uses, else one no process holds (its lease taken on a connection of its own, kept
/// for the process's next tests), else a new one cloned from `base` (which `base_ready` makes
/// ready first; it is only awaited then).
pub(crate) async fn lease(
    server: &'static Server,
    base: &str,
    base_ready: impl Future<Output = Result<String>>,
) -> Result<Lease> {
    let mut wait = SlotWait::new();
    let mut base_ready = Some(base_ready);
    loop {
        if let Some(slot) = take_held(base) {
            return Ok(Lease { slot });
        }
        let (names, _) = candidates(server, base).await?;
        for name in names {
            if let Some(slot) = try_slot(server, &name, base).await? {
                return Ok(keep(base, slot));
            }
        }
        if let Some(ready) = base_ready.take() {
            ready.await?;
        }
        if let Some(name) = create_slot(server, base, None).await?
            && let Some(slot) = try_slot(server, &name, base).await?
        {
            return Ok(keep(base, slot));
        }
        wait.wait(&format!("a Truncate database of {base}")).await?;
    }
}

fn keep(base: &str, slot: Slot) -> Lease {
    let slot = Arc::new(slot);
    held()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(base.to_string())
        .or_default()
        .push(Arc::clone(&slot));
    Lease { slot }
}

/// Lends a database the user named (not a slot seedbed made), in a process that runs many tests:
/// its lease is taken on a connection of its own, and tests wait for each other on it. It is
/// prepared for the cleaner on first use.
pub(crate) async fn lease_existing(server: &'static Server, database: &str) -> Result<Lease> {
    let mut wait = SlotWait::new();
    loop {
        if let Some(slot) = take_held(database) {
            return Ok(Lease { slot });
        }
        if held_names(database).is_empty()
            && let Some(slot) = try_slot(server, database, database).await?
        {
            return Ok(keep(database, slot));
        }
        wait.wait(&format!("database {database}")).await?;
    }
}

/// Takes the slot of `lease` out of use for good (its failed test's state is kept, renamed out
/// of the set): this process forgets it and closes the connection that held its lease (on the
/// engine runtime it lives on), so nothing of the process stays connected to it.
pub(crate) async fn give_up(lease: Lease) {
    let slot = Arc::clone(&lease.slot);
    // Forgotten while still in use, so no other test of the process takes it meanwhile.
    for slots in held()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .values_mut()
    {
        slots.retain(|s| !Arc::ptr_eq(s, &slot));
    }
    drop(lease);
    if let Some(mutex) = &slot.lease {
        let conn = mutex.lock().await.take();
        if let Some(conn) = conn {
            let _ = engine::run(async move {
                let _ = conn.close().await;
                Ok(())
            })
            .await;
        }
    }
}

/// Closes the slot `slot` of `base`, whose lease this process holds, to new connections: a
/// failed test's state is about to be kept, and no other process may claim it once the lease
/// goes. Its marker says since when, so a slot whose keeper died before renaming it is opened
/// again (see [`reopen_stale`]).
pub(crate) async fn close_for_keeping(
    server: &'static Server,
    slot: &str,
    base: &str,
) -> Result<()> {
    let (slot, base) = (slot.to_string(), base.to_string());
    engine::control()
        .with(server, move |conn| {
            Box::pin(async move {
                let mark = Marker::new(SLOT_KIND)
                    .with("base", base.as_str())
                    .with("closed_at", unix_seconds().to_string().as_str());
                marker::write(conn, &slot, &mark).await?;
                registry::allow_connections(conn, &slot, false).await
            })
        })
        .await
}

/// How long a slot may stay closed for keeping before it is taken for abandoned.
const CLOSED_FOR: u64 = 60;

fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Opens again the slots of `base` closed for keeping a failed test's state more than a minute
/// ago and never renamed (their keeper died between the two): they hold that test's rows, and
/// are emptied before their next test. Returns their names.
async fn reopen_stale(conn: &mut PgConnection, base: &str) -> Result<Vec<String>> {
    let mut reopened = Vec::new();
    for (name, comment, open) in named_like_slots(conn, base).await? {
        if open {
            continue;
        }
        let Some(mark) = comment.as_deref().and_then(Marker::parse) else {
            continue;
        };
        let stale = mark.kind == SLOT_KIND
            && mark.get("base") == Some(base)
            && mark
                .get("closed_at")
                .and_then(|t| t.parse::<u64>().ok())
                .is_some_and(|t| unix_seconds().saturating_sub(t) > CLOSED_FOR);
        if stale {
            marker::write(conn, &name, &Marker::new(SLOT_KIND).with("base", base)).await?;
            registry::allow_connections(conn, &name, true).await?;
            tracing::info!("opened again {name}, closed by a process that died keeping it");
            reopened.push(name);
        }
    }
    Ok(reopened)
}

/// Keeps the database `slot`, which a failed test left as it was and [`close_for_keeping`]
/// closed: renamed to a new test database name (so its set makes another slot when it needs
/// one), recorded as `kept` for `test` in the registry, marked and open to connections again,
/// in one transaction. The sessions this process just closed may take a moment to leave the
/// server: they are waited for, up to 2 s. If it cannot be kept, the slot is opened again (its
/// next test empties it). Returns the new name.
pub(crate) async fn keep_failed(
    server: &'static Server,
    slot: &str,
    base: &str,
    test: &str,
) -> Result<String> {
    let (slot, base, test) = (slot.to_string(), base.to_string(), test.to_string());
    engine::control()
        .with(server, move |conn| {
            Box::pin(async move {
                let kept = async {
                    registry::ensure(conn).await?;
                    let name = registry::new_clone_name(conn).await?;
                    let mark = Marker::new(KEPT_KIND)
                        .with("state", "kept")
                        .with("base", base.as_str())
                        .with("test", test.as_str());
                    let mut attempt = 0;
                    loop {
                        attempt += 1;
                        let kept = registry::record_kept(
                            conn, &slot, &name, KEPT_KIND, &base, &test, &mark,
                        )
                        .await;
                        match kept {
                            Err(e) if attempt < 40 && admin::is_in_use(&e) => {
                                tokio::time::sleep(Duration::from_millis(50)).await;
                            }
                            other => return other.map(|()| name),
                        }
                    }
                }
                .await;
                if kept.is_err() {
                    let _ = marker::write(
                        conn,
                        &slot,
                        &Marker::new(SLOT_KIND).with("base", base.as_str()),
                    )
                    .await;
                    let _ = registry::allow_connections(conn, &slot, true).await;
                }
                kept
            })
        })
        .await
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

/// [`clean()`], given the tables the test wrote when they were just read (see
/// [`Lease::written_query`]).
pub(crate) async fn clean_after(
    lease: &Lease,
    conn: &mut PgConnection,
    reset_sequences: bool,
    prepare: bool,
    mark: bool,
    written: Option<Vec<i64>>,
) -> Result<usize> {
    let (Some(written), Some(plan)) = (written, lease.slot.plan.get()) else {
        return clean(lease, conn, reset_sequences, prepare, mark).await;
    };
    lease.slot.clean.store(false, Ordering::SeqCst);
    let n = clean::clean_written(conn, plan, reset_sequences, mark, written).await?;
    lease.slot.clean.store(true, Ordering::SeqCst);
    Ok(n)
}

/// Empties the leased slot through `conn`, a connection to it (see [`clean::clean`]); with
/// `prepare`, a database the user named is prepared for the cleaner first if it is not. With
/// `mark`, the slot is marked emptied for the next process that takes it (the lease goes with
/// this process). Returns how many tables had rows.
pub(crate) async fn clean(
    lease: &Lease,
    conn: &mut PgConnection,
    reset_sequences: bool,
    prepare: bool,
    mark: bool,
) -> Result<usize> {
    lease.slot.clean.store(false, Ordering::SeqCst);
    let plan = lease
        .slot
        .plan
        .get_or_try_init(|| async {
            if prepare && !clean::is_prepared(&mut *conn).await? {
                let schema = clean::read_schema(&mut *conn).await?;
                clean::prepare_tracked(&mut *conn, &schema).await?;
            }
            clean::CleaningPlan::load(&mut *conn).await
        })
        .await?;
    let n = if mark {
        clean::clean_and_mark(conn, plan, reset_sequences).await?
    } else {
        clean::clean(conn, plan, reset_sequences).await?
    };
    lease.slot.clean.store(true, Ordering::SeqCst);
    Ok(n)
}

fn slot_name(base: &str, n: usize) -> String {
    format!("{base}_{n}")
}

/// The slots of `base` on the server, by their markers, in order.
async fn list_slots(conn: &mut PgConnection, base: &str) -> Result<Vec<String>> {
    Ok(named_like_slots(conn, base)
        .await?
        .into_iter()
        .filter(|(_, comment, _)| {
            comment
                .as_deref()
                .and_then(Marker::parse)
                .is_some_and(|m| m.kind == SLOT_KIND && m.get("base") == Some(base))
        })
        .map(|(name, _, _)| name)
        .collect())
}

/// The databases named like the slots of `base`, in order: name, comment (the marker) and
/// whether they accept connections.
async fn named_like_slots(
    conn: &mut PgConnection,
    base: &str,
) -> Result<Vec<(String, Option<String>, bool)>> {
    sqlx::query_as(
        "SELECT datname::text, shobj_description(oid, 'pg_database'), datallowconn \
         FROM pg_database WHERE starts_with(datname, $1) ORDER BY datname",
    )
    .bind(format!("{base}_"))
    .fetch_all(conn)
    .await
    .map_err(Error::db(format!(
        "listing the Truncate databases of {base}"
    )))
}

/// Connects to a slot (or, with `base == name`, a database the user named) and takes its lease
/// on that connection, kept for the process's later tests, if no one holds it.
async fn try_slot(server: &'static Server, name: &str, base: &str) -> Result<Option<Slot>> {
    let (name, base) = (name.to_string(), base.to_string());
    engine::run(async move {
        let budget = super::budget::reserve(&super::budget::postgres(server), 1).await?;
        let mut conn = match server.open(&server.database_options(&name)).await {
            Ok(conn) => conn,
            // Renamed away since it was listed, or being kept for a failed test.
            Err(e)
                if name != base
                    && (databases::is_missing_database(&e)
                        || databases::is_closed_database(&e)) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let slot = base != name;
        let row = sqlx::query(sqlx::AssertSqlSafe(claim_sql(slot)))
            .fetch_one(&mut conn)
            .await
            .map_err(Error::db(format!("taking the lease of {name}")))?;
        let claimed = read_claim(&row)?;
        if slot && !is_slot_of(&claimed, &base) {
            let _ = conn.close().await;
            return Err(not_a_slot(&name, &base));
        }
        if !claimed.got {
            let _ = conn.close().await;
            return Ok(None);
        }
        // Cleaning waits at most this long for locks a test left behind (an open transaction on
        // a connection it kept), then fails and is retried before the next use.
        sqlx::raw_sql("SET lock_timeout = '30s'")
            .execute(&mut conn)
            .await
            .map_err(Error::db(format!("setting up Truncate database {name}")))?;
        // The connection holds the lease for as long as the process uses the database.
        server.hold_session(&mut conn).await?;
        Ok(Some(Slot {
            database: name,
            lease: Some(tokio::sync::Mutex::new(Some(conn))),
            in_use: AtomicBool::new(true),
            // Emptied before its first test here unless its last test's cleaner marked it.
            clean: AtomicBool::new(claimed.emptied),
            plan: tokio::sync::OnceCell::new(),
            _budget: Some(budget),
        }))
    })
    .await
}
