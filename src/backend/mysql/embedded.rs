//! The embedded MySQL server: a MariaDB (or MySQL) server seedbed initialises and starts itself
//! from the binaries on this machine, one per OS user and server version, shared by every test
//! thread, test process and project of that user. `seedbed server start|status|stop --mysql`
//! manages it.
//!
//! Layout, under the base directory (`SEEDBED_HOME`, else `/dev/shm/seedbed-<uid>` on machines
//! with tmpfs, else the user's cache directory), beside PostgreSQL's `pg<N>/`:
//!
//! ```text
//! mariadb10.11/        (mysql8.4/ for MySQL)
//!   lock          flock(2)-ed while a process checks, starts or stops the server
//!   state         pid, port, socket, data dir, version, server binary of the running server
//!   secret        root's password (mode 0600), made once per data directory
//!   files/        MySQL's `secure_file_priv`: where `LOAD DATA INFILE` and `INTO OUTFILE` may go
//!   server.log    the server's error log
//!   data/         the data directory (mariadb-install-db, or mysqld --initialize-insecure)
//!   mysqld.sock   the Unix socket (in a short /tmp directory instead if this path is too long)
//! ```
//!
//! Durability is off, for speed: `innodb_flush_log_at_trx_commit = 0`, no doublewrite buffer, no
//! binary log. A machine crash may lose the last second of commits, which for test data does not
//! matter. The server listens on the socket and on 127.0.0.1 (a free port); the directory is the
//! owner's alone (mode 0700), and root needs the password from `secret` (only the owner can
//! read it) over either. When seedbed runs as root, the server runs as the unprivileged account
//! `mysql` (or `SEEDBED_MYSQL_SERVER_USER`).
//!
//! A process first reads `state` and checks the server's process and socket, with no lock and no
//! connection (the warm path); only when that fails does it take the lock, check again, and
//! (re)start the server.
//!
//! Binaries are searched in `SEEDBED_MYSQL_BIN` (a directory), `PATH`, and the usual places
//! (`/usr/sbin`, `/usr/local/mysql/bin`, Homebrew's), in that order: the first directory holding
//! `mariadbd` or `mysqld` (`mariadbd` first within one) gives the server.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sqlx::mysql::MySqlConnectOptions;
use sqlx::{Connection, MySqlConnection};

use super::server::{Flavor, MySqlServer};
use crate::error::{Error, Result};
use crate::util::os::{self, FileLock, ServerUser};

/// How long a process waits for another to finish starting the server, and for a server to
/// accept connections.
const START_WAIT: Duration = Duration::from_secs(180);

/// The longest Unix socket path the OS accepts.
const MAX_SOCKET_PATH: usize = if cfg!(target_os = "linux") { 107 } else { 103 };

/// The embedded server for MySQL tests: found running, or started.
pub(crate) async fn server() -> Result<MySqlServer> {
    let running = ensure().await?;
    Ok(MySqlServer::from_embedded(&running))
}

/// A running embedded MySQL server, as its state file records it.
#[derive(Clone, PartialEq, Eq)]
pub struct EmbeddedMySql {
    /// The server's pid.
    pub pid: u32,
    /// The TCP port on 127.0.0.1.
    pub port: u16,
    /// The Unix socket.
    pub socket: PathBuf,
    /// The data directory.
    pub data_dir: PathBuf,
    /// The server's version (`10.11.19`).
    pub version: String,
    /// MariaDB or MySQL.
    pub flavor: Flavor,
    /// The server binary.
    pub binary: PathBuf,
    password: String,
}

impl std::fmt::Debug for EmbeddedMySql {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedMySql")
            .field("pid", &self.pid)
            .field("port", &self.port)
            .field("socket", &self.socket)
            .field("data_dir", &self.data_dir)
            .field("version", &self.version)
            .field("flavor", &self.flavor)
            .field("binary", &self.binary)
            .field("password", &"***")
            .finish()
    }
}

