//! The embedded server: a PostgreSQL cluster seedbed creates and starts itself, one per OS user
//! and server version, shared by every test thread, test process and project of that user.
//!
//! Layout, under the base directory (`/dev/shm/seedbed-<uid>` on machines with tmpfs):
//!
//! ```text
//! pg15/
//!   lock          flock(2)-ed while a process checks, starts or stops the server
//!   state         pid, port, socket dir, data dir, version, binaries of the running server
//!   secret        the superuser's password over TCP (mode 0600)
//!   server.log    the server's output
//!   data/         the cluster (initdb), with seedbed.conf included from postgresql.conf
//!   .s.PGSQL.N    the Unix socket (in a short /tmp directory instead if this path is too long)
//! ```
//!
//! A process first reads `state` and connects through the socket, with no lock (the warm path);
//! only when that fails does it take the lock, check again, and (re)start the server.
//!
//! ## Who gets in
//!
//! Only the OS account that owns the cluster (the one seedbed runs as):
//!
//! - The cluster directory and the socket's directory are mode 0700, and so is the socket itself
//!   (`unix_socket_permissions`): no other account can reach the socket, and through it the
//!   owner connects as any role without a password exchange.
//! - Over TCP (127.0.0.1 only), `scram-sha-256` with a random password made once per cluster and
//!   kept in `secret`, readable by its owner alone. The URLs seedbed prints and hands out
//!   ([`EmbeddedServer::url`], `seedbed server start`) carry it.
//!
//! `pg_hba.conf` is rewritten at every start. A cluster made before this
//! (trusting every local account) is secured the first time seedbed finds it, running or not.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};

use super::binaries::{Binaries, SearchPaths, discover_cached};
use super::os::{self, FileLock, ServerUser};
use crate::error::{Error, Result};

mod access;
mod init;
use self::init::{clear_stale_pid_file, initdb, read_postmaster_pid, write_seedbed_conf};

/// The superuser of the embedded cluster.
pub const SUPERUSER: &str = "postgres";

/// The longest Unix socket path the OS accepts (`sun_path` is 108 bytes on Linux, 104 on macOS,
/// including the terminating NUL).
const MAX_SOCKET_PATH: usize = if cfg!(target_os = "linux") { 107 } else { 103 };

/// How long a process waits for another to finish starting the server.
const LOCK_WAIT: Duration = Duration::from_secs(180);

/// How an embedded server is found or made.
#[derive(Debug, Clone)]
pub struct EmbeddedConfig {
    /// Where clusters live; `None` for the default (`SEEDBED_HOME`, tmpfs, or the cache dir).
    pub base_dir: Option<PathBuf>,
    /// Where to look for the server binaries.
    pub search: SearchPaths,
    /// Extra server settings (`max_connections`, …), written to the cluster's configuration when
    /// the server starts.
    pub settings: Vec<(String, String)>,
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        Self {
            base_dir: None,
            search: SearchPaths::from_env(),
            settings: Vec::new(),
        }
    }
}

impl EmbeddedConfig {
    /// A configuration whose clusters live under `base_dir` (tests use their own).
    pub fn with_base_dir(base_dir: impl Into<PathBuf>) -> Self {
        Self {
            base_dir: Some(base_dir.into()),
            ..Self::default()
        }
    }

    /// Adds a server setting (applied when the server starts).
    pub fn setting(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.settings.push((name.into(), value.into()));
        self
    }

    fn base_dir(&self) -> PathBuf {
        self.base_dir.clone().unwrap_or_else(os::default_base_dir)
    }
}

/// A running embedded server, as recorded in its state file.
#[derive(Clone, PartialEq, Eq)]
pub struct EmbeddedServer {
    /// The postmaster's pid.
    pub pid: u32,
    /// The TCP port on 127.0.0.1.
    pub port: u16,
    /// The directory holding the Unix socket.
    pub socket_dir: PathBuf,
    /// The cluster's data directory.
    pub data_dir: PathBuf,
    /// `major.minor` of the server.
    pub version: String,
    /// Where its binaries are.
    pub bin_dir: PathBuf,
    /// The superuser's password over TCP (from the cluster's `secret` file).
    password: String,
}

impl std::fmt::Debug for EmbeddedServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedServer")
            .field("pid", &self.pid)
            .field("port", &self.port)
            .field("socket_dir", &self.socket_dir)
            .field("data_dir", &self.data_dir)
            .field("version", &self.version)
            .field("bin_dir", &self.bin_dir)
            .field("password", &"***")
            .finish()
    }
}

