//! [`Strategy`]: how a test's database state is kept from every other test's, and how the
//! strategy for a test is chosen.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};

use crate::error::{Error, Result};

/// How a test is isolated.
///
/// | | Rollback | Truncate | Template | Namespace |
/// |---|---|---|---|---|
/// | the test gets | one transaction, rolled back | a migrated database, emptied after | its own database, cloned | a shared database, its rows marked by its token |
/// | code that commits, LISTENs, opens connections | contained or reported | yes | yes | yes |
///
/// Names in attributes, `SEEDBED_STRATEGY` and `seedbed.toml` are the lowercase variant names.
///
/// ```
/// use seedbed::Strategy;
/// assert_eq!("truncate".parse::<Strategy>().unwrap(), Strategy::Truncate);
/// assert_eq!(Strategy::Rollback.to_string(), "rollback");
/// let err = "rollbak".parse::<Strategy>().unwrap_err().to_string();
/// assert!(err.contains("rollback, truncate, template, namespace"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// The test runs inside one transaction that is rolled back at its end. The cheapest; the
    /// code under test gets a pool of one connection whose `begin()`/`commit()` become savepoints.
    Rollback,
    /// The test runs on a migrated database shared (one test at a time) with other tests and
    /// really commits; afterwards the tables it wrote are emptied and lookup rows restored.
    Truncate,
    /// The test gets its own database, cloned from a migrated template.
    Template,
    /// The test runs on a shared database; its rows carry its token and are removed after.
    Namespace,
}

impl Strategy {
    /// Every strategy, in the order of the table above.
    pub const ALL: [Strategy; 4] = [
        Strategy::Rollback,
        Strategy::Truncate,
        Strategy::Template,
        Strategy::Namespace,
    ];

    /// The lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Rollback => "rollback",
            Strategy::Truncate => "truncate",
            Strategy::Template => "template",
            Strategy::Namespace => "namespace",
        }
    }

    /// Whether tests under this strategy share a database with tests running at the same time
    /// (then unique factory values carry the test's token).
    pub fn shares_database(self) -> bool {
        !matches!(self, Strategy::Template)
    }

    /// Whether this strategy can isolate code that opens its own connections (a test taking
    /// `(PgPoolOptions, PgConnectOptions)`): every strategy but Rollback.
    pub fn isolates_own_connections(self) -> bool {
        !matches!(self, Strategy::Rollback)
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Strategy {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let wanted = s.trim().to_ascii_lowercase();
        Strategy::ALL
            .into_iter()
            .find(|st| st.name() == wanted)
            .ok_or_else(|| {
                Error::Config(format!(
                    "unknown isolation strategy `{s}`: choose one of rollback, truncate, template, \
                     namespace"
                ))
            })
    }
}

/// Where the strategy of a test came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StrategySource {
    /// The test's attribute or builder.
    Explicit,
    /// `SEEDBED_STRATEGY`.
    Environment,
    /// `seedbed.toml` or `[package.metadata.seedbed]` of the crate.
    SuiteConfig(String),
    /// Nothing chose: the default, Rollback.
    Default,
}

/// Chooses the strategy: the explicit choice (attribute or builder) > `SEEDBED_STRATEGY` > the
/// suite default in `seedbed.toml` at the crate root (or `[package.metadata.seedbed]` in its
/// `Cargo.toml`) > Rollback.
///
/// ```no_run
/// # fn demo() -> Result<(), seedbed::Error> {
/// use seedbed::strategy::{resolve, StrategySource};
/// let (strategy, source) = resolve(None, Some(env!("CARGO_MANIFEST_DIR").as_ref()))?;
/// # Ok(()) }
/// ```
pub fn resolve(
    explicit: Option<Strategy>,
    crate_root: Option<&Path>,
) -> Result<(Strategy, StrategySource)> {
    if let Some(s) = explicit {
        return Ok((s, StrategySource::Explicit));
    }
    if let Ok(v) = std::env::var("SEEDBED_STRATEGY")
        && !v.trim().is_empty()
    {
        let s = v
            .parse()
            .map_err(|e: Error| Error::Config(format!("SEEDBED_STRATEGY: {e}")))?;
        return Ok((s, StrategySource::Environment));
    }
    if let Some(root) = crate_root
        && let Some((s, file)) = suite_default(root)?
    {
        return Ok((s, StrategySource::SuiteConfig(file)));
    }
    Ok((Strategy::Rollback, StrategySource::Default))
}

/// The suite's default strategy from `seedbed.toml` (`strategy = "…"`) or `Cargo.toml`
/// (`[package.metadata.seedbed] strategy = "…"`) in `root`.
pub fn suite_default(root: &Path) -> Result<Option<(Strategy, String)>> {
    let own = root.join("seedbed.toml");
    if let Some(table) = read_toml(&own)? {
        if let Some(value) = table.get("strategy") {
            return Ok(Some((
                strategy_value(value, &own)?,
                own.display().to_string(),
            )));
        }
        return Ok(None);
    }
    let manifest = root.join("Cargo.toml");
    if let Some(table) = read_toml(&manifest)?
        && let Some(value) = table
            .get("package")
            .and_then(|p| p.get("metadata"))
            .and_then(|m| m.get("seedbed"))
            .and_then(|s| s.get("strategy"))
    {
        return Ok(Some((
            strategy_value(value, &manifest)?,
            format!("{} [package.metadata.seedbed]", manifest.display()),
        )));
    }
    Ok(None)
}