impl EmbeddedMySql {
    /// Options to connect to `database` (empty: none) as root: through the socket on MariaDB,
    /// over TCP on MySQL once root has a password.
    ///
    /// MySQL's root authenticates with `caching_sha2_password`, whose full authentication sqlx
    /// (0.9) answers on a Unix socket with a request for the server's RSA key, where the server,
    /// counting a socket as secure, expects the password itself: every connection through the
    /// socket is refused. Over TCP the password goes RSA-encrypted.
    pub fn connect_options(&self, database: &str) -> MySqlConnectOptions {
        let options = MySqlConnectOptions::new()
            .host("127.0.0.1")
            .port(self.port)
            .username("root");
        // An empty password is none (a new server's root has none until it is secured, and
        // reaches it through the socket alone).
        let options = if self.password.is_empty() {
            options.socket(&self.socket)
        } else {
            match self.flavor {
                Flavor::MariaDb => options.socket(&self.socket),
                Flavor::MySql => options,
            }
            .password(&self.password)
        };
        if database.is_empty() {
            options
        } else {
            options.database(database)
        }
    }

    /// A `mysql://` URL over TCP with root's password, for tools outside seedbed (`mysql`,
    /// `sqlx::query!`).
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), seedbed::Error> {
    /// let server = seedbed::backend::mysql::embedded::ensure().await?;
    /// println!("SEEDBED_MYSQL_URL={}", server.url(""));
    /// # Ok(()) }
    /// ```
    pub fn url(&self, database: &str) -> String {
        format!(
            "mysql://root:{}@127.0.0.1:{}/{database}",
            self.password, self.port
        )
    }

    /// A `mysql://` URL through the Unix socket (the `socket` parameter sqlx reads); on MySQL,
    /// sqlx connects through it only while the server's authentication cache knows root (see
    /// [`connect_options`](Self::connect_options)).
    pub fn socket_url(&self, database: &str) -> String {
        format!("{}?socket={}", self.url(database), self.socket.display())
    }

    fn to_state_file(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "pid={}", self.pid);
        let _ = writeln!(s, "port={}", self.port);
        let _ = writeln!(s, "socket={}", self.socket.display());
        let _ = writeln!(s, "data_dir={}", self.data_dir.display());
        let _ = writeln!(s, "version={}", self.version);
        let _ = writeln!(s, "flavor={}", self.flavor);
        let _ = writeln!(s, "binary={}", self.binary.display());
        s
    }

    fn from_state_file(text: &str, password: String) -> Option<Self> {
        let get = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                .map(str::to_string)
        };
        Some(Self {
            pid: get("pid")?.parse().ok()?,
            port: get("port")?.parse().ok()?,
            socket: get("socket")?.into(),
            data_dir: get("data_dir")?.into(),
            version: get("version")?,
            flavor: match get("flavor")?.as_str() {
                "MariaDB" => Flavor::MariaDb,
                _ => Flavor::MySql,
            },
            binary: get("binary")?.into(),
            password,
        })
    }
}

/// The server binaries found on this machine.
#[derive(Debug, Clone)]
struct Binaries {
    server: PathBuf,
    /// MariaDB's `mariadb-install-db` (or `mysql_install_db`); `None` for MySQL, which
    /// initialises with `mysqld --initialize-insecure`.
    install: Option<PathBuf>,
    flavor: Flavor,
    version: String,
}

impl Binaries {
    /// `10.11` of `10.11.19`.
    fn major_minor(&self) -> String {
        self.version
            .split('.')
            .take(2)
            .collect::<Vec<_>>()
            .join(".")
    }
}

fn search_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(dir) = std::env::var_os("SEEDBED_MYSQL_BIN").filter(|v| !v.is_empty()) {
        dirs.push(PathBuf::from(dir));
    }
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    for dir in [
        "/usr/sbin",
        "/usr/bin",
        "/usr/local/sbin",
        "/usr/local/bin",
        "/usr/local/mysql/bin",
        "/opt/homebrew/opt/mariadb/bin",
        "/opt/homebrew/opt/mysql/bin",
        "/usr/local/opt/mariadb/bin",
        "/usr/local/opt/mysql/bin",
    ] {
        dirs.push(PathBuf::from(dir));
    }
    dirs
}

/// The first of `names` in the first of `dirs` that holds one: `SEEDBED_MYSQL_BIN` names a
/// MySQL installation even where a MariaDB one is on `PATH`.
fn find(dirs: &[PathBuf], names: &[&str]) -> Option<PathBuf> {
    dirs.iter()
        .find_map(|d| names.iter().map(|name| d.join(name)).find(|p| p.is_file()))
}

