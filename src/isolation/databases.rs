//! Migrated databases, made once per (server, migrations checksum, purpose) and reused by every
//! test, thread and process.
//!
//! The database is named `seedbed_<purpose>_<checksum>`: a changed migration has a new checksum and
//! so is migrated into a new database, never half-applied over the old one. Concurrent processes
//! build it under a database-level lock; the marker records whether it is `building` or `ready`,
//! so one left half-built by a crashed process is rebuilt.

use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection};

use super::migrations::Migrations;
use crate::backend::postgres::admin::{
    CloneMethod, create_database, database_exists, drop_database, measure_clone_methods,
    probe_name, remember_clone_method,
};
use crate::backend::postgres::coord::{DbLock, LockMode};
use crate::backend::postgres::marker::{self, Marker};
use crate::backend::postgres::server::Server;
use crate::error::{Error, Result};
use crate::sql::quote_ident;

/// How long a process waits for another to finish migrating.
pub(crate) const BUILD_WAIT: Duration = Duration::from_secs(600);

/// The version of how a sealed template is built (part of its identity): 2 records the
/// measured [`CloneMethod`] in its marker.
pub const TEMPLATE_VERSION: u32 = 2;

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
/// # use seedbed::isolation::databases::database_name;
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
/// [`cleaner`](crate::backend::postgres::clean)), so strategies that commit can empty it again.
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
            track: false,
            fixtures: &[],
            seal: false,
            journal: false,
            role: None,
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
    /// With `prepare`: every table notes the statements that write it, so the cleaner reads
    /// what a test wrote instead of asking every table (see
    /// [`clean::prepare_tracked`](crate::backend::postgres::clean::prepare_tracked)).
    pub track: bool,
    /// Fixture scripts run after the migrations (part of the database's identity).
    pub fixtures: &'a [String],
    /// Seal it as a template: `IS_TEMPLATE true`, `ALLOW_CONNECTIONS false`.
    pub seal: bool,
    /// Install Namespace's journal (see [`journal`](crate::backend::postgres::journal)).
    pub journal: bool,
    /// The role tests act as: granted what seedbed's own tables need from it (the triggers
    /// that note writes and journal rows run as the test's role). Part of the name.
    pub role: Option<&'a str>,
}

impl<'a> Build<'a> {
    /// What Template builds its clones from: sealed, and prepared for the cleaner with every
    /// table noting what writes it, so a passing test's clone can be emptied and given to the
    /// next test (see [`clones`](super::clones)).
    ///
    /// ```
    /// use seedbed::isolation::databases::Build;
    /// let build = Build::template(&[]);
    /// assert_eq!(build.purpose, "tpl");
    /// assert!(build.seal && build.prepare && build.track);
    /// ```
    pub fn template(fixtures: &'a [String]) -> Self {
        Build {
            purpose: "tpl",
            prepare: true,
            track: true,
            fixtures,
            seal: true,
            journal: false,
            role: None,
        }
    }

