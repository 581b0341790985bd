//! Rollback, Truncate and Template on MySQL: a test leases a *slot*, a copy of a migrated
//! database that no other test (thread, process or host) uses while the lease, a named lock held
//! by a connection of the leasing process, is held.
//!
//! - Truncate empties what the test wrote at its end.
//! - Rollback runs the test in one transaction and rolls it back. The transaction opens with a
//!   savepoint of seedbed's, which lives as long as the transaction: at the end it is gone if
//!   anything ended the transaction midway (DDL, `LOCK TABLES`, a raw `BEGIN`, `COMMIT` or
//!   `ROLLBACK`, a deadlock). That fails the test; the slot, which may hold what was
//!   committed, is dropped. A savepoint costs the server no write, where a probe row would.
//! - Template's slots are copies of the template (migrations and fixtures): when the test passes
//!   with the schema as the template has it, the copy is emptied back to the template's rows
//!   and recycled; when the schema changed, it is dropped.
//!
//! A process keeps the slots its finished tests gave back, their connections open, for its next
//! tests. A slot leased anew is emptied first (its last holder may have died mid-test), unless
//! its last holder, a process that ran one test, noted it clean as it gave it up.
//! A failed test's Truncate or Template database is kept (its marker says so) and no test takes
//! it until `seedbed sweep --kept` removes it.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use async_trait::async_trait;
use sqlx::{MySql, MySqlConnection, MySqlPool};
use sqlx_core::transaction::TransactionManager;

use super::super::engine;
use super::super::engine::KeyedOnce;
use super::super::strategies::Ending;
use super::super::testdb::{Inner, Outcome};
use super::budget::Holder;
use super::image::{self, fingerprint};
use super::{
    Acquired, Freshness, Isolation, PoolSettings, acquire_waiting, close, restore_settings,
    run_fixtures,
};
use crate::backend::mysql::{MySqlPlan, MySqlServer, admin, coord};
use crate::backend::{Clean, Marker};
use crate::error::{Error, Result};
use crate::sql::quote_mysql_ident as q;
use crate::strategy::Strategy;

type Tm = <MySql as sqlx::Database>::TransactionManager;

/// The savepoint Rollback's transaction opens with: gone at the end if the transaction ended
/// midway.
const PROBE: &str = "seedbed__tx";

/// The server's error when a savepoint does not exist.
const NO_SAVEPOINT: u16 = 1305;

/// Which strategy holds the slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Rollback,
    Truncate,
    Template,
}

impl Kind {
    fn strategy(self) -> Strategy {
        match self {
            Kind::Rollback => Strategy::Rollback,
            Kind::Truncate => Strategy::Truncate,
            Kind::Template => Strategy::Template,
        }
    }
}

/// A leased slot with its pool.
#[derive(Debug)]
struct Slot {
    name: String,
    image: String,
    settings: PoolSettings,
    kind: Kind,
    /// Holds the lease (a named lock) while the slot is this process's, and the pool's budget.
    holder: Holder,
    pool: MySqlPool,
    budget: Arc<super::super::budget::PoolBudget>,
    fresh: Arc<Freshness>,
    /// Connections the pool opened (Rollback: one, or the test's was lost).
    connections: Arc<AtomicU32>,
    /// Rollback: the connection is in a transaction begun for the next test.
    begun: bool,
    /// The DDL statements each of the pool's connections (by id) had run at the last test's end.
    ddl_seen: std::collections::HashMap<u64, u64>,
    /// Puts back the session settings a test may have changed (see [`restore_settings`]).
    restore: Arc<str>,
    /// The holder's default database is the slot (the cleaner's statements name tables alone).
    holder_in_slot: std::sync::atomic::AtomicBool,
}

/// Drops what [`idle`] keeps.
pub(super) fn forget_idle() {
    drop(std::mem::take(
        &mut *idle().lock().unwrap_or_else(PoisonError::into_inner),
    ));
}

/// Gives up the slots [`idle`] keeps; how many budget slots that freed.
pub(super) async fn evict_idle() -> usize {
    let slots = std::mem::take(&mut *idle().lock().unwrap_or_else(PoisonError::into_inner));
    let mut freed = 0;
    for slot in slots {
        freed += give_back(slot).await;
    }
    freed
}

