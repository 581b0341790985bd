//! The connection budget on MySQL (see [`budget`](super::super::budget) for the accounting): its
//! slots are named locks, `seedbed:budget:<n>`, taken on the connection that holds the lease of
//! the test's database (its [`Holder`]). A pool's budget therefore lives exactly as long as the
//! lease it serves: when the holder closes, or its process dies, the server frees both at once,
//! with no round trip and no connection of its own.
//!
//! Outside the budget are the holders themselves (one for each test a process runs at once) and
//! the process's free pass (the first connection a pool opens), so a test process under
//! `cargo nextest` whose test uses one connection never waits for budget. The size is
//! `SEEDBED_MAX_CONNECTIONS`, else 40% of what the server allows the URL's user: the smaller of
//! `max_connections` and the user's `MAX_USER_CONNECTIONS`.

use std::collections::HashSet;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use sqlx::{Connection, MySqlConnection, Row};

use super::super::budget::{self, Ledger};
use crate::backend::mysql::coord;
use crate::error::{Error, Result};
use crate::sql::mysql_literal;

/// The connection that holds a lease (a named lock) and the budget of the lease's pool.
///
/// Lock it for a statement or a few, never while the lease's pool opens a connection: the pool
/// takes its budget on this connection.
#[derive(Debug, Clone)]
pub(super) struct Holder(Arc<tokio::sync::Mutex<Option<MySqlConnection>>>);

impl Holder {
    pub(super) fn new(conn: MySqlConnection) -> Self {
        Self(Arc::new(tokio::sync::Mutex::new(Some(conn))))
    }

    /// The connection, until the guard goes.
    pub(super) async fn lock(&self) -> Result<tokio::sync::MappedMutexGuard<'_, MySqlConnection>> {
        tokio::sync::MutexGuard::try_map(self.0.lock().await, Option::as_mut).map_err(|_| {
            Error::Internal("the connection holding the test database's lease was closed".into())
        })
    }

    /// Frees the lease and budget slots, then closes the connection.
    ///
    /// The server frees a closed session's named locks when its thread notices the close, which
    /// may come after `close` returns: released first, they are free for whoever asks next (a
    /// test leasing the slot, `seedbed list`). A connection that cannot run the release frees
    /// them as it closes.
    pub(super) async fn close(&self) {
        let conn = self.0.lock().await.take();
        if let Some(mut conn) = conn {
            let _ = sqlx::raw_sql("DO RELEASE_ALL_LOCKS()")
                .execute(&mut conn)
                .await;
            let _ = conn.close().await;
        }
    }

    /// The budget of a pool serving this holder's lease, at most `max` connections.
    pub(super) fn pool_budget(&self, max: u32) -> Arc<budget::PoolBudget> {
        let ledger: Arc<dyn Ledger> = Arc::new(HolderLedger {
            holder: self.clone(),
            held: Mutex::new(HashSet::new()),
        });
        Arc::new(budget::PoolBudget::new(ledger, max))
    }
}

/// A holder's budget slots.
#[derive(Debug)]
struct HolderLedger {
    holder: Holder,
    /// The slots this holder's session holds: a named lock is re-entrant, so taking one again
    /// would succeed and count it twice.
    held: Mutex<HashSet<i64>>,
}

impl HolderLedger {
    fn held(&self) -> std::sync::MutexGuard<'_, HashSet<i64>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// How many connections the server allows the user of `conn`: the smaller of `max_connections`
/// and the account's `MAX_USER_CONNECTIONS`, when it has one (the session's
/// `max_user_connections` is the account's own limit then).
async fn allowed_on(conn: &mut MySqlConnection) -> Result<i64> {
    let context = "reading max_connections";
    let row = sqlx::raw_sql(
        "SELECT CAST(@@max_connections AS SIGNED), CAST(@@max_user_connections AS SIGNED)",
    )
    .fetch_one(conn)
    .await
    .map_err(Error::db(context))?;
    let max: i64 = row.try_get(0).map_err(Error::db(context))?;
    let user: i64 = row.try_get(1).map_err(Error::db(context))?;
    Ok(if user > 0 { max.min(user) } else { max })
}

/// The connection budget's size for the user of `conn`.
#[cfg_attr(
    not(feature = "bench"),
    allow(
        dead_code,
        reason = "seedbed bench prints it; the engine sizes its ledger itself"
    )
)]
pub(crate) async fn size(conn: &mut MySqlConnection) -> Result<i64> {
    budget::sized(allowed_on(conn)).await
}

