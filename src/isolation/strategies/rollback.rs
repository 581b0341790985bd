//! Rollback as a strategy: the test's one connection with its transaction begun, and at the end
//! the rollback, the check that nothing escaped it, and the connection kept for the next test.
//! The transaction pool itself is [`transaction`](super::super::transaction).

use std::sync::Arc;

use async_trait::async_trait;
use sqlx::Postgres;

use super::super::builder::{Acquired, Isolation, application_name};
use super::super::engine;
use super::super::pool::{ROLLBACK_POOLS, evict_kept_pools};
use super::super::testdb::{Inner, Outcome};
use super::super::transaction::{RollbackPool, RollbackState, Started, TokenClaim, Violation};
use super::super::{budget, databases};
use super::{Ending, Isolate};
use crate::backend::postgres::clean;
use crate::backend::postgres::server::Server;
use crate::error::{Error, Result};

/// The Rollback strategy.
pub(crate) struct Rollback;

impl Isolate<Postgres> for Rollback {
    type Options = ();

    fn options(_iso: &Isolation) -> &() {
        &()
    }

    /// Rollback: the test's one connection, straight to the migrated database (the process's only
    /// connection under `cargo nextest`). Its first statement checks the database's marker and
    /// claims the test's token there; the database is built (or waited for) only when it is
    /// missing or not ready.
    async fn acquire(
        iso: &Isolation,
        _options: &(),
        server: &'static Server,
        test_name: &str,
        base_seed: u64,
    ) -> Result<Acquired<Postgres>> {
        let app_name = application_name(test_name);
        let ours = iso.database.is_none();
        let database = match &iso.database {
            Some(db) => db.clone(),
            None => iso.build_name(&iso.build("rollback")).await?,
        };
        let options = iso.connect_options(server, &database);
        let key = format!(
            "{database}|{:?}|{:?}|{:?}",
            iso.statement_timeout, iso.lock_timeout, iso.acquire_timeout
        );
        static VERIFIED: engine::KeySet = engine::KeySet::new();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let rp = match ROLLBACK_POOLS.take(&key) {
                Some(rp) => rp,
                None => {
                    budget::on_shortage(evict_kept_pools);
                    let reservation = budget::reserve_one(&budget::postgres(server)).await?;
                    let opened = engine::run(RollbackPool::open(
                        server,
                        options.clone(),
                        iso.acquire_timeout,
                    ))
                    .await;
                    match opened {
                        Ok(mut rp) => {
                            rp.budget = Some(reservation);
                            Arc::new(rp)
                        }
                        Err(e) if ours && attempts < 3 && databases::is_missing_database(&e) => {
                            drop(reservation);
                            iso.migrated(server, "rollback").await?;
                            continue;
                        }
                        Err(e) => return Err(e),
                    }
                }
            };
            let check = ours && !VERIFIED.contains(&database);
            let claim = TokenClaim {
                test: test_name,
                base_seed,
            };
            let set_role = iso.set_role(true);
            match rp
                .start(&app_name, &iso.fixtures, set_role.as_deref(), &claim, check)
                .await
            {
                Ok(Started::Running { state, token }) => {
                    if check {
                        VERIFIED.insert(&database);
                    }
                    let pool = rp.pool.clone();
                    return Ok(Acquired {
                        database,
                        pool,
                        state: Box::new(Held { rp, state, key }),
                        token: Some(token),
                    });
                }
                Ok(Started::NotReady) if attempts < 3 => {
                    // Being built by another process, or left half-built: wait for it, or build,
                    // without holding a connection the builder may need.
                    rp.close().await;
                    drop(rp);
                    iso.migrated(server, "rollback").await?;
                }
                Ok(Started::NotReady) => {
                    ROLLBACK_POOLS.put(&key, rp);
                    return Err(Error::Config(format!(
                        "database {database} is still not ready after it was built: another \
                         seedbed is rebuilding it; run the tests again"
                    )));
                }
                Err(e) => {
                    rp.close().await;
                    // A kept pool whose connection died (a restarted server) is replaced.
                    if attempts >= 3 || !engine::is_connection_error(&e) {
                        return Err(e);
                    }
                }
            }
        }
    }
}

/// What Rollback keeps for the test's end: the transaction's pool and its state.
#[derive(Debug)]
struct Held {
    rp: Arc<RollbackPool>,
    state: Arc<RollbackState>,
    key: String,
}

#[async_trait]
impl Ending<Postgres> for Held {
    async fn finish(self: Box<Self>, inner: &Inner<Postgres>, _outcome: Outcome) -> Result<()> {
        let Held { rp, state, key } = *self;
        let server = inner.server;
        let (violation, reusable) = rp.finish(&state, |pid| is_listening(server, pid)).await?;
        if reusable {
            ROLLBACK_POOLS.put(&key, rp);
        } else {
            rp.close().await;
        }
        match violation {
            None => Ok(()),
            Some(v) => {
                // Whatever escaped the test's transaction is removed.
                if matches!(
                    v,
                    Violation::TransactionEnded | Violation::ConnectionReplaced
                ) {
                    clean_shared(server, &inner.database).await?;
                }
                Err(Error::Isolation {
                    strategy: inner.strategy,
                    message: v.explain().to_string(),
                })
            }
        }
    }
}

/// Whether the server process `pid` last ran LISTEN (seen from the control connection).
async fn is_listening(server: &'static Server, pid: u32) -> Result<bool> {
    engine::control()
        .with(server, move |conn| {
            Box::pin(async move {
                let pid = i32::try_from(pid).unwrap_or_default();
                let query: Option<String> =
                    sqlx::query_scalar("SELECT query FROM pg_stat_activity WHERE pid = $1")
                        .bind(pid)
                        .fetch_optional(conn)
                        .await
                        .map_err(Error::db("looking at the test's connection"))?;
                Ok(query.is_some_and(|q| {
                    let q = q.trim_start().to_ascii_uppercase();
                    q.starts_with("LISTEN") || q.starts_with("UNLISTEN")
                }))
            })
        })
        .await
}

/// Empties a shared database after code under test committed into it.
async fn clean_shared(server: &'static Server, database: &str) -> Result<()> {
    let options = server.database_options(database);
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect_with(&options)
        .await
        .map_err(Error::db(format!("connecting to {database} to clean it")))?;
    let result = if clean::is_prepared(&mut conn).await? {
        match clean::CleaningPlan::load(&mut conn).await {
            Ok(plan) => clean::clean(&mut conn, &plan, false).await.map(|_| ()),
            Err(e) => Err(e),
        }
    } else {
        Err(Error::ForeignDatabase {
            database: database.to_string(),
            message: "it was not created by seedbed, so seedbed cannot remove what the test \
                      committed into it"
                .into(),
        })
    };
    let _ = sqlx::Connection::close(conn).await;
    result
}
