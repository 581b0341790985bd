//! Reading a database's schema into the backend-neutral [`Schema`] model.

use std::future::Future;

use crate::error::Result;
use crate::schema::Schema;

/// Tables, columns, keys, foreign keys, checks and views, read from the backend's catalog.
pub trait Introspect: sqlx::Database {
    /// The schemas (namespaces) that hold the application's tables.
    fn user_schemas(
        conn: &mut Self::Connection,
    ) -> impl Future<Output = Result<Vec<String>>> + Send;

    /// The schema of the tables in `schemas`.
    fn introspect(
        conn: &mut Self::Connection,
        schemas: &[&str],
    ) -> impl Future<Output = Result<Schema>> + Send;
}
