//! Where the database server comes from.
//!
//! In order:
//!
//! 1. `SEEDBED_DATABASE_URL`, if set; the value `embedded` forces the embedded server.
//! 2. `DATABASE_URL`, as `#[sqlx::test]` users expect.
//! 3. The **embedded server**: seedbed finds the local PostgreSQL binaries, creates a cluster for
//!    the current OS user and server version (on tmpfs where the machine has one), starts it with
//!    durability off on a Unix socket and a free 127.0.0.1 port, and leaves it running for every
//!    later test thread, test process and project. `seedbed server stop` stops it.
//!
//! The URL's database is the *maintenance database*: seedbed connects there to create, list and
//! drop its own databases and to take its coordination locks. Every process of a run must use the
//! same one.
//!
//! Connections to a server named by URL commit with `synchronous_commit = off` (unless the URL
//! or `PGOPTIONS` sets it): a commit returns without waiting for the disk, which a durable CI
//! server otherwise makes every test's commits and every cleanup wait for. What a crash could
//! lose (the last moments' commits) is what the next run's sweep removes anyway.
//!
//! ```no_run
//! # async fn demo() -> Result<(), seedbed::Error> {
//! let server = seedbed::server::Server::resolve().await?;
//! println!("tests run against {}", server.url_for("postgres"));
//! # Ok(()) }
//! ```

#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod binaries;
#[cfg(not(feature = "internals"))]
#[allow(unreachable_pub, dead_code)]
pub(crate) mod binaries;
pub mod embedded;
pub(crate) use crate::util::os;

use std::str::FromStr;
use std::time::{Duration, Instant};

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use std::sync::OnceLock;

use tokio::sync::OnceCell;

pub use self::embedded::{EmbeddedConfig, EmbeddedServer};
use crate::error::{Error, Result};

/// How long seedbed waits for a server that has no connection to spare (`too many clients`).
pub const SERVER_FULL_WAIT: Duration = Duration::from_secs(120);

/// Whether a connection was refused because the server has none to spare (`53300`, too many
/// connections) or is starting up (`57P03` says so; one shutting down gives the same code and
/// is not waited for): worth waiting for.
fn is_server_full(code: Option<&str>, message: &str) -> bool {
    match code {
        Some("53300") => true,
        Some("57P03") => message.contains("starting up"),
        _ => false,
    }
}

/// How long seedbed keeps trying to reach a configured server before giving up
/// (`SEEDBED_CONNECT_TIMEOUT`, in seconds, overrides it).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a [`Server`] came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A URL from an environment variable (or given in code).
    Url {
        /// The variable it came from (`SEEDBED_DATABASE_URL`, `DATABASE_URL`), or `"code"`.
        var: &'static str,
    },
    /// The embedded server.
    Embedded(EmbeddedServer),
}

/// A PostgreSQL server seedbed may create databases on.
#[derive(Debug, Clone)]
pub struct Server {
    origin: Origin,
    options: PgConnectOptions,
    url: String,
    /// `server_version_num`, known from the first connection made through [`Server::open`].
    version_num: OnceLock<u32>,
    /// How long the first connection keeps trying a server that does not answer yet.
    connect_timeout: Duration,
}

static RESOLVED: OnceCell<Server> = OnceCell::const_new();

