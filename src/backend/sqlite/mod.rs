//! The SQLite backend, as far as it goes today: the factories' dialect ([`Dialect`] for
//! `sqlx::Sqlite`), so `create`, `create_list` and graphs write on a `SqlitePool`, a
//! `SqliteConnection` or a transaction. The isolation strategies on SQLite are not built yet.
//!
//! [`Dialect`]: crate::backend::Dialect

mod dialect;