fn idle() -> &'static Mutex<Vec<Slot>> {
    static IDLE: OnceLock<Mutex<Vec<Slot>>> = OnceLock::new();
    IDLE.get_or_init(|| Mutex::new(Vec::new()))
}

/// The cleaner's plan, read once per image, on the holder's connection (a connection of the
/// pool, still on its way back from the test, would make the pool open another).
async fn plan(slot: &Slot) -> Result<Arc<MySqlPlan>> {
    static PLANS: OnceLock<KeyedOnce<Arc<MySqlPlan>>> = OnceLock::new();
    PLANS
        .get_or_init(KeyedOnce::new)
        .get_or_try_init(&slot.image, async {
            let mut holder = slot.holder.lock().await?;
            let plan = crate::backend::mysql::plan_of(&mut holder, use_slot(slot)).await?;
            slot.holder_in_slot.store(true, Ordering::SeqCst);
            Ok(Arc::new(plan))
        })
        .await
}

/// The slot, for a statement on the holder's connection to make its default database when it is
/// not yet (the cleaner's statements name tables alone).
fn use_slot(slot: &Slot) -> Option<&str> {
    (!slot.holder_in_slot.load(Ordering::SeqCst)).then_some(slot.name.as_str())
}

/// The image's schema fingerprint, read once per image: from its marker (written as it was
/// built), else from the catalog.
async fn image_fingerprint(conn: &mut MySqlConnection, image: &str) -> Result<String> {
    static PRINTS: OnceLock<KeyedOnce<String>> = OnceLock::new();
    PRINTS
        .get_or_init(KeyedOnce::new)
        .get_or_try_init(image, async {
            let marked = admin::read_marker(&mut *conn, image)
                .await?
                .and_then(|m| m.get("schema").map(str::to_string));
            match marked {
                Some(print) => Ok(print),
                None => fingerprint(conn, image).await,
            }
        })
        .await
}

pub(super) async fn acquire(
    iso: &Isolation,
    server: &'static MySqlServer,
    kind: Kind,
) -> Result<Acquired> {
    let image_kind = match kind {
        Kind::Template => image::Kind::Template,
        Kind::Rollback | Kind::Truncate => image::Kind::Slots,
    };
    let image = image::ready(iso, server, image_kind).await?;
    let settings = PoolSettings::of(iso);
    let kept = {
        let mut idle = idle().lock().unwrap_or_else(PoisonError::into_inner);
        let found = idle
            .iter()
            .position(|s| s.image == image && s.kind == kind && s.settings == settings);
        found.map(|i| idle.swap_remove(i))
    };
    let mut slot = match kept {
        Some(slot) => {
            // A process that runs one test noted the slot clean as its test ended; it runs
            // another on it: the note goes, or it would outlive this test if it died.
            if crate::util::env::one_test_per_process() {
                let taken = match slot.holder.lock().await {
                    Ok(mut holder) => admin::take_clean(&mut holder, &slot.name).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = taken {
                    give_back(slot).await;
                    return Err(e);
                }
            }
            slot
        }
        None => engine::run(lease(server, image.clone(), kind, settings)).await?,
    };
    slot.fresh.test_started();
    let reset = kind != Kind::Rollback && iso.truncate.reset_sequences;
    let ready = match kind {
        // A slot given back by the last Rollback test is in a transaction begun for this one.
        Kind::Rollback => slot.begun && iso.fixtures.is_empty(),
        Kind::Truncate => iso.fixtures.is_empty() && !reset,
        // The fixtures are in the template.
        Kind::Template => !reset,
    };
    if !ready {
        let prepared = prepare(&mut slot, iso, kind, reset).await;
        if let Err(e) = prepared {
            give_back(slot).await;
            return Err(e);
        }
    }
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
            own_connections: iso.own_connections,
        }),
    })
}

