//! Template on SQLite: each test gets a copy of the migrated image's file (migrations and
//! fixtures, prepared for the cleaner), held by an owner lock while the test runs. A failing
//! test's copy is kept (marked `kept`) for inspection. A passing test's copy is emptied back to
//! the image (one statement: see the SQLite cleaner) and, its connections still open, given to
//! the process's next Template test, unless the test changed the schema: then it goes, and the
//! next test gets a fresh copy. In a process that runs one test (`cargo nextest`), a passing
//! test's copy is removed at its end. Copies whose process died are removed by the next process
//! that starts a Template test.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

use async_trait::async_trait;
use sqlx::sqlite::SqliteJournalMode;
use sqlx::{Connection, Sqlite, SqliteConnection, SqlitePool};

use super::super::engine::KeyedOnce;
use super::super::strategies::Ending;
use super::super::testdb::{Inner, Outcome};
use super::image;
use super::{Acquired, Isolation, PoolSettings};
use crate::backend::sqlite::clean as cleaner;
use crate::backend::sqlite::{Directory, SqlitePlan, admin, coord};
use crate::backend::{Clean, LockMode, Marker};
use crate::error::{Error, Result};

const PREFIX: &str = "seedbed_clone_";

fn owner_lock(name: &str) -> String {
    format!("owner:{name}")
}

pub(super) async fn acquire(iso: &Isolation, dir: &'static Directory) -> Result<Acquired> {
    static SWEPT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    SWEPT
        .get_or_try_init(|| async { sweep(dir, false).map(|_| ()) })
        .await?;
    let once = crate::util::env::one_test_per_process();
    let kind = if once {
        image::Kind::TemplateOnce
    } else {
        image::Kind::Template
    };
    let image = image::ready(iso, dir, kind).await?;
    let settings = PoolSettings::of(iso);
    let key = format!("{image}:{settings:?}");
    let recycled = (!once).then(|| take_recycled(&key)).flatten();
    let replica = match recycled {
        Some(replica) => replica,
        None => Replica::make(dir, &image, settings)?,
    };
    Ok(Acquired {
        database: replica.name.clone(),
        pool: replica.pool.clone(),
        token: None,
        state: Box::new(Clone {
            key,
            image,
            replica: Mutex::new(Some(replica)),
        }),
    })
}

/// A copy of the image with its owner lock and the pool the test gets.
#[derive(Debug)]
struct Replica {
    name: String,
    owner: coord::Lock,
    pool: SqlitePool,
}

impl Replica {
    fn make(dir: &'static Directory, image: &str, settings: PoolSettings) -> Result<Replica> {
        let name = unique_name();
        let owner =
            coord::try_take(dir, &owner_lock(&name), LockMode::Exclusive)?.ok_or_else(|| {
                Error::Internal(format!("the owner lock of the new copy {name} is held"))
            })?;
        admin::clone(dir, &name, image)?;
        // The copy is the test's alone: its journal needs no file.
        let options = settings
            .connect_options(dir, &name)
            .journal_mode(SqliteJournalMode::Memory);
        let pool = settings.pool(options);
        Ok(Replica { name, owner, pool })
    }

    /// Closes the pool, removes the file and its owner lock.
    async fn discard(self, dir: &Directory) -> Result<()> {
        super::close(&self.pool).await;
        let dropped = admin::drop_database(dir, &self.name);
        self.owner.remove(dir, &owner_lock(&self.name));
        dropped
    }

    /// Empties the copy back to the image; whether it can serve another test (the test left the
    /// schema as the image has it).
    async fn empty(&self, dir: &Directory, image: &str) -> Result<bool> {
        let (plan, version) = image_facts(dir, image).await?;
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(Error::db("connecting to empty the copy"))?;
        // Counters back to the image's too: the next test sees the copy a fresh one would be.
        let emptied = cleaner::clean_and_version(&mut conn, &plan, true).await;
        conn.return_to_pool().await;
        Ok(matches!(emptied, Ok((_, now)) if now == version))
    }
}

