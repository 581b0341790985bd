//! The isolation engine: every test gets a database state no other test sees and that leaves
//! nothing behind.
//!
//! This module holds the building blocks the strategies share: database-level [`lock`]s, the
//! [`marker`] that tells seedbed's databases from any other, [`Migrations`] and the
//! [`migrated`] databases built once per migrations checksum.

pub mod lock;
pub mod marker;
pub mod migrated;
mod migrations;

pub use self::migrations::Migrations;
