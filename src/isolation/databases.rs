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
            track: false,
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
    /// With `prepare`: every table notes the statements that write it, so the cleaner reads
    /// what a test wrote instead of asking every table (see
    /// [`cleaner::prepare_tracked`](super::cleaner::prepare_tracked)).
    pub track: bool,
    /// Fixture scripts run after the migrations (part of the database's identity).
    pub fixtures: &'a [String],
    /// Seal it as a template: `IS_TEMPLATE true`, `ALLOW_CONNECTIONS false`.
    pub seal: bool,
    /// Install Namespace's journal (see [`journal`](super::journal)).
    pub journal: bool,
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
        }
    }

    /// The database's name: purpose and a checksum of the migrations, fixtures and preparation.
    pub fn database_name(&self, migrations: &Migrations) -> String {
        let mut identity = migrations.checksum().to_string();
        if self.prepare {
            identity.push_str(&format!(":cleaner-v{}", super::cleaner::VERSION));
            if self.track {
                identity.push_str(":tracked");
            }
        }
        if self.journal {
            identity.push_str(&format!(":journal-v{}", super::journal::VERSION));
        }
        if self.seal {
            identity.push_str(&format!(":sealed-v{TEMPLATE_VERSION}"));
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
/// use seedbed::isolation::marker::Marker;
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

/// Records the clone method a template's marker names, for [`clone_method`].
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
                if build.prepare && build.track {
                    super::cleaner::prepare_tracked(&mut db, &schema).await?;
                } else if build.prepare {
                    super::cleaner::prepare(&mut db, &schema).await?;
                }
                if build.journal {
                    super::journal::prepare(&mut db, &schema).await?;
                }
                mark_ready_inside(&mut db).await?;
                // A template's clones are given to the next test when their test changed no
                // schema: the last thing installed, so nothing above counts as a change.
                if build.seal && build.prepare {
                    super::cleaner::watch_schema_changes(&mut db).await?;
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

/// Whether a database of that name exists.
pub async fn database_exists(conn: &mut PgConnection, name: &str) -> Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(name)
        .fetch_one(conn)
        .await
        .map_err(Error::db(format!("looking up database {name}")))
}

/// How `CREATE DATABASE … TEMPLATE` copies a template.
///
/// Which is fastest depends on the server and the machine: on the embedded server (fsync off,
/// tmpfs) `FILE_COPY` is about 2.5× faster than PostgreSQL 15's default `WAL_LOG` for the
/// reference schema (15 ms against 37 ms); on a server with durability on it can be slower,
/// because it forces two checkpoints; on a copy-on-write file system, PostgreSQL 18's
/// `file_copy_method = clone` shares the template's blocks instead of copying them. So each
/// sealed template is cloned with every method its server offers when it is built
/// ([`measure_clone_methods`]), and the fastest is recorded in its marker for every process
/// ([`clone_method`]).
///
/// ```
/// use seedbed::isolation::databases::CloneMethod;
/// assert_eq!(CloneMethod::candidates(14), [CloneMethod::Default]);
/// assert_eq!(CloneMethod::candidates(18).len(), 3);
/// assert_eq!(CloneMethod::parse(CloneMethod::FileClone.name()), Some(CloneMethod::FileClone));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloneMethod {
    /// The server's default (no `STRATEGY` clause): before PostgreSQL 15, the only method.
    Default,
    /// `STRATEGY WAL_LOG` (PostgreSQL 15+): block by block through the write-ahead log.
    WalLog,
    /// `STRATEGY FILE_COPY` (PostgreSQL 15+): copies the files, with a checkpoint before and
    /// after.
    FileCopy,
    /// `STRATEGY FILE_COPY` with `file_copy_method = clone` (PostgreSQL 18+): the kernel's
    /// `copy_file_range` (`copyfile` on macOS), which shares blocks on copy-on-write file systems
    /// (Btrfs, XFS with reflink, ZFS, APFS).
    FileClone,
}

impl CloneMethod {
    /// The methods a server of this major version offers.
    pub fn candidates(major_version: u32) -> &'static [CloneMethod] {
        match major_version {
            0..=14 => &[Self::Default],
            15..=17 => &[Self::WalLog, Self::FileCopy],
            _ => &[Self::WalLog, Self::FileCopy, Self::FileClone],
        }
    }

    /// Its name, as recorded in a template's marker.
    pub fn name(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::WalLog => "WAL_LOG",
            Self::FileCopy => "FILE_COPY",
            Self::FileClone => "FILE_COPY+clone",
        }
    }

    /// The method of that [`name`](Self::name).
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Default, Self::WalLog, Self::FileCopy, Self::FileClone]
            .into_iter()
            .find(|m| m.name() == name)
    }

    /// The method a setting such as `SEEDBED_CLONE_METHOD` names, if a server of this major
    /// version offers it; else an error listing those it offers.
    ///
    /// ```
    /// # fn main() -> seedbed::Result<()> {
    /// use seedbed::isolation::databases::CloneMethod;
    /// assert_eq!(CloneMethod::from_setting("WAL_LOG", 15)?, CloneMethod::WalLog);
    /// let refused = CloneMethod::from_setting("FILE_COPY+clone", 15);
    /// assert!(refused.is_err_and(|e| e.to_string().contains("offers WAL_LOG, FILE_COPY")));
    /// assert!(CloneMethod::from_setting("fast", 18).is_err());
    /// # Ok(()) }
    /// ```
    pub fn from_setting(value: &str, major_version: u32) -> Result<Self> {
        let offered = Self::candidates(major_version);
        Self::parse(value.trim())
            .filter(|m| offered.contains(m))
            .ok_or_else(|| {
                let names: Vec<&str> = offered.iter().map(|m| m.name()).collect();
                Error::Config(format!(
                    "SEEDBED_CLONE_METHOD is `{value}`; a PostgreSQL {major_version} server offers \
                     {}",
                    names.join(", ")
                ))
            })
    }

    /// The clause after `CREATE DATABASE … TEMPLATE …`.
    fn clause(self) -> &'static str {
        match self {
            Self::Default => "",
            Self::WalLog => " STRATEGY WAL_LOG",
            Self::FileCopy | Self::FileClone => " STRATEGY FILE_COPY",
        }
    }
}

