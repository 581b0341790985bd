//! The migrated databases the MySQL strategies start from: named by what built them (the
//! migrations' checksum, the fixtures), built once by whichever process gets there first under a
//! named lock, and marked ready only when whole.

use std::time::Duration;

use sqlx::{Connection, MySql};

use super::super::builder::Isolation;
use super::super::engine::KeyedOnce;
use crate::backend::mysql::{MySqlServer, admin, coord};
use crate::backend::{Clean, Introspect, Journal, Marker};
use crate::error::{Error, Result};
use crate::util::hash::stable_hash;

/// What seedbed puts in a database beyond the migrations changes with this version.
pub(super) const IMAGE_VERSION: &str = "v10";

/// How long a process waits for another to finish building a database.
const BUILD_WAIT: Duration = Duration::from_secs(600);

/// What a database holds beyond the migrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// Template's: migrations and the fixtures, prepared for the cleaner.
    Template,
    /// Rollback's and Truncate's slots: migrations, prepared for the cleaner (a slot leased
    /// anew is emptied first).
    Slots,
    /// Namespace's shared database: migrations, the fixtures, the row journal.
    Shared,
}

impl Kind {
    fn tag(self) -> &'static str {
        match self {
            Kind::Template => "tpl",
            Kind::Slots => "base",
            Kind::Shared => "ns",
        }
    }
}

/// The name of the database of `kind` for `iso`'s migrations (and fixtures, for Template and
/// the shared database), built and ready.
pub(super) async fn ready(
    iso: &Isolation,
    server: &'static MySqlServer,
    kind: Kind,
) -> Result<String> {
    static BUILT: std::sync::OnceLock<KeyedOnce<String>> = std::sync::OnceLock::new();
    let migrations = iso.migrations_resolved().await?;
    let mut identity = format!("{IMAGE_VERSION}:{}:{}", kind.tag(), migrations.checksum());
    if matches!(kind, Kind::Template | Kind::Shared) {
        for fixture in &iso.fixtures {
            identity.push_str(&format!(":{:016x}", stable_hash(fixture)));
        }
    }
    let name = format!("seedbed_{}_{:016x}", kind.tag(), stable_hash(&identity));
    let checksum = migrations.checksum().to_string();
    BUILT
        .get_or_init(KeyedOnce::new)
        .get_or_try_init(&name, async {
            let mut conn = server.maintenance().await?;
            if is_ready(&mut conn, &name).await? {
                server.park(conn).await;
                return Ok(name.clone());
            }
            coord::take(&mut conn, &format!("build:{name}"), BUILD_WAIT).await?;
            if !is_ready(&mut conn, &name).await? {
                build(iso, server, &mut conn, &name, kind, &checksum).await?;
            }
            // Freed before the close, which the server may notice later: a process waiting for
            // the lock takes it at once. A connection that cannot say so frees it as it closes.
            let _ = coord::give_back(&mut conn, &format!("build:{name}")).await;
            let _ = conn.close().await;
            Ok(name.clone())
        })
        .await
}

async fn is_ready(conn: &mut sqlx::MySqlConnection, name: &str) -> Result<bool> {
    Ok(admin::read_marker(conn, name)
        .await?
        .is_some_and(|m| m.get("state") == Some("ready")))
}

/// Builds `name` from nothing (a half-built one a dead process left goes first); on failure
/// nothing is left.
async fn build(
    iso: &Isolation,
    server: &MySqlServer,
    conn: &mut sqlx::MySqlConnection,
    name: &str,
    kind: Kind,
    checksum: &str,
) -> Result<()> {
    admin::drop_database(conn, name).await?;
    admin::create(conn, name).await?;
    if let Err(e) = fill(iso, server, name, kind).await {
        admin::drop_database(conn, name).await?;
        return Err(e);
    }
    // Its copies are checked against this: a copy whose schema a test changed is made again.
    let schema = fingerprint(conn, name).await?;
    let marker = Marker::new(kind.tag())
        .with("version", IMAGE_VERSION)
        .with("checksum", checksum)
        .with("schema", schema)
        .with("state", "ready");
    admin::write_marker(conn, name, &marker).await
}

async fn fill(iso: &Isolation, server: &MySqlServer, name: &str, kind: Kind) -> Result<()> {
    let migrations = iso.migrations_resolved().await?;
    let mut conn = server.connect_to(name).await?;
    migrations
        .apply_at(&mut conn, &server.url_for(name))
        .await?;
    if matches!(kind, Kind::Template | Kind::Shared) {
        super::run_fixtures(&mut conn, &iso.fixtures).await?;
    }
    match kind {
        Kind::Template | Kind::Slots => {
            let schema = <MySql as Introspect>::introspect(&mut conn, &[name]).await?;
            <MySql as Clean>::prepare(&mut conn, &schema, false).await?;
        }
        Kind::Shared => {
            let schema = <MySql as Introspect>::introspect(&mut conn, &[name]).await?;
            <MySql as Journal>::install(&mut conn, &schema).await?;
        }
    }
    conn.close()
        .await
        .map_err(Error::db(format!("closing {}", server.display_url(name))))
}

/// A digest of `database`'s definitions: tables, columns, keys, constraints, triggers, routines.
pub(super) async fn fingerprint(
    conn: &mut sqlx::MySqlConnection,
    database: &str,
) -> Result<String> {
    let part = |table: &str, columns: &str, schema_column: &str| {
        format!(
            "(SELECT CONCAT(COUNT(*), ':', COALESCE(SUM(CRC32(CONCAT_WS('|', {columns}))), 0)) \
             FROM information_schema.{table} WHERE {schema_column} = ?)"
        )
    };
    let sql = format!(
        "SELECT CAST(CONCAT_WS('/', {}, {}, {}, {}, {}, {}) AS CHAR)",
        part("TABLES", "TABLE_NAME, TABLE_TYPE", "TABLE_SCHEMA"),
        part(
            "COLUMNS",
            "TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COALESCE(COLUMN_DEFAULT, '~'), \
             EXTRA, ORDINAL_POSITION",
            "TABLE_SCHEMA"
        ),
        part(
            "STATISTICS",
            "TABLE_NAME, INDEX_NAME, COALESCE(COLUMN_NAME, '~'), NON_UNIQUE, SEQ_IN_INDEX",
            "TABLE_SCHEMA"
        ),
        // Filtered by the columns the catalog looks databases up by (TABLE_SCHEMA,
        // EVENT_OBJECT_SCHEMA): another column makes the server read every database's.
        part(
            "TABLE_CONSTRAINTS",
            "TABLE_NAME, CONSTRAINT_NAME, CONSTRAINT_TYPE",
            "TABLE_SCHEMA"
        ),
        part(
            "TRIGGERS",
            "TRIGGER_NAME, EVENT_OBJECT_TABLE, ACTION_TIMING, EVENT_MANIPULATION",
            "EVENT_OBJECT_SCHEMA"
        ),
        part("ROUTINES", "ROUTINE_NAME, ROUTINE_TYPE", "ROUTINE_SCHEMA"),
    );
    let mut query = sqlx::query_scalar(sqlx::AssertSqlSafe(sql));
    for _ in 0..6 {
        query = query.bind(database);
    }
    let print: Option<String> = query
        .fetch_one(conn)
        .await
        .map_err(Error::db(format!("reading the definitions of {database}")))?;
    Ok(print.unwrap_or_default())
}