/// Readies a slot for the test: Rollback's transaction begun, counters reset, fixtures run.
async fn prepare(slot: &mut Slot, iso: &Isolation, kind: Kind, reset: bool) -> Result<()> {
    let plan = if reset { Some(plan(slot).await?) } else { None };
    let mut conn = connection(slot).await?;
    if kind == Kind::Rollback && !slot.begun {
        begin(&mut conn).await?;
        slot.begun = true;
    }
    if let Some(plan) = plan {
        crate::backend::mysql::reset_counters(&mut conn, &plan).await?;
    }
    if kind != Kind::Template {
        run_fixtures(&mut conn, &iso.fixtures).await?;
    }
    conn.return_to_pool().await;
    Ok(())
}

/// What begins the test's transaction: `BEGIN` and its savepoint, one round trip.
fn begin_sql() -> String {
    format!("BEGIN; SAVEPOINT {}", q(PROBE))
}

/// Begins the test's transaction with its savepoint.
async fn begin(conn: &mut MySqlConnection) -> Result<()> {
    use sqlx_core::sql_str::SqlSafeStr;
    Tm::begin(conn, Some(sqlx::AssertSqlSafe(begin_sql()).into_sql_str()))
        .await
        .map_err(Error::db("starting the test's transaction"))
}

/// Whether `e` says the probe savepoint (or a savepoint of the code's, opened after it) is gone:
/// the transaction ended midway.
fn ended_midway(e: &sqlx::Error) -> bool {
    crate::backend::mysql::error_number(e) == Some(NO_SAVEPOINT)
}

/// Leases the first free slot of `image`, made from the image if it does not exist yet, and
/// emptied (its last holder may have died mid-test).
async fn lease(
    server: &'static MySqlServer,
    image: String,
    kind: Kind,
    settings: PoolSettings,
) -> Result<Slot> {
    let image = image.as_str();
    let mut holder = server.maintenance().await?;
    // The lease lives as long as this connection: the server must not close it for idleness
    // between tests.
    sqlx::raw_sql("SET SESSION wait_timeout = 31536000")
        .execute(&mut holder)
        .await
        .map_err(Error::db("keeping the lease's connection open"))?;
    for n in 0..10_000 {
        let name = format!("{image}_{n}");
        let lease = format!("lease:{name}");
        if !admin::try_take_unless_kept(&mut holder, &lease, &name).await? {
            continue;
        }
        let marker = admin::read_marker(&mut holder, &name).await?;
        let state = marker.as_ref().and_then(|m| m.get("state"));
        // Kept between the statement's read of the marker and its lock (a test that failed as
        // this one leased).
        if state == Some("kept") {
            coord::give_back(&mut holder, &lease).await?;
            continue;
        }
        let current = marker.as_ref().and_then(|m| m.get("image")) == Some(image);
        // The last holder noted the slot clean as it gave it up: a process that ended after its
        // test passed. Without the note (the holder died mid-test, or ran several tests and
        // exited), the slot is looked at.
        let noted_clean = admin::take_clean(&mut holder, &name).await?;
        // A slot whose last holder changed its schema (and died, or ran DDL under Truncate)
        // is made again.
        let same_schema = state == Some("ready")
            && current
            && (noted_clean
                || fingerprint(&mut holder, &name).await?
                    == image_fingerprint(&mut holder, image).await?);
        let noted_clean = noted_clean && same_schema;
        if !same_schema {
            admin::drop_database(&mut holder, &name).await?;
            admin::clone(&mut holder, &name, image).await?;
            let marker = Marker::new("slot")
                .with("image", image)
                .with("state", "ready");
            admin::write_marker(&mut holder, &name, &marker).await?;
        }
        let connections = Arc::new(AtomicU32::new(0));
        let fresh = Freshness::new();
        let options = server.options_for(&name);
        let holder = Holder::new(holder);
        let max = match kind {
            Kind::Rollback => 1,
            Kind::Truncate | Kind::Template => settings.max_connections,
        };
        let budget = holder.pool_budget(max);
        let pool = match kind {
            Kind::Rollback => {
                let counter = Arc::clone(&connections);
                let extra: Arc<dyn Fn() -> String + Send + Sync> = Arc::new(move || {
                    counter.fetch_add(1, Ordering::SeqCst);
                    String::new()
                });
                // Rollback's one connection is never turned away: one that was lost and opened
                // again fails the test (see `end_rollback`). A slot noted clean needs no
                // emptying: its connection begins the test's transaction as it is set up.
                let begin = noted_clean.then(begin_sql);
                settings.pool(server, options, &budget, Some(extra), None, begin)
            }
            Kind::Truncate | Kind::Template => {
                settings.pool(server, options, &budget, None, Some(&fresh), None)
            }
        };
        let mut slot = Slot {
            name,
            image: image.to_string(),
            settings,
            kind,
            holder,
            pool,
            budget,
            fresh,
            connections,
            begun: false,
            ddl_seen: std::collections::HashMap::new(),
            restore: restore_settings(server).into(),
            holder_in_slot: std::sync::atomic::AtomicBool::new(false),
        };
        // Its first connection opens here, on the engine runtime: it serves the process's tests.
        let cleaned = if noted_clean {
            let warmed = warm(&slot).await;
            slot.begun = kind == Kind::Rollback;
            warmed
        } else {
            clean(&slot, false).await
        };
        slot.fresh.warmed();
        return match cleaned {
            Ok(()) => Ok(slot),
            Err(e) => {
                give_back(slot).await;
                Err(e)
            }
        };
    }
    Err(Error::Internal(format!(
        "no free slot among 10000 of {image}"
    )))
}

