//! [`TestDb`], the handle a test works with; ending it is the strategy's [`Ending`].

use std::sync::Arc;

use sqlx::{Pool, Postgres};

use super::several::{NO_OTHERS, Others};
use super::strategies::Ending;
use crate::backend::Backend;
use crate::context::TestContext;
use crate::error::Result;
use crate::strategy::Strategy;

/// A test's database state: the pool for the code under test, the strategy that isolates it, and
/// the test context its factories use.
///
/// Get one from `#[seedbed::test]` (a test taking `db: TestDb`) or from [`Isolation::acquire`](super::Isolation::acquire).
/// End it with [`finish`](Self::finish); a `TestDb` dropped without it (a panicking test in a
/// custom harness) is cleaned all the same: Rollback's transaction dies with its connection, and
/// a Truncate database is emptied before its next use.
///
/// `DB` is the backend ([`Backend`]): `sqlx::Postgres` unless named, so `TestDb` is
/// `TestDb<Postgres>` and [`pool`](Self::pool) gives a `PgPool`.
///
/// ```no_run
/// # async fn demo() -> Result<(), seedbed::Error> {
/// use seedbed::prelude::*;
///
/// let db: TestDb = Isolation::new(Strategy::Rollback).acquire().await?;
/// let pool: sqlx::PgPool = db.pool();
/// let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&pool).await?;
/// assert_eq!(one, 1);
/// db.finish().await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct TestDb<DB: Backend = Postgres> {
    pub(super) inner: Arc<Inner<DB>>,
}

#[derive(Debug)]
pub(super) struct Inner<DB: Backend> {
    pub(super) strategy: Strategy,
    pub(super) pool: Pool<DB>,
    pub(super) ctx: Arc<TestContext>,
    pub(super) database: String,
    pub(super) server: &'static DB::Server,
    pub(super) state: std::sync::Mutex<Option<Box<dyn Ending<DB>>>>,
    /// What a failed test left for inspection, if anything.
    pub(super) kept: std::sync::Mutex<Option<Kept>>,
    /// The test's other databases, if it has any.
    pub(super) others: std::sync::OnceLock<Others>,
}

/// What a failed test left for inspection ([`TestDb::kept_state`]); `seedbed list` shows it and
/// `seedbed sweep --kept` removes it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kept {
    /// A database of its own, by name: Template's copy, or Truncate's database (renamed out
    /// of the strategy's set, which takes another).
    Database(String),
    /// The rows it wrote to Namespace's shared database, which its journal lists under its
    /// token (`SELECT relid::regclass, pk FROM seedbed.journal WHERE token = …`).
    Rows {
        /// The shared database.
        database: String,
        /// The test's token.
        token: String,
    },
}

/// How a test ended, for [`TestDb::finish_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The test passed.
    Passed,
    /// The test failed or panicked.
    Failed,
}

