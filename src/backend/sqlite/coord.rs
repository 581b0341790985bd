//! Locks between test processes on SQLite: a lock is an OS file lock (`flock` on Unix,
//! `LockFileEx` on Windows) on a file in the directory's `locks/` folder. The holder is the
//! process, not a connection (SQLite has no server sessions): the OS releases the lock when the
//! process dies, however it dies, which is what leases and the sweeper rely on.
//!
//! Two locks taken in one process on the same name conflict as they would between processes
//! (each holds its own open file), so threads of one process exclude each other too.

use std::collections::HashMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use super::provision::Directory;
use crate::backend::LockMode;
use crate::error::{Error, Result};

/// The locks [`Coord`](crate::backend::Coord) callers hold, by name and whether shared (a name
/// may be held shared more than once).
type Held = Mutex<HashMap<(String, bool), Vec<File>>>;

fn held() -> &'static Held {
    static HELD: OnceLock<Held> = OnceLock::new();
    HELD.get_or_init(|| Mutex::new(HashMap::new()))
}

/// A lock held until dropped (or [`Lock::release`]d): what the strategies keep for a lease.
#[derive(Debug)]
pub(crate) struct Lock {
    file: File,
}

impl Lock {
    /// Releases the lock now (dropping it does the same).
    pub(crate) fn release(self) {
        let _ = self.file.unlock();
    }

    /// Removes the lock's file, then releases the lock: for a name no one will use again (a
    /// test's token, a clone's owner), so locks leave no files behind. Whoever opened the file
    /// before it went and locks it afterwards finds it is no longer the name's file, and opens
    /// the name anew (see [`attempt`]).
    pub(crate) fn remove(self, dir: &Directory, name: &str) {
        let _ = std::fs::remove_file(dir.lock_file(name));
        self.release();
    }
}

fn open(dir: &Directory, name: &str) -> Result<File> {
    let path = dir.lock_file(name);
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(Error::io("opening the lock file", path))
}

/// Locks `file` if it is free. A lock taken on a file that was removed meanwhile (its holder
/// [`Lock::remove`]d it) is given back and reported as `Stale`: the caller opens the name again.
fn attempt(file: &File, path: &Path, mode: LockMode) -> std::io::Result<Attempt> {
    let got = match mode {
        LockMode::Exclusive => file.try_lock(),
        LockMode::Shared => file.try_lock_shared(),
    };
    match got {
        Ok(()) if same_file(file, path) => Ok(Attempt::Taken),
        Ok(()) => {
            let _ = file.unlock();
            Ok(Attempt::Stale)
        }
        Err(TryLockError::WouldBlock) => Ok(Attempt::Busy),
        Err(TryLockError::Error(e)) => Err(e),
    }
}

enum Attempt {
    Taken,
    Busy,
    Stale,
}

#[cfg(unix)]
fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_file(_file: &File, path: &Path) -> bool {
    // Windows does not remove a file another process holds open.
    path.exists()
}

/// Takes the lock `name` if it is free.
pub(crate) fn try_take(dir: &Directory, name: &str, mode: LockMode) -> Result<Option<Lock>> {
    let path = dir.lock_file(name);
    loop {
        let file = open(dir, name)?;
        match attempt(&file, &path, mode).map_err(Error::io("locking", &path))? {
            Attempt::Taken => return Ok(Some(Lock { file })),
            Attempt::Busy => return Ok(None),
            Attempt::Stale => continue,
        }
    }
}

/// Takes the lock `name`, waiting at most `timeout` (polling: file locks have no timed wait).
pub(crate) async fn take(
    dir: &Directory,
    name: &str,
    mode: LockMode,
    timeout: Duration,
) -> Result<Lock> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(lock) = try_take(dir, name, mode)? {
            return Ok(lock);
        }
        if start.elapsed() >= timeout {
            return Err(Error::Timeout {
                what: format!(
                    "the lock {name} ({}), held by another test process",
                    dir.lock_file(name).display()
                ),
                waited: start.elapsed(),
            });
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// Whether anyone (this process included) holds `name`.
pub(crate) fn is_held(dir: &Directory, name: &str) -> Result<bool> {
    let path = dir.lock_file(name);
    // Opened without creating it: a lock file its holder just removed is not made again.
    let file = match OpenOptions::new().read(true).write(true).open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Error::io("opening the lock file", path)(e)),
    };
    match attempt(&file, &path, LockMode::Exclusive).map_err(Error::io("locking", &path))? {
        Attempt::Taken => {
            let _ = file.unlock();
            Ok(false)
        }
        Attempt::Busy => Ok(true),
        // Removed while we looked: its holder let go.
        Attempt::Stale => Ok(false),
    }
}

/// [`Coord::lock`](crate::backend::Coord::lock): the lock is kept in the process's registry
/// until [`unlock`].
pub(crate) async fn lock(name: &str, mode: LockMode, timeout: Duration) -> Result<()> {
    let dir = Directory::get().await?;
    let lock = take(dir, name, mode, timeout).await?;
    keep(name, mode, lock);
    Ok(())
}

pub(crate) async fn try_lock(name: &str, mode: LockMode) -> Result<bool> {
    let dir = Directory::get().await?;
    match try_take(dir, name, mode)? {
        Some(lock) => {
            keep(name, mode, lock);
            Ok(true)
        }
        None => Ok(false),
    }
}

pub(crate) fn unlock(name: &str, mode: LockMode) -> Result<()> {
    let key = (name.to_string(), mode == LockMode::Shared);
    let mut held = held().lock().unwrap_or_else(PoisonError::into_inner);
    let file = held.get_mut(&key).and_then(Vec::pop);
    match file {
        Some(file) => {
            let _ = file.unlock();
            Ok(())
        }
        None => Err(Error::Internal(format!(
            "unlocking {name}, which this process does not hold"
        ))),
    }
}

fn keep(name: &str, mode: LockMode, lock: Lock) {
    held()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .entry((name.to_string(), mode == LockMode::Shared))
        .or_default()
        .push(lock.file);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn locks_exclude_each_other_within_a_process() {
        let tmp = std::env::temp_dir().join(format!("seedbed-coord-{}", std::process::id()));
        let dir = Directory::at(&tmp).unwrap();
        let a = try_take(&dir, "lease:x", LockMode::Exclusive).unwrap();
        assert!(a.is_some());
        assert!(
            try_take(&dir, "lease:x", LockMode::Exclusive)
                .unwrap()
                .is_none()
        );
        assert!(is_held(&dir, "lease:x").unwrap());
        drop(a);
        assert!(!is_held(&dir, "lease:x").unwrap());
        let s1 = try_take(&dir, "build", LockMode::Shared).unwrap();
        let s2 = try_take(&dir, "build", LockMode::Shared).unwrap();
        assert!(s1.is_some() && s2.is_some());
        assert!(
            try_take(&dir, "build", LockMode::Exclusive)
                .unwrap()
                .is_none()
        );
        let waited = take(
            &dir,
            "build",
            LockMode::Exclusive,
            Duration::from_millis(30),
        )
        .await;
        assert!(matches!(waited, Err(Error::Timeout { .. })));
        let _ = std::fs::remove_dir_all(&tmp);
    }
}