/// A connection of the slot's pool, waiting while the server has none to spare.
async fn connection(slot: &Slot) -> Result<sqlx::pool::PoolConnection<MySql>> {
    acquire_waiting(&slot.pool).await.map_err(Error::db(format!(
        "connecting to test database {}",
        slot.name
    )))
}

/// Opens the slot pool's first connection.
async fn warm(slot: &Slot) -> Result<()> {
    connection(slot).await?.return_to_pool().await;
    Ok(())
}

/// Keeps a slot a test left clean for this process's next test; in a process that runs one
/// test, notes it clean for the next holder first (the process ends, and the lease with it),
/// when `certain`: every session of the test's was asked and none is the test's own (one still
/// writing would leave rows the note hides).
async fn keep(slot: Slot, certain: bool) -> Result<()> {
    if certain
        && crate::util::env::one_test_per_process()
        && let Ok(mut holder) = slot.holder.lock().await
    {
        admin::note_clean(&mut holder, &slot.name, slot.pool.size()).await;
    }
    idle()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(slot);
    Ok(())
}

/// Empties the slot, the template's (or migrations') rows put back.
/// The connection is taken from the pool as a test takes one: a connection a finished test's
/// runtime opened is not handed out.
async fn clean(slot: &Slot, reset_sequences: bool) -> Result<()> {
    let plan = plan(slot).await?;
    let mut conn = acquire_waiting(&slot.pool)
        .await
        .map_err(Error::db("connecting to empty the test database"))?;
    <MySql as Clean>::clean(&mut conn, &plan, reset_sequences).await?;
    conn.return_to_pool().await;
    Ok(())
}

/// The statements whose counters (`Com_*`) say a session changed a schema, or made a TEMPORARY
/// table (MariaDB counts those apart; MySQL as `Com_create_table`).
const DDL_COUNTERS: &str = "'Com_alter_table', 'Com_create_table', 'Com_drop_table', \
    'Com_rename_table', 'Com_create_index', 'Com_drop_index', 'Com_create_trigger', \
    'Com_drop_trigger', 'Com_create_view', 'Com_drop_view', 'Com_alter_view', \
    'Com_create_procedure', 'Com_drop_procedure', 'Com_alter_procedure', 'Com_create_function', \
    'Com_drop_function', 'Com_alter_function', 'Com_create_db', 'Com_drop_db', 'Com_alter_db', \
    'Com_create_event', 'Com_drop_event', 'Com_alter_event', 'Com_call_procedure', \
    'Com_execute_sql', 'Com_create_temporary_table'";

/// Of [`DDL_COUNTERS`], the statements that may leave a TEMPORARY table on the session: a
/// `CREATE [TEMPORARY] TABLE`, or a procedure or prepared statement that ran one. (seedbed's own
/// `ALTER TABLE … AUTO_INCREMENT` for `reset_sequences` is not among them.)
const TEMPORARY_TABLE_COUNTERS: [&str; 4] = [
    "Com_create_table",
    "Com_create_temporary_table",
    "Com_call_procedure",
    "Com_execute_sql",
];