impl EmbeddedServer {
    /// Options for connecting to `database` through the Unix socket, as the superuser (only the
    /// owner reaches the socket; the password is there for a connection made over TCP from
    /// these options with the socket removed).
    pub fn connect_options(&self, database: &str) -> PgConnectOptions {
        PgConnectOptions::new_without_pgpass()
            .host("127.0.0.1")
            .port(self.port)
            .socket(&self.socket_dir)
            .username(SUPERUSER)
            .password(&self.password)
            .database(database)
    }

    /// A `postgres://` URL over TCP with the superuser's password, for tools outside seedbed
    /// (`psql`, `sqlx::query!`, `cargo sqlx prepare`).
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), seedbed::Error> {
    /// use seedbed::server::embedded::{self, EmbeddedConfig};
    /// let server = embedded::ensure(&EmbeddedConfig::default()).await?;
    /// // postgres://postgres:<secret>@127.0.0.1:<port>/postgres
    /// println!("DATABASE_URL={}", server.url("postgres"));
    /// # Ok(()) }
    /// ```
    pub fn url(&self, database: &str) -> String {
        if self.password.is_empty() {
            // A cluster not secured yet (found by `status`, which changes nothing).
            return format!("postgres://{SUPERUSER}@127.0.0.1:{}/{database}", self.port);
        }
        format!(
            "postgres://{SUPERUSER}:{}@127.0.0.1:{}/{database}",
            self.password, self.port
        )
    }

    /// A `postgres://` URL that reaches the server through its Unix socket (the `host`
    /// parameter, which sqlx and libpq read as a socket directory): what seedbed hands to tests
    /// ([`TestDb::url`](crate::TestDb::url)) and prints in failure messages. A connection
    /// through the socket (which only the owner can reach) skips the password exchange,
    /// which costs tens of milliseconds per connection in a debug build; the password is in the
    /// URL for a tool that drops the parameter and uses TCP.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), seedbed::Error> {
    /// use seedbed::server::embedded::{self, EmbeddedConfig};
    /// let server = embedded::ensure(&EmbeddedConfig::default()).await?;
    /// // postgres://postgres:<secret>@127.0.0.1:<port>/app?host=/dev/shm/seedbed-1000/pg17
    /// println!("{}", server.socket_url("app"));
    /// # Ok(()) }
    /// ```
    pub fn socket_url(&self, database: &str) -> String {
        let encoded: String = self
            .socket_dir
            .to_string_lossy()
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' => {
                    char::from(b).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        format!("{}?host={encoded}", self.url(database))
    }

    /// The superuser's password over TCP: random, made once per cluster.
    pub fn password(&self) -> &str {
        &self.password
    }

    fn to_state_file(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "pid={}", self.pid);
        let _ = writeln!(s, "port={}", self.port);
        let _ = writeln!(s, "socket_dir={}", self.socket_dir.display());
        let _ = writeln!(s, "data_dir={}", self.data_dir.display());
        let _ = writeln!(s, "version={}", self.version);
        let _ = writeln!(s, "bin_dir={}", self.bin_dir.display());
        s
    }

    fn from_state_file(text: &str) -> Option<Self> {
        let get = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                .map(str::to_string)
        };
        Some(Self {
            pid: get("pid")?.parse().ok()?,
            port: get("port")?.parse().ok()?,
            socket_dir: get("socket_dir")?.into(),
            data_dir: get("data_dir")?.into(),
            version: get("version")?,
            bin_dir: get("bin_dir")?.into(),
            password: String::new(),
        })
    }
}

/// The files of one cluster (one server version).
#[derive(Debug, Clone)]
struct Cluster {
    dir: PathBuf,
    data_dir: PathBuf,
    socket_dir: PathBuf,
    log_file: PathBuf,
    state_file: PathBuf,
    lock_file: PathBuf,
    secret_file: PathBuf,
}

impl Cluster {
    fn new(base: &Path, major: u32) -> Self {
        let dir = base.join(format!("pg{major}"));
        let socket_dir = if dir.as_os_str().len() + "/.s.PGSQL.65535".len() <= MAX_SOCKET_PATH {
            dir.clone()
        } else {
            // A deep cache directory: put the socket in a short directory named after the cluster.
            std::env::temp_dir().join(format!(
                "seedbed-{}-{:016x}",
                os::current_euid(),
                crate::util::hash::stable_hash(&dir.to_string_lossy())
            ))
        };
        Self {
            data_dir: dir.join("data"),
            log_file: dir.join("server.log"),
            state_file: dir.join("state"),
            lock_file: dir.join("lock"),
            secret_file: dir.join("secret"),
            socket_dir,
            dir,
        }
    }

