//! Namespace on SQLite: one shared database (WAL mode, the row journal installed), the rows each
//! test inserts recorded under its token by `TEMP` triggers on each of its connections, and
//! removed by token at its end (kept with `cleanup = "none"`). The token is held as a file lock
//! while the test runs, so rows whose test died are found and removed by the next process.

use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use sqlx::{Connection, Sqlite, SqliteConnection};

use super::super::strategies::Ending;
use super::super::testdb::{Inner, Outcome};
use super::image;
use super::{Acquired, Isolation, connect_options, pool_options};
use crate::backend::LockMode;
use crate::backend::sqlite::{Directory, coord, journal};
use crate::error::{Error, Result};

pub(super) async fn acquire(
    iso: &Isolation,
    dir: &'static Directory,
    test: &str,
    base_seed: u64,
) -> Result<Acquired> {
    let database = image::ready(iso, dir, image::Kind::Shared).await?;
    let options = connect_options(iso, dir, &database);
    static SWEPT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    SWEPT
        .get_or_try_init(|| async {
            let mut conn = SqliteConnection::connect_with(&options)
                .await
                .map_err(Error::db("opening the shared database"))?;
            journal::sweep(&mut conn).await?;
            let _ = conn.close().await;
            Ok::<(), Error>(())
        })
        .await?;
    let (token, lock) = claim(dir, test, base_seed)?;
    let token = token.as_str();
    let attach = {
        let mut conn = SqliteConnection::connect_with(&options)
            .await
            .map_err(Error::db("opening the shared database"))?;
        let script = journal::attach_script(&mut conn, token).await?;
        let _ = conn.close().await;
        Arc::new(script)
    };
    let pool = pool_options(iso.acquire_timeout, iso.max_connections)
        .after_connect(move |conn, _| {
            let attach = Arc::clone(&attach);
            Box::pin(async move {
                sqlx::raw_sql(sqlx::AssertSqlSafe(attach.as_str().to_owned()))
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            })
        })
        .connect_lazy_with(options);
    if !iso.fixtures.is_empty() {
        let mut conn = pool
            .acquire()
            .await
            .map_err(Error::db("connecting to the shared database"))?;
        super::run_fixtures(&mut conn, &iso.fixtures).await?;
    }
    Ok(Acquired {
        database,
        pool,
        token: Some(token.to_string()),
        state: Box::new(Rows {
            token: token.to_string(),
            keep: iso.namespace.keep_rows,
            lock: Mutex::new(Some(lock)),
        }),
    })
}

/// The first token derived from the test's name and seed that no running test holds, held.
fn claim(dir: &Directory, test: &str, base_seed: u64) -> Result<(String, coord::Lock)> {
    for attempt in 0..1000 {
        let token = crate::context::token_for(test, base_seed, attempt);
        if let Some(lock) = coord::try_take(dir, &journal::token_lock(&token), LockMode::Exclusive)?
        {
            return Ok((token, lock));
        }
    }
    Err(Error::Internal(format!(
        "no free test token among 1000 candidates for {test}"
    )))
}

/// The test's rows, until its end.
#[derive(Debug)]
struct Rows {
    token: String,
    keep: bool,
    lock: Mutex<Option<coord::Lock>>,
}

#[async_trait]
impl Ending<Sqlite> for Rows {
    async fn finish(self: Box<Self>, inner: &Inner<Sqlite>, _outcome: Outcome) -> Result<()> {
        inner.pool.close().await;
        let options = inner.pool.connect_options().as_ref().clone();
        let mut conn = SqliteConnection::connect_with(&options)
            .await
            .map_err(Error::db("opening the shared database"))?;
        let done = if self.keep {
            journal::forget(&mut conn, &self.token).await
        } else {
            journal::clean(&mut conn, &self.token).await
        };
        let _ = conn.close().await;
        let lock = self
            .lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        // Rows that could not be removed stay journaled, their token free: the next process's
        // sweep removes them.
        if let Some(lock) = lock {
            lock.remove(inner.server, &journal::token_lock(&self.token));
        }
        done
    }
}
