//! Namespace on SQLite: one shared database (WAL mode, the row journal installed). Each test's
//! pool gives its connections `TEMP` triggers that record the rows they insert under the pool's
//! journal key, and at the test's end one statement removes those rows. A process keeps its
//! pools, connections open, for its next Namespace tests (one test at a time per pool), so a
//! test pays for the removal, not for connections and triggers. Each pool's key is held as a
//! file lock while the process lives, so rows whose process died are found and removed by the
//! next process's sweep. The test's own token (for unique factory values) is claimed by a lock of
//! its own.
//!
//! `cleanup = "none"` keeps the test's rows: their journal entries are detached from the key.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use async_trait::async_trait;
use sqlx::{Connection, Sqlite, SqliteConnection, SqlitePool};

use super::super::engine::KeyedOnce;
use super::super::strategies::Ending;
use super::super::testdb::{Inner, Kept, Outcome};
use super::image;
use super::{Acquired, Isolation, PoolSettings};
use crate::backend::LockMode;
use crate::backend::sqlite::{Directory, coord, journal};
use crate::error::{Error, Result};

/// A pool on the shared database whose connections journal under `key`.
#[derive(Debug)]
struct Journaled {
    /// The shared database it is on.
    database: String,
    /// The test pool settings it was opened with: it serves only tests that would open the same.
    settings: PoolSettings,
    key: String,
    /// Held while the process lives: the sweeper leaves the key's rows alone.
    key_lock: coord::Lock,
    pool: SqlitePool,
}

/// Pools this process's finished Namespace tests gave back.
fn idle() -> &'static Mutex<Vec<Journaled>> {
    static IDLE: OnceLock<Mutex<Vec<Journaled>>> = OnceLock::new();
    IDLE.get_or_init(|| Mutex::new(Vec::new()))
}

pub(super) async fn acquire(
    iso: &Isolation,
    dir: &'static Directory,
    test: &str,
    base_seed: u64,
) -> Result<Acquired> {
    let database = image::ready(iso, dir, image::Kind::Shared).await?;
    let settings = PoolSettings::of(iso);
    let remover = remover(dir, &database).await?;
    static SWEPT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    SWEPT
        .get_or_try_init(|| async {
            let mut guard = remover.conn.lock().await;
            if let Err(e) = journal::sweep(remover.open(&mut guard).await?).await {
                // What dead tests left stays for a later sweep; this test can run.
                tracing::warn!(error = %e, "sweeping the shared SQLite database");
            }
            Ok::<(), Error>(())
        })
        .await?;
    let (token, token_lock) = claim(dir, test, base_seed)?;
    let kept = {
        let mut idle = idle().lock().unwrap_or_else(PoisonError::into_inner);
        let found = idle
            .iter()
            .position(|j| j.database == database && j.settings == settings);
        found.map(|i| idle.swap_remove(i))
    };
    let journaled = match kept {
        Some(journaled) => journaled,
        None => open(dir, &database, &remover, settings).await?,
    };
    // The fixtures are part of the shared database (see `image::ready`).
    Ok(Acquired {
        database,
        pool: journaled.pool.clone(),
        token: Some(token.clone()),
        state: Box::new(Rows {
            token,
            keep: iso.namespace.keep_rows,
            token_lock: Mutex::new(Some(token_lock)),
            journaled: Mutex::new(Some(journaled)),
        }),
    })
}

/// A new pool with a journal key of its own; its connections get their triggers as they open.
async fn open(
    dir: &'static Directory,
    database: &str,
    remover: &Remover,
    settings: PoolSettings,
) -> Result<Journaled> {
    // The first free key: keys (and their lock files) are reused run after run, and rows a
    // dead process left under one go with the first test that takes it, if no sweep took them.
    let mut taken = None;
    for n in 0..10_000 {
        let key = format!("k{n}");
        if let Some(lock) = coord::try_take(dir, &journal::token_lock(&key), LockMode::Exclusive)? {
            taken = Some((key, lock));
            break;
        }
    }
    let (key, key_lock) =
        taken.ok_or_else(|| Error::Internal("no free journal key among 10000".into()))?;
    let attach = Arc::new(journal_script(remover, database).await?.replace(KEY, &key));
    let pool = settings
        .pool_options(settings.max_connections)
        .after_connect(move |conn, _| {
            let attach = Arc::clone(&attach);
            Box::pin(async move {
                sqlx::raw_sql(sqlx::AssertSqlSafe(attach.as_str().to_owned()))
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            })
        })
        .connect_lazy_with(settings.connect_options(dir, database));
    Ok(Journaled {
        database: database.to_string(),
        settings,
        key,
        key_lock,
        pool,
    })
}

/// Stands for the journal key in the cached script.
const KEY: &str = "seedbed-journal-key-placeholder";

/// The `TEMP` triggers' script of the shared database (read on its remover connection), with
/// [`KEY`] for the key, read once per process.
async fn journal_script(remover: &Remover, database: &str) -> Result<Arc<String>> {
    static SCRIPTS: OnceLock<KeyedOnce<Arc<String>>> = OnceLock::new();
    SCRIPTS
        .get_or_init(KeyedOnce::new)
        .get_or_try_init(database, async {
            let mut guard = remover.conn.lock().await;
            let script = journal::attach_script(remover.open(&mut guard).await?, KEY).await?;
            Ok(Arc::new(script))
        })
        .await
}