/// The image's cleaning plan and schema version, read once per process.
async fn image_facts(dir: &Directory, image: &str) -> Result<(std::sync::Arc<SqlitePlan>, i64)> {
    static FACTS: OnceLock<KeyedOnce<(std::sync::Arc<SqlitePlan>, i64)>> = OnceLock::new();
    FACTS
        .get_or_init(KeyedOnce::new)
        .get_or_try_init(image, async {
            let options = dir.connect_options(image).read_only(true);
            let mut conn = SqliteConnection::connect_with(&options)
                .await
                .map_err(Error::db(format!("opening {}", dir.url(image))))?;
            let plan = <Sqlite as Clean>::plan(&mut conn).await?;
            let version: i64 =
                sqlx::query_scalar("SELECT schema_version FROM pragma_schema_version")
                    .fetch_one(&mut conn)
                    .await
                    .map_err(Error::db("reading the image's schema version"))?;
            let _ = conn.close().await;
            Ok((std::sync::Arc::new(plan), version))
        })
        .await
}

/// Emptied copies, by image and settings, for the process's next Template tests.
fn recycled() -> &'static Mutex<HashMap<String, Vec<Replica>>> {
    static RECYCLED: OnceLock<Mutex<HashMap<String, Vec<Replica>>>> = OnceLock::new();
    RECYCLED.get_or_init(|| Mutex::new(HashMap::new()))
}

fn take_recycled(key: &str) -> Option<Replica> {
    recycled()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get_mut(key)
        .and_then(Vec::pop)
}

fn recycle(key: String, replica: Replica) {
    recycled()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(key)
        .or_default()
        .push(replica);
}

/// A name no other test, in this process or another, has.
pub(super) fn unique_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{PREFIX}{}_{n}_{nanos:08x}", std::process::id())
}

/// Removes the copies whose owner is gone (those kept for inspection too with `kept`); returns
/// their names.
pub(crate) fn sweep(dir: &Directory, kept: bool) -> Result<Vec<String>> {
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
        let is_kept = |dir: &Directory| -> Result<bool> {
            Ok(admin::read_marker(dir, name)?.is_some_and(|m| m.kind == "kept"))
        };
        if !kept && is_kept(dir)? {
            continue;
        }
        if let Some(owner) = coord::try_take(dir, &owner_lock(name), LockMode::Exclusive)? {
            // Read again under the lock: a failing test marks its copy kept, then lets go.
            if !kept && is_kept(dir)? {
                owner.release();
                continue;
            }
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
    key: String,
    image: String,
    replica: Mutex<Option<Replica>>,
}

#[async_trait]
impl Ending<Sqlite> for Clone {
    async fn finish(self: Box<Self>, inner: &Inner<Sqlite>, outcome: Outcome) -> Result<()> {
        let dir = inner.server;
        let replica = self
            .replica
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(replica) = replica else {
            return Ok(());
        };
        if outcome == Outcome::Failed {
            super::close(&replica.pool).await;
            inner.mark_kept();
            let kept = admin::write_marker(dir, &replica.name, &Marker::new("kept"));
            replica.owner.remove(dir, &owner_lock(&replica.name));
            return kept;
        }
        if !crate::util::env::one_test_per_process()
            && replica.empty(dir, &self.image).await.unwrap_or(false)
        {
            recycle(self.key.clone(), replica);
            return Ok(());
        }
        replica.discard(dir).await
    }

    fn abandon(self: Box<Self>, inner: &Inner<Sqlite>) {
        let replica = self
            .replica
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        // The file goes now; the pool's connections, if any are open, close with the pool.
        if let Some(replica) = replica {
            let _ = admin::drop_database(inner.server, &replica.name);
            replica
                .owner
                .remove(inner.server, &owner_lock(&replica.name));
        }
    }
}