/// The server's version and flavor from its `--version` line
/// (`mariadbd  Ver 10.11.19-MariaDB-0+deb12u1 for debian-linux-gnu`, `mysqld  Ver 8.4.3 for
/// Linux`).
fn parse_version(line: &str) -> Option<(Flavor, String)> {
    let after = line.split(" Ver ").nth(1)?;
    let token = after.split_whitespace().next()?;
    let version: String = token
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    if version.is_empty() {
        return None;
    }
    let flavor = if line.contains("MariaDB") {
        Flavor::MariaDb
    } else {
        Flavor::MySql
    };
    Some((flavor, version))
}

/// The flavor and version of `server`: from the cache file beside the servers when it names
/// this binary as it is now (its size and modification time), else from `--version` (a process
/// start, which every test process would pay), then cached.
fn server_version(server: &Path) -> std::result::Result<(Flavor, String), String> {
    let stamp = fs::metadata(server)
        .ok()
        .map(|m| {
            let modified = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            format!("{}|{}|{modified}", server.display(), m.len())
        })
        .unwrap_or_default();
    let cache = base_dir().join("mysql-version");
    if let Ok(text) = fs::read_to_string(&cache)
        && let Some((cached_stamp, line)) = text.split_once('\n')
        && cached_stamp == stamp
        && let Some(found) = parse_version(line)
    {
        return Ok(found);
    }
    let out = Command::new(server)
        .arg("--version")
        .output()
        .map_err(|e| format!("cannot run {} --version: {e}", server.display()))?;
    let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let found = parse_version(&line).ok_or_else(|| {
        format!(
            "cannot read the version of {}: it printed `{line}`",
            server.display()
        )
    })?;
    // A cache: a failure to write it costs the next process a `--version`, nothing more.
    let _ = fs::create_dir_all(base_dir());
    let tmp = cache.with_extension(format!("{}.tmp", std::process::id()));
    if fs::write(&tmp, format!("{stamp}\n{line}")).is_ok() {
        let _ = fs::rename(&tmp, &cache);
    }
    Ok(found)
}

fn discover() -> Result<Binaries> {
    static FOUND: OnceLock<std::result::Result<Binaries, String>> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            let dirs = search_dirs();
            let searched = || {
                dirs.iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let server = find(&dirs, &["mariadbd", "mysqld"]).ok_or_else(|| {
                format!(
                    "no MySQL server: no URL is set (SEEDBED_MYSQL_URL, or a mysql:// \
                     DATABASE_URL) and no MariaDB or MySQL server binary was found to run one. \
                     Set SEEDBED_MYSQL_URL to a server seedbed may create databases on (e.g. \
                     mysql://root@127.0.0.1:3306), or install MariaDB so seedbed can run its own \
                     (Debian/Ubuntu: apt-get install mariadb-server; Fedora: dnf install \
                     mariadb-server; macOS: brew install mariadb), or set SEEDBED_MYSQL_BIN to the \
                     directory holding mariadbd or mysqld. Searched: {}",
                    searched()
                )
            })?;
            let (flavor, version) = server_version(&server)?;
            let install = match flavor {
                Flavor::MariaDb => Some(
                    find(&dirs, &["mariadb-install-db", "mysql_install_db"]).ok_or_else(|| {
                        format!(
                            "found {} but not mariadb-install-db, which makes its data \
                             directory: install it (it comes with mariadb-server), or set \
                             SEEDBED_MYSQL_BIN. Searched: {}",
                            server.display(),
                            searched()
                        )
                    })?,
                ),
                Flavor::MySql => None,
            };
            Ok(Binaries {
                server,
                install,
                flavor,
                version,
            })
        })
        .clone()
        .map_err(|what| Error::EmbeddedMySql {
            what,
            log_tail: None,
        })
}

/// The files of one server (one flavor and version).
#[derive(Debug, Clone)]
struct Layout {
    dir: PathBuf,
    data_dir: PathBuf,
    socket: PathBuf,
    log_file: PathBuf,
    state_file: PathBuf,
    lock_file: PathBuf,
    secret_file: PathBuf,
}

impl Layout {
    fn new(base: &Path, bins: &Binaries) -> Self {
        let tag = match bins.flavor {
            Flavor::MariaDb => "mariadb",
            Flavor::MySql => "mysql",
        };
        let dir = base.join(format!("{tag}{}", bins.major_minor()));
        let socket = dir.join("mysqld.sock");
        let socket = if socket.as_os_str().len() <= MAX_SOCKET_PATH {
            socket
        } else {
            std::env::temp_dir()
                .join(format!(
                    "seedbed-{}-{:016x}",
                    os::current_euid(),
                    crate::util::hash::stable_hash(&dir.to_string_lossy())
                ))
                .join("mysqld.sock")
        };
        Self {
            data_dir: dir.join("data"),
            log_file: dir.join("server.log"),
            state_file: dir.join("state"),
            lock_file: dir.join("lock"),
            secret_file: dir.join("secret"),
            socket,
            dir,
        }
    }

