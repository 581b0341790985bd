//! The SQLite backend, as far as it goes today: the factories' dialect ([`Dialect`] for
//! `sqlx::Sqlite`), so `create`, `create_list` and graphs write on a `SqlitePool`, a
//! `SqliteConnection` or a transaction, and introspection ([`Introspect`]: tables, columns,
//! keys, foreign keys and their deletion order, from SQLite's catalog and pragmas), and the
//! cleaner ([`Clean`]: back to what migrations left). The isolation strategies on SQLite are
//! not built yet.
//!
//! [`Clean`]: crate::backend::Clean
//!
//! [`Introspect`]: crate::backend::Introspect
//!
//! [`Dialect`]: crate::backend::Dialect

mod dialect;
mod introspect;

pub use self::clean::SqlitePlan;

mod clean;
