//! The connection budget: how many connections seedbed's test processes may hold on a server at
//! once, counted in the server itself, so that `cargo nextest run -j 16` against a server with
//! `max_connections = 100` waits for connections instead of failing with "too many connections".
//!
//! The budget is a set of numbered slots; holding slot *i* means holding the session advisory lock
//! `seedbed:budget` *i* on the process's control connection (a process that dies frees its slots
//! with its connection). Before it opens a lease connection, and as a pool opens connections (the
//! connections whose number grows with the number of tests), seedbed reserves slots for them, and
//! gives them back when they close. A test that cannot get its slots waits, and says so after
//! 10 s. A pool's connection is counted once it is open (sqlx has no hook before a pool connects),
//! so one that finds the budget spent is closed again at once rather than held while it waits, and
//! the pool tries again after a growing pause until its acquire timeout (30 s), then fails with
//! sqlx's `PoolTimedOut` (each try it gave up is logged by sqlx at `error` level, "error returned
//! from after_connect", to a `tracing` subscriber).
//!
//! Two connections of each process are outside the budget: its coordination connection (the
//! control connection, which takes the slots) and the first connection a test of the process
//! opens (its **free pass**). A test process under `cargo nextest` whose test uses one connection
//! therefore never waits for budget, and one under Rollback opens no coordination connection at
//! all. The first connection of a test's pool that the free pass does not cover reserves, all at
//! once, as many slots as the pool may still open, given back when the pool closes: a pool never
//! holds part of what it waits for.
//!
//! The size is `SEEDBED_MAX_CONNECTIONS`, else 40% of what the server allows
//! (`max_connections` − `superuser_reserved_connections`): the rest is for the two connections
//! each test process has outside the budget, the short ones that build databases, and for
//! people. With `max_connections = 100` and `-j 16`, 38 connections of test pools and the
//! processes' own 32 stay under the limit.

use std::time::{Duration, Instant};

use super::engine;
use crate::backend::postgres::server::Server;
use crate::error::{Error, Result};

/// How long a test waits for connection budget before failing.
const BUDGET_WAIT: Duration = Duration::from_secs(600);

/// Slots held by this process (or its free pass); given back when dropped.
#[derive(Debug)]
pub(crate) struct Reservation {
    server: &'static Server,
    slots: Vec<i64>,
    /// The process's free pass: one connection outside the budget.
    free: bool,
}

/// Whether this process's free pass is available.
static FREE_PASS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

impl Reservation {
    /// How many connections it allows.
    pub(crate) fn len(&self) -> usize {
        self.slots.len() + usize::from(self.free)
    }

