//! The MySQL and MariaDB backend (feature `mysql`), for MySQL 8 and MariaDB 10.6 and later.
//!
//! | concern | MySQL |
//! |---|---|
//! | [`Provision`] | a `mysql://` URL ([`MySqlServer`]); the maintenance connection names no database |
//! | [`Admin`] | `CREATE DATABASE`; cloned by replaying the template's definitions and copying its rows; markers in `seedbed.markers` |
//! | [`Coord`] | named locks (`GET_LOCK`), freed by the server when the session holding them ends |
//! | [`Introspect`] | `information_schema` |
//! | [`Clean`] | one statement asks every table for rows; `DELETE` with foreign-key checks off; baselines put back |
//! | [`Journal`] | `AFTER INSERT` row triggers recording keys under `@seedbed_token` |
//! | [`Dialect`] | sea-query's MySQL builder, 65,535 bind parameters |
//!
//! Where MySQL and MariaDB differ, seedbed asks the server which it is ([`Flavor`]): MariaDB
//! writes a failed `CHECK` as error 4025 and MySQL as 3819, MariaDB quotes column defaults in the
//! catalog, and only MariaDB has `INSERT … RETURNING`. DDL commits on both: a Rollback test that
//! runs DDL is told to use Template.
//!
//! ```
//! # #[cfg(feature = "mysql")] {
//! use seedbed::backend::Backend;
//! assert_eq!(<sqlx::MySql as Backend>::NAME, "mysql");
//! assert!(!<sqlx::MySql as Backend>::CAPABILITIES.transactional_ddl);
//! # }
//! ```
//!
//! [`Provision`]: crate::backend::Provision
//! [`Admin`]: crate::backend::Admin
//! [`Coord`]: crate::backend::Coord
//! [`Introspect`]: crate::backend::Introspect
//! [`Clean`]: crate::backend::Clean
//! [`Journal`]: crate::backend::Journal
//! [`Dialect`]: crate::backend::Dialect

internal!(admin, coord, journal);
mod clean;
mod dialect;
pub mod embedded;
mod introspect;
mod server;

use std::time::Duration;

use sqlx::mysql::MySqlConnectOptions;
use sqlx::{MySql, MySqlConnection};

pub use self::clean::MySqlPlan;
// For the row generator (built with `postgres`), which asks whether the server returns rows
// from an INSERT.
#[cfg(feature = "postgres")]
pub(crate) use self::dialect::flavor;
// For the isolation engine, which builds with the `postgres` feature.
#[cfg(feature = "postgres")]
pub(crate) use self::clean::{clean_dirty, dirty, plan_of, reset_counters};
pub(crate) use self::server::error_number;
#[cfg(feature = "postgres")]
pub(crate) use self::server::set_parking;
// For the isolation engine, which builds with the `postgres` feature.
#[cfg(feature = "postgres")]
pub(crate) use self::server::{FULL_WAIT, is_out_of_connections};
pub use self::server::{Flavor, MySqlServer, URL_VAR};
use super::{Admin, Backend, Capabilities, Coord, LockMode, Marker, Provision, sealed};
use crate::error::Result;

impl sealed::Sealed for MySql {}

impl Backend for MySql {
    const NAME: &'static str = "mysql";
    const CAPABILITIES: Capabilities = Capabilities {
        clone_database: false,
        transactional_ddl: false,
        schemas: false,
        row_journal: true,
        returning: false,
    };
}

impl Provision for MySql {
    type Server = MySqlServer;

    async fn server() -> Result<&'static MySqlServer> {
        MySqlServer::get().await
    }

    fn connect_options(server: &MySqlServer, database: &str) -> MySqlConnectOptions {
        server.options_for(database)
    }

    fn url(server: &MySqlServer, database: &str) -> String {
        server.url_for(database)
    }

    /// A MySQL URL cannot set a session variable: the token lives in the test's pool, which sets
    /// `@seedbed_token` on each connection it opens, so the URL is unchanged (rows written
    /// through it are not journaled).
    fn with_token(url: &str, _token: &str) -> String {
        url.to_string()
    }

    async fn maintenance(server: &MySqlServer) -> Result<MySqlConnection> {
        server.maintenance().await
    }
}

impl Admin for MySql {
    async fn database_exists(conn: &mut MySqlConnection, name: &str) -> Result<bool> {
        admin::exists(conn, name).await
    }

    async fn create_database(conn: &mut MySqlConnection, name: &str) -> Result<()> {
        admin::create(conn, name).await
    }

    async fn clone_database(
        _server: &MySqlServer,
        conn: &mut MySqlConnection,
        name: &str,
        template: &str,
    ) -> Result<()> {
        admin::clone(conn, name, template).await
    }

    async fn drop_database(conn: &mut MySqlConnection, name: &str) -> Result<()> {
        admin::drop_database(conn, name).await
    }

    async fn read_marker(conn: &mut MySqlConnection, database: &str) -> Result<Option<Marker>> {
        admin::read_marker(conn, database).await
    }

    async fn write_marker(
        conn: &mut MySqlConnection,
        database: &str,
        marker: &Marker,
    ) -> Result<()> {
        admin::write_marker(conn, database, marker).await
    }
}

/// Locks are held by `conn`'s session: they end with it.
impl Coord for MySql {
    async fn lock(
        conn: &mut MySqlConnection,
        name: &str,
        mode: LockMode,
        timeout: Duration,
    ) -> Result<()> {
        coord::lock(conn, name, mode, timeout).await
    }

    async fn try_lock(conn: &mut MySqlConnection, name: &str, mode: LockMode) -> Result<bool> {
        coord::try_lock(conn, name, mode).await
    }

    async fn unlock(conn: &mut MySqlConnection, name: &str, mode: LockMode) -> Result<()> {
        coord::unlock(conn, name, mode).await
    }

    async fn is_held(conn: &mut MySqlConnection, name: &str) -> Result<bool> {
        coord::is_held(conn, name).await
    }
}
