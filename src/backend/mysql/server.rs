//! Where the MySQL (or MariaDB) server comes from.
//!
//! In order:
//!
//! 1. `SEEDBED_MYSQL_URL`, if set: a `mysql://` (or `mariadb://`) URL; `embedded` forces the
//!    embedded server. A suite with PostgreSQL and MySQL tests names each server by its own
//!    variable.
//! 2. `SEEDBED_DATABASE_URL`, then `DATABASE_URL`, when it is a `mysql://` or `mariadb://` URL
//!    (a `postgres://` one is PostgreSQL's, and skipped here), as `#[sqlx::test]` users expect.
//! 3. The **embedded server** ([`embedded`](super::embedded)): MariaDB's or MySQL's binaries on
//!    this machine, a data directory per OS user and server version, durability off, started once
//!    and shared by every test process.
//!
//! The URL's database, if it names one, is where seedbed's maintenance connections start; seedbed
//! keeps what it records (database markers) in a database of its own, `seedbed`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), seedbed::Error> {
//! let server = seedbed::backend::mysql::MySqlServer::resolve().await?;
//! println!("MySQL tests run against {} ({})", server.display_url("app"), server.flavor()?);
//! # Ok(()) }
//! ```

use std::str::FromStr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sqlx::mysql::{MySqlConnectOptions, MySqlDatabaseError};
use sqlx::{Connection, MySqlConnection};
use tokio::sync::OnceCell;

use crate::error::{Error, Result};

/// The variable that names the MySQL server for seedbed alone.
pub const URL_VAR: &str = "SEEDBED_MYSQL_URL";

/// How long seedbed tries to reach a server named by URL.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long seedbed waits for a server that has no connection to spare.
pub(crate) const FULL_WAIT: Duration = Duration::from_secs(600);

/// Which server answers: the two differ in `RETURNING`, in how a failed `CHECK` is reported and
/// in a few catalog columns, which seedbed handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// MariaDB (10.6 and later).
    MariaDb,
    /// MySQL (8.0 and later).
    MySql,
}

impl std::fmt::Display for Flavor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Flavor::MariaDb => "MariaDB",
            Flavor::MySql => "MySQL",
        })
    }
}

/// A resolved MySQL or MariaDB server: how to reach it, and what it is once reached.
#[derive(Debug)]
pub struct MySqlServer {
    /// Where the URL came from (`SEEDBED_MYSQL_URL`, `DATABASE_URL`, `embedded`, `code`).
    origin: &'static str,
    /// The URL as given (or made for the embedded server).
    url: String,
    options: MySqlConnectOptions,
    /// The server's flavor and version, read on the first connection.
    version: OnceLock<(Flavor, String)>,
    /// `seedbed`'s own database made, once per process.
    admin_ready: OnceCell<()>,
    /// A maintenance connection given back for the next [`maintenance`](Self::maintenance), in
    /// a process whose one test's runtime is the only one (see [`park`](Self::park)).
    parked: std::sync::Mutex<Option<MySqlConnection>>,
}

/// The process's server, resolved once (or installed).
static SERVER: OnceCell<MySqlServer> = OnceCell::const_new();

/// Whether [`MySqlServer::park`] keeps connections (see [`set_parking`]).
static PARKING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Says whether the process runs its one test on the one runtime it has (`cargo nextest`), where
/// a maintenance connection done with can serve the next one ([`MySqlServer::park`]); off, a
/// parked connection is forgotten (its runtime may have ended). Set by the isolation engine
/// before each MySQL test's database is acquired.
#[cfg_attr(
    not(feature = "postgres"),
    allow(dead_code, reason = "the isolation engine calls it")
)]
pub(crate) fn set_parking(on: bool) {
    let was = PARKING.swap(on, std::sync::atomic::Ordering::SeqCst);
    if was
        && !on
        && let Some(server) = SERVER.get()
    {
        server.forget_parked();
    }
}

