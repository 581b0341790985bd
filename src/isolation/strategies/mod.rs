//! The four strategies behind one trait each for their two moments: [`Isolate`] acquires a test's
//! database state as it starts, and the [`Ending`] it leaves in the test's handle ends that state
//! (rolled back, emptied, recycled or kept, rows removed by token) or, when the handle is dropped
//! unfinished, gives back what it holds.
//!
//! Each strategy is one file here; the machinery it runs on (the transaction pool, slots and
//! leases, clones and spares, the row journal, the schema pool) sits beside this folder.

use async_trait::async_trait;
use sqlx::Postgres;

use super::builder::{Acquired, Isolation};
use super::testdb::{Inner, Outcome};
use crate::backend::Backend;
use crate::backend::postgres::server::Server;
use crate::error::Result;
use crate::strategy::Strategy;

mod namespace;
mod rollback;
mod template;
mod truncate;

/// How a strategy starts a test on the backend `DB`.
pub(super) trait Isolate<DB: Backend> {
    /// This strategy's own settings ([`TruncateOptions`](super::TruncateOptions), …).
    type Options;

    /// The strategy's settings among `iso`'s.
    fn options(iso: &Isolation) -> &Self::Options;

    /// The test's database state, acquired with `iso`'s common settings and the strategy's
    /// `options` on `server` for the test named `test`; `base_seed` derives the test's token.
    async fn acquire(
        iso: &Isolation,
        options: &Self::Options,
        server: &'static DB::Server,
        test: &str,
        base_seed: u64,
    ) -> Result<Acquired<DB>>;
}

/// What a strategy keeps in the test's handle until the test ends.
#[async_trait]
pub(super) trait Ending<DB: Backend>: Send + Sync + std::fmt::Debug {
    /// Ends the test's state after a test that ended as `outcome`.
    async fn finish(self: Box<Self>, inner: &Inner<DB>, outcome: Outcome) -> Result<()>;

    /// The handle was dropped without [`finish`](Self::finish) (a test that panicked in a
    /// harness of its own): gives back what cannot wait for the next test. By default nothing:
    /// a connection closes with its pool, and a lease not cleaned is emptied before its next use.
    fn abandon(self: Box<Self>, inner: &Inner<DB>) {
        let _ = inner;
    }
}

/// Acquires with `strategy`'s implementation.
pub(super) async fn acquire(
    strategy: Strategy,
    iso: &Isolation,
    server: &'static Server,
    test: &str,
    base_seed: u64,
) -> Result<Acquired<Postgres>> {
    match strategy {
        Strategy::Rollback => with::<rollback::Rollback>(iso, server, test, base_seed).await,
        Strategy::Truncate => with::<truncate::Truncate>(iso, server, test, base_seed).await,
        Strategy::Template => with::<template::Template>(iso, server, test, base_seed).await,
        Strategy::Namespace => with::<namespace::Namespace>(iso, server, test, base_seed).await,
    }
}

/// Acquires with `S`, given its own settings.
async fn with<S: Isolate<Postgres>>(
    iso: &Isolation,
    server: &'static Server,
    test: &str,
    base_seed: u64,
) -> Result<Acquired<Postgres>> {
    // Boxed: each strategy's future is large in a debug build, and a test thread's stack holds
    // the harness's future.
    Box::pin(S::acquire(iso, S::options(iso), server, test, base_seed)).await
}