impl Server {
    /// The server for this process, resolved once from the environment (see the module docs) and
    /// shared by every test of the process. It has been reached: its version is known.
    pub async fn resolve() -> Result<&'static Server> {
        let server = Self::get().await?;
        server.verify().await?;
        Ok(server)
    }

    /// The server for this process, without connecting to it: the first connection seedbed
    /// opens (through [`open`](Self::open)) waits for it and reports it unreachable. A test
    /// process under Rollback then opens one connection in all, its test's.
    pub(crate) async fn get() -> Result<&'static Server> {
        RESOLVED.get_or_try_init(Self::unverified_from_env).await
    }

    /// Connects once if no connection has been made yet, so the server is known to answer and
    /// its version is known.
    async fn verify(&self) -> Result<()> {
        if self.version_num.get().is_none() {
            let conn = self.connect().await?;
            let _ = conn.close().await;
        }
        Ok(())
    }

    /// Makes `server` the process's server, the one [`resolve`](Self::resolve) returns and the
    /// isolation engine uses, for a program that chooses its server itself (a command taking a
    /// `--database-url`). It must come before anything resolved the server.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), seedbed::Error> {
    /// use seedbed::server::{Server, connect_timeout};
    /// let server = Server::from_url_with("postgres://postgres@db:5432/postgres", "--database-url", connect_timeout()?).await?;
    /// Server::install(server)?;
    /// # Ok(()) }
    /// ```
    pub fn install(server: Server) -> Result<&'static Server> {
        RESOLVED.set(server).map_err(|_| {
            Error::Config(
                "the process's server was already resolved; install one before any test \
                 database is acquired"
                    .into(),
            )
        })?;
        RESOLVED
            .get()
            .ok_or_else(|| Error::Internal("the process's server could not be installed".into()))
    }

    /// The process's server if it has been resolved (never resolves it).
    pub(crate) fn resolved() -> Option<&'static Server> {
        RESOLVED.get()
    }

    /// What to tell a user whose test failed because of the server itself: the embedded server
    /// is gone (killed or crashed while tests ran), or the disk under it is full. `failure` is
    /// the test's failure message. `None` when neither applies.
    pub fn fault_note(&self, failure: &str) -> Option<String> {
        let Origin::Embedded(running) = &self.origin else {
            return None;
        };
        if !os::process_alive(running.pid) {
            return Some(format!(
                "the embedded PostgreSQL server (pid {}) is gone: it was killed or crashed while \
                 the tests ran. The next test process starts it again, and the first test of the \
                 next run sweeps what the dead tests left",
                running.pid
            ));
        }
        if is_disk_full(failure) {
            return Some(disk_full_note(&running.data_dir));
        }
        None
    }

    /// Resolves the server from the environment, without caching, and connects to it once.
    pub async fn from_env() -> Result<Server> {
        let server = Self::unverified_from_env().await?;
        server.verify().await?;
        Ok(server)
    }

    /// Resolves the server from the environment without connecting to it: a URL is parsed, the
    /// embedded server is found running (or started).
    async fn unverified_from_env() -> Result<Server> {
        for var in ["SEEDBED_DATABASE_URL", "DATABASE_URL"] {
            match std::env::var(var) {
                Ok(value) if value.trim() == "embedded" && var == "SEEDBED_DATABASE_URL" => {
                    return Self::unverified_embedded(&EmbeddedConfig::default()).await;
                }
                Ok(value) if !value.trim().is_empty() => {
                    return Self::parse_url(value.trim(), var, connect_timeout()?);
                }
                _ => {}
            }
        }
        Self::unverified_embedded(&EmbeddedConfig::default()).await
    }

    /// A server at `url`, checked by connecting to it within [`DEFAULT_CONNECT_TIMEOUT`].
    pub async fn from_url(url: &str) -> Result<Server> {
        Self::from_url_with(url, "code", DEFAULT_CONNECT_TIMEOUT).await
    }

    /// A server at `url`, trying for at most `timeout` (a server that is still starting is waited
    /// for; one that never answers gives [`Error::Unreachable`]).
    pub async fn from_url_with(url: &str, var: &'static str, timeout: Duration) -> Result<Server> {
        let server = Self::parse_url(url, var, timeout)?;
        server.verify().await?;
        Ok(server)
    }

    /// A server at `url`, not yet reached.
    fn parse_url(url: &str, var: &'static str, timeout: Duration) -> Result<Server> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(Error::Config(format!(
                "{var} must be a postgres:// or postgresql:// URL (seedbed supports PostgreSQL \
                 for now), got `{}`",
                url.split("://").next().unwrap_or(url)
            )));
        }
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| Error::Config(format!("{var} is not a valid PostgreSQL URL: {e}")))?;
        let options = if options.get_database().is_none() {
            options.database("postgres")
        } else {
            options
        };
        // Test data needs no durability: a commit returns without waiting for the WAL to reach
        // the disk (a crash loses at most the last moments' commits, which the next run's sweep
        // finds as left over). On a durable server that saves a disk flush per commit, the
        // test's own and seedbed's cleanup; a URL (or PGOPTIONS) that sets it keeps its own.
        let chosen = url.contains("synchronous_commit")
            || std::env::var("PGOPTIONS").is_ok_and(|o| o.contains("synchronous_commit"));
        let options = if chosen {
            options
        } else {
            options.options([("synchronous_commit", "off")])
        };
        Ok(Server {
            origin: Origin::Url { var },
            url: url.to_string(),
            options,
            version_num: OnceLock::new(),
            connect_timeout: timeout,
        })
    }

    /// The embedded server, started if needed.
    pub async fn embedded(config: &EmbeddedConfig) -> Result<Server> {
        let server = Self::unverified_embedded(config).await?;
        server.verify().await?;
        Ok(server)
    }

    /// The embedded server, found running (judged from its files) or started, not yet connected
    /// to.
    async fn unverified_embedded(config: &EmbeddedConfig) -> Result<Server> {
        let running = embedded::ensure(config).await?;
        Ok(Server {
            url: running.url("postgres"),
            options: running.connect_options("postgres"),
            origin: Origin::Embedded(running),
            version_num: OnceLock::new(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        })
    }

    /// Where this server came from.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// `server_version_num`, e.g. `150020`: known once a connection has been made, as
    /// [`resolve`](Self::resolve) does (0 before).
    pub fn version_num(&self) -> u32 {
        self.version_num.get().copied().unwrap_or(0)
    }

    /// The major version, e.g. `15`.
    pub fn major_version(&self) -> u32 {
        self.version_num() / 10_000
    }

    /// Connection options for the maintenance database.
    pub fn maintenance_options(&self) -> PgConnectOptions {
        self.options.clone()
    }

    /// The maintenance database's name.
    pub fn maintenance_database(&self) -> &str {
        self.options.get_database().unwrap_or("postgres")
    }

    /// Connection options for `database` on this server.
    pub fn database_options(&self, database: &str) -> PgConnectOptions {
        self.options.clone().database(database)
    }

    /// A URL for `database` on this server, for tools and failure messages (for the embedded
    /// server, through its socket: [`EmbeddedServer::socket_url`]).
    pub fn url_for(&self, database: &str) -> String {
        match &self.origin {
            Origin::Embedded(running) => running.socket_url(database),
            Origin::Url { .. } => replace_database(&self.url, database),
        }
    }

    /// A URL for `database` whose sessions have `search_path` set to `schema` (libpq's
    /// `options` parameter), for tools that build a schema of their own connections.
    pub fn url_for_schema(&self, database: &str, schema: &str) -> String {
        let url = self.url_for(database);
        let encoded: String = format!("-c search_path={}", crate::sql::quote_ident(schema))
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                    char::from(b).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        let separator = if url.contains('?') { '&' } else { '?' };
        format!("{url}{separator}options={encoded}")
    }

    /// Whether a connection to the server has been made (its version is known).
    pub fn reached(&self) -> bool {
        self.version_num.get().is_some()
    }

    /// Records the server's version from a connection made outside [`open`](Self::open) (a
    /// pool's).
    pub(crate) fn note_version(&self, conn: &PgConnection) {
        if let Some(version) = conn.server_version_num() {
            let _ = self.version_num.set(version);
        }
    }

    /// A new connection to the maintenance database.
    pub async fn connect(&self) -> Result<PgConnection> {
        self.open(&self.options).await
    }

    /// A new connection with `options` (to a database of this server). The first connection of
    /// the process keeps trying while the server refuses or does not answer (it may be starting),
    /// for at most the connect timeout, and then reports it [`Unreachable`](Error::Unreachable);
    /// later ones fail at once.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), seedbed::Error> {
    /// let server = seedbed::server::Server::resolve().await?;
    /// let conn = server.open(&server.database_options("postgres")).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// A server that has no connection to spare (`too many clients`, more test processes at once
    /// than its `max_connections` allows for seedbed's own connections) is waited for, up to
    /// [`SERVER_FULL_WAIT`], as a test waits for connection budget.
    pub async fn open(&self, options: &PgConnectOptions) -> Result<PgConnection> {
        let database = options.get_database().unwrap_or("postgres").to_string();
        if self.version_num.get().is_some() {
            let started = Instant::now();
            let mut delay = Duration::from_millis(20);
            loop {
                match PgConnection::connect_with(options).await {
                    Err(sqlx::Error::Database(e))
                        if is_server_full(e.code().as_deref(), e.message())
                            && started.elapsed() + delay < SERVER_FULL_WAIT =>
                    {
                        if started.elapsed() < Duration::from_secs(10)
                            && started.elapsed() + delay >= Duration::from_secs(10)
                        {
                            tracing::warn!(
                                "waiting for a free connection of the server ({}): more test \
                                 processes run at once than its max_connections allows",
                                e.message()
                            );
                        }
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_millis(500));
                    }
                    other => {
                        return other
                            .map_err(Error::db(format!("connecting to database {database}")));
                    }
                }
            }
        }
        let var = match &self.origin {
            Origin::Url { var } => *var,
            Origin::Embedded(_) => "the embedded server",
        };
        let conn = check(options, var, self.connect_timeout).await?;
        if let Some(version) = conn.server_version_num() {
            let _ = self.version_num.set(version);
        }
        Ok(conn)
    }
}