/// Methods measured for templates built or found by this process, by template name.
fn measured() -> &'static std::sync::Mutex<std::collections::HashMap<String, CloneMethod>> {
    static MEASURED: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<String, CloneMethod>>,
    > = std::sync::OnceLock::new();
    MEASURED.get_or_init(Default::default)
}

fn remember_clone_method(template: &str, method: CloneMethod) {
    measured()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(template.to_string(), method);
}

/// How to clone `template`: `SEEDBED_CLONE_METHOD` if set (`WAL_LOG`, `FILE_COPY`,
/// `FILE_COPY+clone` or `default`), else the method measured when it was built (recorded in its
/// marker, read by [`ensure_build`]), else the usual winner for the server: `FILE_COPY` on the
/// embedded server (fsync off), the server's default elsewhere.
///
/// The measurement runs on a quiet server. On a server with durability on, `FILE_COPY` forces a
/// checkpoint per clone, which costs more when many test processes write at once than the
/// measurement sees: set `SEEDBED_CLONE_METHOD=WAL_LOG` if the suite's clones are slower than the
/// measurement promised.
///
/// ```no_run
/// # async fn example() -> seedbed::Result<()> {
/// let server = seedbed::server::Server::resolve().await?;
/// let method = seedbed::isolation::databases::clone_method(server, "seedbed_tpl_0123")?;
/// println!("clones of seedbed_tpl_0123 are made with {}", method.name());
/// # Ok(()) }
/// ```
pub fn clone_method(server: &Server, template: &str) -> Result<CloneMethod> {
    if let Ok(value) = std::env::var("SEEDBED_CLONE_METHOD") {
        return CloneMethod::from_setting(&value, server.major_version());
    }
    if let Some(method) = measured()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(template)
    {
        return Ok(*method);
    }
    Ok(match (server.origin(), server.major_version()) {
        (_, 0..=14) => CloneMethod::Default,
        (crate::server::Origin::Embedded(_), _) => CloneMethod::FileCopy,
        _ => CloneMethod::WalLog,
    })
}

/// The name of the database [`measure_clone_methods`] clones `template` into (at most 63 bytes).
fn probe_name(template: &str) -> String {
    let mut base = template.to_string();
    while base.len() > 63 - "_probe".len() {
        base.pop();
    }
    format!("{base}_probe")
}