    /// The running server its state file describes, with the password from `secret`: `None`
    /// when either is missing (a cluster not secured yet has no `secret`).
    fn read_state(&self) -> Option<EmbeddedServer> {
        let text = fs::read_to_string(&self.state_file).ok()?;
        let password = access::read_secret(self)?;
        Some(EmbeddedServer {
            password,
            ..EmbeddedServer::from_state_file(&text)?
        })
    }

    fn write_state(&self, server: &EmbeddedServer) -> Result<()> {
        let tmp = self.dir.join(format!("state.{}.tmp", std::process::id()));
        fs::write(&tmp, server.to_state_file()).map_err(Error::io("cannot write", &tmp))?;
        fs::rename(&tmp, &self.state_file).map_err(Error::io("cannot write", &self.state_file))
    }

    fn log_tail(&self) -> Option<String> {
        let text = fs::read_to_string(&self.log_file).ok()?;
        let lines: Vec<&str> = text.lines().collect();
        let start = lines.len().saturating_sub(20);
        Some(lines[start..].join("\n"))
    }
}

/// Returns the running embedded server, starting it (and creating its cluster) if needed.
///
/// Safe to call from many threads and processes at once: exactly one of them starts the server,
/// the others wait for it and reuse it.
pub async fn ensure(config: &EmbeddedConfig) -> Result<EmbeddedServer> {
    unsupported_platform()?;
    let base = config.base_dir();
    let bins = discover_cached(&config.search, &base)?;
    let cluster = Cluster::new(&base, bins.major());

    // Warm path: no lock, no connection. Every test process comes here, and the connection it
    // opens next proves the rest.
    if let Some(running) = cluster.read_state()
        && runs(&running, &cluster)
    {
        return Ok(running);
    }

    let user = ServerUser::detect()?;
    prepare_dirs(&base, &cluster, &user).map_err(|e| disk_full(e, &cluster))?;
    let _lock = FileLock::acquire(&cluster.lock_file, LOCK_WAIT, "PostgreSQL").await?;

    if let Some(running) = cluster.read_state()
        && probe(&running, &cluster.data_dir).await
    {
        return Ok(running);
    }
    // A server that runs but whose cluster has no secret yet (made by an earlier seedbed that
    // trusted every local account): secure it in place, without a restart.
    if let Some(text) = fs::read_to_string(&cluster.state_file).ok()
        && let Some(running) = EmbeddedServer::from_state_file(&text)
        && access::read_secret(&cluster).is_none()
        && probe(&running, &cluster.data_dir).await
    {
        return access::secure(&cluster, &user, running, true).await;
    }
    let _ = fs::remove_file(&cluster.state_file);
    start(&cluster, &bins, &user, &config.settings)
        .await
        .map_err(|e| disk_full(e, &cluster))
}

/// An OS error writing the cluster's files (its directories, state, secret, settings) because
/// the disk is full, said so.
fn disk_full(e: Error, cluster: &Cluster) -> Error {
    match e {
        Error::Io { .. } if super::is_disk_full(&e.to_string()) => Error::Embedded {
            what: format!("{}: {e}", super::disk_full_note(&cluster.dir)),
            log_tail: None,
        },
        other => other,
    }
}

/// The running embedded server, if there is one; never starts it.
pub async fn status(config: &EmbeddedConfig) -> Result<Option<EmbeddedServer>> {
    unsupported_platform()?;
    let base = config.base_dir();
    let bins = discover_cached(&config.search, &base)?;
    let cluster = Cluster::new(&base, bins.major());
    let running = cluster.read_state().or_else(|| {
        let text = fs::read_to_string(&cluster.state_file).ok()?;
        EmbeddedServer::from_state_file(&text)
    });
    match running {
        Some(running) if probe(&running, &cluster.data_dir).await => Ok(Some(running)),
        _ => Ok(None),
    }
}

