//! Where SQLite databases live: SQLite has no server, so a "server" is the directory seedbed
//! keeps its database files in, one file per database, named `<database>.db`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteSynchronous};
use sqlx::{Connection, SqliteConnection};
use tokio::sync::OnceCell;

use crate::error::{Error, Result};

/// The variable that names the directory of seedbed's SQLite databases.
pub const DIR_VAR: &str = "SEEDBED_SQLITE_DIR";

/// The directory of the process's tests.
static DIR: OnceCell<Directory> = OnceCell::const_new();

/// How long a connection waits for another writer of the same file before `SQLITE_BUSY`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// The directory seedbed keeps its SQLite databases in: `SEEDBED_SQLITE_DIR`; else, when
/// `SEEDBED_DATABASE_URL` or `DATABASE_URL` is a `sqlite:` URL, `seedbed-sqlite` beside the file
/// it names (its directory must exist); else `seedbed-sqlite` in the Cargo target directory the
/// test binary runs from (found by its `CACHEDIR.TAG`); else `seedbed-sqlite` in the system's
/// temporary directory.
///
/// Test databases are disposable, so connections to them write with `synchronous = OFF`: a
/// process killed mid-test loses nothing SQLite needs (the rollback journal still restores the
/// file); only a crash of the machine could.
///
/// ```no_run
/// # #[cfg(feature = "sqlite")]
/// # async fn demo() -> Result<(), seedbed::Error> {
/// use seedbed::backend::Provision;
/// use seedbed::backend::sqlite::Directory;
///
/// let dir: &Directory = <sqlx::Sqlite as Provision>::server().await?;
/// println!("SQLite test databases live in {}", dir.path().display());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directory {
    path: PathBuf,
}

impl Directory {
    /// The directory of the process's tests, resolved and created once (or the one
    /// [`install`](Self::install)ed).
    pub async fn get() -> Result<&'static Directory> {
        DIR.get_or_try_init(|| async { Directory::resolve(None) })
            .await
    }

    /// Makes `dir` the directory of the process's tests, before anything asked for it: for the
    /// `seedbed` command, which is told where on its command line. Installing the directory the
    /// process already uses is a no-op; another one is [`Error::Config`].
    ///
    /// ```no_run
    /// # fn demo() -> Result<(), seedbed::Error> {
    /// use seedbed::backend::sqlite::Directory;
    /// let dir = Directory::install(Directory::resolve(Some("sqlite://target/app.db"))?)?;
    /// assert!(dir.path().ends_with("seedbed-sqlite"));
    /// # Ok(()) }
    /// ```
    pub fn install(dir: Directory) -> Result<&'static Directory> {
        let path = dir.path.clone();
        let _ = DIR.set(dir);
        match DIR.get() {
            Some(installed) if installed.path == path => Ok(installed),
            Some(installed) => Err(Error::Config(format!(
                "the SQLite databases of this process are already in {}; cannot move them to {}",
                installed.path.display(),
                path.display()
            ))),
            None => Err(Error::Config(format!(
                "cannot install {} as the SQLite database directory",
                path.display()
            ))),
        }
    }

    /// The directory tests would use, with `url` (a `sqlite:` URL) in place of the environment's
    /// database URL: for the `seedbed` command, which is told the URL on its command line.
    ///
    /// ```no_run
    /// # fn demo() -> Result<(), seedbed::Error> {
    /// use seedbed::backend::sqlite::Directory;
    /// let dir = Directory::resolve(Some("sqlite://target/app.db"))?;
    /// assert!(dir.path().ends_with("seedbed-sqlite"));
    /// # Ok(()) }
    /// ```
    pub fn resolve(url: Option<&str>) -> Result<Directory> {
        let url = url.map(str::to_string).or_else(|| {
            crate::util::env::text("SEEDBED_DATABASE_URL")
                .or_else(|| crate::util::env::text("DATABASE_URL"))
        });
        Directory::at(resolve_from(crate::util::env::text(DIR_VAR), url)?)
    }

    /// A directory at `path`, created if it does not exist (its parent must).
    pub fn at(path: impl Into<PathBuf>) -> Result<Directory> {
        let path = path.into();
        match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() && !parent.is_dir() => {
                return Err(Error::Config(format!(
                    "the directory for SQLite test databases, {}, cannot be made: its parent \
                     {} does not exist. Set {DIR_VAR} to a directory that can",
                    path.display(),
                    parent.display()
                )));
            }
            _ => {}
        }
        std::fs::create_dir_all(&path)
            .map_err(Error::io("creating the SQLite database directory", &path))?;
        let locks = path.join("locks");
        std::fs::create_dir_all(&locks)
            .map_err(Error::io("creating the SQLite lock directory", &locks))?;
        Ok(Directory { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file of `database`; names are checked, as every database name seedbed hands the
    /// filesystem.
    pub fn file(&self, database: &str) -> Result<PathBuf> {
        check_name(database)?;
        Ok(self.path.join(format!("{database}.db")))
    }

    /// Where the lock named `name` is kept.
    pub(crate) fn lock_file(&self, name: &str) -> PathBuf {
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        // Names that differ only in characters replaced above keep apart by their hash.
        let hash = crate::util::hash::stable_hash(name);
        self.path
            .join("locks")
            .join(format!("{safe}-{:08x}.lock", hash as u32))
    }

    /// Options to connect to `database` (which must exist).
    pub fn connect_options(&self, database: &str) -> SqliteConnectOptions {
        let path = self.path.join(format!("{database}.db"));
        SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(false)
            .foreign_keys(true)
            .synchronous(SqliteSynchronous::Off)
            .busy_timeout(BUSY_TIMEOUT)
    }

    /// A connection to `database`, with [`connect_options`](Self::connect_options).
    pub async fn connect(&self, database: &str) -> Result<SqliteConnection> {
        SqliteConnection::connect_with(&self.connect_options(database))
            .await
            .map_err(Error::db(format!("opening {}", self.url(database))))
    }

    /// `sqlite://<file>` for `database`.
    pub fn url(&self, database: &str) -> String {
        format!(
            "sqlite://{}",
            self.path.join(format!("{database}.db")).display()
        )
    }
}

/// Database names seedbed makes are letters, digits, `_` and `-`; anything else (a path
/// separator, `..`) is refused before it reaches the filesystem.
fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "`{name}` is not a SQLite database name seedbed can use: use letters, digits, `_` \
             and `-` only"
        )))
    }
}

