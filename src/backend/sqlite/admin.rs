//! Databases as files: created by opening them, cloned by copying the template's file, dropped
//! with their journals; a database's marker is a file beside it (`<database>.marker`).

use std::path::{Path, PathBuf};

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, SqliteConnection};

use super::provision::Directory;
use crate::backend::Marker;
use crate::error::{Error, Result};

/// The files SQLite may keep beside a database: its rollback journal and WAL files.
const COMPANIONS: [&str; 3] = ["-journal", "-wal", "-shm"];

pub(crate) fn marker_file(file: &Path) -> PathBuf {
    file.with_extension("marker")
}

pub(crate) async fn exists(name: &str) -> Result<bool> {
    Ok(Directory::get().await?.file(name)?.is_file())
}

/// Creates the empty database `name` (its file), refusing one that exists.
pub(crate) async fn create(dir: &Directory, name: &str) -> Result<()> {
    let file = dir.file(name)?;
    if file.exists() {
        return Err(Error::CreateDatabase {
            database: name.into(),
            message: format!("{} exists already", file.display()),
        });
    }
    let options = SqliteConnectOptions::new()
        .filename(&file)
        .create_if_missing(true);
    let conn = SqliteConnection::connect_with(&options)
        .await
        .map_err(|e| Error::CreateDatabase {
            database: name.into(),
            message: format!(
                "cannot create {}: {e}. Check that the directory is writable, or set {} to one \
                 that is",
                file.display(),
                super::provision::DIR_VAR
            ),
        })?;
    conn.close()
        .await
        .map_err(Error::db(format!("closing {}", file.display())))
}

/// Copies the closed database `template` to `name`: a copy of a file in rollback-journal mode
/// with no writer is a consistent database. The copy is written under a temporary name and
/// renamed, so no one opens half a copy.
pub(crate) fn clone(dir: &Directory, name: &str, template: &str) -> Result<()> {
    let from = dir.file(template)?;
    let to = dir.file(name)?;
    let partial = to.with_extension(format!("partial-{}", std::process::id()));
    std::fs::copy(&from, &partial).map_err(|e| Error::CreateDatabase {
        database: name.into(),
        message: format!(
            "cannot copy {} to {}: {e}",
            from.display(),
            partial.display()
        ),
    })?;
    std::fs::rename(&partial, &to).map_err(|e| {
        let _ = std::fs::remove_file(&partial);
        Error::CreateDatabase {
            database: name.into(),
            message: format!(
                "cannot rename {} to {}: {e}",
                partial.display(),
                to.display()
            ),
        }
    })
}

/// Removes `name`'s file, its journals and its marker; a missing file is no error.
pub(crate) fn drop_database(dir: &Directory, name: &str) -> Result<()> {
    let file = dir.file(name)?;
    let mut paths = vec![file.clone(), marker_file(&file)];
    for suffix in COMPANIONS {
        let mut companion = file.clone().into_os_string();
        companion.push(suffix);
        paths.push(PathBuf::from(companion));
    }
    for path in paths {
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("removing", path)(e)),
        }
    }
    Ok(())
}

pub(crate) fn read_marker(dir: &Directory, name: &str) -> Result<Option<Marker>> {
    let file = dir.file(name)?;
    if !file.is_file() {
        return Ok(None);
    }
    let path = marker_file(&file);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Marker::parse(&text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("reading the marker", path)(e)),
    }
}

/// Writes the marker of `name` whole (a temporary file renamed), so a reader sees the old
/// marker or the new one.
pub(crate) fn write_marker(dir: &Directory, name: &str, marker: &Marker) -> Result<()> {
    let path = marker_file(&dir.file(name)?);
    let partial = path.with_extension(format!("marker-partial-{}", std::process::id()));
    std::fs::write(&partial, marker.to_comment())
        .map_err(Error::io("writing the marker", &partial))?;
    std::fs::rename(&partial, &path).map_err(Error::io("writing the marker", &path))
}