impl Server {
    /// Keeps the server's idle timeouts (`idle_session_timeout`, from PostgreSQL 14, and
    /// `idle_in_transaction_session_timeout`) from ending `conn`: for seedbed's own long-lived
    /// connections, which hold leases, budget slots and locks while tests run (a session the
    /// server ended would free a live test's lease). Set after connecting rather than in the
    /// startup packet, which connection poolers such as PgBouncer refuse to forward.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), seedbed::Error> {
    /// let server = seedbed::server::Server::resolve().await?;
    /// let mut conn = server.connect().await?;
    /// server.hold_session(&mut conn).await?;
    /// # Ok(()) }
    /// ```
    pub async fn hold_session(&self, conn: &mut PgConnection) -> Result<()> {
        let major = conn.server_version_num().unwrap_or(self.version_num()) / 10_000;
        let sql = if major >= 14 {
            "SET idle_in_transaction_session_timeout = 0; SET idle_session_timeout = 0"
        } else {
            "SET idle_in_transaction_session_timeout = 0"
        };
        sqlx::raw_sql(sql)
            .execute(conn)
            .await
            .map_err(Error::db("turning off idle timeouts for seedbed's session"))?;
        Ok(())
    }
}

/// How long to keep trying a configured server: `SEEDBED_CONNECT_TIMEOUT` (seconds), else
/// [`DEFAULT_CONNECT_TIMEOUT`].
///
/// ```
/// assert!(seedbed::server::connect_timeout().is_ok());
/// ```
pub fn connect_timeout() -> Result<Duration> {
    crate::util::env::seconds("SEEDBED_CONNECT_TIMEOUT", DEFAULT_CONNECT_TIMEOUT)
}

