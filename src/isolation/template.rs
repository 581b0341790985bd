//! Template: each test gets a database of its own, cloned from a migrated template, so code that
//! commits, LISTENs or opens many connections is isolated too.
//!
//! - The **template** is built once per (server, migrations checksum, fixtures), by whichever
//!   process gets there first, under a database-level lock, and sealed (`IS_TEMPLATE true`,
//!   `ALLOW_CONNECTIONS false`) so clones never wait for a connection to leave it.
//! - **Clones** are made with `CREATE DATABASE … TEMPLATE`, with the copy method chosen by
//!   measurement ([`clone_strategy`](super::migrated::clone_strategy)).
//! - A **warm pool** of spare clones is kept in the [registry](super::registry): a test claims the
//!   oldest spare with `FOR UPDATE SKIP LOCKED` (one statement, which also takes its lease), so it
//!   waits for a handover rather than a `CREATE DATABASE`, and whichever process is running
//!   refills the pool in the background. The pool holds at most `SEEDBED_TEMPLATE_SPARES` clones
//!   per template (default: the number of CPUs, between 2 and 8), across all processes.
//! - A passing test's clone is dropped (in the background); a failing test's clone is **kept**,
//!   its URL printed in the failure block, and listed by `seedbed list` until
//!   `seedbed sweep --kept`.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock, PoisonError};

use super::engine;
use super::marker::{self, Marker};
use super::migrated;
use super::registry;
use crate::error::{Error, Result};
use crate::server::Server;

/// The marker kind of a clone.
pub const CLONE_KIND: &str = "clone";

/// How a test got its clone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handover {
    /// A spare from the warm pool.
    Warm,
    /// Cloned for the test, the pool being empty.
    Cold,
}

/// The most spares per template.
pub fn pool_size() -> Result<i64> {
    match std::env::var("SEEDBED_TEMPLATE_SPARES") {
        Ok(v) => v
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| {
                Error::Config(format!(
                    "SEEDBED_TEMPLATE_SPARES must be a number of databases, not `{v}`"
                ))
            }),
        Err(_) => Ok(std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .clamp(2, 8) as i64),
    }
}

/// Sweeps abandoned databases once per process, before the first clone.
pub(crate) async fn sweep_once(server: &'static Server) -> Result<()> {
    static SWEPT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    SWEPT
        .get_or_try_init(|| async {
            engine::builder()
                .with(server, |conn| {
                    Box::pin(async move {
                        registry::ensure(conn).await?;
                        let swept = registry::sweep(conn, false).await?;
                        if !swept.abandoned.is_empty() {
                            eprintln!(
                                "seedbed: dropped {} test database(s) left by processes that \
                                 died: {}",
                                swept.abandoned.len(),
                                swept.abandoned.join(", ")
                            );
                        }
                        Ok(())
                    })
                })
                .await
        })
        .await
        .copied()
}

/// Gets a clone of `template` for `test`: a spare if there is one, else a new clone. The lease is
/// held by the engine's control connection until [`release`].
pub(crate) async fn acquire(
    server: &'static Server,
    template: &str,
    test: &str,
) -> Result<(String, Handover)> {
    let (tpl, name) = (template.to_string(), test.to_string());
    let claimed = engine::control()
        .with(server, move |conn| {
            Box::pin(async move { registry::claim_spare(conn, &tpl, &name).await })
        })
        .await?;
    let result = match claimed {
        Some(db) => (db, Handover::Warm),
        None => (clone_cold(server, template, test).await?, Handover::Cold),
    };
    refill_in_background(server, template);
    Ok(result)
}

/// Clones `template` for `test` now: the row and lease on the control connection, the copy on
/// the builder connection.
async fn clone_cold(server: &'static Server, template: &str, test: &str) -> Result<String> {
    let (tpl, test_name) = (template.to_string(), test.to_string());
    let name = engine::control()
        .with(server, move |conn| {
            Box::pin(async move {
                let name = registry::new_clone_name(conn).await?;
                registry::begin_build(conn, &name, CLONE_KIND, &tpl, Some(&test_name)).await?;
                Ok(name)
            })
        })
        .await?;
    let (tpl, db) = (template.to_string(), name.clone());
    let built = engine::builder()
        .with(server, move |conn| {
            Box::pin(async move { make_clone(server, conn, &tpl, &db).await })
        })
        .await;
    let db = name.clone();
    engine::control()
        .with(server, move |conn| {
            Box::pin(async move {
                match built {
                    Ok(()) => registry::set_state(conn, &db, "in_use", None).await,
                    Err(e) => {
                        let _ = registry::drop_database(conn, &db).await;
                        let _ = registry::release(conn, &db).await;
                        Err(e)
                    }
                }
            })
        })
        .await?;
    Ok(name)
}

