//! The isolation engine: every test gets a database state no other test sees and that leaves
//! nothing behind.
//!
//! This module holds the building blocks the strategies share: database-level [`lock`]s, the
//! [`marker`] that tells seedbed's databases from any other, [`Migrations`] and the
//! [`databases`]: the databases seedbed builds, migrated built once per migrations checksum.

mod acquire;
mod acquire_namespace;
pub(crate) mod budget;
mod builder;
pub mod cleaner;
pub mod databases;
pub(crate) mod engine;
#[doc(hidden)]
pub mod harness;
pub mod lock;
pub mod marker;
mod migrations;
pub mod namespace;
mod pool;
pub mod registry;
pub mod rollback;
pub mod schema_pool;
pub mod template;
mod testdb;
pub mod truncate;

pub use self::builder::{
    DEFAULT_ACQUIRE_TIMEOUT, DEFAULT_LOCK_TIMEOUT, DEFAULT_STATEMENT_TIMEOUT, Isolation,
    MigrationSource, NamespaceMode,
};
pub use self::migrations::Migrations;
pub use self::testdb::{Outcome, TestDb};
pub use crate::strategy::{Strategy, StrategySource};