/// Connects, retrying while the server refuses or is unreachable.
async fn check(
    options: &PgConnectOptions,
    var: &'static str,
    timeout: Duration,
) -> Result<PgConnection> {
    let started = Instant::now();
    let host = match options.get_socket() {
        Some(dir) => dir.display().to_string(),
        None => options.get_host().to_string(),
    };
    let port = options.get_port();
    let mut delay = Duration::from_millis(50);
    // A server that answers but has no connection to spare is waited for longer.
    let mut timeout = timeout;
    loop {
        let remaining = timeout.saturating_sub(started.elapsed());
        let attempt = tokio::time::timeout(remaining, PgConnection::connect_with(options)).await;
        let reason = match attempt {
            Ok(Ok(conn)) => return Ok(conn),
            Ok(Err(sqlx::Error::Io(e))) => e.to_string(),
            Ok(Err(sqlx::Error::Database(e)))
                if is_server_full(e.code().as_deref(), e.message()) =>
            {
                timeout = timeout.max(SERVER_FULL_WAIT);
                e.message().to_string()
            }
            Ok(Err(e)) => {
                return Err(Error::Database {
                    context: format!("connecting to PostgreSQL at {host}:{port} (from {var})"),
                    source: e,
                });
            }
            Err(_) => "no answer".to_string(),
        };
        if started.elapsed() + delay >= timeout {
            return Err(Error::Unreachable {
                host,
                port,
                waited: started.elapsed(),
                reason,
                var,
            });
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(1));
    }
}

/// Whether a message says a disk is full (the server's `could not extend file …: No space left
/// on device`, SQLSTATE 53100, or an OS error from initdb or a copy).
pub(crate) fn is_disk_full(message: &str) -> bool {
    message.contains("No space left on device")
}

/// What to do when the disk under the embedded server's `dir` is full.
pub(crate) fn disk_full_note(dir: &std::path::Path) -> String {
    format!(
        "the disk holding the embedded server's files ({}) is full. On tmpfs (/dev/shm) that is \
         memory set aside for it: free space there (`seedbed sweep --kept` drops the databases \
         kept for failed tests), or set SEEDBED_HOME to a directory on a larger disk",
        dir.display()
    )
}

/// Replaces the database (path) of a `postgres://` URL, keeping its query string.
fn replace_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let authority_end = base[scheme_end..]
        .find('/')
        .map(|i| scheme_end + i)
        .unwrap_or(base.len());
    let mut out = format!("{}/{}", &base[..authority_end], database);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{disk_full_note, is_disk_full, replace_database};

    #[test]
    fn a_full_disk_is_recognised_and_named() {
        assert!(is_disk_full(
            "could not extend file \"base/16384/16390\": No space left on device"
        ));
        assert!(!is_disk_full("relation \"x\" does not exist"));
        let note = disk_full_note(std::path::Path::new("/dev/shm/seedbed-0/pg15/data"));
        assert!(note.contains("/dev/shm/seedbed-0/pg15/data") && note.contains("SEEDBED_HOME"));
    }

    #[test]
    fn replaces_the_database_of_a_url() {
        assert_eq!(
            replace_database("postgres://u:p@h:5432/postgres", "seedbed_x"),
            "postgres://u:p@h:5432/seedbed_x"
        );
        assert_eq!(
            replace_database("postgres://h?sslmode=disable", "d"),
            "postgres://h/d?sslmode=disable"
        );
        assert_eq!(
            replace_database("postgresql://h/a?host=/tmp", "b"),
            "postgresql://h/b?host=/tmp"
        );
    }
}
