//! The SQLite backend (feature `sqlite`). SQLite has no server: a database is a file in the
//! [`Directory`] seedbed keeps them in (under the Cargo target directory by default), so it works
//! on any machine with nothing installed.
//!
//! | concern | SQLite |
//! |---|---|
//! | [`Provision`] | the [`Directory`]; the maintenance connection is an in-memory database |
//! | [`Admin`] | a database is `<name>.db`; cloned by copying the closed template's file; its marker is `<name>.marker` beside it |
//! | [`Coord`] | OS file locks in `locks/`, held by the process and released by the OS when it dies |
//! | [`Introspect`] | `sqlite_schema` and the `pragma_*` table functions |
//! | [`Clean`] | baseline tables of the rows migrations left; one statement asks every table for rows |
//! | [`Journal`] | per-connection `TEMP` triggers that record inserted `rowid`s under the test's token |
//! | [`Dialect`] | sea-query's SQLite builder, `RETURNING`, 32,766 bind parameters, rows found by `rowid` |
//!
//! ```
//! # #[cfg(feature = "sqlite")] {
//! use seedbed::backend::Backend;
//! assert_eq!(<sqlx::Sqlite as Backend>::NAME, "sqlite");
//! assert!(!<sqlx::Sqlite as Backend>::CAPABILITIES.schemas);
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

internal!(admin, clean, coord, journal);
mod dialect;
mod introspect;
mod provision;

use std::time::Duration;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Sqlite, SqliteConnection};

pub use self::clean::SqlitePlan;
pub use self::provision::{DIR_VAR, Directory};
use super::{Admin, Backend, Capabilities, Coord, Journal, LockMode, Marker, Provision, sealed};
use crate::error::Result;
use crate::schema::Schema;

impl sealed::Sealed for Sqlite {}

impl Backend for Sqlite {
    const NAME: &'static str = "sqlite";
    const CAPABILITIES: Capabilities = Capabilities {
        clone_database: true,
        transactional_ddl: true,
        schemas: false,
        row_journal: true,
        returning: true,
    };
}

impl Provision for Sqlite {
    type Server = Directory;

    async fn server() -> Result<&'static Directory> {
        Directory::get().await
    }

    fn connect_options(server: &Directory, database: &str) -> SqliteConnectOptions {
        server.connect_options(database)
    }

    fn url(server: &Directory, database: &str) -> String {
        server.url(database)
    }

    /// SQLite connections carry no session setting: the token lives in the `TEMP` triggers the
    /// test's own pool gives each connection, so the URL is unchanged (rows written through it
    /// are not journaled).
    fn with_token(url: &str, _token: &str) -> String {
        url.to_string()
    }

    async fn maintenance(_server: &Directory) -> Result<SqliteConnection> {
        provision::maintenance().await
    }
}

/// The connection is the in-memory maintenance connection: databases are files.
impl Admin for Sqlite {
    async fn database_exists(_conn: &mut SqliteConnection, name: &str) -> Result<bool> {
        admin::exists(name).await
    }

    async fn create_database(_conn: &mut SqliteConnection, name: &str) -> Result<()> {
        admin::create(Directory::get().await?, name).await
    }

    async fn clone_database(
        server: &Directory,
        _conn: &mut SqliteConnection,
        name: &str,
        template: &str,
    ) -> Result<()> {
        admin::clone(server, name, template)
    }

    async fn drop_database(_conn: &mut SqliteConnection, name: &str) -> Result<()> {
        admin::drop_database(Directory::get().await?, name)
    }

    async fn read_marker(_conn: &mut SqliteConnection, database: &str) -> Result<Option<Marker>> {
        admin::read_marker(Directory::get().await?, database)
    }

    async fn write_marker(
        _conn: &mut SqliteConnection,
        database: &str,
        marker: &Marker,
    ) -> Result<()> {
        admin::write_marker(Directory::get().await?, database, marker)
    }
}

/// Locks are held by the process (file locks), not by `conn`: they die with it.
impl Coord for Sqlite {
    async fn lock(
        _conn: &mut SqliteConnection,
        name: &str,
        mode: LockMode,
        timeout: Duration,
    ) -> Result<()> {
        coord::lock(name, mode, timeout).await
    }

    async fn try_lock(_conn: &mut SqliteConnection, name: &str, mode: LockMode) -> Result<bool> {
        coord::try_lock(name, mode).await
    }

    async fn unlock(_conn: &mut SqliteConnection, name: &str, mode: LockMode) -> Result<()> {
        coord::unlock(name, mode)
    }

    async fn is_held(_conn: &mut SqliteConnection, name: &str) -> Result<bool> {
        coord::is_held(Directory::get().await?, name)
    }
}

impl Journal for Sqlite {
    /// No session setting exists on SQLite; the token is written into each connection's `TEMP`
    /// triggers.
    const TOKEN_SETTING: &'static str = "";

    async fn install(conn: &mut SqliteConnection, schema: &Schema) -> Result<()> {
        journal::install(conn, schema).await
    }

    async fn is_installed(conn: &mut SqliteConnection) -> Result<bool> {
        journal::is_installed(conn).await
    }

    async fn clean(conn: &mut SqliteConnection, token: &str) -> Result<()> {
        journal::clean(conn, token).await
    }

    async fn forget(conn: &mut SqliteConnection, token: &str) -> Result<()> {
        journal::forget(conn, token).await
    }

    async fn sweep(conn: &mut SqliteConnection) -> Result<Vec<String>> {
        journal::sweep(conn).await
    }
}