    /// Gives the slots back now (dropping it gives them back in the background); returns how
    /// many connections of the budget it freed.
    pub(crate) async fn give_back(mut self) -> Result<usize> {
        if std::mem::take(&mut self.free) {
            FREE_PASS.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        let slots = std::mem::take(&mut self.slots);
        let n = slots.len();
        release(self.server, slots).await.map(|()| n)
    }
}

/// One connection for a test: the process's free pass if no test holds it (no round trip, and
/// no coordination connection needed), else a slot of the budget.
pub(crate) async fn reserve_one(server: &'static Server) -> Result<Reservation> {
    if FREE_PASS.swap(false, std::sync::atomic::Ordering::SeqCst) {
        return Ok(Reservation {
            server,
            slots: Vec::new(),
            free: true,
        });
    }
    reserve(server, 1).await
}

/// The budget of a pool whose connections open as its test asks for them, all given back when
/// the pool goes. Its first connection rides the process's free pass when it can; the first
/// connection the pass does not cover reserves, all at once, everything the pool may still open
/// (its maximum less what it has). A pool never holds part of what it waits for, so pools waiting
/// for budget in many processes cannot hold each other up.
#[derive(Debug)]
pub(crate) struct PoolBudget {
    max: usize,
    state: std::sync::Mutex<PoolBudgetState>,
}

#[derive(Debug, Default)]
struct PoolBudgetState {
    held: Vec<Reservation>,
    /// Connections opened so far.
    opened: usize,
    /// Slots reserved and not yet used by a connection.
    unused: usize,
    /// Since when a connection of the pool has been waiting for budget.
    waiting_since: Option<Instant>,
    /// Whether the wait was reported.
    told: bool,
    /// When the pool last closed the process's idle connections for budget.
    last_eviction: Option<Instant>,
}

impl PoolBudget {
    /// The budget of a pool of at most `max` connections.
    pub(crate) fn new(max: u32) -> Self {
        Self {
            max: usize::try_from(max).unwrap_or(usize::MAX).max(1),
            state: std::sync::Mutex::new(PoolBudgetState::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, PoolBudgetState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reserves for a connection the pool is opening (called by the pool's `after_connect`, so
    /// the connection is open already). It does not wait: a connection waiting for budget would
    /// be one more connection on the server, beyond the budget, in every waiting process. When the
    /// budget is spent it fails, the pool closes the connection and tries again after a growing
    /// pause (sqlx's back-off), until the pool's acquire timeout; meanwhile this process's idle
    /// connections are closed first (at most once a second) and, after 10 s, it says why it waits.
    pub(crate) async fn connection_opened(&self, server: &'static Server) -> Result<()> {
        let opened = {
            let mut state = self.state();
            if state.unused > 0 {
                state.unused -= 1;
                state.opened += 1;
                state.waiting_since = None;
                return Ok(());
            }
            state.opened
        };
        if opened == 0 && FREE_PASS.swap(false, std::sync::atomic::Ordering::SeqCst) {
            let mut state = self.state();
            state.opened += 1;
            state.held.push(Reservation {
                server,
                slots: Vec::new(),
                free: true,
            });
            return Ok(());
        }
        let wanted = self.max.saturating_sub(opened).max(1);
        let mut got = try_reserve(server, wanted).await?;
        if got.is_none() && self.may_evict() && evict_idle().await > 0 {
            got = try_reserve(server, wanted).await?;
        }
        let total = size(server).await?;
        let mut state = self.state();
        let Some(reservation) = got else {
            let since = *state.waiting_since.get_or_insert_with(Instant::now);
            if !state.told && since.elapsed() > Duration::from_secs(10) {
                state.told = true;
                tracing::warn!(
                    "a test's pool waits for connection budget: the {total} connections \
                     test processes may hold on this server are in use (SEEDBED_MAX_CONNECTIONS \
                     sets the budget)"
                );
            }
            return Err(Error::Budget {
                wanted,
                size: total,
                waited: since.elapsed(),
                retrying: true,
            });
        };
        state.unused += reservation.len().saturating_sub(1);
        state.opened += 1;
        state.waiting_since = None;
        state.held.push(reservation);
        Ok(())
    }

    /// Whether this pool may close the process's idle connections now (at most once a second, so
    /// a sibling's pool put back meanwhile is not closed at every retry).
    fn may_evict(&self) -> bool {
        let mut state = self.state();
        if state
            .last_eviction
            .is_some_and(|at| at.elapsed() < Duration::from_secs(1))
        {
            return false;
        }
        state.last_eviction = Some(Instant::now());
        true
    }

    /// Gives everything back now; returns how many connections of the budget were freed.
    pub(crate) async fn give_back(&self) -> usize {
        let held: Vec<Reservation> = {
            let mut state = self.state();
            state.unused = 0;
            std::mem::take(&mut state.held)
        };
        let mut freed = 0;
        for r in held {
            freed += r.give_back().await.unwrap_or(0);
        }
        freed
    }
}

/// Something that closes connections this process keeps open without a test using them (pools
/// kept for the next test, spares' pools), giving back their budget; returns how many slots it
/// gave back.
pub(crate) type Evictor =
    fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = usize> + Send + 'static>>;

fn evictors() -> &'static std::sync::Mutex<Vec<Evictor>> {
    static EVICTORS: std::sync::OnceLock<std::sync::Mutex<Vec<Evictor>>> =
        std::sync::OnceLock::new();
    EVICTORS.get_or_init(Default::default)
}

/// Registers `evictor`, run when a reservation finds the budget spent: the process's idle
/// connections go before its tests wait for budget, which they would otherwise hold themselves.
pub(crate) fn on_shortage(evictor: Evictor) {
    let mut all = evictors()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !all.iter().any(|e| std::ptr::fn_addr_eq(*e, evictor)) {
        all.push(evictor);
    }
}

/// Runs every evictor; how many slots they gave back.
async fn evict_idle() -> usize {
    let all: Vec<Evictor> = evictors()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let mut closed = 0;
    for evictor in all {
        closed += evictor().await;
    }
    closed
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if std::mem::take(&mut self.free) {
            FREE_PASS.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        if self.slots.is_empty() {
            return;
        }
        let slots = std::mem::take(&mut self.slots);
        let server = self.server;
        engine::spawn_detached(async move {
            let _ = release(server, slots).await;
        });
    }
}

/// The budget's size on this server.
pub(crate) async fn size(server: &'static Server) -> Result<i64> {
    static SIZE: tokio::sync::OnceCell<i64> = tokio::sync::OnceCell::const_new();
    SIZE.get_or_try_init(|| async {
        if std::env::var("SEEDBED_MAX_CONNECTIONS").is_ok() {
            let n = crate::util::env::count("SEEDBED_MAX_CONNECTIONS", 3, 3)?;
            return Ok(i64::try_from(n).unwrap_or(i64::MAX));
        }
        engine::control()
            .with(server, |conn| {
                Box::pin(async move {
                    let allowed: i64 = sqlx::query_scalar(
                        "SELECT current_setting('max_connections')::int8 \
                         - current_setting('superuser_reserved_connections')::int8",
                    )
                    .fetch_one(conn)
                    .await
                    .map_err(Error::db("reading max_connections"))?;
                    Ok((allowed * 2 / 5).max(3))
                })
            })
            .await
    })
    .await
    .copied()
}

/// Reserves `n` connections (at most the whole budget), waiting while the budget is spent. The
/// slots are taken all at once or not at all, so waiting processes never hold part of what they
/// wait for.
pub(crate) async fn reserve(server: &'static Server, n: usize) -> Result<Reservation> {
    take(server, n).await
}

/// Reserves `n` connections if they are free now, without waiting.
pub(crate) async fn try_reserve(server: &'static Server, n: usize) -> Result<Option<Reservation>> {
    let total = size(server).await?;
    let wanted = i64::try_from(n).unwrap_or(i64::MAX).min(total);
    let got = try_take(server, wanted, total).await?;
    if i64::try_from(got.len()).unwrap_or(0) >= wanted {
        Ok(Some(got))
    } else {
        got.give_back().await?;
        Ok(None)
    }
}

async fn take(server: &'static Server, n: usize) -> Result<Reservation> {
    let total = size(server).await?;
    let wanted = i64::try_from(n).unwrap_or(i64::MAX).min(total);
    let started = Instant::now();
    let mut told = false;
    let mut delay = Duration::from_millis(10);
    let mut last_eviction: Option<Instant> = None;
    loop {
        let got = try_take(server, wanted, total).await?;
        if i64::try_from(got.len()).unwrap_or(0) >= wanted {
            return Ok(got);
        }
        got.give_back().await?;
        // Idle connections of this process first: if closing them freed budget, try again now
        // (at most once a second: pools a sibling test puts back meanwhile are not closed at
        // every retry when other processes hold the budget).
        if last_eviction.is_none_or(|at: Instant| at.elapsed() > Duration::from_secs(1)) {
            last_eviction = Some(Instant::now());
            if evict_idle().await > 0 {
                continue;
            }
        }
        if !told && started.elapsed() > Duration::from_secs(10) {
            tracing::warn!(
                "waiting for connection budget: the {total} connections test processes \
                 may hold on this server are in use (SEEDBED_MAX_CONNECTIONS sets the budget)"
            );
            told = true;
        }
        if started.elapsed() > BUDGET_WAIT {
            return Err(Error::Budget {
                wanted: usize::try_from(wanted).unwrap_or_default(),
                size: total,
                waited: started.elapsed(),
                retrying: false,
            });
        }
        // A jittered wait, so processes waiting together do not retry in step.
        let jitter = Duration::from_millis(u64::from(std::process::id() % 7));
        tokio::time::sleep(delay + jitter).await;
        delay = (delay * 2).min(Duration::from_millis(200));
    }
}

/// Takes up to `n` free slots, starting at a point that depends on the process so processes do
/// not all contend for slot 0. They are owned by a reservation from the moment they are taken
/// (on the engine runtime): if the caller gives up waiting meanwhile, dropping it gives them back.
async fn try_take(server: &'static Server, n: i64, total: i64) -> Result<Reservation> {
    let offset = i64::from(std::process::id()) % total.max(1);
    engine::control()
        .with(server, move |conn| {
            Box::pin(async move {
                // Slots this process holds already are skipped before they are locked (the CASE
                // fixes the order): the lock is re-entrant, so taking one again would succeed and
                // two reservations of one process would share it.
                let sql = format!(
                    "SELECT s FROM (SELECT (g + $3) % $2 AS s FROM generate_series(0, $2 - 1) g) t \
                     WHERE CASE WHEN s = ANY($4::int8[]) THEN false \
                           ELSE pg_try_advisory_lock({}) END \
                     LIMIT $1",
                    crate::backend::postgres::coord::slot_key_sql("budget", "s")
                );
                let slots: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                    .bind(n)
                    .bind(total)
                    .bind(offset)
                    .bind(engine::held_budget_slots())
                    .fetch_all(conn)
                    .await
                    .map_err(Error::db("reserving connection budget"))?;
                for slot in &slots {
                    engine::hold(engine::Held::BudgetSlot(*slot));
                }
                Ok(Reservation {
                    server,
                    slots,
                    free: false,
                })
            })
        })
        .await
}

/// Takes budget slot `slot` on `conn` if it is free (a new control connection taking back what
/// the lost one held).
pub(crate) async fn try_slot(conn: &mut sqlx::PgConnection, slot: i64) -> Result<bool> {
    let sql = format!(
        "SELECT pg_try_advisory_lock({})",
        crate::backend::postgres::coord::slot_key_sql("budget", "$1")
    );
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(slot)
        .fetch_one(conn)
        .await
        .map_err(Error::db("taking back a budget slot"))
}

async fn release(server: &'static Server, slots: Vec<i64>) -> Result<()> {
    if slots.is_empty() {
        return Ok(());
    }
    engine::control()
        .with(server, move |conn| {
            Box::pin(async move {
                let sql = format!(
                    "SELECT pg_advisory_unlock({}) FROM unnest($1::int8[]) s",
                    crate::backend::postgres::coord::slot_key_sql("budget", "s")
                );
                let released = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(&slots)
                    .execute(conn)
                    .await;
                // Forgotten either way: if the unlock failed with the connection, the session
                // and its locks are gone, and a new connection must not take them back.
                for slot in slots {
                    engine::let_go(&engine::Held::BudgetSlot(slot));
                }
                released.map_err(Error::db("releasing connection budget"))?;
                Ok(())
            })
        })
        .await
}