impl MySqlServer {
    /// The server every MySQL test of this process uses, resolved once.
    pub(crate) async fn get() -> Result<&'static MySqlServer> {
        SERVER.get_or_try_init(Self::resolve).await
    }

    /// Makes `server` the process's MySQL server, the one every MySQL test database of the
    /// process is made on, for a program that chooses its server itself (a command taking a
    /// `--database-url`). It must come before anything resolved the server.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), seedbed::Error> {
    /// use seedbed::backend::mysql::MySqlServer;
    /// let server = MySqlServer::from_url("mysql://root@db:3306").await?;
    /// let server = MySqlServer::install(server)?;
    /// println!("tests run on {}", server.display_url(""));
    /// # Ok(()) }
    /// ```
    pub fn install(server: MySqlServer) -> Result<&'static MySqlServer> {
        SERVER.set(server).map_err(|_| {
            Error::Config(
                "the process's MySQL server was already resolved; install one before any test \
                 database is acquired"
                    .into(),
            )
        })?;
        SERVER.get().ok_or_else(|| {
            Error::Internal("the process's MySQL server could not be installed".into())
        })
    }

    /// Resolves the server from the environment (see the module's documentation) and checks
    /// that it answers.
    pub async fn resolve() -> Result<MySqlServer> {
        let server = Self::unverified().await?;
        let mut conn = server.connect_maintenance().await?;
        server.read_version(&mut conn).await?;
        server.park(conn).await;
        Ok(server)
    }

    /// Forgets the parked connection (its runtime ended): dropped, it closes.
    pub(crate) fn forget_parked(&self) {
        drop(
            self.parked
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take(),
        );
    }

    /// Gives back a maintenance connection that is done with (no lock held, no session setting
    /// changed): in a process that runs one test on the one runtime it has (`cargo nextest`),
    /// the next [`maintenance`](Self::maintenance) takes it instead of connecting again;
    /// elsewhere it closes (it may have been opened on a test's runtime, which ends with it).
    pub(crate) async fn park(&self, conn: MySqlConnection) {
        let conn = if PARKING.load(std::sync::atomic::Ordering::SeqCst) {
            let mut parked = self
                .parked
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match parked.as_ref() {
                None => {
                    *parked = Some(conn);
                    return;
                }
                Some(_) => conn,
            }
        } else {
            conn
        };
        let _ = conn.close().await;
    }

    /// The server the environment names (as [`resolve`](Self::resolve) finds it), without
    /// connecting to it.
    #[cfg(feature = "bench")]
    pub(crate) async fn from_env() -> Result<MySqlServer> {
        Self::unverified().await
    }

    async fn unverified() -> Result<MySqlServer> {
        if let Ok(value) = std::env::var(URL_VAR) {
            let value = value.trim();
            if value == "embedded" {
                return super::embedded::server().await;
            }
            if !value.is_empty() {
                return Self::parse(value, URL_VAR);
            }
        }
        for var in ["SEEDBED_DATABASE_URL", "DATABASE_URL"] {
            if let Ok(value) = std::env::var(var)
                && is_mysql_url(value.trim())
            {
                return Self::parse(value.trim(), var);
            }
        }
        super::embedded::server().await
    }

    /// The embedded server `running`, reached through its socket.
    pub(crate) fn from_embedded(running: &super::embedded::EmbeddedMySql) -> MySqlServer {
        MySqlServer {
            origin: "embedded",
            url: running.url(""),
            options: running.connect_options(""),
            version: OnceLock::new(),
            admin_ready: OnceCell::new(),
            parked: std::sync::Mutex::new(None),
        }
    }

    /// The server at `url` (`mysql://user:password@host:port[/database]`), reached, with
    /// seedbed's own database made: a wrong password, an unknown database or a user that may not
    /// create databases is an error that says what to do.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), seedbed::Error> {
    /// use seedbed::backend::mysql::MySqlServer;
    /// let server = MySqlServer::from_url("mysql://root@127.0.0.1:3306").await?;
    /// println!("{} {}", server.flavor()?, server.version().unwrap_or("?"));
    /// # Ok(()) }
    /// ```
    pub async fn from_url(url: &str) -> Result<MySqlServer> {
        let server = Self::parse(url, "code")?;
        let conn = server.maintenance().await?;
        let _ = conn.close().await;
        Ok(server)
    }

    pub(crate) fn parse(url: &str, origin: &'static str) -> Result<MySqlServer> {
        if !is_mysql_url(url) {
            return Err(Error::Config(format!(
                "{origin} must be a mysql:// or mariadb:// URL for a MySQL test, got `{}://…`",
                url.split("://").next().unwrap_or(url)
            )));
        }
        let normalized = match url.strip_prefix("mariadb://") {
            Some(rest) => format!("mysql://{rest}"),
            None => url.to_string(),
        };
        let options = MySqlConnectOptions::from_str(&normalized)
            .map_err(|e| Error::Config(format!("{origin} is not a valid MySQL URL: {e}")))?;
        Ok(MySqlServer {
            origin,
            url: normalized,
            options,
            version: OnceLock::new(),
            admin_ready: OnceCell::new(),
            parked: std::sync::Mutex::new(None),
        })
    }

    /// Where the URL came from.
    pub fn origin(&self) -> &'static str {
        self.origin
    }

    /// The server's flavor, once it was reached.
    pub fn flavor(&self) -> Result<Flavor> {
        self.version
            .get()
            .map(|(f, _)| *f)
            .ok_or_else(|| Error::Internal("the MySQL server was not reached yet".into()))
    }

    /// The server's version text (`10.11.19-MariaDB-…`, `8.4.3`), once it was reached.
    pub fn version(&self) -> Option<&str> {
        self.version.get().map(|(_, v)| v.as_str())
    }

    /// Connect options for `database`.
    pub fn options_for(&self, database: &str) -> MySqlConnectOptions {
        self.options.clone().database(database)
    }

    /// Connect options as the URL gives them (its database, if it names one).
    #[cfg(feature = "bench")]
    pub(crate) fn options(&self) -> MySqlConnectOptions {
        self.options.clone()
    }

    /// A URL of `database` on this server.
    pub fn url_for(&self, database: &str) -> String {
        with_database(&self.url, database)
    }

    /// [`url_for`](Self::url_for) with the password left out, for messages and logs.
    pub fn display_url(&self, database: &str) -> String {
        redact(&self.url_for(database))
    }

    /// A maintenance connection: no database of seedbed's, `seedbed`'s own database made.
    pub(crate) async fn maintenance(&self) -> Result<MySqlConnection> {
        let parked = self
            .parked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let mut conn = match parked {
            Some(conn) => conn,
            None => self.connect_maintenance().await?,
        };
        if self.version.get().is_none() {
            self.read_version(&mut conn).await?;
        }
        self.admin_ready
            .get_or_try_init(|| super::admin::ensure_admin(&mut conn))
            .await?;
        Ok(conn)
    }

    /// Reads the server's version, and in the same round trip whether seedbed's own database is
    /// made (then [`maintenance`](Self::maintenance) need not ask).
    async fn read_version(&self, conn: &mut MySqlConnection) -> Result<()> {
        let context = "reading the MySQL server's version";
        let row = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "SELECT CAST(VERSION() AS CHAR), {}",
            super::admin::admin_made_sql()
        )))
        .fetch_one(&mut *conn)
        .await
        .map_err(Error::db(context))?;
        let version: String = sqlx::Row::try_get(&row, 0).map_err(Error::db(context))?;
        let admin_made: i64 = sqlx::Row::try_get(&row, 1).map_err(Error::db(context))?;
        if admin_made == 2 {
            let _ = self.admin_ready.set(());
        }
        let flavor = if version.to_ascii_lowercase().contains("mariadb") {
            Flavor::MariaDb
        } else {
            Flavor::MySql
        };
        let _ = self.version.set((flavor, version));
        Ok(())
    }

    /// Connects with the URL's own options, waiting for a server that is starting.
    async fn connect_maintenance(&self) -> Result<MySqlConnection> {
        self.connect_waiting(&self.options).await
    }

    /// A connection to `database`: [`connect_waiting`](Self::connect_waiting) with
    /// [`options_for`](Self::options_for).
    pub(crate) async fn connect_to(&self, database: &str) -> Result<MySqlConnection> {
        self.connect_waiting(&self.options_for(database)).await
    }

    /// Connects with `options`, waiting for a server that is starting (up to 10 s) and for one
    /// that has no connection to spare (errors 1040, 1203, 1226: `max_connections` or the
    /// user's limit reached, up to 10 minutes; after 10 s a warning says why).
    pub(crate) async fn connect_waiting(
        &self,
        options: &MySqlConnectOptions,
    ) -> Result<MySqlConnection> {
        let started = Instant::now();
        let mut full_since: Option<Instant> = None;
        let mut told = false;
        let mut delay = Duration::from_millis(10);
        loop {
            let e = match MySqlConnection::connect_with(options).await {
                Ok(conn) => return Ok(conn),
                Err(e) => e,
            };
            if matches!(&e, sqlx::Error::Io(_)) && started.elapsed() < CONNECT_TIMEOUT {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            if !is_out_of_connections(&e) {
                return Err(self.explain(e, started.elapsed()));
            }
            let since = *full_since.get_or_insert_with(Instant::now);
            if since.elapsed() > FULL_WAIT {
                return Err(self.explain(e, since.elapsed()));
            }
            if !told && since.elapsed() > Duration::from_secs(10) {
                told = true;
                tracing::warn!(
                    "waiting for a connection to the MySQL server, which has none to spare \
                     ({e}): run fewer tests at once (cargo nextest -j, --test-threads) or \
                     raise max_connections"
                );
            }
            // A jittered wait, so processes waiting together do not retry in step.
            let jitter = Duration::from_millis(u64::from(std::process::id() % 7));
            tokio::time::sleep(delay + jitter).await;
            delay = (delay * 2).min(Duration::from_millis(640));
        }
    }

    /// A connection failure told as what to do.
    pub(crate) fn explain(&self, e: sqlx::Error, waited: Duration) -> Error {
        let fix = match self.origin {
            "embedded" => "`seedbed server status --mysql` shows the embedded server".to_string(),
            "code" => "check the URL given".to_string(),
            var => format!("check {var}, or unset it to use seedbed's embedded server"),
        };
        let user = self.options.get_username();
        let message = match error_number(&e) {
            Some(1045) => format!(
                "the server refused user `{user}`: wrong user name or password ({e}). Put the \
                 right ones in the URL; {fix}"
            ),
            Some(1049) => format!(
                "the database the URL names does not exist ({e}). seedbed needs none: remove it \
                 from the URL (mysql://user@host:port), or create it; {fix}"
            ),
            Some(1040 | 1203) | Some(1226) if is_out_of_connections(&e) => format!(
                "the server had no connection to spare for {waited:?} ({e}): run fewer tests at \
                 once (cargo nextest -j, --test-threads), or raise the server's \
                 max_connections (or the user's MAX_USER_CONNECTIONS)"
            ),
            Some(1044) => format!(
                "user `{user}` may not use the database the URL names ({e}): remove it from the \
                 URL, or grant access to it; {fix}"
            ),
            _ => match &e {
                sqlx::Error::Io(_) => format!(
                    "cannot reach MySQL at {}:{} (waited {waited:?}): {e}. Is the server \
                     running? {fix}",
                    self.options.get_host(),
                    self.options.get_port()
                ),
                _ => format!("{e}; {fix}"),
            },
        };
        Error::Connection {
            database: self.display_url("").trim_end_matches('/').to_string(),
            message,
        }
    }
}

