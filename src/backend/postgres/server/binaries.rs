//! Finding the PostgreSQL server binaries (`initdb`, `pg_ctl`, `postgres`) on this machine.

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};

/// A directory holding `initdb`, `pg_ctl` and `postgres`, and the server version they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binaries {
    /// The directory (symlinks resolved).
    pub bin_dir: PathBuf,
    /// The server version, e.g. `(15, 20)`.
    pub version: (u32, u32),
}

impl Binaries {
    /// The path of one of the binaries.
    pub fn tool(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }

    /// The major version (15, 16, 17…).
    pub fn major(&self) -> u32 {
        self.version.0
    }
}

/// Where to look for binaries. [`SearchPaths::from_env`] is what seedbed uses; tests build their
/// own to check the not-found error.
#[derive(Debug, Clone)]
pub struct SearchPaths {
    /// The `PATH` value to search.
    pub path: Option<OsString>,
    /// Whether to ask `pg_config --bindir` (found on `path`).
    pub pg_config: bool,
    /// Glob-like roots: every `<root>/<version>/bin` style directory below them.
    pub versioned_roots: Vec<VersionedRoot>,
}

/// A family of versioned installation directories, such as `/usr/lib/postgresql/*/bin`.
#[derive(Debug, Clone)]
pub struct VersionedRoot {
    /// The directory whose entries are versions (`/usr/lib/postgresql`, `/opt/homebrew/opt`).
    pub parent: PathBuf,
    /// The prefix each entry must start with (`""`, `"postgresql@"`).
    pub prefix: &'static str,
    /// The path below each entry to the binaries (`"bin"`).
    pub suffix: &'static str,
}

impl SearchPaths {
    /// The standard places: `PATH`, `pg_config --bindir`, Debian's `/usr/lib/postgresql/*/bin`,
    /// Fedora's `/usr/pgsql-*/bin`, and Homebrew's keg-only `postgresql@*` formulae on Apple
    /// silicon and Intel.
    pub fn from_env() -> Self {
        Self {
            path: std::env::var_os("PATH"),
            pg_config: true,
            versioned_roots: vec![
                VersionedRoot {
                    parent: "/usr/lib/postgresql".into(),
                    prefix: "",
                    suffix: "bin",
                },
                VersionedRoot {
                    parent: "/usr".into(),
                    prefix: "pgsql-",
                    suffix: "bin",
                },
                VersionedRoot {
                    parent: "/opt/homebrew/opt".into(),
                    prefix: "postgresql@",
                    suffix: "bin",
                },
                VersionedRoot {
                    parent: "/usr/local/opt".into(),
                    prefix: "postgresql@",
                    suffix: "bin",
                },
            ],
        }
    }

    /// A human-readable list of the places searched, for the not-found error.
    pub fn describe(&self) -> String {
        let mut parts = vec!["PATH".to_string()];
        if self.pg_config {
            parts.push("pg_config --bindir".into());
        }
        for root in &self.versioned_roots {
            parts.push(format!(
                "{}/{}*/{}",
                root.parent.display(),
                root.prefix,
                root.suffix
            ));
        }
        parts.join(", ")
    }

    /// Every candidate directory, in search order, not yet checked.
    fn candidates(&self) -> Vec<PathBuf> {
        let mut dirs = Vec::new();
        if let Some(path) = &self.path {
            dirs.extend(std::env::split_paths(path).filter(|d| d.join("initdb").is_file()));
        }
        if self.pg_config
            && let Some(pg_config) = self.path.as_ref().and_then(|p| find_on(p, "pg_config"))
            && let Ok(out) = Command::new(pg_config).arg("--bindir").output()
            && out.status.success()
        {
            let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if !dir.is_empty() {
                dirs.push(PathBuf::from(dir));
            }
        }
        for root in &self.versioned_roots {
            let Ok(entries) = std::fs::read_dir(&root.parent) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                if name.to_string_lossy().starts_with(root.prefix) {
                    dirs.push(entry.path().join(root.suffix));
                }
            }
        }
        dirs
    }
}