/// What the pool's sessions said at a test's end.
pub(super) struct Sessions {
    /// The DDL statements (and procedure calls, which may run DDL) each connection has run.
    pub(super) ddl: std::collections::HashMap<u64, u64>,
    /// Every connection of the pool answered (none busy, none closed as the test ran).
    pub(super) complete: bool,
}

/// Puts back the session settings a test may have changed on the pool's idle connections
/// (which serve the next test): foreign-key and unique checks, autocommit, and `restore`'s; and
/// reads how many DDL statements each has run, so that a test that ran none needs no look at the
/// catalog. A connection that ever ran a statement that may make a TEMPORARY table (which no
/// catalog shows and `ROLLBACK` leaves) is closed instead of kept: the next test must not see
/// one. Its replacement starts with none.
pub(super) async fn reset_sessions(
    pool: &MySqlPool,
    budget: &super::super::budget::PoolBudget,
    restore: &str,
) -> Sessions {
    // The test's last connection may still be on its way back to the pool (sqlx pings it in a
    // task of its own): a round trip, a fraction of a millisecond.
    crate::util::wait::until(
        || u32::try_from(pool.num_idle()).is_ok_and(|idle| idle >= pool.size()),
        std::time::Duration::from_millis(20),
    )
    .await;
    let mut held = Vec::new();
    while let Some(conn) = pool.try_acquire() {
        held.push(conn);
    }
    let mut complete = u32::try_from(held.len()).is_ok_and(|n| n == pool.size());
    let mut ddl = std::collections::HashMap::new();
    // A transaction the test left open (a raw BEGIN) ends: what it wrote goes, and its locks
    // with it, which the cleaner, on the holder's connection, would wait for.
    let sql = Arc::new(format!(
        "ROLLBACK; \
         SET SESSION foreign_key_checks = 1, unique_checks = 1, autocommit = 1, {restore}; \
         SELECT CAST(CONNECTION_ID() AS UNSIGNED), CAST(0 AS CHAR); \
         SHOW SESSION STATUS WHERE Variable_name IN ({DDL_COUNTERS})"
    ));
    // Each connection at once: one round trip in all.
    let mut asked = tokio::task::JoinSet::new();
    for mut conn in held {
        let sql = Arc::clone(&sql);
        asked.spawn(async move {
            let read = read_session(&mut conn, &sql).await;
            (conn, read)
        });
    }
    while let Some(answer) = asked.join_next().await {
        let Ok((mut conn, read)) = answer else {
            complete = false;
            continue;
        };
        match read {
            Ok((id, total, temporary)) => {
                ddl.insert(id, total);
                if temporary > 0 {
                    conn.close_on_drop();
                    budget.connection_closed();
                } else {
                    conn.return_to_pool().await;
                }
            }
            // A connection that no longer works (opened on a test's runtime that has ended)
            // closes: the next test opens another.
            Err(_) => {
                complete = false;
                conn.close_on_drop();
                budget.connection_closed();
            }
        }
    }
    Sessions { ddl, complete }
}

/// Runs [`reset_sessions`]'s `sql` on `conn`: its id, the DDL statements it has run, and of
/// those the ones that may have made a TEMPORARY table.
async fn read_session(
    conn: &mut MySqlConnection,
    sql: &str,
) -> std::result::Result<(u64, u64, u64), sqlx::Error> {
    let rows = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_all(&mut *conn)
        .await?;
    let mut rows = rows.iter();
    let id: u64 = match rows.next() {
        Some(row) => sqlx::Row::try_get(row, 0)?,
        None => return Err(sqlx::Error::RowNotFound),
    };
    let (mut total, mut temporary) = (0u64, 0u64);
    for row in rows {
        let name: String = sqlx::Row::try_get(row, 0)?;
        let value: String = sqlx::Row::try_get(row, 1)?;
        let n = value.trim().parse::<u64>().unwrap_or(0);
        total += n;
        if TEMPORARY_TABLE_COUNTERS
            .iter()
            .any(|c| c.eq_ignore_ascii_case(&name))
        {
            temporary += n;
        }
    }
    Ok((id, total, temporary))
}

