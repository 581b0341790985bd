//! The backend seam: what seedbed needs from a database engine, one trait per concern, and
//! [`Backend`], which ties them to the engine's sqlx database type.
//!
//! | concern | trait | PostgreSQL | SQLite | MySQL |
//! |---|---|---|---|---|
//! | where the server comes from | [`Provision`] | a URL, or the embedded cluster (`postgres::server`) | a directory of database files | a URL, or the embedded server (`mysql::embedded`) |
//! | create, clone, drop, markers | [`Admin`] | `CREATE DATABASE … TEMPLATE`, the database's comment | files, copies, a marker file | `CREATE DATABASE`, definitions replayed, `seedbed.markers` |
//! | locks between processes and hosts | [`Coord`] | session advisory locks, one key scheme | OS file locks | named locks (`GET_LOCK`) |
//! | tables, columns, keys | [`Introspect`] | `pg_catalog` | `sqlite_schema` and pragmas | `information_schema` |
//! | emptying a database | [`Clean`] | dirty-table triggers, ordered `DELETE` | one statement running a trigger | one probe statement, `DELETE` without key checks |
//! | Namespace's row journal | [`Journal`] | statement triggers with transition tables | per-connection `TEMP` triggers | `AFTER INSERT` row triggers, a session variable |
//! | factories' statements | [`Dialect`] | sea-query's PostgreSQL builder, arrays, `RETURNING` | sea-query's SQLite builder, `RETURNING` | sea-query's MySQL builder, `RETURNING` (MariaDB) or `LAST_INSERT_ID()` |
//!
//! A backend is the sqlx database type (`sqlx::Postgres`) implementing every trait; the test
//! handle is generic over it (`TestDb<DB = Postgres>`), so a test names its
//! backend by the pool type it takes. The strategies are implemented per backend, on these
//! traits and on what each engine offers beyond them ([`Capabilities`]).
//!
//! Layering: a backend names only the crate's vocabulary (errors, the schema model, quoting,
//! leaf helpers), never the isolation engine or the factories above it.

mod admin;
mod clean;
mod coord;
mod dialect;
mod introspect;
mod journal;
mod provision;

#[cfg(feature = "mysql")]
pub mod mysql;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "sqlite")]
pub mod sqlite;

pub use self::admin::{Admin, Marker};
pub use self::clean::Clean;
pub use self::coord::{Coord, LockMode};
pub use self::dialect::{
    DecodeFn, Decoders, Dialect, FailureKind, InsertShape, KeyColumns, StatementFailure,
};
pub use self::introspect::Introspect;
pub use self::journal::Journal;
pub use self::provision::Provision;

/// What a backend can do, for strategies and tests to ask rather than assume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// The server copies a database from a template (Template's clone).
    pub clone_database: bool,
    /// DDL runs inside a transaction and rolls back with it (Rollback contains migrations a
    /// test runs).
    pub transactional_ddl: bool,
    /// Several schemas in one database (Namespace's schema mode).
    pub schemas: bool,
    /// The row journal ([`Journal`]) records inserted rows by token (Namespace's data mode).
    pub row_journal: bool,
    /// `INSERT … RETURNING` reads back what the database assigned.
    pub returning: bool,
}

mod sealed {
    /// Only seedbed's backends implement [`Backend`](super::Backend).
    pub trait Sealed {}
}

/// A database engine seedbed isolates tests on: its sqlx database type with every concern
/// implemented. Implemented by seedbed's backends only: `sqlx::Postgres` with the `postgres`
/// feature, `sqlx::Sqlite` with the `sqlite` feature, `sqlx::MySql` with the `mysql` feature.
///
/// ```
/// # #[cfg(feature = "postgres")] {
/// use seedbed::backend::Backend;
/// assert_eq!(<sqlx::Postgres as Backend>::NAME, "postgres");
/// assert!(<sqlx::Postgres as Backend>::CAPABILITIES.clone_database);
/// # }
/// ```
pub trait Backend:
    sealed::Sealed + Provision + Admin + Coord + Introspect + Clean + Journal + Dialect
{
    /// The backend's name in URLs, attributes and messages.
    const NAME: &'static str;
    /// What it can do.
    const CAPABILITIES: Capabilities;
}
