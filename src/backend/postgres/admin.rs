//! Database administration on PostgreSQL: whether a database exists, creating one (from
//! `template0` or cloned from a sealed template, by the copy method measured fastest), and
//! dropping one.

use std::time::{Duration, Instant};

use sqlx::PgConnection;

use super::server::Server;
use crate::error::{Error, Result};
use crate::sql::quote_ident;

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
/// use seedbed::backend::postgres::admin::CloneMethod;
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
    /// use seedbed::backend::postgres::admin::CloneMethod;
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

pub(crate) fn remember_clone_method(template: &str, method: CloneMethod) {
    measured()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(template.to_string(), method);
}

/// How to clone `template`: `SEEDBED_CLONE_METHOD` if set (`WAL_LOG`, `FILE_COPY`,
/// `FILE_COPY+clone` or `default`), else the method measured when it was built (recorded in its
/// marker, read when the template is found or built), else the usual winner for the server: `FILE_COPY` on the
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
/// let method = seedbed::backend::postgres::admin::clone_method(server, "seedbed_tpl_0123")?;
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
        (super::server::Origin::Embedded(_), _) => CloneMethod::FileCopy,
        _ => CloneMethod::WalLog,
    })
}

/// The name of the database [`measure_clone_methods`] clones `template` into (at most 63 bytes).
pub(crate) fn probe_name(template: &str) -> String {
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
/// use seedbed::backend::postgres::admin;
/// let (best, medians) = admin::measure_clone_methods(conn, 15, "seedbed_tpl_0123").await?;
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

/// Whether the server refused because other sessions are connected to the database
/// (`55006`, object in use).
pub fn is_in_use(err: &Error) -> bool {
    matches!(
        err,
        Error::Database { source: sqlx::Error::Database(db), .. }
            if db.code().as_deref() == Some("55006")
    )
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