    /// The database's name: purpose and a checksum of the migrations, fixtures and preparation.
    pub fn database_name(&self, migrations: &Migrations) -> String {
        let mut identity = migrations.checksum().to_string();
        if self.prepare {
            identity.push_str(&format!(
                ":cleaner-v{}",
                crate::backend::postgres::clean::VERSION
            ));
            if self.track {
                identity.push_str(":tracked");
            }
        }
        if self.journal {
            identity.push_str(&format!(
                ":journal-v{}",
                crate::backend::postgres::journal::VERSION
            ));
        }
        if self.seal {
            identity.push_str(&format!(":sealed-v{TEMPLATE_VERSION}"));
        }
        if let Some(role) = self.role {
            identity.push_str(&format!(":role:{role}"));
        }
        for fixture in self.fixtures {
            identity.push_str(&format!(
                ":fixture:{:016x}",
                crate::util::hash::stable_hash(fixture)
            ));
        }
        let checksum = if identity == migrations.checksum() {
            identity
        } else {
            format!("{:016x}", crate::util::hash::stable_hash(&identity))
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
    if let Some(mark) = ready_marker(&mut conn, &name).await? {
        let _ = conn.close().await;
        remember_measured(&name, &mark);
        return Ok(MigratedDb {
            name,
            built: false,
            build_time: Duration::ZERO,
        });
    }
    let _ = conn.close().await;

    let mut lock = DbLock::acquire(
        server,
        &build_lock_name(&name),
        LockMode::Exclusive,
        BUILD_WAIT,
    )
    .await?;
    let result = build_locked(server, lock.connection(), migrations, &name, build).await;
    lock.release().await?;
    result
}

/// The name of the lock a build of database `name` holds exclusively while it builds.
pub(crate) fn build_lock_name(name: &str) -> String {
    format!("migrate:{name}")
}

/// The marker of `name` if it is a ready migrated database.
async fn ready_marker(conn: &mut PgConnection, name: &str) -> Result<Option<Marker>> {
    Ok(marker::read(conn, name).await?.filter(is_ready))
}

/// The table whose presence says, inside a database, that seedbed built it and it is ready (the
/// last thing a build makes in it): a test's first statement asks for it, which costs a look-up
/// in the database's own catalog, where reading the marker (a comment in the shared catalog) costs
/// a cold session about a millisecond.
pub const READY_TABLE: &str = "seedbed.ready";

/// The expression that says whether the database a session is connected to is ready (see
/// [`READY_TABLE`]).
pub(crate) fn ready_expression() -> String {
    format!(
        "to_regclass({}) IS NOT NULL",
        crate::sql::quote_literal(READY_TABLE)
    )
}

async fn mark_ready_inside(db: &mut PgConnection) -> Result<()> {
    sqlx::raw_sql("CREATE TABLE seedbed.ready ()")
        .execute(db)
        .await
        .map_err(Error::db("marking the database ready"))?;
    Ok(())
}

/// Whether `mark` is the marker of a migrated database that is ready (not being built).
///
/// ```
/// use seedbed::backend::postgres::marker::Marker;
/// use seedbed::isolation::databases::is_ready;
/// assert!(is_ready(&Marker::new("migrated").with("state", "ready")));
/// assert!(!is_ready(&Marker::new("migrated").with("state", "building")));
/// assert!(!is_ready(&Marker::new("clone").with("state", "ready")));
/// ```
pub fn is_ready(mark: &Marker) -> bool {
    mark.kind == KIND && mark.get("state") == Some("ready")
}

/// Whether `err` says the database connected to does not exist (`3D000`).
pub(crate) fn is_missing_database(err: &Error) -> bool {
    matches!(
        err,
        Error::Database { source: sqlx::Error::Database(db), .. }
            if db.code().as_deref() == Some("3D000")
    )
}

/// Lets `role` use seedbed's own tables in the database `conn` is connected to: the triggers
/// that note what a test wrote (and Namespace's journal) run as the test's role.
async fn grant_seedbed_schema(conn: &mut PgConnection, role: &str) -> Result<()> {
    let schema = quote_ident(crate::backend::postgres::clean::SCHEMA);
    let role = quote_ident(role);
    let sql = format!(
        "GRANT USAGE ON SCHEMA {schema} TO {role}; \
         GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role}; \
         GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA {schema} TO {role}"
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(conn)
        .await
        .map_err(Error::db(format!("granting role {role} seedbed's tables")))?;
    Ok(())
}

/// Whether `err` says the database refuses new connections (`ALTER DATABASE … ALLOW_CONNECTIONS
/// false`: a Truncate database being kept for a failed test).
pub(crate) fn is_closed_database(err: &Error) -> bool {
    matches!(
        err,
        Error::Database { source: sqlx::Error::Database(db), .. }
            if db.code().as_deref() == Some("55000")
                && db.message().contains("not currently accepting connections")
    )
}

/// Records the clone method a template's marker names, for
/// [`clone_method`](crate::backend::postgres::admin::clone_method).
pub(crate) fn remember_measured(name: &str, mark: &Marker) {
    if let Some(method) = mark.get(CLONE_KEY).and_then(CloneMethod::parse) {
        remember_clone_method(name, method);
    }
}

/// The marker key of a sealed template's measured [`CloneMethod`].
pub const CLONE_KEY: &str = "clone";

async fn build_locked(
    server: &Server,
    conn: &mut PgConnection,
    migrations: &Migrations,
    name: &str,
    build: &Build<'_>,
) -> Result<MigratedDb> {
    let started = Instant::now();
    if let Some(mark) = ready_marker(conn, name).await? {
        remember_measured(name, &mark);
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
                return Err(Error::ForeignDatabase {
                    database: name.to_string(),
                    message: "it exists on the server but was not created by seedbed; seedbed \
                              will not touch it. Drop or rename it"
                        .into(),
                });
            }
        }
    }
    if build.seal {
        // A measurement cut short by a crash left its probe.
        drop_database(conn, &probe_name(name)).await?;
    }
    create_database(conn, name, None, CloneMethod::Default).await?;
    let mut mark = Marker::new(KIND)
        .with("checksum", migrations.checksum())
        .with("state", "building");
    marker::write(conn, name, &mark).await?;

    let applied = async {
        let mut db = server.open(&server.database_options(name)).await?;
        let mut result = migrations.apply_at(&mut db, &server.url_for(name)).await;
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
                let schema = crate::backend::postgres::clean::read_schema(&mut db).await?;
                if build.prepare && build.track {
                    crate::backend::postgres::clean::prepare_tracked(&mut db, &schema).await?;
                } else if build.prepare {
                    crate::backend::postgres::clean::prepare(&mut db, &schema).await?;
                }
                if build.journal {
                    crate::backend::postgres::journal::prepare(&mut db, &schema).await?;
                }
                if let Some(role) = build.role {
                    grant_seedbed_schema(&mut db, role).await?;
                }
                mark_ready_inside(&mut db).await?;
                // A template's clones are given to the next test when their test changed no
                // schema: the last thing installed, so nothing above counts as a change.
                if build.seal && build.prepare {
                    crate::backend::postgres::clean::watch_schema_changes(&mut db).await?;
                }
                Ok(())
            }
            .await;
        }
        let _ = db.close().await;
        result
    }
    .await;
    let sealed = match applied {
        Ok(()) if build.seal => seal_and_measure(server, conn, name).await.map(Some),
        Ok(()) => Ok(None),
        Err(e) => Err(e),
    };
    let method = match sealed {
        Ok(method) => method,
        Err(e) => {
            // Leave nothing half-made behind.
            let _ = drop_database(conn, &probe_name(name)).await;
            let _ = drop_database(conn, name).await;
            return Err(e);
        }
    };
    if let Some(method) = method {
        mark.set(CLONE_KEY, method.name());
        remember_clone_method(name, method);
    }
    mark.set("state", "ready");
    marker::write(conn, name, &mark).await?;
    Ok(MigratedDb {
        name: name.to_string(),
        built: true,
        build_time: started.elapsed(),
    })
}

/// Seals a template (nobody connects to it: clones are made from it without waiting) and
/// measures how to clone it.
async fn seal_and_measure(
    server: &Server,
    conn: &mut PgConnection,
    name: &str,
) -> Result<CloneMethod> {
    let sql = format!(
        "ALTER DATABASE {} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false",
        quote_ident(name)
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&mut *conn)
        .await
        .map_err(Error::db(format!("sealing template {name}")))?;
    let (best, _) = measure_clone_methods(conn, server.major_version(), name).await?;
    Ok(best)
}
