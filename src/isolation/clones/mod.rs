//! Template: each test gets a database of its own, cloned from a migrated template, so code that
//! commits, LISTENs or opens many connections is isolated too.
//!
//! - The **template** is built once per (server, migrations checksum, fixtures), by whichever
//!   process gets there first, under a database-level lock, and sealed (`IS_TEMPLATE true`,
//!   `ALLOW_CONNECTIONS false`) so clones never wait for a connection to leave it.
//! - **Clones** are made with `CREATE DATABASE … TEMPLATE`, with the copy method chosen by
//!   measurement when the template is built ([`clone_method`](crate::backend::postgres::admin::clone_method)).
//! - A **warm pool** of spare clones is kept in the [`registry`]: a test claims a
//!   spare with `FOR UPDATE SKIP LOCKED` (one statement, which also takes its lease), so it waits
//!   for a handover rather than a `CREATE DATABASE`. A process that runs many tests refills the
//!   pool in the background when a claim leaves it short, and opens ahead the connection its next
//!   test starts on (to each spare it makes, and to a passing test's clone while it is emptied);
//!   one that runs a single test (nextest) does neither, its clone going back to the pool instead.
//! - A passing test's clone is **recycled**: emptied by the [`cleaner`](crate::backend::postgres::clean) (its
//!   sequences reset) and given back as a spare, unless the test changed its schema (an event
//!   trigger in the template records every schema change), left a large object, a prepared
//!   transaction, a database setting or a session still connected; then it is dropped in the
//!   background. The pool keeps `SEEDBED_TEMPLATE_SPARES` spares (default: the number of CPUs,
//!   between 2 and 8), or as many clones as tests have held at once if more; with 0 it keeps
//!   none (every passing test's clone is dropped, and every test clones). `seedbed sweep` leaves
//!   spares alone.
//! - A failing test's clone is **kept**, its URL printed in the failure block, and listed by
//!   `seedbed list` until `seedbed sweep --kept`.

use super::budget;

use super::engine;
use super::registry;
use crate::backend::postgres::admin;
use crate::backend::postgres::clean;
use crate::backend::postgres::marker::{self, Marker};
use crate::backend::postgres::server::Server;
use crate::error::{Error, Result};

mod ahead;
use self::ahead::prepare_pool;
pub(crate) use self::ahead::{
    Prepared, discard_ahead, keep_ahead, open_ahead, take_prepared, take_prepared_spare,
};

/// The marker kind of a clone.
pub const CLONE_KIND: &str = "clone";

/// How long after a claim the background refill starts.
const REFILL_DELAY: std::time::Duration = std::time::Duration::from_millis(25);

/// The connections of a prepared spare's pool: the default of a test's pool.
pub(crate) const DEFAULT_POOL_CONNECTIONS: u32 = 5;

/// How a test got its clone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handover {
    /// A spare from the warm pool.
    Warm,
    /// Cloned for the test, the pool being empty.
    Cold,
}

/// Whether a passing test's clone goes back to the pool emptied (the default), or is dropped
/// (`SEEDBED_TEMPLATE_RECYCLE=0`, as seedbed did before it recycled clones: each test's clone
/// then ends in a `DROP DATABASE`, which forces a checkpoint on a durable server).
pub fn recycles() -> Result<bool> {
    crate::util::env::switch(
        "SEEDBED_TEMPLATE_RECYCLE",
        true,
        "recycle passing tests' clones, or drop them",
    )
}

/// The most spares per template.
pub fn pool_size() -> Result<i64> {
    let n = crate::util::env::count("SEEDBED_TEMPLATE_SPARES", 0, engine::cpus().clamp(2, 8))?;
    Ok(i64::try_from(n).unwrap_or(i64::MAX))
}