/// Clones `template` with each method the server offers, three times each in turns, and returns
/// the fastest by median beside the median of every method that worked (empty when the server
/// offers one method only: nothing is measured). A method the server or its file system refuses
/// (`file_copy_method = clone` where the platform lacks it, say) is left out; only if every
/// method fails is the first error returned. The clones are dropped as they are made.
/// `template` must have no connections (sealed); the caller holds its build lock, so the probe's
/// name is its own.
///
/// ```no_run
/// # async fn example(conn: &mut sqlx::PgConnection) -> seedbed::Result<()> {
/// use seedbed::isolation::databases;
/// let (best, medians) = databases::measure_clone_methods(conn, 15, "seedbed_tpl_0123").await?;
/// for (method, median) in medians {
///     println!("{}: {median:?}", method.name());
/// }
/// # Ok(()) }
/// ```
pub async fn measure_clone_methods(
    conn: &mut PgConnection,
    major_version: u32,
    template: &str,
) -> Result<(CloneMethod, Vec<(CloneMethod, Duration)>)> {
    const ROUNDS: usize = 3;
    let candidates = CloneMethod::candidates(major_version);
    if let [only] = candidates {
        return Ok((*only, Vec::new()));
    }
    let probe = probe_name(template);
    let mut times = vec![Vec::with_capacity(ROUNDS); candidates.len()];
    let mut failed: Vec<Option<Error>> = candidates.iter().map(|_| None).collect();
    for round in 0..ROUNDS {
        // A different method goes first each round: none always pays for a cold cache.
        for k in 0..candidates.len() {
            let i = (k + round) % candidates.len();
            if failed[i].is_some() {
                continue;
            }
            let started = Instant::now();
            match create_database(conn, &probe, Some(template), candidates[i]).await {
                Ok(()) => times[i].push(started.elapsed()),
                Err(e) => failed[i] = Some(e),
            }
            drop_database(conn, &probe).await?;
        }
    }
    let medians: Vec<(CloneMethod, Duration)> = candidates
        .iter()
        .zip(times)
        .zip(&failed)
        .filter(|(_, failed)| failed.is_none())
        .filter_map(|((method, mut t), _)| {
            t.sort();
            t.get(t.len() / 2).map(|median| (*method, *median))
        })
        .collect();
    match medians.iter().min_by_key(|(_, median)| *median) {
        Some((best, _)) => Ok((*best, medians)),
        None => Err(failed
            .into_iter()
            .flatten()
            .next()
            .unwrap_or_else(|| Error::CreateDatabase {
                database: format!("from template {template}"),
                message: "every clone method failed".into(),
            })),
    }
}

/// `CREATE DATABASE name TEMPLATE template` copied by `method`; without a template, from
/// `template0` so nothing a user installed in `template1` leaks in.
pub async fn create_database(
    conn: &mut PgConnection,
    name: &str,
    template: Option<&str>,
    method: CloneMethod,
) -> Result<()> {
    let sql = format!(
        "CREATE DATABASE {} TEMPLATE {}{}",
        quote_ident(name),
        quote_ident(template.unwrap_or("template0")),
        method.clause()
    );
    // CREATE DATABASE cannot share a query string with the SET: it runs alone, and the session
    // goes back to the default copy after it.
    if method == CloneMethod::FileClone {
        sqlx::raw_sql("SET file_copy_method = clone")
            .execute(&mut *conn)
            .await
            .map_err(Error::db("choosing file_copy_method = clone"))?;
    }
    let created = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&mut *conn)
        .await;
    if method == CloneMethod::FileClone {
        let reset = sqlx::raw_sql("RESET file_copy_method")
            .execute(&mut *conn)
            .await;
        // A failed CREATE DATABASE is the error to report; a failed RESET only after a success.
        if created.is_ok() {
            reset.map_err(Error::db("resetting file_copy_method"))?;
        }
    }
    created.map_err(|e| match &e {
        sqlx::Error::Database(db) if db.code().as_deref() == Some("42501") => {
            Error::CreateDatabase {
                database: name.to_string(),
                message: "the server refused: the user lacks CREATEDB. Grant it (ALTER ROLE … \
                          CREATEDB) or name an existing migrated database"
                    .into(),
            }
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
