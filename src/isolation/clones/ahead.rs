//! Connections opened ahead: pools this process opens to its own spares (and to the clone a test
//! gives back), so the next test that claims one starts with its connection open.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use super::DEFAULT_POOL_CONNECTIONS;
use crate::backend::postgres::clean;
use crate::backend::postgres::server::Server;
use crate::isolation::budget::{self, Reservation};
use crate::isolation::engine;

/// Pools opened by this process to its own spares, with one connection each, on the engine
/// runtime: a test of this process that claims one of them starts with its connection open.
fn prepared() -> &'static Mutex<HashMap<String, Prepared>> {
    static PREPARED: OnceLock<Mutex<HashMap<String, Prepared>>> = OnceLock::new();
    PREPARED.get_or_init(|| Mutex::new(HashMap::new()))
}

/// A spare's pool, opened ahead of the test that will claim it.
#[derive(Debug)]
pub(crate) struct Prepared {
    /// The template the spare was cloned from.
    template: String,
    /// The pool, with one connection open.
    pub(crate) pool: PgPool,
    /// The budget for that connection.
    pub(crate) budget: Reservation,
    /// The test's session settings, for the pool's connections.
    pub(crate) settings: Arc<Mutex<Settings>>,
}

/// Session settings (`SET …` statements) for a prepared pool's connections.
#[derive(Debug, Default)]
pub(crate) struct Settings {
    /// To run on the open connection at its next checkout.
    pending: Option<String>,
    /// To run on every connection opened from now on.
    current: Option<String>,
}

impl Prepared {
    /// Gives the pool's connections the test's session settings.
    pub(crate) fn apply(&self, sql: String) {
        let mut settings = self.settings.lock().unwrap_or_else(PoisonError::into_inner);
        settings.pending = Some(sql.clone());
        settings.current = Some(sql);
    }
}

/// Opens a pool to a new spare with one connection. The first connection to a fresh clone also
/// builds its relation-cache file (`pg_internal.init`) and loads its catalogs, 5–10 ms the test
/// would otherwise wait for. Without budget to spare, the spare is only warmed.
pub(super) async fn prepare_pool(server: &'static Server, template: &str, name: &str) {
    if let Some(p) = open_ahead(server, template, name).await {
        keep_ahead(name, p);
    }
}

/// Opens, on the engine runtime, a pool to the clone `name` of `template` with one connection,
/// for the next test of this process that claims it (see [`keep_ahead`]): `None` without budget
/// to spare for it (the clone is then only warmed) or when it cannot connect.
pub(crate) async fn open_ahead(
    server: &'static Server,
    template: &str,
    name: &str,
) -> Option<Prepared> {
    let (template, name) = (template.to_string(), name.to_string());
    engine::run(async move { Ok(open_ahead_here(server, template, &name).await) })
        .await
        .ok()
        .flatten()
}

async fn open_ahead_here(
    server: &'static Server,
    template: String,
    name: &str,
) -> Option<Prepared> {
    let options = server
        .database_options(name)
        .application_name(clean::ahead_application_name());
    let settings = Arc::new(Mutex::new(Settings::default()));
    let (pending, fresh) = (Arc::clone(&settings), Arc::clone(&settings));
    let pool = PgPoolOptions::new()
        .max_connections(DEFAULT_POOL_CONNECTIONS)
        .min_connections(0)
        .test_before_acquire(false)
        // The test's settings, given when it claims the spare, are applied by the open
        // connection's next checkout (the test's first query, in the same round trip), and by
        // every connection the pool opens after that.
        .before_acquire(move |conn, _meta| {
            let pending = Arc::clone(&pending);
            Box::pin(async move {
                let sql = pending
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .pending
                    .take();
                if let Some(sql) = sql {
                    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                        .execute(&mut *conn)
                        .await?;
                }
                Ok(true)
            })
        })
        .after_connect(move |conn, _meta| {
            let fresh = Arc::clone(&fresh);
            Box::pin(async move {
                let sql = fresh
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .current
                    .clone();
                if let Some(sql) = sql {
                    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                        .execute(&mut *conn)
                        .await?;
                }
                Ok(())
            })
        })
        .connect_lazy_with(options);
    budget::on_shortage(evict_prepared);
    let Ok(Some(budget)) = budget::try_reserve(&budget::postgres(server), 1).await else {
        // The budget is spent: warm the clone and close the connection.
        let _ = sqlx::raw_sql("SELECT 1").execute(&pool).await;
        pool.close().await;
        return None;
    };
    if sqlx::raw_sql("SELECT 1").execute(&pool).await.is_ok() {
        Some(Prepared {
            template,
            pool,
            budget,
            settings,
        })
    } else {
        pool.close().await;
        None
    }
}

/// Keeps `p`, opened to the spare `name`, for the next test of this process that claims it
/// (which [`take_prepared_spare`] hands to that test, to claim first).
pub(crate) fn keep_ahead(name: &str, p: Prepared) {
    let old = prepared()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(name.to_string(), p);
    if let Some(old) = old {
        engine::spawn_detached(discard_ahead(old));
    }
}

/// Closes a pool opened ahead and gives its budget back.
pub(crate) async fn discard_ahead(p: Prepared) {
    p.pool.close().await;
    let _ = p.budget.give_back().await;
}

/// Takes a pool this process opened ahead to a spare of `template`, for its next test to claim
/// that spare first (it need not open a connection then). Taken, so no other test of this
/// process prefers the same spare; the caller closes it with [`discard_ahead`] if the claim
/// gives another.
pub(crate) fn take_prepared_spare(template: &str) -> Option<(String, Prepared)> {
    let mut all = prepared().lock().unwrap_or_else(PoisonError::into_inner);
    let name = all
        .iter()
        .find(|(_, p)| p.template == template)
        .map(|(name, _)| name.clone())?;
    all.remove(&name).map(|p| (name, p))
}

/// Closes the pools opened ahead to spares and gives their budget back now (a reservation found
/// the budget spent); returns how many slots it gave back. The spares stay, unopened.
fn evict_prepared() -> std::pin::Pin<Box<dyn std::future::Future<Output = usize> + Send + 'static>>
{
    Box::pin(async {
        let all: Vec<Prepared> = prepared()
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain()
            .map(|(_, p)| p)
            .collect();
        let mut freed = 0;
        for p in all {
            p.pool.close().await;
            let slots = p.budget.len();
            if p.budget.give_back().await.is_ok() {
                freed += slots;
            }
        }
        freed
    })
}

/// The pool this process opened to `name`, if it did.
pub(crate) fn take_prepared(name: &str) -> Option<Prepared> {
    prepared()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(name)
}