/// The directory from `SEEDBED_SQLITE_DIR` (`dir`), else from a `sqlite:` database URL (`url`:
/// `seedbed-sqlite` beside the URL's file), else under the target directory.
fn resolve_from(dir: Option<String>, url: Option<String>) -> Result<PathBuf> {
    if let Some(dir) = dir {
        return Ok(PathBuf::from(dir));
    }
    if let Some(file) = url.as_deref().and_then(sqlite_file) {
        let parent = match file.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !parent.is_dir() {
            return Err(Error::Config(format!(
                "the database URL {} names a SQLite file in {}, which does not exist: create \
                 the directory, or point DATABASE_URL (or {DIR_VAR}) at one that exists",
                url.as_deref().unwrap_or_default(),
                parent.display()
            )));
        }
        return Ok(parent.join("seedbed-sqlite"));
    }
    let target = std::env::current_exe().ok().and_then(|exe| {
        exe.ancestors()
            .find(|dir| dir.join("CACHEDIR.TAG").is_file())
            .map(Path::to_path_buf)
    });
    Ok(match target {
        Some(target) => target.join("seedbed-sqlite"),
        None => std::env::temp_dir().join(format!("seedbed-sqlite-{}", user_tag())),
    })
}

/// The file a `sqlite:` URL names (`None` for other URLs and in-memory databases).
fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let path = rest.split('?').next().unwrap_or(rest);
    if path.is_empty() || path == ":memory:" {
        return None;
    }
    Some(PathBuf::from(path))
}

/// Who runs the process, so two accounts sharing a temporary directory keep apart.
fn user_tag() -> String {
    crate::util::env::text("USER")
        .or_else(|| crate::util::env::text("USERNAME"))
        .unwrap_or_else(|| "user".into())
}

/// An in-memory connection: SQLite's stand-in for a server's maintenance database.
pub(crate) async fn maintenance() -> Result<SqliteConnection> {
    SqliteConnection::connect_with(&SqliteConnectOptions::new().in_memory(true))
        .await
        .map_err(Error::db("opening an in-memory SQLite connection"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_are_paths_are_refused() {
        let dir = Directory {
            path: PathBuf::from("/tmp/x"),
        };
        assert!(dir.file("seedbed_tpl_0123").is_ok());
        for bad in ["", "../etc", "a/b", "a b", "x.db"] {
            assert!(dir.file(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_directory_comes_from_the_variable_then_a_sqlite_url() {
        let tmp = std::env::temp_dir();
        let url = format!("sqlite://{}/app.db?mode=rwc", tmp.display());
        assert_eq!(
            resolve_from(Some("/x/y".into()), Some(url.clone())).unwrap(),
            PathBuf::from("/x/y")
        );
        assert_eq!(
            resolve_from(None, Some(url)).unwrap(),
            tmp.join("seedbed-sqlite")
        );
        // Not SQLite, or in memory: the target directory's.
        for other in ["postgres://localhost/x", "sqlite::memory:"] {
            let got = resolve_from(None, Some(other.into())).unwrap();
            assert!(got.ends_with("seedbed-sqlite"), "{}", got.display());
        }
    }

    #[test]
    fn a_sqlite_url_in_a_missing_directory_is_refused() {
        let err = resolve_from(None, Some("sqlite:///no/such/dir/app.db".into())).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("/no/such/dir, which does not exist"),
            "{text}"
        );
        assert!(text.contains("create the directory"), "{text}");
    }

    #[test]
    fn a_directory_that_cannot_be_made_is_an_error_naming_the_variable() {
        // /proc refuses new directories, even to root.
        let err = Directory::at("/proc/seedbed-test/dbs").unwrap_err();
        assert!(err.to_string().contains(DIR_VAR), "{err}");
        let err = Directory::at("/proc/seedbed-test").unwrap_err();
        assert!(err.to_string().contains("/proc/seedbed-test"), "{err}");
    }
}
