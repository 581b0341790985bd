//! Where a backend's server comes from, and how tests reach its databases.

use std::future::Future;

use crate::error::Result;

/// The server a process's tests share: named by a URL from the environment, or one seedbed
/// provisions itself (PostgreSQL's embedded cluster).
pub trait Provision: sqlx::Database {
    /// A resolved server: where it is, its version, how to reach it.
    type Server: std::fmt::Debug + Send + Sync + 'static;

    /// The server every test of the process uses, resolved once (not connected to yet).
    fn server() -> impl Future<Output = Result<&'static Self::Server>> + Send;

    /// Options to connect to `database` on `server`.
    fn connect_options(
        server: &Self::Server,
        database: &str,
    ) -> <Self::Connection as sqlx::Connection>::Options;

    /// A URL of `database` on `server`, for the user's tools and failure messages.
    fn url(server: &Self::Server, database: &str) -> String;

    /// `url` with the session setting that carries a test's token (Namespace) added, so
    /// connections made from it carry the token as the test's own do.
    fn with_token(url: &str, token: &str) -> String;

    /// A new connection to the server's maintenance database, where databases are created and
    /// coordination locks are taken.
    fn maintenance(server: &Self::Server) -> impl Future<Output = Result<Self::Connection>> + Send;
}