/// Gives a slot up: its pool closed, its lease and budget freed; how many budget slots.
async fn give_back(slot: Slot) -> usize {
    close(&slot.pool).await;
    let freed = slot.budget.forget();
    slot.holder.close().await;
    freed
}

/// Drops a slot that may hold what a test committed, then gives it up.
async fn discard(slot: Slot) -> Result<()> {
    close(&slot.pool).await;
    let dropped = match slot.holder.lock().await {
        Ok(mut holder) => admin::drop_database(&mut holder, &slot.name).await,
        Err(e) => Err(e),
    };
    slot.budget.forget();
    slot.holder.close().await;
    dropped
}

/// A test's leased slot, until its end.
#[derive(Debug)]
struct Leased {
    slot: Mutex<Option<Slot>>,
    reset_sequences: bool,
    /// The test built its own pool from connect options: its sessions cannot be asked.
    own_connections: bool,
}

const EXPLAIN_ENDED: &str = "the test's transaction ended midway: the code under test \
    committed it (a raw COMMIT or BEGIN, LOCK TABLES, or another statement MySQL commits \
    implicitly) or rolled it back (a raw ROLLBACK, or a deadlock the server resolved by rolling \
    it back), so what it wrote after that was committed. Code that ends transactions itself \
    needs a database of its own: use strategy = \"truncate\" (or \"template\")";

const EXPLAIN_LOST: &str = "the test's connection was closed midway and another opened: what \
    the code wrote after that was committed. Code that closes or detaches connections needs a \
    database of its own: use strategy = \"truncate\" (or \"template\")";

const EXPLAIN_DDL: &str = "the code under test ran DDL (CREATE, ALTER, DROP, TRUNCATE, \
    RENAME…), which MySQL commits implicitly: it changed the schema and committed what the test \
    had written. A test that changes the schema needs a database of its own: use strategy = \
    \"template\"";

#[async_trait]
impl Ending<MySql> for Leased {
    async fn finish(self: Box<Self>, inner: &Inner<MySql>, outcome: Outcome) -> Result<()> {
        let slot = self
            .slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(slot) = slot else {
            return Ok(());
        };
        match slot.kind {
            // The slot's connection was opened on the engine runtime (see `engine::run`): the
            // test's end, two round trips on it, runs there too, where its I/O is driven, rather
            // than waking the test's thread from the engine's at each reply.
            Kind::Rollback => engine::run(finish_rollback(slot)).await,
            Kind::Truncate | Kind::Template => {
                finish_owned(
                    slot,
                    inner,
                    outcome,
                    self.reset_sequences,
                    self.own_connections,
                )
                .await
            }
        }
    }
}

async fn finish_rollback(mut slot: Slot) -> Result<()> {
    match end_rollback(&mut slot).await {
        Ok(None) => {
            slot.begun = true;
            keep(slot, true).await
        }
        Ok(Some(message)) => {
            discard(slot).await?;
            Err(Error::Isolation {
                strategy: Strategy::Rollback,
                message,
            })
        }
        // The slot may hold what the test committed: it goes.
        Err(e) => {
            let _ = discard(slot).await;
            Err(e)
        }
    }
}

