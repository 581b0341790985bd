//! Operating-system details of the embedded servers (PostgreSQL's, MySQL's): which account runs
//! them, where they live, whether a process is alive.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};

/// The account the embedded server runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServerUser {
    /// `None` when the server runs as the current user.
    pub(crate) switch_to: Option<Account>,
}

/// An OS account, by ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Account {
    pub(crate) name: String,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

impl ServerUser {
    /// `initdb` and `postgres` refuse to run as root. When seedbed itself runs as root (CI
    /// containers), the server runs as an unprivileged account: `SEEDBED_SERVER_USER` if set,
    /// else `postgres`.
    pub(crate) fn detect() -> Result<Self> {
        Self::detect_for(
            "SEEDBED_SERVER_USER",
            "postgres",
            "PostgreSQL",
            "postgresql",
        )
    }

    /// The account a server runs as when seedbed runs as root: the one `variable` names, else
    /// `default` (the account `package` creates); `product` names the server in messages.
    pub(crate) fn detect_for(
        variable: &str,
        default: &str,
        product: &str,
        package: &str,
    ) -> Result<Self> {
        if current_euid() != 0 {
            return Ok(Self { switch_to: None });
        }
        let name = std::env::var(variable).unwrap_or_else(|_| default.into());
        let account = lookup_account(&name).ok_or_else(|| Error::Embedded {
            what: format!(
                "running as root, and {product} refuses to run as root, so seedbed runs its server \
                 as an unprivileged account, but there is no account `{name}`. Create one \
                 (`useradd --system {default}`; installing the {package} package does this) or set \
                 {variable} to an existing unprivileged account"
            ),
            log_tail: None,
        })?;
        if account.uid == 0 {
            return Err(Error::Embedded {
                what: format!(
                    "{variable} names `{name}`, which is root; {product} refuses to run as root: \
                     name an unprivileged account"
                ),
                log_tail: None,
            });
        }
        Ok(Self {
            switch_to: Some(account),
        })
    }

    /// A command that runs as the server's account.
    pub(crate) fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        #[cfg(unix)]
        if let Some(account) = &self.switch_to {
            use std::os::unix::process::CommandExt;
            cmd.uid(account.uid).gid(account.gid);
            cmd.env("USER", &account.name).env("LOGNAME", &account.name);
        }
        cmd
    }

    /// Gives a path to the server's account (when it differs from ours).
    pub(crate) fn hand_over(&self, path: &Path) -> Result<()> {
        #[cfg(unix)]
        if let Some(account) = &self.switch_to {
            std::os::unix::fs::chown(path, Some(account.uid), Some(account.gid))
                .map_err(Error::io("cannot change the owner of", path))?;
        }
        #[cfg(not(unix))]
        let _ = path;
        Ok(())
    }
}

fn lookup_account(name: &str) -> Option<Account> {
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").arg(flag).arg(name).output().ok()?;
        if !out.status.success() {
            return None;
        }
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    Some(Account {
        name: name.to_string(),
        uid: id("-u")?,
        gid: id("-g")?,
    })
}

/// The effective user id of this process.
#[cfg(unix)]
pub(crate) fn current_euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// The effective user id of this process.
#[cfg(not(unix))]
pub(crate) fn current_euid() -> u32 {
    1
}

/// Whether a process with this pid exists.
#[cfg(unix)]
pub(crate) fn process_alive(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    let Some(pid) = rustix::process::Pid::from_raw(raw) else {
        return false;
    };
    match rustix::process::test_kill_process(pid) {
        Ok(()) => true,
        // The process exists but belongs to someone else.
        Err(e) => e == rustix::io::Errno::PERM,
    }
}

/// Whether a process with this pid exists.
#[cfg(not(unix))]
pub(crate) fn process_alive(_pid: u32) -> bool {
    false
}

/// Where seedbed keeps its clusters: `SEEDBED_HOME`, else tmpfs (`/dev/shm/seedbed-<uid>`) where
/// the machine has one, else the user's cache directory.
pub(crate) fn default_base_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("SEEDBED_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(home);
    }
    let uid = current_euid();
    let shm = Path::new("/dev/shm");
    if shm.is_dir() && is_writable_dir(shm) {
        return shm.join(format!("seedbed-{uid}"));
    }
    if uid == 0 {
        // The server runs as another account, which cannot enter root's home directory.
        return PathBuf::from(format!("/var/tmp/seedbed-{uid}"));
    }
    cache_dir().join("seedbed")
}

fn cache_dir() -> PathBuf {
    if let Some(xdg) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    if cfg!(target_os = "macos") {
        home.join("Library").join("Caches")
    } else {
        home.join(".cache")
    }
}

fn is_writable_dir(dir: &Path) -> bool {
    let probe = dir.join(format!(".seedbed-probe-{}", std::process::id()));
    match std::fs::File::create(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            true
        }
        Err(_) => false,
    }
}

/// The command line of a process, where the OS exposes it (`/proc`), for telling a stale pid
/// reused by another program from a PostgreSQL server.
pub(crate) fn process_command_line(pid: u32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(String::from_utf8_lossy(&raw).replace('\0', " "))
}

/// A free TCP port on 127.0.0.1 for an embedded server to listen on (another program may take it
/// before the server binds: callers try again).
pub(crate) fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// An exclusive `flock` on an embedded server's lock file, released on drop (and by the OS if the
/// process dies): held while a process checks, starts or stops the server.
#[derive(Debug)]
pub(crate) struct FileLock {
    _file: std::fs::File,
}

impl FileLock {
    /// Takes the lock on `path`, waiting at most `wait`; `server` names the server in the
    /// timeout's message.
    pub(crate) async fn acquire(
        path: &Path,
        wait: std::time::Duration,
        server: &str,
    ) -> Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(Error::io("cannot open lock file", path))?;
        let started = std::time::Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(Self { _file: file }),
                Err(std::fs::TryLockError::WouldBlock) if started.elapsed() <= wait => {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(Error::Timeout {
                        what: format!(
                            "another process holding {} (it is starting or stopping the \
                             embedded {server} server)",
                            path.display()
                        ),
                        waited: started.elapsed(),
                    });
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(Error::io("cannot lock", path)(e));
                }
            }
        }
    }
}
