//! Namespace's row journal: the rows each test inserted, recorded by token as they are written,
//! so they can be removed by token when the test ends.

use std::future::Future;

use crate::error::Result;
use crate::schema::Schema;

/// The row journal of a shared database (an optional capability: see
/// [`Capabilities::row_journal`](super::Capabilities::row_journal)).
pub trait Journal: sqlx::Database {
    /// The session setting (or variable) that carries a test's token on its connections.
    const TOKEN_SETTING: &'static str;

    /// Installs the journal in a freshly migrated database.
    fn install(
        conn: &mut Self::Connection,
        schema: &Schema,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Whether the database `conn` is connected to has the journal.
    fn is_installed(conn: &mut Self::Connection) -> impl Future<Output = Result<bool>> + Send;

    /// Deletes the rows the test with `token` inserted, children first.
    fn clean(conn: &mut Self::Connection, token: &str) -> impl Future<Output = Result<()>> + Send;

    /// Forgets the journal of `token`, keeping its rows.
    fn forget(conn: &mut Self::Connection, token: &str) -> impl Future<Output = Result<()>> + Send;

    /// Removes the rows of tokens whose test is gone; returns those tokens.
    fn sweep(conn: &mut Self::Connection) -> impl Future<Output = Result<Vec<String>>> + Send;
}