/// The name of budget slot `slot`.
fn slot_key(slot: i64) -> String {
    coord::key(&format!("budget:{slot}"))
}

/// `SELECT f(key, extra), …` for each of `keys`, sent as text (one round trip, where a statement
/// prepared the first time costs two): each call's answer, 1 for yes.
async fn ask_each(
    conn: &mut MySqlConnection,
    function: &str,
    extra: &str,
    keys: &[String],
    context: &'static str,
) -> Result<Vec<bool>> {
    let calls: Vec<String> = keys
        .iter()
        .map(|key| format!("{function}({}{extra})", mysql_literal(key)))
        .collect();
    let sql = format!("SELECT {}", calls.join(", "));
    let row = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .fetch_one(conn)
        .await
        .map_err(Error::db(context))?;
    (0..keys.len())
        .map(|i| {
            row.try_get::<Option<i64>, _>(i)
                .map(|v| v == Some(1))
                .map_err(Error::db(context))
        })
        .collect()
}

#[async_trait]
impl Ledger for HolderLedger {
    fn free_pass(&self) -> &'static AtomicBool {
        static FREE_PASS: AtomicBool = AtomicBool::new(true);
        &FREE_PASS
    }

    async fn allowed(&self) -> Result<i64> {
        static ALLOWED: tokio::sync::OnceCell<i64> = tokio::sync::OnceCell::const_new();
        ALLOWED
            .get_or_try_init(|| async { allowed_on(&mut *self.holder.lock().await?).await })
            .await
            .copied()
    }

    async fn take(self: Arc<Self>, n: i64, total: i64) -> Result<Vec<i64>> {
        let first = budget::first_slot(total);
        let candidates: Vec<i64> = {
            let held = self.held();
            (0..total)
                .map(|i| (first + i) % total)
                .filter(|slot| !held.contains(slot))
                .collect()
        };
        if candidates.is_empty() || n <= 0 {
            return Ok(Vec::new());
        }
        let mut conn = self.holder.lock().await?;
        // Which are free, asked all at once; then as many of those as wanted taken, in one
        // statement of exactly those (a slot another session takes meanwhile is not taken).
        let keys: Vec<String> = candidates.iter().map(|s| slot_key(*s)).collect();
        let free = ask_each(
            &mut conn,
            "IS_FREE_LOCK",
            "",
            &keys,
            "looking for free connection budget",
        )
        .await?;
        let wanted = usize::try_from(n).unwrap_or(usize::MAX);
        let chosen: Vec<i64> = candidates
            .iter()
            .zip(&free)
            .filter(|(_, free)| **free)
            .map(|(slot, _)| *slot)
            .take(wanted)
            .collect();
        if chosen.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = chosen.iter().map(|s| slot_key(*s)).collect();
        let got = ask_each(
            &mut conn,
            "GET_LOCK",
            ", 0",
            &keys,
            "reserving connection budget",
        )
        .await?;
        let taken: Vec<i64> = chosen
            .into_iter()
            .zip(got)
            .filter(|(_, got)| *got)
            .map(|(slot, _)| slot)
            .collect();
        self.held().extend(taken.iter().copied());
        Ok(taken)
    }

    async fn release(self: Arc<Self>, slots: Vec<i64>) -> Result<()> {
        {
            let mut held = self.held();
            for slot in &slots {
                held.remove(slot);
            }
        }
        // A holder that closed has freed them already.
        let Ok(mut conn) = self.holder.lock().await else {
            return Ok(());
        };
        let keys: Vec<String> = slots.iter().map(|s| slot_key(*s)).collect();
        ask_each(
            &mut conn,
            "RELEASE_LOCK",
            "",
            &keys,
            "releasing connection budget",
        )
        .await
        .map(|_| ())
    }

    async fn evict_idle(&self) -> usize {
        super::evict_idle().await
    }
}
