//! Plain `.sql` directories: files applied in order, recorded nowhere. What schemas kept outside
//! any migration tool look like (`schema/001_accounts.sql`), and what Flyway (`V2__notes.sql`),
//! golang-migrate and dbmate directories hold.

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// One file of a plain directory: the SQL of its up part.
#[derive(Debug, Clone)]
pub(super) struct PlainMigration {
    pub(super) file: PathBuf,
    pub(super) sql: String,
    /// The file starts with `-- no-transaction` (sqlx's marker): it runs outside a transaction
    /// (`CREATE INDEX CONCURRENTLY`, `ALTER TYPE … ADD VALUE` on old servers).
    pub(super) no_tx: bool,
}

/// The up migrations of `dir`: every `*.sql` file but `*.down.sql`, Flyway's undo files
/// (`U2__…`) and callbacks (`beforeMigrate.sql`, `afterEachMigrate.sql`, …), in the order of the
/// version each name starts with (after an optional `V`; `1.10`, `1_10` and `1.9` compared as
/// numbers), then by name; files with no version come last. A file with dbmate's
/// `-- migrate:up` / `-- migrate:down` sections contributes its up section, and
/// `-- migrate:up transaction:false` runs it outside a transaction.
pub(super) fn read_dir(dir: &Path) -> Result<Vec<PlainMigration>> {
    let unreadable = |e: std::io::Error| Error::Migrations {
        path: dir.to_path_buf(),
        reason: match e.kind() {
            std::io::ErrorKind::NotFound => {
                "no such directory (paths are relative to the crate root, where cargo runs tests)"
                    .into()
            }
            _ => e.to_string(),
        },
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(unreadable)?
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().to_lowercase())
                .unwrap_or_default();
            path.is_file()
                && name.ends_with(".sql")
                && !name.ends_with(".down.sql")
                && !is_flyway_undo_or_callback(path)
        })
        .collect();
    files.sort_by(|a, b| order(a, b));
    files
        .into_iter()
        .map(|file| {
            let text = std::fs::read_to_string(&file).map_err(|e| Error::Migrations {
                path: file.clone(),
                reason: e.to_string(),
            })?;
            let (sql, dbmate_no_tx) = up_section(&text);
            let no_tx = text.trim_start().starts_with("-- no-transaction") || dbmate_no_tx;
            Ok(PlainMigration {
                sql: sql.to_string(),
                file,
                no_tx,
            })
        })
        .collect()
}

/// Flyway's undo migrations (`U2__…`) and callbacks (`beforeMigrate.sql`,
/// `afterEachMigrate__note.sql`, …): not up migrations.
fn is_flyway_undo_or_callback(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let undo = name
        .strip_prefix('U')
        .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()) && rest.contains("__"));
    let callback = ["before", "after"].iter().any(|prefix| {
        name.strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_uppercase()))
    });
    undo || callback
}

/// The version a file's name starts with, after an optional `V`: the numbers of `1.10`,
/// `1_10` or `20240101120000`, up to Flyway's `__` or the first other character.
fn version(name: &str) -> Option<Vec<u128>> {
    let rest = name.strip_prefix(['V', 'v']).unwrap_or(name);
    let head = rest.split("__").next().unwrap_or(rest);
    let numeric: String = head
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == '_')
        .collect();
    let parts: Vec<u128> = numeric
        .split(['.', '_'])
        .filter(|p| !p.is_empty())
        .map_while(|p| p.parse().ok())
        .collect();
    (!parts.is_empty()).then_some(parts)
}

/// Orders files by version (see [`version`]), then by name; files with no version come after
/// those with one.
fn order(a: &Path, b: &Path) -> Ordering {
    let name = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let (na, nb) = (name(a), name(b));
    match (version(&na), version(&nb)) {
        (Some(x), Some(y)) => x.cmp(&y).then_with(|| na.cmp(&nb)),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => na.cmp(&nb),
    }
}

/// The up part of a file: after dbmate's `-- migrate:up` line and before `-- migrate:down`
/// when it has them, else all of it; and whether the up line says `transaction:false`.
fn up_section(text: &str) -> (&str, bool) {
    let (start, no_tx) = match text.find("-- migrate:up") {
        Some(at) => {
            let line_end = text[at..].find('\n').map_or(text.len(), |end| at + end);
            let options = &text[at + "-- migrate:up".len()..line_end];
            (line_end, options.contains("transaction:false"))
        }
        None => (0, false),
    };
    let rest = &text[start..];
    let up = match rest.find("-- migrate:down") {
        Some(end) => &rest[..end],
        None => rest,
    };
    (up, no_tx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_by_version_then_name() {
        let mut files: Vec<PathBuf> = [
            "V10__tags.sql",
            "V2__notes.sql",
            "V1__accounts.sql",
            "seed.sql",
            "002_b.sql",
            "V1_1__a.sql",
            "V1.10__c.sql",
            "V1.9__b.sql",
        ]
        .into_iter()
        .map(PathBuf::from)
        .collect();
        files.sort_by(|a, b| order(a, b));
        let names: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
        assert_eq!(
            names,
            [
                "V1__accounts.sql",
                "V1_1__a.sql",
                "V1.9__b.sql",
                "V1.10__c.sql",
                "002_b.sql",
                "V2__notes.sql",
                "V10__tags.sql",
                "seed.sql"
            ]
        );
    }

    #[test]
    fn leaves_out_flyway_undo_files_and_callbacks() {
        for name in [
            "U2__notes.sql",
            "beforeMigrate.sql",
            "afterEachMigrate__log.sql",
        ] {
            assert!(is_flyway_undo_or_callback(Path::new(name)), "{name}");
        }
        for name in ["V2__notes.sql", "users.sql", "after_all.sql", "U_turn.sql"] {
            assert!(!is_flyway_undo_or_callback(Path::new(name)), "{name}");
        }
    }

    #[test]
    fn takes_the_up_section_of_a_dbmate_file() {
        let text = "-- migrate:up\nCREATE TABLE t (id int);\n\n-- migrate:down\nDROP TABLE t;\n";
        assert_eq!(up_section(text).0.trim(), "CREATE TABLE t (id int);");
        assert!(!up_section(text).1);
        assert_eq!(
            up_section("CREATE TABLE u ();"),
            ("CREATE TABLE u ();", false)
        );
        let concurrent =
            "-- migrate:up transaction:false\nCREATE INDEX CONCURRENTLY i ON t (id);\n";
        let (sql, no_tx) = up_section(concurrent);
        assert_eq!(sql.trim(), "CREATE INDEX CONCURRENTLY i ON t (id);");
        assert!(no_tx);
    }
}
