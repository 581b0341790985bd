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
//!
//! The accounting here is the same on every server; where the slots are kept is a [`Ledger`]'s:
//! on PostgreSQL the process's control connection ([`postgres`]), on MySQL the connection that
//! holds the lease of the test's database (`isolation::mysql::budget`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::engine;
use crate::backend::postgres::server::Server;
use crate::error::{Error, Result};

/// Where a server's budget slots are kept: session locks, which the server frees when the
/// session holding them ends, however it ends.
#[async_trait]
pub(crate) trait Ledger: std::fmt::Debug + Send + Sync + 'static {
    /// This process's free pass on the server: one connection outside the budget.
    fn free_pass(&self) -> &'static AtomicBool;

    /// How many connections the server allows ordinary sessions; read once.
    async fn allowed(&self) -> Result<i64>;

    /// Takes up to `n` of the `total` slots that are free now, starting at a point that depends
    /// on the process so that processes do not all contend for slot 0.
    async fn take(self: Arc<Self>, n: i64, total: i64) -> Result<Vec<i64>>;

    /// Gives `slots` back.
    async fn release(self: Arc<Self>, slots: Vec<i64>) -> Result<()>;

    /// Closes the connections this process keeps open to the server without a test using them,
    /// giving their budget back; how many slots that freed.
    async fn evict_idle(&self) -> usize;
}

/// The first slot this process tries, of `total`.
pub(crate) fn first_slot(total: i64) -> i64 {
    i64::from(std::process::id()) % total.max(1)
}

/// How long a test waits for connection budget before failing.
const BUDGET_WAIT: Duration = Duration::from_secs(600);

/// Slots held by this process (or its free pass); given back when dropped.
#[derive(Debug)]
pub(crate) struct Reservation {
    ledger: Arc<dyn Ledger>,
    slots: Vec<i64>,
    /// The process's free pass: one connection outside the budget.
    free: bool,
}

impl Reservation {
    /// How many connections it allows.
    pub(crate) fn len(&self) -> usize {
        self.slots.len() + usize::from(self.free)
    }

    /// Gives the slots back now (dropping it gives them back in the background); returns how
    /// many connections of the budget it freed.
    pub(crate) async fn give_back(mut self) -> Result<usize> {
        if std::mem::take(&mut self.free) {
            self.ledger.free_pass().store(true, Ordering::SeqCst);
        }
        let slots = std::mem::take(&mut self.slots);
        let n = slots.len();
        if n == 0 {
            return Ok(0);
        }
        Arc::clone(&self.ledger).release(slots).await.map(|()| n)
    }

    /// Gives the free pass back and forgets the slots without a round trip: the session that
    /// holds them is closing, and the server frees them with it. Returns how many slots.
    #[cfg_attr(
        not(feature = "mysql"),
        allow(dead_code, reason = "the MySQL budget uses it")
    )]
    pub(crate) fn forget(mut self) -> usize {
        if std::mem::take(&mut self.free) {
            self.ledger.free_pass().store(true, Ordering::SeqCst);
        }
        std::mem::take(&mut self.slots).len()
    }

    /// The process's free pass of `ledger`'s server.
    fn free_pass(ledger: &Arc<dyn Ledger>) -> Self {
        Self {
            ledger: Arc::clone(ledger),
            slots: Vec::new(),
            free: true,
        }
    }
}

/// One connection for a test: the process's free pass if no test holds it (no round trip, and
/// no coordination connection needed), else a slot of the budget.
pub(crate) async fn reserve_one(ledger: &Arc<dyn Ledger>) -> Result<Reservation> {
    if ledger.free_pass().swap(false, Ordering::SeqCst) {
        return Ok(Reservation::free_pass(ledger));
    }
    reserve(ledger, 1).await
}

