//! Namespace on MySQL: one shared database with the row journal. A process's pool carries a
//! *key* (`@seedbed_token` on each of its connections) that the journal records the pool's
//! inserted rows under; the key's lock is held while the pool lives. At a test's end the rows
//! under the key are removed; a failed test's are moved under its token and kept.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use async_trait::async_trait;
use sqlx::{MySql, MySqlPool};

use super::super::engine;
use super::super::strategies::Ending;
use super::super::testdb::{Inner, Kept, Outcome};
use super::budget::Holder;
use super::image;
use super::{Acquired, Freshness, Isolation, PoolSettings, acquire_waiting, close};
use crate::backend::Journal;
use crate::backend::mysql::{MySqlServer, coord, journal};
use crate::error::{Error, Result};

#[derive(Debug)]
struct Journaled {
    database: String,
    settings: PoolSettings,
    key: String,
    /// Connected to the shared database; holds the key's lock and the pool's budget; removes the
    /// key's rows.
    holder: Holder,
    pool: MySqlPool,
    budget: Arc<super::super::budget::PoolBudget>,
    fresh: Arc<Freshness>,
    /// What puts a kept connection's session settings back (see `restore_settings`).
    restore: Arc<str>,
}

/// Drops what [`idle`] keeps.
pub(super) fn forget_idle() {
    drop(std::mem::take(
        &mut *idle().lock().unwrap_or_else(PoisonError::into_inner),
    ));
}

/// Gives up the pools [`idle`] keeps; how many budget slots that freed.
pub(super) async fn evict_idle() -> usize {
    let kept = std::mem::take(&mut *idle().lock().unwrap_or_else(PoisonError::into_inner));
    let mut freed = 0;
    for journaled in kept {
        freed += journaled.give_back().await;
    }
    freed
}

impl Journaled {
    /// Closes the pool and its holder: the key, the lease and the budget are freed; how many
    /// budget slots.
    async fn give_back(self) -> usize {
        close(&self.pool).await;
        let freed = self.budget.forget();
        self.holder.close().await;
        freed
    }
}

fn idle() -> &'static Mutex<Vec<Journaled>> {
    static IDLE: OnceLock<Mutex<Vec<Journaled>>> = OnceLock::new();
    IDLE.get_or_init(|| Mutex::new(Vec::new()))
}

pub(super) async fn acquire(
    iso: &Isolation,
    server: &'static MySqlServer,
    test: &str,
    base_seed: u64,
) -> Result<Acquired> {
    let database = image::ready(iso, server, image::Kind::Shared).await?;
    let settings = PoolSettings::of(iso);
    let kept = {
        let mut idle = idle().lock().unwrap_or_else(PoisonError::into_inner);
        let found = idle
            .iter()
            .position(|j| j.database == database && j.settings == settings);
        found.map(|i| idle.swap_remove(i))
    };
    let journaled = match kept {
        // The pool served an earlier test: the session settings that test changed go back, and
        // a connection that made a TEMPORARY table closes (here rather than at that test's end,
        // which a process running one test would pay for nothing).
        Some(journaled) => {
            super::slots::reset_sessions(&journaled.pool, &journaled.budget, &journaled.restore)
                .await;
            journaled
        }
        None => engine::run(open(server, database.clone(), settings)).await?,
    };
    journaled.fresh.test_started();
    let token = crate::context::token_for(test, base_seed, 0);
    Ok(Acquired {
        database,
        pool: journaled.pool.clone(),
        token: Some(token.clone()),
        state: Box::new(Rows {
            token,
            keep: iso.namespace.keep_rows,
            journaled: Mutex::new(Some(journaled)),
        }),
    })
}

/// Opens a pool with a key of its own (the first free), sweeping what dead tests left first.
async fn open(
    server: &'static MySqlServer,
    database: String,
    settings: PoolSettings,
) -> Result<Journaled> {
    let database = database.as_str();
    let mut holder = server.connect_to(database).await?;
    static SWEPT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    if SWEPT.get().is_none() {
        if let Err(e) = <MySql as Journal>::sweep(&mut holder).await {
            // What dead tests left stays for a later sweep; this test can run.
            tracing::warn!(error = %e, "sweeping the shared MySQL database");
        }
        let _ = SWEPT.set(());
    }
    let mut key = None;
    for n in 0..10_000 {
        let candidate = format!("k{n}");
        if coord::try_take(&mut holder, &journal::token_lock(&candidate)).await? {
            key = Some(candidate);
            break;
        }
    }
    let key = key.ok_or_else(|| Error::Internal("no free journal key among 10000".into()))?;
    // Rows a dead process left under the key go before the key serves again.
    <MySql as Journal>::clean(&mut holder, &key).await?;
    // The key is made here of a letter and digits: safe as a literal.
    let set = Arc::new(format!("SET {} = '{key}';", journal::TOKEN_VARIABLE));
    let extra: Arc<dyn Fn() -> String + Send + Sync> = Arc::new(move || set.as_str().to_string());
    let fresh = Freshness::new();
    let holder = Holder::new(holder);
    let budget = holder.pool_budget(settings.max_connections);
    let pool = settings.pool(
        server,
        server.options_for(database),
        &budget,
        Some(extra),
        Some(&fresh),
        None,
    );
    // Its first connection opens here, on the engine runtime: it serves the process's tests.
    let journaled = Journaled {
        database: database.to_string(),
        settings,
        key,
        holder,
        pool,
        budget,
        fresh,
        restore: super::restore_settings(server).into(),
    };
    match acquire_waiting(&journaled.pool).await {
        Ok(mut first) => first.return_to_pool().await,
        Err(e) => {
            journaled.give_back().await;
            return Err(Error::db(format!(
                "connecting to {}",
                server.display_url(database)
            ))(e));
        }
    }
    journaled.fresh.warmed();
    Ok(journaled)
}

/// The test's rows, until its end.
#[derive(Debug)]
struct Rows {
    token: String,
    keep: bool,
    journaled: Mutex<Option<Journaled>>,
}

#[async_trait]
impl Ending<MySql> for Rows {
    async fn finish(self: Box<Self>, inner: &Inner<MySql>, outcome: Outcome) -> Result<()> {
        let journaled = self
            .journaled
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(journaled) = journaled else {
            return Ok(());
        };
        let ended = match journaled.holder.lock().await {
            Err(e) => Err(e),
            Ok(mut holder) if self.keep => {
                <MySql as Journal>::forget(&mut holder, &journaled.key).await
            }
            Ok(mut holder) if outcome != Outcome::Passed => {
                let moved = journal::hand_over(&mut holder, &journaled.key, &self.token).await;
                if moved.is_ok() {
                    inner.keep(Kept::Rows {
                        database: journaled.database.clone(),
                        token: self.token.clone(),
                    });
                }
                moved
            }
            Ok(mut holder) => <MySql as Journal>::clean(&mut holder, &journaled.key).await,
        };
        match ended {
            Ok(()) => {
                idle()
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(journaled);
                Ok(())
            }
            Err(e) => {
                journaled.give_back().await;
                Err(e)
            }
        }
    }
}