/// Rolls the test's transaction back and begins the next test's, with the session settings a
/// test may have changed put back; says what escaped the transaction, if anything did.
async fn end_rollback(slot: &mut Slot) -> Result<Option<String>> {
    let context = "ending the test's transaction";
    let mut conn = acquire_waiting(&slot.pool)
        .await
        .map_err(Error::db(context))?;
    if slot.connections.load(Ordering::SeqCst) != 1 {
        return Ok(Some(EXPLAIN_LOST.to_string()));
    }
    // Savepoints the code left open, rolled back one by one as sqlx counts them: one that is
    // gone went with the transaction.
    while Tm::get_transaction_depth(&conn) > 1 {
        match Tm::rollback(&mut conn).await {
            Ok(()) => {}
            Err(e) if ended_midway(&e) => return explain_ended(slot).await.map(Some),
            Err(e) => return Err(Error::db(context)(e)),
        }
    }
    // One round trip: the probe savepoint checked (an error if the transaction ended), the
    // rollback, and the next test's transaction begun with its savepoint. sqlx counts one open
    // transaction before and after.
    let sql = format!(
        "RELEASE SAVEPOINT {p}; ROLLBACK; \
         SET SESSION foreign_key_checks = 1, unique_checks = 1, autocommit = 1, {restore}; \
         BEGIN; SAVEPOINT {p}",
        p = q(PROBE),
        restore = slot.restore
    );
    match sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&mut *conn)
        .await
    {
        Ok(_) => {
            conn.return_to_pool().await;
            Ok(None)
        }
        Err(e) if ended_midway(&e) => explain_ended(slot).await.map(Some),
        Err(e) => Err(Error::db(context)(e)),
    }
}

/// Why the test's transaction ended midway: DDL when the slot's schema is no longer the image's.
async fn explain_ended(slot: &mut Slot) -> Result<String> {
    // Read on the holder: some servers list the test connection's TEMPORARY tables.
    let mut holder = slot.holder.lock().await?;
    let print = fingerprint(&mut holder, &slot.name).await?;
    let ddl = print != image_fingerprint(&mut holder, &slot.image).await?;
    Ok(if ddl { EXPLAIN_DDL } else { EXPLAIN_ENDED }.to_string())
}

async fn finish_owned(
    mut slot: Slot,
    inner: &Inner<MySql>,
    outcome: Outcome,
    reset_sequences: bool,
    own_connections: bool,
) -> Result<()> {
    if outcome != Outcome::Passed {
        // Kept for inspection: no test leases it until `seedbed sweep --kept` removes it.
        close(&slot.pool).await;
        let marker = Marker::new("slot")
            .with("image", &slot.image)
            .with("state", "kept")
            .with("strategy", slot.kind.strategy().to_string());
        let marked = match slot.holder.lock().await {
            Ok(mut holder) => admin::write_marker(&mut holder, &slot.name, &marker).await,
            Err(e) => Err(e),
        };
        slot.budget.forget();
        slot.holder.close().await;
        marked?;
        inner.mark_kept();
        return Ok(());
    }
    // The cleaner runs on the holder's connection while the test's sessions are read and reset
    // on theirs: the round trips overlap, the cleaner need not wait for the test's last
    // connection to come back to its pool (sqlx pings it first), and no TEMPORARY table of the
    // test's hides a table from it. What it does is undone with the slot when the sessions say
    // the test changed the schema (the slot is dropped then).
    let (sessions, cleaned) = tokio::join!(
        reset_sessions(&slot.pool, &slot.budget, &slot.restore),
        async {
            let plan = plan(&slot).await?;
            let mut holder = slot.holder.lock().await?;
            let dirty = crate::backend::mysql::dirty(&mut holder, &plan, use_slot(&slot)).await?;
            slot.holder_in_slot.store(true, Ordering::SeqCst);
            crate::backend::mysql::clean_dirty(&mut holder, &plan, reset_sequences, dirty)
                .await
                .map(drop)
        }
    );
    // The catalog is read only when a session ran DDL (or a procedure), or when a connection
    // could not say (busy, closed, or the test's own, from connect options).
    let ran_ddl = sessions
        .ddl
        .iter()
        .any(|(id, n)| *n > slot.ddl_seen.get(id).copied().unwrap_or(0));
    if ran_ddl || !sessions.complete || own_connections {
        let changed = {
            let mut holder = slot.holder.lock().await?;
            let print = fingerprint(&mut holder, &slot.name).await?;
            print != image_fingerprint(&mut holder, &slot.image).await?
        };
        if changed {
            // The test changed the schema: the copy cannot be emptied back to what it was.
            return discard(slot).await;
        }
    }
    slot.ddl_seen = sessions.ddl;
    let certain = sessions.complete && !own_connections;
    match cleaned {
        Ok(()) => keep(slot, certain).await,
        Err(e) => {
            discard(slot).await?;
            Err(e)
        }
    }
}