fn find_on(path: &OsString, tool: &str) -> Option<PathBuf> {
    std::env::split_paths(path)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// Finds the newest complete set of server binaries.
///
/// Every candidate directory is resolved through symlinks, checked for all three tools, and asked
/// its version (`postgres --version`); the highest version wins, the earlier candidate among
/// equals.
pub fn discover(search: &SearchPaths) -> Result<Binaries> {
    let mut seen = HashSet::new();
    let mut found: Vec<Binaries> = Vec::new();
    for dir in search.candidates() {
        let Some(bin_dir) = resolve_dir(&dir) else {
            continue;
        };
        if !seen.insert(bin_dir.clone()) {
            continue;
        }
        if !["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|t| bin_dir.join(t).is_file())
        {
            continue;
        }
        if let Some(version) = server_version(&bin_dir.join("postgres")) {
            found.push(Binaries { bin_dir, version });
        }
    }
    // Stable sort: among equal versions the first candidate (PATH before the fixed places) wins.
    found.sort_by_key(|b| std::cmp::Reverse(b.version));
    found.into_iter().next().ok_or_else(|| Error::NoServer {
        reason: "DATABASE_URL is not set and no PostgreSQL server binaries \
                 (initdb, pg_ctl, postgres) were found"
            .into(),
        searched: search.describe(),
    })
}

/// The directory of the real `initdb` (through symlinks such as /usr/local/bin/initdb →
/// /usr/lib/postgresql/15/bin/initdb), so the three tools are taken from one installation.
fn resolve_dir(dir: &Path) -> Option<PathBuf> {
    let initdb = std::fs::canonicalize(dir.join("initdb")).ok()?;
    initdb.parent().map(Path::to_path_buf)
}

/// Runs `postgres --version` and parses `postgres (PostgreSQL) 15.20 (Debian …)`.
fn server_version(postgres: &Path) -> Option<(u32, u32)> {
    let out = Command::new(postgres).arg("--version").output().ok()?;
    if !out.status.success() {
        return None;
    }
    parse_version(&String::from_utf8_lossy(&out.stdout))
}

/// Parses the version out of `postgres --version` output.
///
/// ```
/// # use seedbed::server::binaries::parse_version;
/// assert_eq!(parse_version("postgres (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)"), Some((15, 20)));
/// assert_eq!(parse_version("postgres (PostgreSQL) 18beta1"), Some((18, 0)));
/// assert_eq!(parse_version("nonsense"), None);
/// ```
pub fn parse_version(text: &str) -> Option<(u32, u32)> {
    let rest = text.split(')').nth(1)?.trim_start();
    let word = rest.split_whitespace().next()?;
    let mut parts = word.split('.');
    let major: u32 = leading_number(parts.next()?)?;
    let minor: u32 = parts.next().and_then(leading_number).unwrap_or(0);
    Some((major, minor))
}

fn leading_number(s: &str) -> Option<u32> {
    let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// [`discover`], remembered in `cache_dir` between processes: the search runs `pg_config` and
/// `postgres --version` (a few milliseconds of subprocesses), which every test process would
/// otherwise pay. The remembered answer is used while a fingerprint of what the search looks at
/// is unchanged: `PATH`, the candidate directories, and the size and modification time of each
/// `postgres` and `pg_config` binary (an upgrade replaces them).
///
/// ```no_run
/// use seedbed::server::binaries::{SearchPaths, discover_cached};
/// let bins = discover_cached(&SearchPaths::from_env(), std::path::Path::new("/tmp/seedbed-cache"))?;
/// println!("PostgreSQL {}.{} in {}", bins.version.0, bins.version.1, bins.bin_dir.display());
/// # Ok::<(), seedbed::Error>(())
/// ```
pub fn discover_cached(search: &SearchPaths, cache_dir: &Path) -> Result<Binaries> {
    let fingerprint = search.fingerprint();
    let cache = cache_dir.join("binaries");
    if let Ok(text) = std::fs::read_to_string(&cache)
        && let Some(found) = parse_cache(&text, &fingerprint)
    {
        return Ok(found);
    }
    let found = discover(search)?;
    // Best effort: a cache that cannot be written only costs the next process the search.
    let text = format!(
        "fingerprint={fingerprint}\nbin_dir={}\nversion={}.{}\n",
        found.bin_dir.display(),
        found.version.0,
        found.version.1
    );
    if std::fs::create_dir_all(cache_dir).is_ok() {
        let tmp = cache_dir.join(format!("binaries.{}.tmp", std::process::id()));
        if std::fs::write(&tmp, text).is_ok() && std::fs::rename(&tmp, &cache).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
    Ok(found)
}

fn parse_cache(text: &str, fingerprint: &str) -> Option<Binaries> {
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
    };
    if get("fingerprint")? != fingerprint {
        return None;
    }
    let bin_dir = PathBuf::from(get("bin_dir")?);
    let (major, minor) = get("version")?.split_once('.')?;
    if !bin_dir.join("postgres").is_file() {
        return None;
    }
    Some(Binaries {
        bin_dir,
        version: (major.parse().ok()?, minor.parse().ok()?),
    })
}

impl SearchPaths {
    /// A stable summary of everything [`discover`] looks at, without running anything.
    fn fingerprint(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        let mut describe = |path: &Path| {
            let meta = std::fs::metadata(path).ok();
            let stamp = meta.map(|m| {
                let modified = m
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos());
                format!("{}:{modified}", m.len())
            });
            parts.push(format!("{}={}", path.display(), stamp.unwrap_or_default()));
        };
        if let Some(path) = &self.path {
            for dir in std::env::split_paths(path) {
                if dir.join("initdb").is_file() {
                    describe(&dir.join("postgres"));
                }
                if self.pg_config && dir.join("pg_config").is_file() {
                    describe(&dir.join("pg_config"));
                }
            }
        }
        for root in &self.versioned_roots {
            let Ok(entries) = std::fs::read_dir(&root.parent) else {
                continue;
            };
            let mut dirs: Vec<PathBuf> = entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(root.prefix))
                .map(|e| e.path().join(root.suffix))
                .filter(|d| d.join("initdb").exists())
                .collect();
            dirs.sort();
            for dir in dirs {
                describe(&dir.join("postgres"));
            }
        }
        format!("{:016x}", crate::util::hash::stable_hash(&parts.join("\n")))
    }
}