/// The remover connection (`None` once closed, in a process that runs one test, until it is
/// needed again).
#[derive(Debug)]
struct Remover {
    options: sqlx::sqlite::SqliteConnectOptions,
    conn: tokio::sync::Mutex<Option<SqliteConnection>>,
}

/// The connection that sweeps the shared database, reads its journal's tables and removes
/// finished tests' rows, one per shared database and process (its own, without journal
/// triggers).
async fn remover(dir: &Directory, database: &str) -> Result<Arc<Remover>> {
    static REMOVERS: OnceLock<KeyedOnce<Arc<Remover>>> = OnceLock::new();
    REMOVERS
        .get_or_init(KeyedOnce::new)
        .get_or_try_init(database, async {
            Ok(Arc::new(Remover {
                options: dir.connect_options(database),
                conn: tokio::sync::Mutex::new(None),
            }))
        })
        .await
}

impl Remover {
    /// Its connection, opened if it is not.
    async fn open<'a>(
        &self,
        slot: &'a mut Option<SqliteConnection>,
    ) -> Result<&'a mut SqliteConnection> {
        if slot.is_none() {
            let mut conn = SqliteConnection::connect_with(&self.options)
                .await
                .map_err(Error::db("opening the shared database"))?;
            // Rows the application's delete triggers write while a test's rows go (an audit
            // table, say) are recorded too, and go after them.
            let script = journal::removal_script(&mut conn).await?;
            if !script.is_empty() {
                sqlx::raw_sql(sqlx::AssertSqlSafe(script))
                    .execute(&mut conn)
                    .await
                    .map_err(Error::db("giving the remover its journal triggers"))?;
            }
            *slot = Some(conn);
        }
        slot.as_mut()
            .ok_or_else(|| Error::Internal("the remover connection is gone".into()))
    }
}

/// The prefix of the file that marks a token a failed test's rows are kept under (until
/// `seedbed sweep --sqlite --kept`): no later test claims it.
pub(super) const KEPT_MARK: &str = "kept-token-";

fn kept_mark(dir: &Directory, token: &str) -> std::path::PathBuf {
    dir.path().join(format!("{KEPT_MARK}{token}"))
}

/// The first token derived from the test's name and seed that no running test holds, held.
fn claim(dir: &Directory, test: &str, base_seed: u64) -> Result<(String, coord::Lock)> {
    for attempt in 0..1000 {
        let token = crate::context::token_for(test, base_seed, attempt);
        if kept_mark(dir, &token).exists() {
            continue;
        }
        if let Some(lock) = coord::try_take(dir, &journal::token_lock(&token), LockMode::Exclusive)?
        {
            return Ok((token, lock));
        }
    }
    Err(Error::Internal(format!(
        "no free test token among 1000 candidates for {test}"
    )))
}

/// The test's rows, until its end.
#[derive(Debug)]
struct Rows {
    token: String,
    keep: bool,
    token_lock: Mutex<Option<coord::Lock>>,
    journaled: Mutex<Option<Journaled>>,
}

#[async_trait]
impl Ending<Sqlite> for Rows {
    async fn finish(self: Box<Self>, inner: &Inner<Sqlite>, outcome: Outcome) -> Result<()> {
        let dir = inner.server;
        let failed = outcome != Outcome::Passed && !self.keep;
        let journaled = self
            .journaled
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let token_lock = self
            .token_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(lock) = token_lock {
            lock.remove(dir, &journal::token_lock(&self.token));
        }
        let Some(journaled) = journaled else {
            return Ok(());
        };
        let remover = remover(dir, &inner.database).await?;
        let mut guard = remover.conn.lock().await;
        let done = match remover.open(&mut guard).await {
            Ok(conn) if self.keep => journal::forget(conn, &journaled.key).await,
            // A failed test's rows stay, under a token no test claims.
            Ok(conn) if failed => match journal::keep(conn, &journaled.key, &self.token).await {
                Ok(true) => {
                    let mark = kept_mark(dir, &self.token);
                    std::fs::write(&mark, inner.ctx.name())
                        .map_err(Error::io("marking a kept test token", &mark))
                        .map(|()| {
                            inner.keep(Kept::Rows {
                                database: inner.database.clone(),
                                token: journal::kept_token(&self.token),
                            })
                        })
                }
                Ok(false) => Ok(()),
                Err(e) => Err(e),
            },
            Ok(conn) => journal::clean(conn, &journaled.key).await,
            Err(e) => Err(e),
        };
        drop(guard);
        if crate::util::env::one_test_per_process() {
            // The process ends with its test: its connections close now, so SQLite folds the
            // WAL into the file for the next process.
            super::close(&journaled.pool).await;
            if let Some(conn) = remover.conn.lock().await.take() {
                let _ = conn.close().await;
            }
            journaled
                .key_lock
                .remove(dir, &journal::token_lock(&journaled.key));
            return done;
        }
        if done.is_ok() {
            idle()
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(journaled);
        } else {
            // The rows stay journaled under a key no one holds: the next sweep removes them.
            super::close(&journaled.pool).await;
            journaled.key_lock.release();
        }
        done
    }
}