/// Whether the server refused a connection for want of connections: `max_connections` reached
/// (1040), the users' limit (1203) or this user's (1226). Waited for, not failed on.
pub(crate) fn is_out_of_connections(e: &sqlx::Error) -> bool {
    match error_number(e) {
        Some(1040 | 1203) => true,
        // 1226 is every per-account limit; the hourly ones do not clear in a wait.
        Some(1226) => e.to_string().contains("max_user_connections"),
        _ => false,
    }
}

/// Whether `url` names a MySQL or MariaDB server.
fn is_mysql_url(url: &str) -> bool {
    url.starts_with("mysql://") || url.starts_with("mariadb://")
}

/// The MySQL error number of `e`, when the server sent one.
pub(crate) fn error_number(e: &sqlx::Error) -> Option<u16> {
    e.as_database_error()?
        .try_downcast_ref::<MySqlDatabaseError>()
        .map(MySqlDatabaseError::number)
}

/// When `e` is error 1419 (binary logging is on, and the user, without SUPER, may not create a
/// trigger or stored function), the server's message and what to do about it.
pub(crate) fn binlog_privilege_advice(e: &sqlx::Error) -> Option<String> {
    (error_number(e) == Some(1419)).then(|| {
        format!(
            "{e}. With binary logging on, MySQL lets an account without SUPER create triggers and \
             stored functions only while log_bin_trust_function_creators is 1: run SET GLOBAL \
             log_bin_trust_function_creators = 1 as an administrator (or set it in the server's \
             configuration), or connect as an account with SUPER"
        )
    })
}

