//! Template on SQLite: each test gets its own copy of the migrated image's file (migrations and
//! fixtures), held by an owner lock while the test runs. A passing test's copy is removed at its
//! end; a failing test's is kept (marked `kept`) for inspection. Copies whose process died are
//! removed by the next process that starts a Template test.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use sqlx::Sqlite;
use sqlx::sqlite::SqliteJournalMode;

use super::super::strategies::Ending;
use super::super::testdb::{Inner, Outcome};
use super::image;
use super::{Acquired, Isolation, connect_options, pool};
use crate::backend::sqlite::{Directory, admin, coord};
use crate::backend::{LockMode, Marker};
use crate::error::Result;

const PREFIX: &str = "seedbed_clone_";

fn owner_lock(name: &str) -> String {
    format!("owner:{name}")
}

pub(super) async fn acquire(iso: &Isolation, dir: &'static Directory) -> Result<Acquired> {
    static SWEPT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    SWEPT
        .get_or_try_init(|| async { sweep(dir).map(|_| ()) })
        .await?;
    let image = image::ready(iso, dir, image::Kind::Template).await?;
    let name = unique_name();
    let owner = coord::try_take(dir, &owner_lock(&name), LockMode::Exclusive)?;
    admin::clone(dir, &name, &image)?;
    // The copy is the test's alone and goes after it: its journal needs no file.
    let options = connect_options(iso, dir, &name).journal_mode(SqliteJournalMode::Memory);
    let pool = pool(iso, options, iso.max_connections);
    Ok(Acquired {
        database: name.clone(),
        pool,
        token: None,
        state: Box::new(Clone {
            name,
            owner: Mutex::new(owner),
        }),
    })
}

/// A name no other test, in this process or another, has.
fn unique_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{PREFIX}{}_{n}_{nanos:08x}", std::process::id())
}

/// Removes the copies whose owner is gone (not those kept for inspection); returns their names.
pub(crate) fn sweep(dir: &Directory) -> Result<Vec<String>> {
    let entries =
        std::fs::read_dir(dir.path()).map_err(crate::error::Error::io("listing", dir.path()))?;
    let mut swept = Vec::new();
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(name) = file
            .to_str()
            .and_then(|f| f.strip_suffix(".db"))
            .filter(|n| n.starts_with(PREFIX))
        else {
            continue;
        };
        if admin::read_marker(dir, name)?.is_some_and(|m| m.kind == "kept") {
            continue;
        }
        if let Some(owner) = coord::try_take(dir, &owner_lock(name), LockMode::Exclusive)? {
            admin::drop_database(dir, name)?;
            owner.remove(dir, &owner_lock(name));
            swept.push(name.to_string());
        }
    }
    Ok(swept)
}

/// The test's copy.
#[derive(Debug)]
struct Clone {
    name: String,
    owner: Mutex<Option<coord::Lock>>,
}

#[async_trait]
impl Ending<Sqlite> for Clone {
    async fn finish(self: Box<Self>, inner: &Inner<Sqlite>, outcome: Outcome) -> Result<()> {
        inner.pool.close().await;
        let dir = inner.server;
        let owner = self
            .owner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let result = if outcome == Outcome::Failed {
            inner.mark_kept();
            admin::write_marker(dir, &self.name, &Marker::new("kept"))
        } else {
            admin::drop_database(dir, &self.name)
        };
        if let Some(owner) = owner {
            owner.remove(dir, &owner_lock(&self.name));
        }
        result
    }

    fn abandon(self: Box<Self>, inner: &Inner<Sqlite>) {
        // The file goes now; the pool's connections, if any are open, close with the pool.
        let _ = admin::drop_database(inner.server, &self.name);
        let owner = self
            .owner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(owner) = owner {
            owner.remove(inner.server, &owner_lock(&self.name));
        }
    }
}