impl<DB: Backend> TestDb<DB> {
    /// A pool for the code under test (a cheap clone).
    pub fn pool(&self) -> Pool<DB> {
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

    /// Another database of the test, on the same backend, by the name it has in
    /// `#[seedbed::test(databases(…))]` (or [`Isolation::also`](super::Isolation::also)); the
    /// test's own database answers to its name too. Each is isolated by the test's strategy and
    /// ended with it.
    ///
    /// ```no_run
    /// use seedbed::prelude::*;
    ///
    /// #[seedbed::test(databases(main = "migrations", audit = "tests/single_schema_migrations"))]
    /// async fn writes_both(db: TestDb) -> Result<(), seedbed::Error> {
    ///     let audit = db.named("audit")?;
    ///     sqlx::query("INSERT INTO accounts (email) VALUES ('signup@example.com')")
    ///         .execute(&audit.pool())
    ///         .await?;
    ///     Ok(())
    /// }
    /// ```
    pub fn named(&self, name: &str) -> Result<&TestDb<DB>> {
        self.named_on::<DB>(name)
    }

    /// Another database of the test on the backend `X`, which may differ from the test's own:
    /// `db.named_on::<sqlx::Sqlite>("cache")` for `cache = sqlite("migrations/cache")` in
    /// `databases(…)`.
    pub fn named_on<X: Backend>(&self, name: &str) -> Result<&TestDb<X>> {
        let others = self.inner.others.get();
        if others.and_then(|o| o.main.as_deref()) == Some(name) {
            return (self as &dyn std::any::Any)
                .downcast_ref::<TestDb<X>>()
                .ok_or_else(|| {
                    crate::error::Error::Config(format!(
                        "the test's own database `{name}` is on {}, not on {}: ask for it with \
                         named(\"{name}\")",
                        std::any::type_name::<DB>(),
                        std::any::type_name::<X>()
                    ))
                });
        }
        others.unwrap_or(&NO_OTHERS).get::<X>(name)
    }

    /// Whether a failed test's state was kept for inspection (Template, Truncate, Namespace):
    /// see [`kept_state`](Self::kept_state); `seedbed sweep --kept` removes it.
    pub fn kept(&self) -> bool {
        self.kept_state().is_some()
    }

    /// What a failed test left for inspection, once the test ended: its database (a kept
    /// Truncate database has a new name; [`url`](Self::url) names it) or its rows.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), seedbed::Error> {
    /// use seedbed::isolation::{Kept, Outcome};
    /// use seedbed::prelude::*;
    /// let db: TestDb = Isolation::new(Strategy::Truncate).acquire().await?;
    /// let handle = db.clone_handle();
    /// db.finish_with(Outcome::Failed).await?;
    /// if let Some(Kept::Database(name)) = handle.kept_state() {
    ///     println!("psql {}", handle.url().unwrap_or(name));
    /// }
    /// # Ok(()) }
    /// ```
    pub fn kept_state(&self) -> Option<Kept> {
        self.inner
            .kept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// A second handle on the same test (for looking at it after
    /// [`finish_with`](Self::finish_with) took the first).
    pub fn clone_handle(&self) -> TestDb<DB> {
        self.handle()
    }

    /// Connection options for the test's database (to build a pool of one's own).
    pub fn connect_options(&self) -> <DB::Connection as sqlx::Connection>::Options {
        self.inner.pool.connect_options().as_ref().clone()
    }

    /// A URL of the test's database where it has one of its own (Truncate, Template); `None`
    /// under Rollback, whose database is shared and whose data only the test's connection sees.
    /// Under Namespace, connections made from it carry the test's token, as `pool()`'s do.
    /// After a failed test whose database was kept under a new name (Truncate), it is that
    /// database's.
    pub fn url(&self) -> Option<String> {
        if let Some(Kept::Database(kept)) = self.kept_state() {
            return Some(DB::url(self.inner.server, &kept));
        }
        let url = DB::url(self.inner.server, &self.inner.database);
        match self.inner.strategy {
            Strategy::Rollback => None,
            Strategy::Namespace => Some(DB::with_token(&url, self.inner.ctx.token())),
            _ => Some(url),
        }
    }

    /// A second handle on the same test database, for the harness that finishes it.
    pub(crate) fn handle(&self) -> TestDb<DB> {
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
        self.finish_inner(outcome).await
    }

    pub(super) async fn finish_inner(&self, outcome: Outcome) -> Result<()> {
        let state = self
            .inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let own = match state {
            Some(state) => state.finish(&self.inner, outcome).await,
            None => Ok(()),
        };
        let others = match self.inner.others.get() {
            Some(others) => others.finish(outcome).await,
            None => Ok(()),
        };
        own.and(others)
    }

    /// Lines naming the test's other databases, for a failed test's report.
    pub(super) fn describe_others(&self) -> String {
        self.inner
            .others
            .get()
            .map(Others::describe)
            .unwrap_or_default()
    }
}

impl<DB: Backend> Inner<DB> {
    /// Records that the test's database is kept for inspection.
    pub(super) fn mark_kept(&self) {
        self.keep(Kept::Database(self.database.clone()));
    }

    /// Records what the failed test left for inspection.
    pub(super) fn keep(&self, kept: Kept) {
        *self
            .kept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(kept);
    }
}

impl<DB: Backend> Drop for Inner<DB> {
    fn drop(&mut self) {
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
