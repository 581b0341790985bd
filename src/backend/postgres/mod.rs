//! The PostgreSQL backend: the server (a URL, or the embedded cluster seedbed starts), database
//! administration (create, clone from a sealed template, drop, markers), coordination (advisory
//! locks under one key scheme), introspection from `pg_catalog`, the cleaner, Namespace's row
//! journal, and the factories' dialect (arrays, `RETURNING`, rows found by `tableoid` and
//! `ctid`).

pub mod server;
internal!(admin, clean, coord, journal, marker);
mod dialect;
mod introspect;

use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::{PgConnection, Postgres};

use self::server::Server;
use super::{
    Admin, Backend, Capabilities, Clean, Coord, Introspect, Journal, LockMode, Marker, Provision,
    sealed,
};
use crate::error::Result;
use crate::schema::Schema;

impl sealed::Sealed for Postgres {}

impl Backend for Postgres {
    const NAME: &'static str = "postgres";
    const CAPABILITIES: Capabilities = Capabilities {
        clone_database: true,
        transactional_ddl: true,
        schemas: true,
        row_journal: true,
        returning: true,
    };
}

impl Provision for Postgres {
    type Server = Server;

    async fn server() -> Result<&'static Server> {
        Server::get().await
    }

    fn connect_options(server: &Server, database: &str) -> PgConnectOptions {
        server.database_options(database)
    }

    fn url(server: &Server, database: &str) -> String {
        server.url_for(database)
    }

    fn with_token(url: &str, token: &str) -> String {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!(
            "{url}{sep}options=-c%20{}%3D{token}",
            journal::TOKEN_SETTING
        )
    }

    async fn maintenance(server: &Server) -> Result<PgConnection> {
        server.connect().await
    }
}

impl Admin for Postgres {
    async fn database_exists(conn: &mut PgConnection, name: &str) -> Result<bool> {
        admin::database_exists(conn, name).await
    }

    async fn create_database(conn: &mut PgConnection, name: &str) -> Result<()> {
        admin::create_database(conn, name, None, admin::CloneMethod::Default).await
    }

    async fn clone_database(
        server: &Server,
        conn: &mut PgConnection,
        name: &str,
        template: &str,
    ) -> Result<()> {
        let method = admin::clone_method(server, template)?;
        admin::create_database(conn, name, Some(template), method).await
    }

    async fn drop_database(conn: &mut PgConnection, name: &str) -> Result<()> {
        admin::drop_database(conn, name).await
    }

    async fn read_marker(conn: &mut PgConnection, database: &str) -> Result<Option<Marker>> {
        marker::read(conn, database).await
    }

    async fn write_marker(conn: &mut PgConnection, database: &str, marker: &Marker) -> Result<()> {
        marker::write(conn, database, marker).await
    }
}

impl Coord for Postgres {
    async fn lock(
        conn: &mut PgConnection,
        name: &str,
        mode: LockMode,
        timeout: Duration,
    ) -> Result<()> {
        coord::lock_on(conn, name, mode, timeout).await
    }

    async fn try_lock(conn: &mut PgConnection, name: &str, mode: LockMode) -> Result<bool> {
        coord::try_lock_on(conn, name, mode).await
    }

    async fn unlock(conn: &mut PgConnection, name: &str, mode: LockMode) -> Result<()> {
        coord::unlock_on(conn, name, mode).await
    }

    async fn is_held(conn: &mut PgConnection, name: &str) -> Result<bool> {
        coord::is_held(conn, name).await
    }
}

impl Introspect for Postgres {
    async fn user_schemas(conn: &mut PgConnection) -> Result<Vec<String>> {
        clean::user_schemas(conn).await
    }

    async fn introspect(conn: &mut PgConnection, schemas: &[&str]) -> Result<Schema> {
        Schema::introspect(conn, schemas).await
    }
}

impl Clean for Postgres {
    type Plan = clean::CleaningPlan;

    async fn prepare(conn: &mut PgConnection, schema: &Schema, track: bool) -> Result<()> {
        if track {
            clean::prepare_tracked(conn, schema).await
        } else {
            clean::prepare(conn, schema).await
        }
    }

    async fn plan(conn: &mut PgConnection) -> Result<clean::CleaningPlan> {
        clean::CleaningPlan::load(conn).await
    }

    async fn clean(
        conn: &mut PgConnection,
        plan: &clean::CleaningPlan,
        reset_sequences: bool,
    ) -> Result<usize> {
        clean::clean(conn, plan, reset_sequences).await
    }
}

impl Journal for Postgres {
    const TOKEN_SETTING: &'static str = journal::TOKEN_SETTING;

    async fn install(conn: &mut PgConnection, schema: &Schema) -> Result<()> {
        journal::prepare(conn, schema).await
    }

    async fn is_installed(conn: &mut PgConnection) -> Result<bool> {
        journal::is_prepared(conn).await
    }

    async fn clean(conn: &mut PgConnection, token: &str) -> Result<()> {
        journal::clean(conn, token).await.map(|_| ())
    }

    async fn forget(conn: &mut PgConnection, token: &str) -> Result<()> {
        journal::forget(conn, token).await
    }

    async fn sweep(conn: &mut PgConnection) -> Result<Vec<String>> {
        journal::sweep(conn).await
    }
}
