//! What test processes that died left in the SQLite directory, found by their free locks and
//! removed: Template copies, Rollback and Truncate slots left in use, and Namespace rows whose
//! token is gone. Each process does its part as it starts (Template and Namespace sweep on first
//! use, a slot is emptied by its next holder); [`sweep`] does all of it at once, for `seedbed
//! sweep` and for tests.

use sqlx::{Connection, Sqlite};

use super::template;
use crate::backend::sqlite::{Directory, admin, coord, journal};
use crate::backend::{Clean, LockMode};
use crate::error::{Error, Result};

/// What [`sweep`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SqliteSwept {
    /// Template copies whose test process is gone.
    pub clones: Vec<String>,
    /// Slots a dead test process held, emptied.
    pub slots: Vec<String>,
    /// Namespace tokens whose rows were removed.
    pub tokens: Vec<String>,
}

/// Sweeps `dir` of what dead test processes left (tests running now are left alone: they hold
/// their locks); with `kept`, also the Template copies kept for failed tests.
///
/// ```no_run
/// # async fn demo() -> Result<(), seedbed::Error> {
/// use seedbed::backend::sqlite::Directory;
///
/// let swept = seedbed::isolation::maintenance::sweep_sqlite(Directory::get().await?, false).await?;
/// println!("{} copies, {} slots, {} tokens", swept.clones.len(), swept.slots.len(), swept.tokens.len());
/// # Ok(()) }
/// ```
pub async fn sweep(dir: &Directory, kept: bool) -> Result<SqliteSwept> {
    let mut swept = SqliteSwept {
        clones: template::sweep(dir, kept)?,
        ..SqliteSwept::default()
    };
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .map_err(Error::io("listing", dir.path()))?
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect();
    for file in &names {
        if let Some(slot) = file.strip_suffix(".inuse") {
            let lease_name = format!("lease:{slot}");
            let inuse = dir.path().join(file);
            if let Some(lease) = coord::try_take(dir, &lease_name, LockMode::Exclusive)? {
                if !inuse.exists() {
                    // Swept meanwhile by another process (or thread).
                    continue;
                }
                if empty(dir, slot).await.is_err() {
                    // A slot that cannot be emptied (an older seedbed's, or damaged) is a copy:
                    // it goes, and the next test that needs it makes it again.
                    admin::drop_database(dir, slot)?;
                }
                std::fs::remove_file(&inuse).map_err(Error::io("removing", inuse))?;
                lease.release();
                swept.slots.push(slot.to_string());
            }
        }
        if let Some(shared) = file
            .strip_suffix(".db")
            .filter(|n| n.starts_with("seedbed_ns_"))
            && admin::read_marker(dir, shared)?.is_some()
        {
            let mut conn = dir.connect(shared).await?;
            swept
                .tokens
                .extend(journal::sweep_with(&mut conn, kept).await?);
            let _ = conn.close().await;
        }
    }
    if kept {
        // The marks that kept failed tests' tokens from being claimed again.
        for file in names
            .iter()
            .filter(|f| f.starts_with(super::namespace::KEPT_MARK))
        {
            let _ = std::fs::remove_file(dir.path().join(file));
        }
    }
    Ok(swept)
}

async fn empty(dir: &Directory, slot: &str) -> Result<()> {
    let mut conn = dir.connect(slot).await?;
    let plan = <Sqlite as Clean>::plan(&mut conn).await?;
    <Sqlite as Clean>::clean(&mut conn, &plan, true).await?;
    let _ = conn.close().await;
    Ok(())
}
