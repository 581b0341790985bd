//! Emptying a migrated database again: finding the tables a test wrote and deleting their rows
//! in foreign-key order, the rows migrations inserted restored.

use std::future::Future;

use crate::error::Result;
use crate::schema::Schema;

/// The cleaner Truncate runs after each test (and Rollback when code escaped its transaction).
pub trait Clean: sqlx::Database {
    /// What the cleaner reads once per database: the deletion order, the lookup rows to restore.
    type Plan: std::fmt::Debug + Send + Sync;

    /// Prepares a freshly migrated database for cleaning: keeps a copy of the rows migrations
    /// inserted and, with `track`, records which tables each transaction writes.
    fn prepare(
        conn: &mut Self::Connection,
        schema: &Schema,
        track: bool,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Reads the plan of the prepared database `conn` is connected to.
    fn plan(conn: &mut Self::Connection) -> impl Future<Output = Result<Self::Plan>> + Send;

    /// Empties the tables that have rows, children first, and restores the lookup rows; with
    /// `reset_sequences`, sequences start again. Returns how many tables had rows.
    fn clean(
        conn: &mut Self::Connection,
        plan: &Self::Plan,
        reset_sequences: bool,
    ) -> impl Future<Output = Result<usize>> + Send;
}