/// `url` with its password (if any) replaced by `***`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((credentials, host)) => match credentials.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// `url` with its path (the database) replaced by `database`, its query kept.
fn with_database(url: &str, database: &str) -> String {
    let scheme_end = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?']).map_or(url.len(), |i| scheme_end + i);
    let query = url[authority_end..]
        .find('?')
        .map(|i| &url[authority_end + i..])
        .unwrap_or("");
    format!("{}/{database}{query}", &url[..authority_end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_replaced_in_urls() {
        assert_eq!(
            with_database("mysql://root@127.0.0.1:3306", "app"),
            "mysql://root@127.0.0.1:3306/app"
        );
        assert_eq!(
            with_database("mysql://u:p@h/old?ssl-mode=disabled", "new"),
            "mysql://u:p@h/new?ssl-mode=disabled"
        );
        assert_eq!(with_database("mysql://h?x=1", "d"), "mysql://h/d?x=1");
    }

    #[test]
    fn passwords_are_left_out_of_messages() {
        assert_eq!(
            redact("mysql://root:s3cret@127.0.0.1:3306/app?socket=/x"),
            "mysql://root:***@127.0.0.1:3306/app?socket=/x"
        );
        assert_eq!(redact("mysql://root@h/db"), "mysql://root@h/db");
    }

    #[test]
    fn other_schemes_are_refused_naming_the_variable() {
        let err = MySqlServer::parse("postgres://localhost/x", "SEEDBED_MYSQL_URL")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("SEEDBED_MYSQL_URL"), "{err}");
        assert!(MySqlServer::parse("mariadb://root@localhost:3306", "code").is_ok());
    }
}
