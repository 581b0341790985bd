//! The isolation engine: every test gets a database state no other test sees and that leaves
//! nothing behind.
//!
//! The public surface is what a test needs ([`Isolation`], [`TestDb`], [`Strategy`],
//! [`Migrations`]) and what the `seedbed` command needs ([`maintenance`]). The building blocks the
//! strategies share (locks, markers, the registry, cleaners, the databases seedbed builds) are
//! internal; seedbed's own tests reach them through the `internals` feature.

pub(crate) mod budget;
mod builder;
pub(crate) mod engine;
#[doc(hidden)]
pub mod harness;
mod isolated;
mod migrations;
#[cfg(feature = "mysql")]
pub(crate) mod mysql;
mod options;
mod pool;
mod role;
mod seed;
mod several;
#[cfg(feature = "sqlite")]
mod sqlite;
mod strategies;
mod testdb;
internal!(clones, databases, registry, schema_pool, slots, transaction);

/// What the `seedbed` command does between test runs: list seedbed's databases, sweep what dead
/// or finished test processes left behind, and build the migrated database for a set of
/// migrations.
///
/// ```no_run
/// # async fn demo() -> Result<(), seedbed::Error> {
/// use seedbed::isolation::maintenance;
///
/// let server = seedbed::server::Server::resolve().await?;
/// let mut conn = server.connect().await?;
/// for entry in maintenance::list(&mut conn).await? {
///     println!("{} {}", entry.name, entry.state);
/// }
/// # Ok(()) }
/// ```
pub mod maintenance {
    pub use super::databases::{MigratedDb, ensure as migrated_database};
    #[cfg(feature = "mysql")]
    pub use super::mysql::{MySqlEntry, MySqlSwept, list as list_mysql, sweep as sweep_mysql};
    pub use super::registry::{Entry, Swept, list, sweep};
    pub use super::schema_pool::sweep_all as sweep_schema_pools;
    #[cfg(feature = "sqlite")]
    pub use super::sqlite::{SqliteSwept, sweep as sweep_sqlite};
    pub use crate::backend::postgres::journal::{
        KeptRows, list_kept as list_kept_rows, sweep_all as sweep_namespace_rows,
    };
}

pub use self::builder::{
    DEFAULT_ACQUIRE_TIMEOUT, DEFAULT_LOCK_TIMEOUT, DEFAULT_STATEMENT_TIMEOUT, IntoMigrations,
    Isolation, MigrationSource,
};
pub use self::isolated::Isolated;
pub use self::migrations::{MigrateFuture, MigrationConnection, Migrations, checksum_files};
pub use self::options::{
    DataMode, NamespaceMode, NamespaceOptions, SchemaMode, TemplateOptions, TruncateOptions,
};
#[doc(hidden)]
pub use self::seed::seed_result;
pub use self::seed::{Seed, SeedFn};
pub use self::testdb::{Kept, Outcome, TestDb};
pub use crate::strategy::{Strategy, StrategySource};
