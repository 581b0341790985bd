//! [`Isolated`]: the backends the isolation engine can start a test on, so
//! [`Isolation::acquire_on`](super::Isolation::acquire_on) and `#[seedbed::test]` pick the
//! backend from a type.

use std::future::Future;
use std::sync::Arc;

use sqlx::Postgres;

use super::builder::Isolation;
use super::testdb::{Inner, TestDb};
use crate::backend::Backend;
use crate::backend::postgres::server::Server;
use crate::error::Result;

/// A backend the isolation engine starts tests on: `sqlx::Postgres`, `sqlx::Sqlite` with the
/// `sqlite` feature, and `sqlx::MySql` with the `mysql` feature. Implemented by seedbed's backends only ([`Backend`] is sealed).
///
/// ```
/// # #[cfg(feature = "sqlite")] {
/// fn takes<DB: seedbed::isolation::Isolated>() {}
/// takes::<sqlx::Postgres>();
/// takes::<sqlx::Sqlite>();
/// # }
/// ```
pub trait Isolated: Backend {
    /// Acquires the test's database state as `iso` says. Call
    /// [`Isolation::acquire_on`](super::Isolation::acquire_on) instead.
    #[doc(hidden)]
    fn acquire_test_db(iso: Isolation) -> impl Future<Output = Result<TestDb<Self>>> + Send;
}

impl Isolated for Postgres {
    async fn acquire_test_db(mut iso: Isolation) -> Result<TestDb<Postgres>> {
        let (name, strategy, ctx_builder, base_seed) = iso.start()?;
        // Not connected to yet: the first connection the strategy needs reaches it.
        let server = Server::get().await?;
        iso.role = iso.resolve_role()?;
        if let Some(role) = &iso.role {
            iso.check_role_applies(strategy)?;
            super::role::ensure(server, role).await?;
        }
        let acquired = super::strategies::acquire(strategy, &iso, server, &name, base_seed).await?;
        let ctx_builder = match &acquired.token {
            Some(token) => ctx_builder.token(token.clone()),
            None => ctx_builder,
        };
        Ok(TestDb {
            inner: Arc::new(Inner {
                strategy,
                pool: acquired.pool,
                ctx: Arc::new(ctx_builder.build()),
                database: acquired.database,
                server,
                state: std::sync::Mutex::new(Some(acquired.state)),
                kept: std::sync::Mutex::new(None),
                others: std::sync::OnceLock::new(),
            }),
        })
    }
}

#[cfg(feature = "sqlite")]
impl Isolated for sqlx::Sqlite {
    async fn acquire_test_db(iso: Isolation) -> Result<TestDb<sqlx::Sqlite>> {
        super::sqlite::acquire(iso).await
    }
}

#[cfg(feature = "mysql")]
impl Isolated for sqlx::MySql {
    async fn acquire_test_db(iso: Isolation) -> Result<TestDb<sqlx::MySql>> {
        super::mysql::acquire(iso).await
    }
}
