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
    ensure_build(
        server,
        migrations,
        &Build {
            purpose,
            prepare,
            fixtures: &[],
            seal: false,
            journal: false,
        },
    )
    .await
}

/// What to build on top of the migrations.
#[derive(Debug, Clone, Copy)]
pub struct Build<'a> {
    /// Part of the name (`rollback`, `truncate`, `tpl`, …).
    pub purpose: &'a str,
    /// Prepare the database for the cleaner.
    pub prepare: bool,
    /// Fixture scripts run after the migrations (part of the database's identity).
    pub fixtures: &'a [String],
    /// Seal it as a template: `IS_TEMPLATE true`, `ALLOW_CONNECTIONS false`.
    pub seal: bool,
    /// Install Namespace's journal (see [`namespace`](super::namespace)).
    pub journal: bool,
}

impl Build<'_> {
    /// The database's name: purpose and a checksum of the migrations, fixtures and preparation.
    pub fn database_name(&self, migrations: &Migrations) -> String {
        let mut identity = migrations.checksum().to_string();
        if self.prepare {
            identity.push_str(&format!(":cleaner-v{}", super::cleaner::VERSION));
        }
        if self.journal {
            identity.push_str(&format!(":journal-v{}", super::namespace::VERSION));
        }
        for fixture in self.fixtures {
            identity.push_str(&format!(
                ":fixture:{:016x}",
                super::lock::stable_hash(fixture)
            ));
        }
        let checksum = if identity == migrations.checksum() {
            identity
        } else {
            format!("{:016x}", super::lock::stable_hash(&identity))
        };
        database_name(self.purpose, &checksum)
    }
}

/// Returns the database `build` describes, building it under a database-level lock if no process
/// has yet.
pub async fn ensure_build(
    server: &Server,
    migrations: &Migrations,
    build: &Build<'_>,
) -> Result<MigratedDb> {
    let name = build.database_name(migrations);
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
    let result = build_locked(server, lock.connection(), migrations, &name, build).await;
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
    build: &Build<'_>,
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
        for fixture in build.fixtures {
            if result.is_ok() {
                result = sqlx::raw_sql(sqlx::AssertSqlSafe(fixture.clone()))
                    .execute(&mut db)
                    .await
                    .map(|_| ())
                    .map_err(Error::db(format!("applying a fixture to {name}")));
            }
        }
        if result.is_ok() && (build.prepare || build.journal) {
            result = async {
                let schema = super::cleaner::read_schema(&mut db).await?;
                if build.prepare {
                    super::cleaner::prepare(&mut db, &schema).await?;
                }
                if build.journal {
                    super::namespace::prepare(&mut db, &schema).await?;
                }
                Ok(())
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
    if build.seal {
        // Nobody connects to a template: clones are made from it without waiting.
        let sql = format!(
            "ALTER DATABASE {} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false",
            quote_ident(name)
        );
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut *conn)
            .await
            .map_err(Error::db(format!("sealing template {name}")))?;
    }
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

/// `DROP DATABASE IF EXISTS name WITH (FORCE)` (a sealed template is unsealed first).
pub async fn drop_database(conn: &mut PgConnection, name: &str) -> Result<()> {
    let is_template: bool = sqlx::query_scalar(
        "SELECT COALESCE((SELECT datistemplate FROM pg_database WHERE datname = $1), false)",
    )
    .bind(name)
    .fetch_one(&mut *conn)
    .await
    .map_err(Error::db(format!("looking up database {name}")))?;
    if is_template {
        let sql = format!(
            "ALTER DATABASE {} WITH IS_TEMPLATE false",
            quote_ident(name)
        );
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut *conn)
            .await
            .map_err(Error::db(format!("unsealing template {name}")))?;
    }
    let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(name));
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(conn)
        .await
        .map_err(Error::db(format!("dropping database {name}")))?;
    Ok(())
}