    fn read_state(&self) -> Option<EmbeddedMySql> {
        let text = fs::read_to_string(&self.state_file).ok()?;
        let password = fs::read_to_string(&self.secret_file).ok()?;
        EmbeddedMySql::from_state_file(&text, password.trim().to_string())
    }

    fn write_state(&self, server: &EmbeddedMySql) -> Result<()> {
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

    fn fail(&self, what: impl Into<String>) -> Error {
        Error::EmbeddedMySql {
            what: what.into(),
            log_tail: self.log_tail(),
        }
    }
}

fn base_dir() -> PathBuf {
    os::default_base_dir()
}

/// Returns the running embedded MySQL server, initialising and starting it if needed.
///
/// Safe to call from many threads and processes at once: one of them starts the server, the
/// others wait for it and use it.
pub async fn ensure() -> Result<EmbeddedMySql> {
    unsupported_platform()?;
    let bins = discover()?;
    let base = base_dir();
    let layout = Layout::new(&base, &bins);
    // Warm path: no lock, no connection; the connection the caller opens next proves the rest.
    if let Some(running) = layout.read_state()
        && runs(&running)
    {
        return Ok(running);
    }
    let user = ServerUser::detect_for(
        "SEEDBED_MYSQL_SERVER_USER",
        "mysql",
        "MySQL",
        "mariadb-server",
    )
    .map_err(|e| match e {
        Error::Embedded { what, log_tail } => Error::EmbeddedMySql { what, log_tail },
        other => other,
    })?;
    prepare_dirs(&base, &layout, &user)?;
    let _lock = FileLock::acquire(&layout.lock_file, START_WAIT, "MySQL").await?;
    if let Some(running) = layout.read_state()
        && runs(&running)
    {
        // Running, but not answering yet (busy, or out of connections): waited for, never
        // replaced by a second server on the same data directory.
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            if probe(&running).await {
                return Ok(running);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        return Err(layout.fail(format!(
            "the server (pid {}) runs but has not answered on {} for 30 s: `seedbed server \
             stop --mysql` stops it, and the next test starts it again",
            running.pid,
            running.socket.display()
        )));
    }
    let _ = fs::remove_file(&layout.state_file);
    start(&layout, &bins, &user).await
}

/// The running embedded MySQL server, if there is one; never starts it.
pub async fn status() -> Result<Option<EmbeddedMySql>> {
    unsupported_platform()?;
    let bins = discover()?;
    let layout = Layout::new(&base_dir(), &bins);
    match layout.read_state() {
        Some(running) if runs(&running) && probe(&running).await => Ok(Some(running)),
        _ => Ok(None),
    }
}

/// Stops the embedded MySQL server if it runs; whether one was stopped.
pub async fn stop() -> Result<bool> {
    unsupported_platform()?;
    let bins = discover()?;
    let layout = Layout::new(&base_dir(), &bins);
    if !layout.dir.exists() {
        return Ok(false);
    }
    let _lock = FileLock::acquire(&layout.lock_file, START_WAIT, "MySQL").await?;
    let Some(running) = layout.read_state().filter(runs) else {
        let _ = fs::remove_file(&layout.state_file);
        return Ok(false);
    };
    terminate(running.pid)?;
    let started = Instant::now();
    while os::process_alive(running.pid) {
        if started.elapsed() > Duration::from_secs(60) {
            return Err(layout.fail(format!(
                "the server (pid {}) did not stop within 60 s of SIGTERM",
                running.pid
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = fs::remove_file(&layout.state_file);
    Ok(true)
}

#[cfg(unix)]
fn terminate(pid: u32) -> Result<()> {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .ok_or_else(|| Error::Internal(format!("not a pid: {pid}")))?;
    match rustix::process::kill_process(pid, rustix::process::Signal::TERM) {
        Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
        Err(e) => Err(Error::EmbeddedMySql {
            what: format!("cannot stop the server (pid {}): {e}", pid.as_raw_nonzero()),
            log_tail: None,
        }),
    }
}

#[cfg(not(unix))]
fn terminate(_pid: u32) -> Result<()> {
    unsupported_platform()
}

fn unsupported_platform() -> Result<()> {
    if cfg!(unix) {
        Ok(())
    } else {
        Err(Error::EmbeddedMySql {
            what: format!(
                "seedbed cannot run an embedded MySQL server on {}: set SEEDBED_MYSQL_URL to a \
                 MySQL or MariaDB server, e.g. mysql://root:password@localhost:3306",
                std::env::consts::OS
            ),
            log_tail: None,
        })
    }
}

/// Whether the server a state file describes runs, judged without connecting: its process is
/// alive and is a MySQL server, and its socket exists.
fn runs(server: &EmbeddedMySql) -> bool {
    let data_dir = format!("--datadir={}", server.data_dir.display());
    server.socket.exists()
        && os::process_alive(server.pid)
        && os::process_command_line(server.pid).is_none_or(|cmd| cmd.contains(&data_dir))
}

/// Connects through the socket and checks the server answering there serves this data
/// directory.
async fn probe(server: &EmbeddedMySql) -> bool {
    let attempt = async {
        let mut conn = MySqlConnection::connect_with(&server.connect_options("")).await?;
        let dir: String = sqlx::query_scalar("SELECT CAST(@@datadir AS CHAR)")
            .fetch_one(&mut conn)
            .await?;
        let _ = conn.close().await;
        Ok::<_, sqlx::Error>(dir)
    };
    match tokio::time::timeout(Duration::from_secs(5), attempt).await {
        Ok(Ok(dir)) => same_path(Path::new(&dir), &server.data_dir),
        _ => false,
    }
}

fn same_path(a: &Path, b: &Path) -> bool {
    match (fs::canonicalize(a), fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

fn prepare_dirs(base: &Path, layout: &Layout, user: &ServerUser) -> Result<()> {
    for dir in [base, layout.dir.as_path()] {
        fs::create_dir_all(dir).map_err(Error::io("cannot create directory", dir))?;
    }
    let socket_dir = layout.socket.parent().unwrap_or(&layout.dir).to_path_buf();
    fs::create_dir_all(&socket_dir).map_err(Error::io("cannot create directory", &socket_dir))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if user.switch_to.is_some() {
            // The server's account must be able to enter the base directory.
            fs::set_permissions(base, fs::Permissions::from_mode(0o755))
                .map_err(Error::io("cannot set permissions on", base))?;
        }
        for dir in [layout.dir.as_path(), socket_dir.as_path()] {
            user.hand_over(dir)?;
            // Nobody but the server's owner (and root) enters it or reaches its socket.
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                .map_err(Error::io("cannot set permissions on", dir))?;
        }
    }
    Ok(())
}

/// Initialises the data directory if needed, starts the server, and secures it the first time.
/// Called with the lock held.
async fn start(layout: &Layout, bins: &Binaries, user: &ServerUser) -> Result<EmbeddedMySql> {
    // A data directory without its secret cannot be reached (root's password is lost with it,
    // or it was never secured): it is made again.
    let fresh = !layout.data_dir.join("mysql").is_dir() || !layout.secret_file.is_file();
    if fresh {
        let _ = fs::remove_dir_all(&layout.data_dir);
        let _ = fs::remove_file(&layout.secret_file);
        initialise(layout, bins, user)?;
    }
    let password = match fs::read_to_string(&layout.secret_file) {
        Ok(secret) => secret.trim().to_string(),
        // Root has no password until the server is secured, below.
        Err(_) => String::new(),
    };
    let _ = fs::remove_file(&layout.socket);
    let mut last_error = None;
    for _attempt in 0..3 {
        let port = free_port()?;
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&layout.log_file)
            .map_err(Error::io("cannot create the server log", &layout.log_file))?;
        user.hand_over(&layout.log_file)?;
        let mut command = user.command(&bins.server);
        command
            .arg("--no-defaults")
            .arg(format!("--datadir={}", layout.data_dir.display()))
            .arg(format!("--socket={}", layout.socket.display()))
            .arg(format!("--port={port}"))
            .arg("--bind-address=127.0.0.1")
            .arg(format!(
                "--pid-file={}",
                layout.dir.join("mysqld.pid").display()
            ))
            .arg(format!("--log-error={}", layout.log_file.display()))
            .args([
                "--skip-name-resolve",
                "--skip-log-bin",
                "--innodb-flush-log-at-trx-commit=0",
                "--innodb-doublewrite=0",
                "--innodb-flush-method=fsync",
                "--innodb-use-native-aio=0",
                "--innodb-buffer-pool-size=128M",
                "--max-connections=1000",
                "--performance-schema=OFF",
                "--character-set-server=utf8mb4",
                "--collation-server=utf8mb4_unicode_ci",
            ]);
        if bins.flavor == Flavor::MySql {
            // MySQL's X Protocol plugin listens on port 33060 and a socket of its own, which two
            // servers (or a system server) would fight over; a test server needs neither. Builds
            // default `secure_file_priv` to a directory of the system server's (Debian's
            // `/var/lib/mysql-files`, mode 0700), which stops the server at start when its account
            // cannot enter it: `LOAD DATA INFILE` and `INTO OUTFILE` use `files/` beside the data
            // directory instead.
            let files = layout.dir.join("files");
            fs::create_dir_all(&files).map_err(Error::io("cannot create directory", &files))?;
            user.hand_over(&files)?;
            command
                .arg("--mysqlx=OFF")
                .arg(format!("--secure-file-priv={}", files.display()));
        }
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        // A session of its own: a test process's group ending (a test runner's timeout) does
        // not take the shared server with it.
        #[cfg(unix)]
        {
            use std::os::unix::process::CommandExt;
            command.process_group(0);
        }
        let mut child = command
            .spawn()
            .map_err(Error::io("cannot run", &bins.server))?;
        let server = EmbeddedMySql {
            pid: child.id(),
            port,
            socket: layout.socket.clone(),
            data_dir: layout.data_dir.clone(),
            version: bins.version.clone(),
            flavor: bins.flavor,
            binary: bins.server.clone(),
            password: password.clone(),
        };
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                last_error = Some(layout.fail(format!(
                    "{} exited as it started ({status})",
                    bins.server.display()
                )));
                break;
            }
            if server.socket.exists() && probe(&server).await {
                let ready = async {
                    let server = if password.is_empty() {
                        secure(layout, server).await?
                    } else {
                        server
                    };
                    layout.write_state(&server)?;
                    Ok::<_, Error>(server)
                };
                return match ready.await {
                    Ok(server) => Ok(server),
                    Err(e) => {
                        // No server runs that no state file names.
                        let _ = child.kill();
                        let _ = child.wait();
                        Err(e)
                    }
                };
            }
            if started.elapsed() > START_WAIT {
                let _ = child.kill();
                return Err(layout.fail(format!(
                    "the server (pid {}) did not accept connections on {} within {:?}",
                    server.pid,
                    server.socket.display(),
                    START_WAIT
                )));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let log = layout.log_tail().unwrap_or_default();
        // Another program took the port between our check and the server's bind: try another.
        if !log.contains("already in use") && !log.contains("Can't start server") {
            break;
        }
    }
    Err(last_error.unwrap_or_else(|| layout.fail("the server did not start")))
}

/// Makes the data directory: MariaDB's `mariadb-install-db`, or MySQL's `mysqld
/// --initialize-insecure`; root has no password until [`secure`].
fn initialise(layout: &Layout, bins: &Binaries, user: &ServerUser) -> Result<()> {
    let (program, mut command) = match &bins.install {
        Some(install) => {
            let mut command = user.command(install);
            command
                .arg("--no-defaults")
                .arg(format!("--datadir={}", layout.data_dir.display()))
                .args([
                    "--auth-root-authentication-method=normal",
                    "--skip-test-db",
                    "--skip-name-resolve",
                ]);
            (install.clone(), command)
        }
        None => {
            let mut command = user.command(&bins.server);
            command
                .arg("--no-defaults")
                .arg(format!("--datadir={}", layout.data_dir.display()))
                .arg("--initialize-insecure");
            (bins.server.clone(), command)
        }
    };
    let out = command
        .current_dir(&layout.dir)
        .stdin(Stdio::null())
        .output()
        .map_err(Error::io("cannot run", &program))?;
    if !out.status.success() {
        let _ = fs::remove_dir_all(&layout.data_dir);
        return Err(Error::EmbeddedMySql {
            what: format!(
                "{} failed ({}): {}{}",
                program.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim(),
                String::from_utf8_lossy(&out.stdout).trim()
            ),
            log_tail: None,
        });
    }
    Ok(())
}

/// Gives root a random password (kept in `secret`, mode 0600) and a TCP account on 127.0.0.1, and
/// removes anonymous accounts.
async fn secure(layout: &Layout, server: EmbeddedMySql) -> Result<EmbeddedMySql> {
    let password = uuid::Uuid::new_v4().simple().to_string();
    let mut conn = MySqlConnection::connect_with(&server.connect_options(""))
        .await
        .map_err(|e| layout.fail(format!("connecting to secure the new server: {e}")))?;
    // The password is hexadecimal digits: safe as a literal (account statements take no
    // parameters).
    let sql = format!(
        "ALTER USER 'root'@'localhost' IDENTIFIED BY '{password}'; \
         CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'; \
         ALTER USER 'root'@'127.0.0.1' IDENTIFIED BY '{password}'; \
         GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION; \
         DROP USER IF EXISTS ''@'localhost'"
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&mut conn)
        .await
        .map_err(|e| layout.fail(format!("securing the new server: {e}")))?;
    // Every other account the installer made (root@::1, root@<host name>, anonymous ones) goes:
    // root reaches the server through the socket or 127.0.0.1 alone.
    let others: Vec<(String, String)> = sqlx::query_as(
        "SELECT CAST(User AS CHAR), CAST(Host AS CHAR) FROM mysql.user \
         WHERE NOT (User = 'root' AND Host IN ('localhost', '127.0.0.1')) \
         AND User IN ('root', '')",
    )
    .fetch_all(&mut conn)
    .await
    .map_err(|e| layout.fail(format!("securing the new server: {e}")))?;
    let plain = |s: &str| {
        s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '%'))
    };
    for (user, host) in others {
        // Names the installer made (a host name, `::1`): checked, then written as literals
        // (account names take no parameters).
        if !(plain(&user) && plain(&host)) {
            continue;
        }
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP USER IF EXISTS '{user}'@'{host}'"
        )))
        .execute(&mut conn)
        .await
        .map_err(|e| layout.fail(format!("securing the new server: {e}")))?;
    }
    sqlx::raw_sql("FLUSH PRIVILEGES")
        .execute(&mut conn)
        .await
        .map_err(|e| layout.fail(format!("securing the new server: {e}")))?;
    let _ = conn.close().await;
    write_secret(&layout.secret_file, &password)?;
    Ok(EmbeddedMySql { password, ..server })
}

/// Writes the secret whole or not at all (a temporary file renamed over it).
fn write_secret(path: &Path, password: &str) -> Result<()> {
    let tmp = path.with_extension(format!("{}.tmp", std::process::id()));
    write_private(&tmp, password)?;
    fs::rename(&tmp, path).map_err(Error::io("cannot write the server's secret", path))
}

fn write_private(path: &Path, password: &str) -> Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(Error::io("cannot write the server's secret", path))?;
    std::io::Write::write_all(&mut file, password.as_bytes())
        .map_err(Error::io("cannot write the server's secret", path))
}

fn free_port() -> Result<u16> {
    os::free_port().map_err(|e| Error::EmbeddedMySql {
        what: format!("cannot find a free TCP port on 127.0.0.1: {e}"),
        log_tail: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_from_both_servers() {
        assert_eq!(
            parse_version(
                "mariadbd  Ver 10.11.19-MariaDB-0+deb12u1 for debian-linux-gnu on x86_64"
            ),
            Some((Flavor::MariaDb, "10.11.19".to_string()))
        );
        assert_eq!(
            parse_version("/usr/sbin/mysqld  Ver 8.4.3 for Linux on x86_64 (MySQL Community)"),
            Some((Flavor::MySql, "8.4.3".to_string()))
        );
        assert_eq!(parse_version("garbage"), None);
    }

    #[test]
    fn state_file_round_trips() {
        let server = EmbeddedMySql {
            pid: 42,
            port: 33061,
            socket: "/dev/shm/seedbed-0/mariadb10.11/mysqld.sock".into(),
            data_dir: "/dev/shm/seedbed-0/mariadb10.11/data".into(),
            version: "10.11.19".into(),
            flavor: Flavor::MariaDb,
            binary: "/usr/sbin/mariadbd".into(),
            password: "0a1b".into(),
        };
        let parsed = EmbeddedMySql::from_state_file(&server.to_state_file(), "0a1b".into());
        assert_eq!(parsed, Some(server));
    }
}