/// The suite's test role: `role = "…"` in `seedbed.toml` at the crate root, or in
/// `[package.metadata.seedbed]` of its `Cargo.toml` (see
/// [`Isolation::role`](crate::Isolation::role)).
///
/// ```no_run
/// # fn demo() -> Result<(), seedbed::Error> {
/// let role = seedbed::strategy::suite_role(env!("CARGO_MANIFEST_DIR").as_ref())?;
/// # Ok(()) }
/// ```
pub fn suite_role(root: &Path) -> Result<Option<String>> {
    suite_string(root, "role", "the name of a database role")
}

/// A string setting of the suite: `key = "…"` in `seedbed.toml` at the crate root, or in
/// `[package.metadata.seedbed]` of its `Cargo.toml`; read once per process, crate and key (every
/// test asks). `what` says what the value must be, for the error a non-string gets.
pub(crate) fn suite_string(root: &Path, key: &'static str, what: &str) -> Result<Option<String>> {
    type Known = std::collections::HashMap<(std::path::PathBuf, &'static str), Option<String>>;
    static READ: std::sync::Mutex<Option<Known>> = std::sync::Mutex::new(None);
    let cache_key = (root.to_path_buf(), key);
    if let Some(known) = READ
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .as_ref()
        .and_then(|m| m.get(&cache_key))
    {
        return Ok(known.clone());
    }
    let value = read_suite_string(root, key, what)?;
    READ.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get_or_insert_with(Default::default)
        .insert(cache_key, value.clone());
    Ok(value)
}

fn read_suite_string(root: &Path, key: &str, what: &str) -> Result<Option<String>> {
    let own = root.join("seedbed.toml");
    let (value, file) = if let Some(table) = read_toml(&own)? {
        (table.get(key).cloned(), own)
    } else {
        let manifest = root.join("Cargo.toml");
        let value = read_toml(&manifest)?.and_then(|t| {
            t.get("package")?
                .get("metadata")?
                .get("seedbed")?
                .get(key)
                .cloned()
        });
        (value, manifest)
    };
    match value {
        None => Ok(None),
        Some(toml::Value::String(s)) if !s.trim().is_empty() => Ok(Some(s)),
        Some(_) => Err(Error::Config(format!(
            "{}: {key} must be {what}, as a string",
            file.display()
        ))),
    }
}

/// The TOML file at `path`, parsed once per process and version of the file (its size and
/// modification time): every test asks for the suite's strategy, and parsing a crate's
/// `Cargo.toml` in a debug build costs about a millisecond, as much as a Rollback test.
fn read_toml(path: &Path) -> Result<Option<Arc<toml::Table>>> {
    type Version = (u64, Option<std::time::SystemTime>);
    type Parsed = HashMap<PathBuf, (Version, Arc<toml::Table>)>;
    static PARSED: Mutex<Option<Parsed>> = Mutex::new(None);
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("cannot read", path)(e)),
    };
    let version: Version = (meta.len(), meta.modified().ok());
    if let Some((_, table)) = PARSED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
        .and_then(|parsed| parsed.get(path))
        .filter(|(seen, _)| *seen == version)
    {
        return Ok(Some(Arc::clone(table)));
    }
    let table = match std::fs::read_to_string(path) {
        Ok(text) => Arc::new(
            text.parse::<toml::Table>()
                .map_err(|e| Error::Config(format!("{} is not valid TOML: {e}", path.display())))?,
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("cannot read", path)(e)),
    };
    PARSED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get_or_insert_with(HashMap::new)
        .insert(path.to_path_buf(), (version, Arc::clone(&table)));
    Ok(Some(table))
}

fn strategy_value(value: &toml::Value, file: &Path) -> Result<Strategy> {
    let text = value
        .as_str()
        .ok_or_else(|| Error::Config(format!("{}: `strategy` must be a string", file.display())))?;
    text.parse()
        .map_err(|e: Error| Error::Config(format!("{}: {e}", file.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_suite_default() {
        let dir = std::env::temp_dir().join(format!("seedbed-strategy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(suite_default(&dir).unwrap(), None);
        std::fs::write(
            dir.join("Cargo.toml"),
            "[package]\nname = \"x\"\n[package.metadata.seedbed]\nstrategy = \"truncate\"\n",
        )
        .unwrap();
        assert_eq!(suite_default(&dir).unwrap().unwrap().0, Strategy::Truncate);
        std::fs::write(dir.join("seedbed.toml"), "strategy = \"template\"\n").unwrap();
        assert_eq!(suite_default(&dir).unwrap().unwrap().0, Strategy::Template);
        std::fs::write(dir.join("seedbed.toml"), "strategy = \"nope\"\n").unwrap();
        let err = suite_default(&dir).unwrap_err().to_string();
        assert!(
            err.contains("seedbed.toml") && err.contains("nope"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
