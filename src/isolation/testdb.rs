//! [`TestDb`], the handle a test works with, and what ending a test does under each strategy.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgConnectOptions;

use super::acquire_namespace::release_token;
use super::engine;
use super::pool::{ROLLBACK_POOLS, SharedPool, all_connections};
use super::rollback::{RollbackPool, RollbackState, Violation};
use super::truncate::{self, Lease};
use super::{cleaner, template};
use crate::context::TestContext;
use crate::error::{Error, Result};
use crate::server::Server;
use crate::strategy::Strategy;

/// What a strategy keeps for the end of the test.
#[derive(Debug)]
pub(super) enum StrategyState {
    Rollback {
        rp: Arc<RollbackPool>,
        state: Arc<RollbackState>,
        key: String,
    },
    Truncate {
        lease: Lease,
        pool: SharedPool,
        key: String,
        /// A database the user named (prepared for the cleaner on first use).
        named: bool,
    },
    Template {
        /// The template it was cloned from.
        template: String,
        database: String,
        test: String,
        /// The warm pool's configured size.
        spares: i64,
        /// A passing test's clone goes back to the pool (else it is dropped).
        recycle: bool,
        /// The budget of a pool opened ahead by this process (given back with the strategy's state).
        _budget: Option<super::budget::Reservation>,
    },
    Namespace {
        pool: SharedPool,
        key: String,
        token: String,
        keep_rows: bool,
        /// Schema mode: the test's schema, dropped after it.
        schema: Option<String>,
    },
}

/// A test's database state: the pool for the code under test, the strategy that isolates it, and
/// the test context its factories use.
///
/// Get one from `#[seedbed::test]` (a test taking `db: TestDb`) or from [`Isolation::acquire`](super::Isolation::acquire).
/// End it with [`finish`](Self::finish); a `TestDb` dropped without it (a panicking test in a
/// custom harness) is cleaned all the same: Rollback's transaction dies with its connection, and
/// a Truncate database is emptied before its next use.
#[derive(Debug)]
pub struct TestDb {
    pub(super) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(super) struct Inner {
    pub(super) strategy: Strategy,
    pub(super) pool: PgPool,
    pub(super) ctx: Arc<TestContext>,
    pub(super) database: String,
    pub(super) server: &'static Server,
    pub(super) state: std::sync::Mutex<Option<StrategyState>>,
    pub(super) token_claim: std::sync::Mutex<Option<String>>,
    pub(super) reset_sequences: bool,
    /// The test's database was kept for inspection (a failed test under Template).
    pub(super) kept: std::sync::Mutex<bool>,
}

/// How a test ended, for [`TestDb::finish_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The test passed.
    Passed,
    /// The test failed or panicked.
    Failed,
}

impl TestDb {
    /// A pool for the code under test (a cheap clone).
    pub fn pool(&self) -> PgPool {
        self.inner.pool.clone()
    }

    /// The strategy isolating this test.
    pub fn strategy(&self) -> Strategy {
        self.inner.strategy
    }

    /// The test's token (see [`TestContext`]).
    pub fn token(&self) -> &str {
        self.inner.ctx.token()
    }

    /// The test context: name, seed, token, sequences.
    pub fn context(&self) -> &Arc<TestContext> {
        &self.inner.ctx
    }

    /// The name of the database the test runs on.
    pub fn database(&self) -> &str {
        &self.inner.database
    }

    /// A URL of the test's database where it has one of its own (Truncate, Template); `None`
    /// under Rollback, whose database is shared and whose data only the test's connection sees.
    pub fn url(&self) -> Option<String> {
        let url = self.inner.server.url_for(&self.inner.database);
        match self.inner.strategy {
            Strategy::Rollback => None,
            // Connections made from it carry the token, as db.pool()'s do.
            Strategy::Namespace => {
                let sep = if url.contains('?') { '&' } else { '?' };
                Some(format!(
                    "{url}{sep}options=-c%20{}%3D{}",
                    super::namespace::TOKEN_SETTING,
                    self.inner.ctx.token()
                ))
            }
            _ => Some(url),
        }
    }

    /// Whether the test's database was kept for inspection (Template, after a failure): its URL
    /// is [`url`](Self::url), and `seedbed sweep --kept` removes it.
    pub fn kept(&self) -> bool {
        *self
            .inner
            .kept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Connection options for the test's database (to build a pool of one's own).
    pub fn connect_options(&self) -> PgConnectOptions {
        self.inner.pool.connect_options().as_ref().clone()
    }

