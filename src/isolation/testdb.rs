//! [`TestDb`], the handle a test works with; ending it is the strategy's [`Ending`].

use std::sync::Arc;

use sqlx::PgPool;
use sqlx::postgres::PgConnectOptions;

use super::engine;
use super::strategies::{Ending, release_token};
use crate::backend::postgres::clean;
use crate::backend::postgres::server::Server;
use crate::context::TestContext;
use crate::error::{Error, Result};
use crate::strategy::Strategy;

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
    pub(super) state: std::sync::Mutex<Option<Box<dyn Ending>>>,
    pub(super) token_claim: std::sync::Mutex<Option<String>>,
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
                    crate::backend::postgres::journal::TOKEN_SETTING,
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
        state.finish(&self.inner, outcome).await
    }
}

impl Inner {
    /// Records that the test's database is kept for inspection.
    pub(super) fn mark_kept(&self) {
        *self
            .kept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = true;
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
        let state = self
            .state
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(state) = state {
            state.abandon(self);
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
    let result = if clean::is_prepared(&mut conn).await? {
        match clean::CleaningPlan::load(&mut conn).await {
            Ok(plan) => clean::clean(&mut conn, &plan, false).await.map(|_| ()),
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
