//! Migrated databases, made once per (server, migrations checksum, purpose) and reused by every
//! test, thread and process.
//!
//! The database is named `seedbed_<purpose>_<checksum>`: a changed migration has a new checksum and
//! so is migrated into a new database, never half-applied over the old one. Concurrent processes
//! build it under a database-level lock; the marker records whether it is `building` or `ready`,
//! so one left half-built by a crashed process is rebuilt.

use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection};

use super::lock::{DbLock, LockMode};
use super::marker::{self, Marker};
use super::migrations::Migrations;
use crate::error::{Error, Result};
use crate::server::Server;
use crate::sql::quote_ident;

/// How long a process waits for another to finish migrating.
const BUILD_WAIT: Duration = Duration::from_secs(600);

/// The marker kind of a migrated database.
pub const KIND: &str = "migrated";

/// A migrated database ready for use.
#[derive(Debug, Clone)]
pub struct MigratedDb {
    /// Its name.
    pub name: String,
    /// Whether this call built it (`false`: it already existed).
    pub built: bool,
    /// How long building took (zero when it already existed).
    pub build_time: Duration,
}

/// The name of the migrated database for `purpose` and `migrations`.
///
/// ```
/// # use seedbed::isolation::migrated::database_name;
/// assert_eq!(database_name("rollback", "0123456789abcdef"), "seedbed_rollback_0123456789abcdef");
/// ```
pub fn database_name(purpose: &str, checksum: &str) -> String {
    format!("seedbed_{purpose}_{checksum}")
}

/// Returns the migrated database for `purpose`, building it if no process has yet.
pub async fn ensure(server: &Server, migrations: &Migrations, purpose: &str) -> Result<MigratedDb> {
    ensure_with(server, migrations, purpose, false).await
}

/// Like [`ensure`]; with `prepare`, the database is also prepared for the cleaner (see
/// [`cleaner`](super::cleaner)), so strategies that commit can empty it again.
pub async fn ensure_with(
    server: &Server,
    migrations: &Migrations,
    purpose: &str,
    prepare: bool,
) -> Result<MigratedDb> {
    let checksum = if prepare {
        format!(
            "{:016x}",
            super::lock::stable_hash(&format!(
                "{}:cleaner-v{}",
                migrations.checksum(),
                super::cleaner::VERSION
            ))
        )
    } else {
        migrations.checksum().to_string()
    };
    let name = database_name(purpose, &checksum);
    if name.len() > 63 {
        return Err(Error::Config(format!(
            "database name {name} is longer than PostgreSQL's 63-byte limit: use a shorter purpose"
        )));
    }
    let mut conn = server.connect().await?;
    if is_ready(&mut conn, &name).await? {
        let _ = conn.close().await;
        return Ok(MigratedDb {
            name,
            built: false,
            build_time: Duration::ZERO,
        });
    }
    let _ = conn.close().await;

    let mut lock = DbLock::acquire(
        server,
        &format!("migrate:{name}"),
        LockMode::Exclusive,
        BUILD_WAIT,
    )
    .await?;
    let result = build_locked(server, lock.connection(), migrations, &name, prepare).await;
    lock.release().await?;
    result
}

async fn is_ready(conn: &mut PgConnection, name: &str) -> Result<bool> {
    Ok(marker::read(conn, name)
        .await?
        .is_some_and(|m| m.kind == KIND && m.get("state") == Some("ready")))
}

async fn build_locked(
    server: &Server,
    conn: &mut PgConnection,
    migrations: &Migrations,
    name: &str,
    prepare: bool,
) -> Result<MigratedDb> {
    let started = Instant::now();
    if is_ready(conn, name).await? {
        return Ok(MigratedDb {
            name: name.to_string(),
            built: false,
            build_time: Duration::ZERO,
        });
    }
    if database_exists(conn, name).await? {
        match marker::read(conn, name).await? {
            // Left half-built by a process that died: start again.
            Some(m) if m.kind == KIND => drop_database(conn, name).await?,
            _ => {
                return Err(Error::Config(format!(
                    "a database named {name} exists on the server but was not created by \
                     seedbed; seedbed will not touch it. Drop or rename it"
                )));
            }
        }
    }
    create_database(conn, name, None, None).await?;
    let mut mark = Marker::new(KIND)
        .with("checksum", migrations.checksum())
        .with("state", "building");
    marker::write(conn, name, &mark).await?;

    let applied = async {
        let mut db = PgConnection::connect_with(&server.database_options(name))
            .await
            .map_err(Error::db(format!("connecting to new database {name}")))?;
        let mut result = migrations.apply(&mut db).await;
        if result.is_ok() && prepare {
            result = async {
                let schema = super::cleaner::read_schema(&mut db).await?;
                super::cleaner::prepare(&mut db, &schema).await
            }
            .await;
        }
        let _ = db.close().await;
        result
    }
    .await;
    if let Err(e) = applied {
        // Leave nothing half-made behind.
        let _ = drop_database(conn, name).await;
        return Err(e);
    }
    mark.set("state", "ready");
    marker::write(conn, name, &mark).await?;
    Ok(MigratedDb {
        name: name.to_string(),
        built: true,
        build_time: started.elapsed(),
    })
}

/// Whether a database of that name exists.
pub async fn database_exists(conn: &mut PgConnection, name: &str) -> Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(name)
        .fetch_one(conn)
        .await
        .map_err(Error::db(format!("looking up database {name}")))
}

/// How `CREATE DATABASE … TEMPLATE` copies the template, chosen by measurement: on the embedded
/// server (fsync off, tmpfs) `FILE_COPY` is about 2.5× faster than PostgreSQL 15's default
/// `WAL_LOG` (15 ms against 42 ms for the reference schema); on a server with durability on it
/// is slower (78 ms against 45 ms), because it forces two checkpoints.
pub fn clone_strategy(server: &Server) -> Option<&'static str> {
    match server.origin() {
        crate::server::Origin::Embedded(_) if server.major_version() >= 15 => Some("FILE_COPY"),
        _ => None,
    }
}

/// `CREATE DATABASE name TEMPLATE template [STRATEGY strategy]`; without a template, from
/// `template0` so nothing a user installed in `template1` leaks in.
pub async fn create_database(
    conn: &mut PgConnection,
    name: &str,
    template: Option<&str>,
    strategy: Option<&str>,
) -> Result<()> {
    let mut sql = format!(
        "CREATE DATABASE {} TEMPLATE {}",
        quote_ident(name),
        quote_ident(template.unwrap_or("template0"))
    );
    if let Some(strategy) = strategy {
        // Only the two keywords PostgreSQL knows reach the statement.
        let keyword = match strategy {
            "FILE_COPY" => "FILE_COPY",
            _ => "WAL_LOG",
        };
        sql.push_str(" STRATEGY ");
        sql.push_str(keyword);
    }
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(conn)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(db) if db.code().as_deref() == Some("42501") => {
                Error::Config(format!(
                    "the server refused to create database {name}: the user lacks CREATEDB. \
                     Grant it (ALTER ROLE … CREATEDB) or name an existing migrated database"
                ))
            }
            _ => Error::db(format!("creating database {name}"))(e),
        })?;
    Ok(())
}

/// `DROP DATABASE IF EXISTS name WITH (FORCE)`.
pub async fn drop_database(conn: &mut PgConnection, name: &str) -> Result<()> {
    let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(name));
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(conn)
        .await
        .map_err(Error::db(format!("dropping database {name}")))?;
    Ok(())
}