async fn make_clone(
    server: &Server,
    conn: &mut sqlx::PgConnection,
    template: &str,
    name: &str,
) -> Result<()> {
    migrated::create_database(conn, name, Some(template), migrated::clone_strategy(server)).await?;
    marker::write(
        conn,
        name,
        &Marker::new(CLONE_KIND).with("template", template),
    )
    .await
}

/// Starts refilling the pool of `template` on the engine runtime, unless this process already is.
fn refill_in_background(server: &'static Server, template: &str) {
    static RUNNING: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let running = RUNNING.get_or_init(|| Mutex::new(HashSet::new()));
    if !running
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(template.to_string())
    {
        return;
    }
    let template = template.to_string();
    engine::spawn_detached(async move {
        let result = refill(server, &template).await;
        running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&template);
        if let Err(e) = result {
            eprintln!("seedbed: could not refill the spare databases of {template}: {e}");
        }
    });
}

/// Makes spares until the pool is full. The count and the new row are decided under a
/// transaction-level advisory lock, so concurrent refillers never grow the pool past its size.
/// Each spare is made on one connection from its row to its copy: the lease taken with the row
/// must hold until the spare is ready, or a sweeper would take it for abandoned.
async fn refill(server: &'static Server, template: &str) -> Result<()> {
    let size = pool_size()?;
    loop {
        let tpl = template.to_string();
        let made = engine::builder()
            .with(server, move |conn| {
                Box::pin(async move {
                    let mut tx = sqlx::Connection::begin(&mut *conn)
                        .await
                        .map_err(Error::db("refilling spare databases"))?;
                    sqlx::query(
                        "SELECT pg_advisory_xact_lock(hashtextextended('seedbed:pool:' || $1, 0))",
                    )
                    .bind(&tpl)
                    .execute(&mut *tx)
                    .await
                    .map_err(Error::db("refilling spare databases"))?;
                    if registry::spares(&mut tx, &tpl).await? >= size {
                        tx.commit()
                            .await
                            .map_err(Error::db("refilling spare databases"))?;
                        return Ok(false);
                    }
                    let name = registry::new_clone_name(&mut tx).await?;
                    registry::begin_build(&mut tx, &name, "spare", &tpl, None).await?;
                    tx.commit()
                        .await
                        .map_err(Error::db("refilling spare databases"))?;
                    match make_clone(server, conn, &tpl, &name).await {
                        Ok(()) => {
                            registry::set_state(conn, &name, "spare", None).await?;
                            registry::release(conn, &name).await?;
                            Ok(true)
                        }
                        Err(e) => {
                            let _ = registry::drop_database(conn, &name).await;
                            let _ = registry::release(conn, &name).await;
                            Err(e)
                        }
                    }
                })
            })
            .await?;
        if !made {
            return Ok(());
        }
    }
}

/// Ends a test's use of its clone: dropped when it passed (in the background), kept and marked
/// with the test when it failed. The lease is released either way.
pub(crate) async fn release(
    server: &'static Server,
    database: &str,
    passed: bool,
    test: &str,
) -> Result<()> {
    let db = database.to_string();
    if passed {
        engine::spawn_detached(async move {
            let dropped = engine::builder()
                .with(server, {
                    let db = db.clone();
                    move |conn| Box::pin(async move { registry::drop_database(conn, &db).await })
                })
                .await;
            // The builder dropped it; the lease on the control connection can go.
            let _ = engine::control()
                .with(server, move |conn| {
                    Box::pin(async move { registry::release(conn, &db).await })
                })
                .await;
            if let Err(e) = dropped {
                eprintln!(
                    "seedbed: could not drop a test database: {e} (seedbed sweep removes it)"
                );
            }
        });
        Ok(())
    } else {
        let test = test.to_string();
        engine::control()
            .with(server, move |conn| {
                Box::pin(async move {
                    registry::set_state(conn, &db, "kept", Some(&test)).await?;
                    registry::release(conn, &db).await
                })
            })
            .await
    }
}
