//! Locks between test processes and hosts on MySQL: named locks (`GET_LOCK`), which the server
//! frees when the session holding them ends, however it ends.
//!
//! A lock name is at most 64 characters on MySQL: a name is used as `seedbed:<name>` when that
//! fits, else as `seedbed:#<hash>`. MySQL's named locks are exclusive; a lock of
//! [`Coord`](crate::backend::Coord) in [`LockMode::Shared`] is one of [`SHARES`] locks of its
//! name, and an exclusive one holds them all. The strategies' own leases ([`take`], [`try_take`])
//! are plain exclusive locks of another namespace.

use std::time::{Duration, Instant};

use sqlx::MySqlConnection;

use crate::backend::LockMode;
use crate::error::{Error, Result};
use crate::sql::mysql_literal;
use crate::util::hash::stable_hash;

/// How many shared holders one name can have at once.
pub(crate) const SHARES: usize = 16;

/// The server's name of lock `name`.
pub(crate) fn key(name: &str) -> String {
    let plain = format!("seedbed:{name}");
    if plain.len() <= 64 {
        plain
    } else {
        format!("seedbed:#{:016x}", stable_hash(name))
    }
}

/// The server's names of the shares of `name`.
fn shares(name: &str) -> Vec<String> {
    (0..SHARES)
        .map(|i| format!("seedbed:s{i:02}:{:016x}", stable_hash(name)))
        .collect()
}

/// Takes `key` on `conn`, waiting at most `timeout`; whether it was taken.
async fn get_lock(conn: &mut MySqlConnection, key: &str, timeout: Duration) -> Result<bool> {
    // Whole seconds, rounded up: MySQL counts GET_LOCK's timeout in seconds (MariaDB takes
    // fractions), and a fraction rounded down to 0 would make a wait a busy loop.
    let seconds = timeout.as_secs() + u64::from(timeout.subsec_nanos() > 0);
    // As text: one round trip, where a statement prepared the first time (every process that
    // runs one test) costs two.
    let context = || format!("taking the lock {key}");
    let row = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "SELECT GET_LOCK({}, {seconds})",
        mysql_literal(key)
    )))
    .fetch_one(conn)
    .await
    .map_err(Error::db(context()))?;
    let got: Option<i64> = sqlx::Row::try_get(&row, 0).map_err(Error::db(context()))?;
    Ok(got == Some(1))
}

async fn release_lock(conn: &mut MySqlConnection, key: &str) -> Result<()> {
    sqlx::query("DO RELEASE_LOCK(?)")
        .bind(key)
        .execute(conn)
        .await
        .map_err(Error::db(format!("releasing the lock {key}")))?;
    Ok(())
}

/// Takes the exclusive lease `name` on `conn`, waiting at most `timeout`.
pub(crate) async fn take(conn: &mut MySqlConnection, name: &str, timeout: Duration) -> Result<()> {
    if get_lock(conn, &key(name), timeout).await? {
        Ok(())
    } else {
        Err(Error::Timeout {
            what: format!("the MySQL lock {name}"),
            waited: timeout,
        })
    }
}

/// Takes the exclusive lease `name` on `conn` if it is free.
pub(crate) async fn try_take(conn: &mut MySqlConnection, name: &str) -> Result<bool> {
    get_lock(conn, &key(name), Duration::ZERO).await
}

/// Whether some session holds the exclusive lease `name` now.
pub(crate) async fn is_taken(conn: &mut MySqlConnection, name: &str) -> Result<bool> {
    let holder: Option<i64> = sqlx::query_scalar("SELECT CAST(IS_USED_LOCK(?) AS SIGNED)")
        .bind(key(name))
        .fetch_one(conn)
        .await
        .map_err(Error::db(format!("asking who holds the lock {name}")))?;
    Ok(holder.is_some())
}

/// Releases the lease `name` held on `conn`.
pub(crate) async fn give_back(conn: &mut MySqlConnection, name: &str) -> Result<()> {
    release_lock(conn, &key(name)).await
}

pub(crate) async fn lock(
    conn: &mut MySqlConnection,
    name: &str,
    mode: LockMode,
    timeout: Duration,
) -> Result<()> {
    let started = Instant::now();
    loop {
        if try_lock(conn, name, mode).await? {
            return Ok(());
        }
        let left = timeout.saturating_sub(started.elapsed());
        if left.is_zero() {
            return Err(Error::Timeout {
                what: format!("the MySQL lock {name}"),
                waited: timeout,
            });
        }
        match mode {
            // Waits on one share: freed when its holder (or the exclusive holder) leaves.
            LockMode::Shared => {
                let share = &shares(name)[started.elapsed().subsec_nanos() as usize % SHARES];
                if get_lock(conn, share, left.min(Duration::from_millis(200))).await? {
                    return Ok(());
                }
            }
            LockMode::Exclusive => {
                tokio::time::sleep(left.min(Duration::from_millis(20))).await;
            }
        }
    }
}

pub(crate) async fn try_lock(
    conn: &mut MySqlConnection,
    name: &str,
    mode: LockMode,
) -> Result<bool> {
    let shares = shares(name);
    match mode {
        LockMode::Shared => {
            let start = (stable_hash(&format!("{:?}", Instant::now())) as usize) % SHARES;
            for i in 0..SHARES {
                if get_lock(conn, &shares[(start + i) % SHARES], Duration::ZERO).await? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        LockMode::Exclusive => {
            let mut taken = Vec::new();
            for share in &shares {
                if get_lock(conn, share, Duration::ZERO).await? {
                    taken.push(share);
                } else {
                    for share in taken {
                        release_lock(conn, share).await?;
                    }
                    return Ok(false);
                }
            }
            Ok(true)
        }
    }
}

pub(crate) async fn unlock(conn: &mut MySqlConnection, name: &str, mode: LockMode) -> Result<()> {
    let shares = shares(name);
    match mode {
        LockMode::Exclusive => {
            for share in &shares {
                release_lock(conn, share).await?;
            }
        }
        LockMode::Shared => {
            for share in &shares {
                let holder: Option<i64> =
                    sqlx::query_scalar("SELECT CAST(IS_USED_LOCK(?) AS SIGNED) = CONNECTION_ID()")
                        .bind(share)
                        .fetch_one(&mut *conn)
                        .await
                        .map_err(Error::db(format!("releasing the lock {name}")))?;
                if holder == Some(1) {
                    return release_lock(conn, share).await;
                }
            }
        }
    }
    Ok(())
}

pub(crate) async fn is_held(conn: &mut MySqlConnection, name: &str) -> Result<bool> {
    for share in shares(name) {
        let holder: Option<i64> = sqlx::query_scalar("SELECT CAST(IS_USED_LOCK(?) AS SIGNED)")
            .bind(&share)
            .fetch_one(&mut *conn)
            .await
            .map_err(Error::db(format!("asking who holds the lock {name}")))?;
        if holder.is_some() {
            return Ok(true);
        }
    }
    Ok(false)
}