    /// A second handle on the same test database, for the harness that finishes it.
    pub(crate) fn handle(&self) -> TestDb {
        TestDb {
            inner: Arc::clone(&self.inner),
        }
    }

    /// Ends a passing test: checks what the strategy could not contain, and cleans up.
    pub async fn finish(self) -> Result<()> {
        self.finish_with(Outcome::Passed).await
    }

    /// Ends the test. An error means the isolation was broken (the test must fail) or cleanup
    /// failed.
    pub async fn finish_with(self, outcome: Outcome) -> Result<()> {
        let result = self.finish_inner(outcome).await;
        let token = self
            .inner
            .token_claim
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(token) = token {
            // Nothing waits for it: a test claiming the same token meanwhile takes the next.
            let server = self.inner.server;
            engine::spawn_detached(async move { release_token(server, token).await });
        }
        result
    }

    pub(super) async fn finish_inner(&self, outcome: Outcome) -> Result<()> {
        let state = self
            .inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let Some(state) = state else {
            return Ok(());
        };
        let inner = &self.inner;
        match state {
            StrategyState::Rollback { rp, state, key } => {
                let server = inner.server;
                let (violation, reusable) =
                    rp.finish(&state, |pid| is_listening(server, pid)).await?;
                if reusable {
                    ROLLBACK_POOLS.put(&key, rp);
                } else {
                    rp.close().await;
                }
                match violation {
                    None => Ok(()),
                    Some(v) => {
                        // Whatever escaped the test's transaction is removed.
                        if matches!(
                            v,
                            Violation::TransactionEnded | Violation::ConnectionReplaced
                        ) {
                            clean_shared(server, &inner.database).await?;
                        }
                        Err(Error::Isolation {
                            strategy: inner.strategy,
                            message: v.explain().to_string(),
                        })
                    }
                }
            }
            StrategyState::Truncate {
                lease,
                pool,
                key,
                named,
            } => {
                // Once the test's connections are back, their sessions are reset and the
                // database is emptied through one of them.
                let Some(conns) = pool.all_connections().await else {
                    pool.discard().await;
                    // Cleaned before its next test (the lease is not known clean).
                    return Err(Error::Isolation {
                        strategy: inner.strategy,
                        message: "a connection of the test's pool did not come back within 2 s; \
                                  the database is emptied before its next test"
                            .into(),
                    });
                };
                // The test's own connection holds the lease (a process that runs one test): its
                // locks stay, and the slot is marked emptied for the next process that takes it.
                let by_test = lease.held_by_the_test();
                let written = lease.written_query();
                let (healthy, written, mut conns) = if by_test {
                    pool.reset_sessions_keeping_locks(conns, written).await
                } else {
                    let (healthy, _, conns) = pool.reset_sessions(conns, None).await;
                    (healthy, None, conns)
                };
                let cleaned = match conns.first_mut() {
                    Some(conn) if healthy => truncate::clean_after(
                        &lease,
                        conn,
                        inner.reset_sequences,
                        named,
                        by_test && !named,
                        written,
                    )
                    .await
                    .map(|_| ()),
                    // Cleaned before its next test.
                    _ => Ok(()),
                };
                if by_test {
                    drop(conns);
                    pool.discard().await;
                } else {
                    pool.keep(&key, conns, healthy && cleaned.is_ok()).await;
                }
                cleaned
            }
            StrategyState::Namespace {
                pool,
                key,
                token: _,
                keep_rows: _,
                schema: Some(schema),
            } => {
                match pool.all_connections().await {
                    Some(conns) => {
                        let (healthy, _, conns) = pool.reset_sessions(conns, None).await;
                        pool.keep(&key, conns, healthy).await;
                    }
                    None => pool.discard().await,
                }
                super::schema_pool::release(inner.server, &inner.database, &schema);
                Ok(())
            }
            StrategyState::Namespace {
                pool,
                key,
                token,
                keep_rows,
                schema: None,
            } => {
                // Once the test's connections are back (their work committed), its rows go.
                let Some(conns) = pool.all_connections().await else {
                    pool.discard().await;
                    return Err(Error::Isolation {
                        strategy: inner.strategy,
                        message: "a connection of the test's pool did not come back; its rows \
                                  stay until `seedbed sweep`"
                            .into(),
                    });
                };
                // The rows go (or their journal, with cleanup = "none") in the same round trip
                // as the sessions' reset.
                let statement = if keep_rows {
                    super::namespace::forget_statement(&token)
                } else {
                    super::namespace::clean_statement(&token)
                };
                let (healthy, cleaned, conns) = pool.reset_sessions(conns, Some(statement)).await;
                pool.keep(&key, conns, healthy).await;
                cleaned
            }
            StrategyState::Template {
                template,
                database,
                test,
                spares,
                recycle,
                _budget,
            } => {
                let passed = outcome == Outcome::Passed;
                if !passed {
                    let _ = tokio::time::timeout(Duration::from_secs(5), inner.pool.close()).await;
                    *inner
                        .kept
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = true;
                    return template::release(inner.server, &database, false, &test).await;
                }
                // Emptied through one of the test's connections and given to the next test when
                // the test changed no schema; else dropped in the background.
                let emptied = async {
                    recycle
                        && match all_connections(&inner.pool).await {
                            Some(conns) if !conns.is_empty() => template::empty(conns).await,
                            Some(_) => match inner.pool.acquire().await {
                                Ok(conn) => template::empty(vec![conn]).await,
                                Err(_) => false,
                            },
                            None => false,
                        }
                };
                // A process that runs many tests opens, meanwhile, the connection its next test
                // to claim this clone starts with (the test's own connections live on the
                // test's runtime, which ends with it).
                let opening = async {
                    if recycle && spares > 0 && !engine::adopted() {
                        template::open_ahead(inner.server, &template, &database).await
                    } else {
                        None
                    }
                };
                let (recycled, ahead) = tokio::join!(emptied, opening);
                // Every connection of the test is closed before the clone goes back.
                let closed = tokio::time::timeout(Duration::from_secs(5), inner.pool.close())
                    .await
                    .is_ok();
                if recycled && closed {
                    template::recycle(inner.server, &template, &database, spares, ahead).await
                } else {
                    if let Some(p) = ahead {
                        template::discard_ahead(p).await;
                    }
                    template::release(inner.server, &database, true, &test).await
                }
            }
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let token = self
            .token_claim
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(token) = token {
            let server = self.server;
            engine::spawn_detached(async move { release_token(server, token).await });
        }
        // A Template clone not finished (the test panicked in a harness of its own) is kept,
        // as for a failed test. The other strategies' own drops do the rest: Rollback's
        // connection closes with its pool, and a Truncate lease not cleaned is emptied before
        // its next use.
        let state = self
            .state
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        match state {
            Some(StrategyState::Template { database, test, .. }) => {
                let server = self.server;
                engine::spawn_detached(async move {
                    let _ = template::release(server, &database, false, &test).await;
                });
            }
            Some(StrategyState::Namespace {
                schema: Some(schema),
                ..
            }) => super::schema_pool::release(self.server, &self.database, &schema),
            _ => {}
        }
    }
}

/// Whether the server process `pid` last ran LISTEN (seen from the control connection).
pub(super) async fn is_listening(server: &'static Server, pid: u32) -> Result<bool> {
    engine::control()
        .with(server, move |conn| {
            Box::pin(async move {
                let pid = i32::try_from(pid).unwrap_or_default();
                let query: Option<String> =
                    sqlx::query_scalar("SELECT query FROM pg_stat_activity WHERE pid = $1")
                        .bind(pid)
                        .fetch_optional(conn)
                        .await
                        .map_err(Error::db("looking at the test's connection"))?;
                Ok(query.is_some_and(|q| {
                    let q = q.trim_start().to_ascii_uppercase();
                    q.starts_with("LISTEN") || q.starts_with("UNLISTEN")
                }))
            })
        })
        .await
}

/// Empties a shared database after code under test committed into it.
pub(super) async fn clean_shared(server: &'static Server, database: &str) -> Result<()> {
    let options = server.database_options(database);
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect_with(&options)
        .await
        .map_err(Error::db(format!("connecting to {database} to clean it")))?;
    let result = if cleaner::is_prepared(&mut conn).await? {
        match cleaner::CleaningPlan::load(&mut conn).await {
            Ok(plan) => cleaner::clean(&mut conn, &plan, false).await.map(|_| ()),
            Err(e) => Err(e),
        }
    } else {
        Err(Error::ForeignDatabase {
            database: database.to_string(),
            message: "it was not created by seedbed, so seedbed cannot remove what the test \
                      committed into it"
                .into(),
        })
    };
    let _ = sqlx::Connection::close(conn).await;
    result
}
