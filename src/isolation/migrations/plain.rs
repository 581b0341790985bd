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

/// The up migrations of `dir`: every `*.sql` file but `*.down.sql`, in the order of the number
/// each name starts with (after an optional `V`: `V2__a.sql` before `V10__b.sql`), then by name.
/// A file with dbmate's `-- migrate:up` / `-- migrate:down` sections contributes its up section.
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
            path.is_file() && name.ends_with(".sql") && !name.ends_with(".down.sql")
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
            let no_tx = text.trim_start().starts_with("-- no-transaction");
            Ok(PlainMigration {
                sql: up_section(&text).to_string(),
                file,
                no_tx,
            })
        })
        .collect()
}

/// Orders files by the number their name starts with (after an optional `V`), then by name;
/// names without a number come after those with one.
fn order(a: &Path, b: &Path) -> Ordering {
    let key = |p: &Path| {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let digits: String = name
            .trim_start_matches(['V', 'v'])
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        (digits.parse::<u128>().ok(), name)
    };
    let (ka, kb) = (key(a), key(b));
    match (ka.0, kb.0) {
        (Some(x), Some(y)) => x.cmp(&y).then_with(|| ka.1.cmp(&kb.1)),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => ka.1.cmp(&kb.1),
    }
}

/// The up part of a file: between dbmate's `-- migrate:up` and `-- migrate:down` when it has
/// them, else all of it.
fn up_section(text: &str) -> &str {
    let start = text
        .find("-- migrate:up")
        .map_or(0, |at| at + "-- migrate:up".len());
    let rest = &text[start..];
    match rest.find("-- migrate:down") {
        Some(end) => &rest[..end],
        None => rest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_by_number_then_name() {
        let mut files: Vec<PathBuf> = [
            "V10__tags.sql",
            "V2__notes.sql",
            "V1__accounts.sql",
            "seed.sql",
            "002_b.sql",
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
                "002_b.sql",
                "V2__notes.sql",
                "V10__tags.sql",
                "seed.sql"
            ]
        );
    }

    #[test]
    fn takes_the_up_section_of_a_dbmate_file() {
        let text = "-- migrate:up\nCREATE TABLE t (id int);\n\n-- migrate:down\nDROP TABLE t;\n";
        assert_eq!(up_section(text).trim(), "CREATE TABLE t (id int);");
        assert_eq!(up_section("CREATE TABLE u ();"), "CREATE TABLE u ();");
    }
}