/// Stops the embedded server if it runs. Returns whether one was stopped.
pub async fn stop(config: &EmbeddedConfig) -> Result<bool> {
    unsupported_platform()?;
    let base = config.base_dir();
    let bins = discover_cached(&config.search, &base)?;
    let cluster = Cluster::new(&base, bins.major());
    if !cluster.dir.exists() {
        return Ok(false);
    }
    let user = ServerUser::detect()?;
    let _lock = FileLock::acquire(&cluster.lock_file, LOCK_WAIT, "PostgreSQL").await?;
    let was_running = cluster.data_dir.join("postmaster.pid").exists();
    if was_running {
        let out = user
            .command(bins.tool("pg_ctl"))
            .current_dir(&cluster.dir)
            .args(["-D"])
            .arg(&cluster.data_dir)
            .args(["-m", "fast", "-w", "-t", "60", "-s", "stop"])
            .output()
            .map_err(Error::io("cannot run", bins.tool("pg_ctl")))?;
        if !out.status.success() && cluster.data_dir.join("postmaster.pid").exists() {
            return Err(Error::Embedded {
                what: format!(
                    "pg_ctl stop failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
                log_tail: cluster.log_tail(),
            });
        }
    }
    let _ = fs::remove_file(&cluster.state_file);
    Ok(was_running)
}

fn unsupported_platform() -> Result<()> {
    if cfg!(unix) {
        Ok(())
    } else {
        Err(Error::UnsupportedPlatform {
            platform: std::env::consts::OS,
        })
    }
}

/// Whether the server a state file describes runs, judged without connecting: its postmaster is
/// alive and is PostgreSQL, its `postmaster.pid` names it and this data directory, and its socket
/// exists. A state file left by a server that died (its pid since reused by another program, say)
/// fails one of these.
fn runs(server: &EmbeddedServer, cluster: &Cluster) -> bool {
    if !same_path(&server.data_dir, &cluster.data_dir)
        || !server
            .socket_dir
            .join(format!(".s.PGSQL.{}", server.port))
            .exists()
    {
        return false;
    }
    let Ok(pid_file) = fs::read_to_string(cluster.data_dir.join("postmaster.pid")) else {
        return false;
    };
    let mut lines = pid_file.lines();
    let names_it = lines.next().and_then(|l| l.trim().parse::<u32>().ok()) == Some(server.pid)
        && lines
            .next()
            .is_some_and(|dir| same_path(Path::new(dir.trim()), &cluster.data_dir));
    names_it
        && os::process_alive(server.pid)
        && os::process_command_line(server.pid).is_none_or(|cmd| cmd.contains("postgres"))
}

/// Connects through the socket and checks the server answering there serves `data_dir` (a state
/// file may be stale, or point at a port another server now holds).
async fn probe(server: &EmbeddedServer, data_dir: &Path) -> bool {
    if !same_path(&server.data_dir, data_dir) {
        return false;
    }
    let socket = server.socket_dir.join(format!(".s.PGSQL.{}", server.port));
    if !socket.exists() {
        return false;
    }
    let attempt = async {
        let mut conn = PgConnection::connect_with(&server.connect_options("postgres")).await?;
        let dir: String = sqlx::query_scalar("SELECT current_setting('data_directory')")
            .fetch_one(&mut conn)
            .await?;
        let _ = conn.close().await;
        Ok::<_, sqlx::Error>(dir)
    };
    match tokio::time::timeout(Duration::from_secs(5), attempt).await {
        Ok(Ok(dir)) => same_path(Path::new(&dir), data_dir),
        _ => false,
    }
}

fn same_path(a: &Path, b: &Path) -> bool {
    match (fs::canonicalize(a), fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

fn prepare_dirs(base: &Path, cluster: &Cluster, user: &ServerUser) -> Result<()> {
    for dir in [base, cluster.dir.as_path()] {
        fs::create_dir_all(dir).map_err(Error::io("cannot create directory", dir))?;
    }
    #[cfg(unix)]
    if user.switch_to.is_some() {
        use std::os::unix::fs::PermissionsExt;
        // The server's account must be able to enter the base directory and own its cluster.
        fs::set_permissions(base, fs::Permissions::from_mode(0o755))
            .map_err(Error::io("cannot set permissions on", base))?;
        user.hand_over(&cluster.dir)?;
    }
    if cluster.socket_dir != cluster.dir {
        fs::create_dir_all(&cluster.socket_dir)
            .map_err(Error::io("cannot create directory", &cluster.socket_dir))?;
        user.hand_over(&cluster.socket_dir)?;
    }
    // Nobody but the cluster's owner (and root) enters the cluster or reaches its socket.
    access::owner_only(&cluster.dir)?;
    access::owner_only(&cluster.socket_dir)?;
    Ok(())
}

/// Initialises the cluster if needed and starts the server. Called with the lock held.
async fn start(
    cluster: &Cluster,
    bins: &Binaries,
    user: &ServerUser,
    settings: &[(String, String)],
) -> Result<EmbeddedServer> {
    if !cluster.data_dir.join("PG_VERSION").is_file() {
        initdb(cluster, bins, user)?;
    }
    clear_stale_pid_file(cluster, bins, user)?;
    access::write_hba(cluster, user)?;

    let mut last_error = None;
    for _attempt in 0..3 {
        let port = free_port()?;
        write_seedbed_conf(cluster, port, user, settings)?;
        let out = user
            .command(bins.tool("pg_ctl"))
            .current_dir(&cluster.dir)
            .arg("-D")
            .arg(&cluster.data_dir)
            .arg("-l")
            .arg(&cluster.log_file)
            .args(["-w", "-t", "60", "-s", "start"])
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(Error::io("cannot run", bins.tool("pg_ctl")))?;
        if out.status.success() {
            let pid = read_postmaster_pid(&cluster.data_dir).ok_or_else(|| Error::Embedded {
                what: "the server started but wrote no postmaster.pid".into(),
                log_tail: cluster.log_tail(),
            })?;
            let server = EmbeddedServer {
                pid,
                port,
                socket_dir: cluster.socket_dir.clone(),
                data_dir: cluster.data_dir.clone(),
                version: format!("{}.{}", bins.version.0, bins.version.1),
                bin_dir: bins.bin_dir.clone(),
                password: String::new(),
            };
            if !probe(&server, &cluster.data_dir).await {
                return Err(Error::Embedded {
                    what: format!(
                        "the server started (pid {pid}) but does not accept connections on {}",
                        server.socket_dir.display()
                    ),
                    log_tail: cluster.log_tail(),
                });
            }
            cluster.write_state(&server)?;
            return access::secure(cluster, user, server, false).await;
        }
        let log = cluster.log_tail().unwrap_or_default();
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        let what = if super::is_disk_full(&log) || super::is_disk_full(&stderr) {
            format!(
                "pg_ctl start failed: {}",
                super::disk_full_note(&cluster.dir)
            )
        } else {
            format!("pg_ctl start failed ({}): {stderr}", out.status)
        };
        last_error = Some(Error::Embedded {
            what,
            log_tail: Some(log.clone()),
        });
        // Another program took the port between our check and the server's bind: try another.
        if !log.contains("could not bind") && !log.contains("already in use") {
            break;
        }
    }
    Err(last_error.unwrap_or_else(|| Error::Embedded {
        what: "the server did not start".into(),
        log_tail: cluster.log_tail(),
    }))
}

fn free_port() -> Result<u16> {
    os::free_port().map_err(|e| Error::Embedded {
        what: format!("cannot find a free TCP port on 127.0.0.1: {e}"),
        log_tail: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_file_round_trips() {
        let server = EmbeddedServer {
            pid: 42,
            port: 54321,
            socket_dir: "/dev/shm/seedbed-0/pg15".into(),
            data_dir: "/dev/shm/seedbed-0/pg15/data".into(),
            version: "15.20".into(),
            bin_dir: "/usr/lib/postgresql/15/bin".into(),
            password: String::new(),
        };
        let parsed = EmbeddedServer::from_state_file(&server.to_state_file());
        assert_eq!(parsed, Some(server));
        assert_eq!(EmbeddedServer::from_state_file("pid=1\n"), None);
    }

    #[test]
    fn the_socket_url_reaches_the_socket() {
        use std::str::FromStr as _;
        let server = EmbeddedServer {
            pid: 1,
            port: 5433,
            socket_dir: "/dev/shm/seedbed 0/pg15".into(),
            data_dir: "/dev/shm/seedbed 0/pg15/data".into(),
            version: "15.20".into(),
            bin_dir: "/usr/lib/postgresql/15/bin".into(),
            password: "0a1b".into(),
        };
        let url = server.socket_url("app");
        assert_eq!(
            url,
            "postgres://postgres:0a1b@127.0.0.1:5433/app?host=/dev/shm/seedbed%200/pg15"
        );
        let options = PgConnectOptions::from_str(&url).expect("a valid URL");
        assert_eq!(
            options.get_socket(),
            Some(&PathBuf::from("/dev/shm/seedbed 0/pg15"))
        );
        assert_eq!(options.get_port(), 5433);
        assert_eq!(options.get_database(), Some("app"));
    }

    #[test]
    fn long_cluster_paths_get_a_short_socket_dir() {
        let deep = PathBuf::from(format!("/home/{}/cache", "x".repeat(120)));
        let cluster = Cluster::new(&deep, 15);
        assert_ne!(cluster.socket_dir, cluster.dir);
        assert!(
            cluster.socket_dir.join(".s.PGSQL.65535").as_os_str().len() <= MAX_SOCKET_PATH,
            "{}",
            cluster.socket_dir.display()
        );
        let short = Cluster::new(Path::new("/dev/shm/seedbed-0"), 15);
        assert_eq!(short.socket_dir, short.dir);
    }
}