/// The budget of a pool whose connections open as its test asks for them, all given back when
/// the pool goes. Its first connection rides the process's free pass when it can; the first
/// connection the pass does not cover reserves, all at once, everything the pool may still open
/// (its maximum less what it has). A pool never holds part of what it waits for, so pools waiting
/// for budget in many processes cannot hold each other up.
#[derive(Debug)]
pub(crate) struct PoolBudget {
    ledger: Arc<dyn Ledger>,
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
    /// The budget of a pool of at most `max` connections, kept in `ledger`.
    pub(crate) fn new(ledger: Arc<dyn Ledger>, max: u32) -> Self {
        Self {
            ledger,
            max: usize::try_from(max).unwrap_or(usize::MAX).max(1),
            state: std::sync::Mutex::new(PoolBudgetState::default()),
        }
    }

    /// The most connections the pool may open at once.
    #[cfg_attr(
        not(feature = "mysql"),
        allow(dead_code, reason = "the MySQL budget uses it")
    )]
    pub(crate) fn max(&self) -> u32 {
        u32::try_from(self.max).unwrap_or(u32::MAX)
    }

    /// One of the pool's connections closes, the pool still open: its budget is kept for the
    /// connection the pool opens next, so a pool that replaces connections never holds more than
    /// its maximum.
    #[cfg_attr(
        not(feature = "mysql"),
        allow(dead_code, reason = "the MySQL budget uses it")
    )]
    pub(crate) fn connection_closed(&self) {
        let mut state = self.state();
        if state.opened > 0 {
            state.opened -= 1;
            state.unused += 1;
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
    pub(crate) async fn connection_opened(&self) -> Result<()> {
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
        if opened == 0 && self.ledger.free_pass().swap(false, Ordering::SeqCst) {
            let mut state = self.state();
            state.opened += 1;
            state.held.push(Reservation::free_pass(&self.ledger));
            return Ok(());
        }
        let wanted = self.max.saturating_sub(opened).max(1);
        let mut got = try_reserve(&self.ledger, wanted).await?;
        if got.is_none() && self.may_evict() && self.ledger.evict_idle().await > 0 {
            got = try_reserve(&self.ledger, wanted).await?;
        }
        let total = size(&self.ledger).await?;
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

    /// Gives the free pass back and forgets the slots without a round trip (see
    /// [`Reservation::forget`]); returns how many slots.
    #[cfg_attr(
        not(feature = "mysql"),
        allow(dead_code, reason = "the MySQL budget uses it")
    )]
    pub(crate) fn forget(&self) -> usize {
        let held: Vec<Reservation> = {
            let mut state = self.state();
            state.unused = 0;
            std::mem::take(&mut state.held)
        };
        held.into_iter().map(Reservation::forget).sum()
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

/// Registers `evictor`, run when a reservation finds PostgreSQL's budget spent: the process's
/// idle connections go before its tests wait for budget, which they would otherwise hold
/// themselves.
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
            self.ledger.free_pass().store(true, Ordering::SeqCst);
        }
        if self.slots.is_empty() {
            return;
        }
        let slots = std::mem::take(&mut self.slots);
        let ledger = Arc::clone(&self.ledger);
        engine::spawn_detached(async move {
            let _ = ledger.release(slots).await;
        });
    }
}

/// The budget's size on `ledger`'s server: `SEEDBED_MAX_CONNECTIONS`, else 40% of what the
/// server allows.
pub(crate) async fn size(ledger: &Arc<dyn Ledger>) -> Result<i64> {
    sized(ledger.allowed()).await
}

/// The budget's size on a server that allows ordinary sessions `allowed` connections (not
/// awaited when `SEEDBED_MAX_CONNECTIONS` says the size).
pub(crate) async fn sized(allowed: impl Future<Output = Result<i64>>) -> Result<i64> {
    if std::env::var("SEEDBED_MAX_CONNECTIONS").is_ok() {
        let n = crate::util::env::count("SEEDBED_MAX_CONNECTIONS", 3, 3)?;
        return Ok(i64::try_from(n).unwrap_or(i64::MAX));
    }
    Ok((allowed.await? * 2 / 5).max(3))
}