/// Sweeps, in the background, the databases of processes that died (the first claim of each run
/// does it; see [`registry::begin_run`]): their drops never hold up a test. A process that ends
/// first leaves the rest to the next run.
fn sweep_in_background(server: &'static Server) {
    engine::spawn_tracked(async move {
        // The drops happen on a connection of their own, so the tests' claims never wait behind
        // one; the control connection is asked first whether there is anything to sweep, and
        // that connection is opened only then.
        let anything = engine::control()
            .with(server, |conn| {
                Box::pin(async move { registry::anything_to_sweep(conn).await })
            })
            .await;
        if matches!(anything, Ok(false)) {
            return;
        }
        let swept = engine::builder()
            .with(server, |conn| {
                Box::pin(async move {
                    registry::sweep_except(conn, false, |name| {
                        engine::is_held(&engine::Held::Lease(name.to_string()))
                    })
                    .await
                })
            })
            .await;
        match swept {
            Ok(swept) if !swept.abandoned.is_empty() => tracing::info!(
                "dropped {} test database(s) left by processes that died: {}",
                swept.abandoned.len(),
                swept.abandoned.join(", ")
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!("could not sweep abandoned test databases: {e}"),
        }
    });
}

/// Gets a clone of `template` for `test`, in one statement on the control connection, which holds
/// its lease from then to the end of the test: a spare if there is one (a clone a test gave back,
/// or one made ahead), else a new clone, made now once `template_ready` (awaited only then) has
/// the template built (the copy takes 15–40 ms, during which this process's other tests wait to
/// claim; a warm pool makes this path rare). The same statement records the run, whose first
/// claim sweeps.
pub(crate) async fn acquire(
    server: &'static Server,
    template: &str,
    test: &str,
    spares: i64,
    template_ready: impl Future<Output = Result<String>>,
    preferred: Option<String>,
) -> Result<(String, Handover)> {
    let (tpl, name) = (template.to_string(), test.to_string());
    let (claim, context) = engine::control()
        .with(server, move |conn| {
            Box::pin(async move {
                let claimed =
                    registry::claim_in_run(conn, &tpl, &name, preferred.as_deref()).await?;
                engine::hold(engine::Held::Lease(claimed.0.name.clone()));
                Ok(claimed)
            })
        })
        .await?;
    if context.first_of_run {
        sweep_in_background(server);
    }
    // Spares are made ahead for the next tests by a process that lives on to use them (one that
    // runs a single test and exits leaves the pool to the clones tests give back).
    let refill = context.spares_left < spares && !engine::adopted();
    let db = claim.name;
    if claim.warm {
        if refill {
            refill_in_background(server, template, spares);
        }
        return Ok((db, Handover::Warm));
    }
    let made = async {
        template_ready.await?;
        // Decided once the template's marker is known (it records the measured method).
        let method = admin::clone_method(server, template)?;
        let (tpl, name) = (template.to_string(), db.clone());
        engine::control()
            .with(server, move |conn| {
                Box::pin(async move {
                    // Not marked while the test waits (the registry records it): marked if kept.
                    admin::create_database(conn, &name, Some(&tpl), method).await
                })
            })
            .await
    }
    .await;
    if let Err(e) = made {
        let name = db.clone();
        let _ = engine::control()
            .with(server, move |conn| {
                Box::pin(async move {
                    let _ = registry::drop_database(conn, &name).await;
                    release_lease(conn, &name).await
                })
            })
            .await;
        return Err(e);
    }
    // Once the template is known to exist.
    if refill {
        refill_in_background(server, template, spares);
    }
    Ok((db, Handover::Cold))
}

/// The clone the test slot this process runs in (`NEXTEST_TEST_GLOBAL_SLOT`) last gave back as a
/// spare of `template`, remembered on this machine: a process that runs one test opens its
/// connection to it while it claims it, and claims it first (`None` outside nextest, or when this
/// slot gave none back yet).
pub(crate) fn preferred_clone(server: &Server, template: &str) -> Option<String> {
    let name = std::fs::read_to_string(hint_path(server, template)?).ok()?;
    let name = name.trim();
    (!name.is_empty() && name.len() <= 63).then(|| name.to_string())
}

/// Remembers `database` as the clone this test slot gave back (see [`preferred_clone`]); best
/// effort.
fn remember_clone(server: &Server, template: &str, database: &str) {
    if let Some(path) = hint_path(server, template) {
        let tmp = path.with_extension(format!("{}.tmp", std::process::id()));
        if std::fs::write(&tmp, database).is_ok() && std::fs::rename(&tmp, &path).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
}

fn hint_path(server: &Server, template: &str) -> Option<std::path::PathBuf> {
    let slot = crate::util::env::nextest_slot()?;
    let dir = crate::backend::postgres::server::os::default_base_dir();
    if !dir.is_dir() {
        std::fs::create_dir_all(&dir).ok()?;
    }
    let server = server.url_for(server.maintenance_database());
    Some(dir.join(format!(
        "clone-{:016x}-{slot}",
        crate::util::hash::stable_hash(&format!("{server}|{template}"))
    )))
}

/// Empties a clone its test used through the first of `conns`, the test's connections to it (all
/// of them), so the next test can have it: `false` when the test changed its schema (or anything
/// the cleaner cannot undo), another session is still connected to it, or emptying failed: then
/// it must be dropped. See [`clean::recycle`].
pub(crate) async fn empty(mut conns: Vec<sqlx::pool::PoolConnection<sqlx::Postgres>>) -> bool {
    let Some((first, rest)) = conns.split_first_mut() else {
        return false;
    };
    // The test's other connections are its own: the check for sessions still connected leaves
    // them out.
    let mut own = Vec::with_capacity(rest.len());
    for conn in rest.iter_mut() {
        match sqlx::query_scalar::<_, i32>("SELECT pg_backend_pid()")
            .fetch_one(&mut **conn)
            .await
        {
            Ok(pid) => own.push(pid),
            Err(_) => return false,
        }
    }
    matches!(clean::recycle(first, &own).await, Ok(true))
}

/// Gives an emptied clone back as a spare of its template, and its lease with it (one
/// statement), unless the pool is full (see [`registry::give_back`]): then it is dropped in the
/// background. `ahead`, a pool this process opened to the clone meanwhile, is kept for the next
/// test of this process that claims the spare (before the spare is given back, so that any test
/// of this process finds it), or closed if the clone is not kept.
pub(crate) async fn recycle(
    server: &'static Server,
    template: &str,
    database: &str,
    size: i64,
    ahead: Option<Prepared>,
) -> Result<()> {
    if let Some(p) = ahead {
        keep_ahead(database, p);
    }
    let db = database.to_string();
    let kept = engine::control()
        .with(server, move |conn| {
            Box::pin(async move {
                let kept = registry::give_back(conn, &db, size).await;
                if matches!(kept, Ok(true)) {
                    engine::let_go(&engine::Held::Lease(db));
                }
                kept
            })
        })
        .await;
    if matches!(kept, Ok(true)) {
        remember_clone(server, template, database);
        return Ok(());
    }
    // Not given back: a connection opened ahead to it goes first.
    if let Some(p) = take_prepared(database) {
        discard_ahead(p).await;
    }
    kept?;
    release(server, database, true, "").await
}

/// Releases the lease on `db` held by the control connection `conn`, and forgets it (even when
/// the unlock fails with the connection: the session and its locks are gone then).
async fn release_lease(conn: &mut sqlx::PgConnection, db: &str) -> Result<()> {
    let released = registry::release(conn, db).await;
    engine::let_go(&engine::Held::Lease(db.to_string()));
    released
}

/// Clones `template` as a spare named `name`, with seedbed's marker. (A clone made while its test
/// waits skips the marker, one more catalog write to wait for: the registry records it, and it
/// is marked if it is kept.)
async fn make_clone(
    server: &Server,
    conn: &mut sqlx::PgConnection,
    template: &str,
    name: &str,
) -> Result<()> {
    admin::create_database(
        conn,
        name,
        Some(template),
        admin::clone_method(server, template)?,
    )
    .await?;
    marker::write(
        conn,
        name,
        &Marker::new(CLONE_KIND).with("template", template),
    )
    .await
}

/// Starts refilling the pool of `template` on the engine runtime, unless this process already is.
fn refill_in_background(server: &'static Server, template: &str, size: i64) {
    if size <= 0 {
        return;
    }
    static RUNNING: engine::KeySet = engine::KeySet::new();
    if !RUNNING.insert(template) {
        return;
    }
    let template = template.to_string();
    engine::spawn_detached(async move {
        // A moment's grace: the test that just claimed a spare starts without a copy competing
        // with it for the machine.
        tokio::time::sleep(REFILL_DELAY).await;
        // Work done ahead never takes the server past seedbed's budget: the connection that
        // makes the spares counts in it, and without budget to spare there is no refill.
        let result = match budget::try_reserve(&budget::postgres(server), 1).await {
            Ok(Some(reservation)) => {
                let made = refill(server, &template, size).await;
                drop(reservation);
                made
            }
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        RUNNING.remove(&template);
        if let Err(e) = result {
            tracing::warn!("could not refill the spare databases of {template}: {e}");
        }
    });
}

/// Makes spares until the pool is full. The count and the new row are decided under a
/// transaction-level advisory lock, so concurrent refillers never grow the pool past its size.
/// Each spare is made on one connection from its row to its copy: the lease taken with the row
/// must hold until the spare is ready, or a sweeper would take it for abandoned.
async fn refill(server: &'static Server, template: &str, size: i64) -> Result<()> {
    loop {
        let tpl = template.to_string();
        let made = engine::builder()
            .with(server, move |conn| {
                Box::pin(async move {
                    let mut tx = sqlx::Connection::begin(&mut *conn)
                        .await
                        .map_err(Error::db("refilling spare databases"))?;
                    let sql = format!(
                        "SELECT pg_advisory_xact_lock({})",
                        crate::backend::postgres::coord::key_sql("'pool:' || $1")
                    );
                    sqlx::query(sqlx::AssertSqlSafe(sql))
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
                            prepare_pool(server, &tpl, &name).await;
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
        engine::spawn_tracked(async move {
            let dropped = engine::builder()
                .with(server, {
                    let db = db.clone();
                    move |conn| Box::pin(async move { registry::drop_database(conn, &db).await })
                })
                .await;
            // The builder dropped it; the lease on the control connection can go.
            let _ = engine::control()
                .with(server, move |conn| {
                    Box::pin(async move { release_lease(conn, &db).await })
                })
                .await;
            if let Err(e) = dropped {
                tracing::warn!("could not drop a test database: {e} (seedbed sweep removes it)");
            }
        });
        Ok(())
    } else {
        let test = test.to_string();
        engine::control()
            .with(server, move |conn| {
                Box::pin(async move {
                    // The registry row and the lease first: a kept clone must never look
                    // abandoned to a sweeper. The marker (for tools that look at the database
                    // itself) comes after.
                    let kept = registry::set_state(conn, &db, "kept", Some(&test)).await;
                    let released = release_lease(conn, &db).await;
                    kept?;
                    released?;
                    let mark = Marker::new(CLONE_KIND)
                        .with("state", "kept")
                        .with("test", test.as_str());
                    marker::write(conn, &db, &mark).await
                })
            })
            .await
    }
}