/// Reserves `n` connections (at most the whole budget), waiting while the budget is spent. The
/// slots are taken all at once or not at all, so waiting processes never hold part of what they
/// wait for.
pub(crate) async fn reserve(ledger: &Arc<dyn Ledger>, n: usize) -> Result<Reservation> {
    take(ledger, n).await
}

/// Reserves `n` connections if they are free now, without waiting.
pub(crate) async fn try_reserve(ledger: &Arc<dyn Ledger>, n: usize) -> Result<Option<Reservation>> {
    let total = size(ledger).await?;
    let wanted = i64::try_from(n).unwrap_or(i64::MAX).min(total);
    let got = try_take(ledger, wanted, total).await?;
    if i64::try_from(got.len()).unwrap_or(0) >= wanted {
        Ok(Some(got))
    } else {
        got.give_back().await?;
        Ok(None)
    }
}

async fn take(ledger: &Arc<dyn Ledger>, n: usize) -> Result<Reservation> {
    let total = size(ledger).await?;
    let wanted = i64::try_from(n).unwrap_or(i64::MAX).min(total);
    let started = Instant::now();
    let mut told = false;
    let mut delay = Duration::from_millis(10);
    let mut last_eviction: Option<Instant> = None;
    loop {
        let got = try_take(ledger, wanted, total).await?;
        if i64::try_from(got.len()).unwrap_or(0) >= wanted {
            return Ok(got);
        }
        got.give_back().await?;
        // Idle connections of this process first: if closing them freed budget, try again now
        // (at most once a second: pools a sibling test puts back meanwhile are not closed at
        // every retry when other processes hold the budget).
        if last_eviction.is_none_or(|at: Instant| at.elapsed() > Duration::from_secs(1)) {
            last_eviction = Some(Instant::now());
            if ledger.evict_idle().await > 0 {
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

/// Takes up to `n` free slots. They are owned by a reservation from the moment they are
/// taken: if the caller gives up waiting meanwhile, dropping it gives them back.
async fn try_take(ledger: &Arc<dyn Ledger>, n: i64, total: i64) -> Result<Reservation> {
    let slots = Arc::clone(ledger).take(n, total).await?;
    Ok(Reservation {
        ledger: Arc::clone(ledger),
        slots,
        free: false,
    })
}

/// PostgreSQL's budget: session advisory locks on the process's control connection.
#[derive(Debug)]
struct PgLedger {
    server: &'static Server,
}

/// The connection budget on `server`, PostgreSQL's.
pub(crate) fn postgres(server: &'static Server) -> Arc<dyn Ledger> {
    Arc::new(PgLedger { server })
}

#[async_trait]
impl Ledger for PgLedger {
    fn free_pass(&self) -> &'static AtomicBool {
        static FREE_PASS: AtomicBool = AtomicBool::new(true);
        &FREE_PASS
    }

    async fn allowed(&self) -> Result<i64> {
        static ALLOWED: tokio::sync::OnceCell<i64> = tokio::sync::OnceCell::const_new();
        let server = self.server;
        ALLOWED
            .get_or_try_init(|| {
                engine::control().with(server, |conn| {
                    Box::pin(async move {
                        sqlx::query_scalar(
                            "SELECT current_setting('max_connections')::int8 \
                             - current_setting('superuser_reserved_connections')::int8",
                        )
                        .fetch_one(conn)
                        .await
                        .map_err(Error::db("reading max_connections"))
                    })
                })
            })
            .await
            .copied()
    }

    async fn take(self: Arc<Self>, n: i64, total: i64) -> Result<Vec<i64>> {
        let offset = first_slot(total);
        engine::control()
            .with(self.server, move |conn| {
                Box::pin(async move {
                    // Slots this process holds already are skipped before they are locked (the
                    // CASE fixes the order): the lock is re-entrant, so taking one again would
                    // succeed and two reservations of one process would share it.
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
                    Ok(slots)
                })
            })
            .await
    }

    async fn release(self: Arc<Self>, slots: Vec<i64>) -> Result<()> {
        release(self.server, slots).await
    }

    async fn evict_idle(&self) -> usize {
        evict_idle().await
    }
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
