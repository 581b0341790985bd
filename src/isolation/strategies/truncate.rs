//! Truncate as a strategy: a slot of the migrated database leased for the test (emptied first
//! when the last test left it dirty), and at the end the tables the test wrote emptied through
//! one of its connections. Slots and leases are [`slots`](super::super::slots).

use async_trait::async_trait;
use sqlx::Postgres;

use super::super::TruncateOptions;
use super::super::builder::{
    Acquired, Claim, Isolation, application_name, refuse_unmarked_truncate, run_fixtures,
};
use super::super::pool::SharedPool;
use super::super::slots::{self, Lease};
use super::super::testdb::{Inner, Kept, Outcome};
use super::super::{databases, engine};
use super::{Ending, Isolate};
use crate::backend::postgres::clean;
use crate::backend::postgres::server::Server;
use crate::error::{Error, Result};
use crate::sql::quote_literal;

/// The Truncate strategy.
pub(crate) struct Truncate;

impl Isolate<Postgres> for Truncate {
    type Options = TruncateOptions;

    fn options(iso: &Isolation) -> &TruncateOptions {
        &iso.truncate
    }

    /// Truncate: a slot of the migrated database (claimed on the control connection), and a pool
    /// to it that opens one connection now and more as the test asks.
    async fn acquire(
        iso: &Isolation,
        options: &TruncateOptions,
        server: &'static Server,
        test_name: &str,
        _base_seed: u64,
    ) -> Result<Acquired<Postgres>> {
        let app_name = application_name(test_name);
        // Every connection of the pool carries the test's name.
        let set = format!("SET application_name = {}", quote_literal(&app_name));
        let named = iso.database.is_some();
        let (lease, shared, key) = if engine::adopted() {
            iso.truncate_slot_for_one_test(server, &set).await?
        } else {
            let lease = match &iso.database {
                Some(db) => iso.own_database_lease(server, db).await?,
                None => {
                    let base = iso.build_name(&iso.build("truncate")).await?;
                    let ready = Box::pin(iso.migrated(server, "truncate"));
                    slots::lease(server, &base, ready).await?
                }
            };
            let database = lease.slot.database.clone();
            let key = format!(
                "{database}|{:?}|{:?}|{}",
                iso.statement_timeout, iso.lock_timeout, iso.max_connections
            );
            let shared = SharedPool::for_test(
                server,
                &key,
                &database,
                || iso.connect_options(server, &database),
                iso.max_connections,
                &set,
            )
            .await?;
            (lease, shared, key)
        };
        let database = lease.slot.database.clone();
        let started = async {
            if lease.needs_clean() || options.reset_sequences {
                let mut conn = shared
                    .pool
                    .acquire()
                    .await
                    .map_err(Error::db(format!("connecting to {database}")))?;
                let cleaned =
                    slots::clean(&lease, &mut conn, options.reset_sequences, named, false).await;
                // Back before the test's first query, which would otherwise open another.
                conn.return_to_pool().await;
                cleaned?;
            }
            lease.begin_test();
            run_fixtures(&shared.pool, &iso.fixtures).await?;
            // The test's role, once seedbed's own work and the fixtures are done.
            if let Some(set_role) = iso.set_role(false) {
                act_as_role(&shared, &set, &set_role, &database).await?;
            }
            Ok(())
        }
        .await;
        match started {
            Ok(()) => Ok(Acquired {
                database,
                pool: shared.pool.clone(),
                state: Box::new(Held {
                    lease,
                    pool: shared,
                    key,
                    named,
                    reset_sequences: options.reset_sequences,
                }),
                token: None,
            }),
            Err(e) => {
                // The lease goes back not known clean: the next test empties it first.
                shared.discard().await;
                Err(e)
            }
        }
    }
}

impl Isolation {
    /// Truncate in a process that runs one test: the lease is taken by the test's own first
    /// connection, with its session settings, in one round trip, on the slot nextest's slot for
    /// the test points at; other slots are looked up (on the control connection) only when that
    /// one is taken or missing, and a new one is made only when all are taken.
    async fn truncate_slot_for_one_test(
        &self,
        server: &'static Server,
        set: &str,
    ) -> Result<(Lease, SharedPool, String)> {
        let mut wait = slots::SlotWait::new();
        let Some(db) = &self.database else {
            let base = self.build_name(&self.build("truncate")).await?;
            let preferred = slots::preferred_slot(&base);
            loop {
                // The slot nextest's slot points at, without asking anyone; made if it is missing.
                let mut missing = false;
                if let Some(name) = &preferred {
                    match self.claim_slot_here(server, name, &base, set).await? {
                        Claim::Taken(claimed) => return Ok(claimed),
                        Claim::Missing => missing = true,
                        Claim::Held => {}
                    }
                }
                if missing {
                    self.migrated(server, "truncate").await?;
                    if let Some(name) = slots::create_slot(server, &base, preferred.clone()).await?
                        && let Claim::Taken(claimed) =
                            self.claim_slot_here(server, &name, &base, set).await?
                    {
                        return Ok(claimed);
                    }
                }
                // The others, looked up on the control connection, then a new one.
                let (others, _) = slots::candidates(server, &base).await?;
                for name in others.iter().filter(|n| Some(*n) != preferred.as_ref()) {
                    if let Claim::Taken(claimed) =
                        self.claim_slot_here(server, name, &base, set).await?
                    {
                        return Ok(claimed);
                    }
                }
                self.migrated(server, "truncate").await?;
                if let Some(name) = slots::create_slot(server, &base, None).await?
                    && let Claim::Taken(claimed) =
                        self.claim_slot_here(server, &name, &base, set).await?
                {
                    return Ok(claimed);
                }
                wait.wait(&format!("a Truncate database of {base}")).await?;
            }
        };
        loop {
            match self.claim_slot_here(server, db, db, set).await? {
                Claim::Taken(claimed) => return Ok(claimed),
                Claim::Missing => {
                    return Err(Error::Config(format!(
                        "database `{db}`, named for Truncate with .database(…), does not exist"
                    )));
                }
                Claim::Held => wait.wait(&format!("database {db}")).await?,
            }
        }
    }

    /// Opens the test's pool to `name` and takes its lease on the first connection, with the
    /// test's session settings `set`, in one round trip.
    async fn claim_slot_here(
        &self,
        server: &'static Server,
        name: &str,
        base: &str,
        set: &str,
    ) -> Result<Claim> {
        let slot = self.database.is_none();
        let options = self.connect_options(server, name);
        let shared =
            match engine::run(SharedPool::open(server, options, self.max_connections, 1)).await {
                Ok(shared) => shared,
                Err(e) if databases::is_missing_database(&e) => return Ok(Claim::Missing),
                // Being kept for a failed test: renamed away in a moment.
                Err(e) if databases::is_closed_database(&e) => return Ok(Claim::Held),
                Err(e) => return Err(e),
            };
        let claimed = async {
            let mut conn = shared
                .pool
                .acquire()
                .await
                .map_err(Error::db(format!("connecting to {name}")))?;
            // A slot's cleaning plan comes in the same round trip.
            let plan = if slot {
                format!("; {}", clean::CleaningPlan::query())
            } else {
                String::new()
            };
            let sql = format!("{set}; {}{plan}", slots::claim_sql(slot));
            let rows = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .fetch_all(&mut *conn)
                .await
                .map_err(Error::db(format!("taking the lease of {name}")));
            conn.return_to_pool().await;
            let rows = rows?;
            let (row, plan_rows) = rows.split_first().ok_or_else(|| {
                Error::Internal(format!("taking the lease of {name} said nothing"))
            })?;
            let plan = if slot {
                Some(clean::CleaningPlan::from_rows(plan_rows)?.0)
            } else {
                None
            };
            Ok::<_, Error>((slots::read_claim(row)?, plan))
        }
        .await;
        let (claimed, plan) = match claimed {
            Ok(c) => c,
            Err(e) => {
                shared.discard().await;
                return Err(e);
            }
        };
        let refused = if slot && !slots::is_slot_of(&claimed, base) {
            Some(slots::not_a_slot(name, base))
        } else if !slot && claimed.marker.is_none() && !self.allow_unmarked {
            Some(refuse_unmarked_truncate(name))
        } else {
            None
        };
        if let Some(e) = refused {
            shared.discard().await;
            return Err(e);
        }
        if !claimed.got {
            shared.discard().await;
            return Ok(Claim::Held);
        }
        shared.set_session(Some(set));
        let lease = slots::held_by_test(name, base, claimed.emptied, plan);
        let key = format!("{name}|held-by-test");
        Ok(Claim::Taken((lease, shared, key)))
    }
}

/// What Truncate keeps for the test's end: the lease and the test's pool.
#[derive(Debug)]
struct Held {
    lease: Lease,
    pool: SharedPool,
    key: String,
    /// A database the user named (prepared for the cleaner on first use).
    named: bool,
    reset_sequences: bool,
}

#[async_trait]
impl Ending<Postgres> for Held {
    async fn finish(self: Box<Self>, inner: &Inner<Postgres>, outcome: Outcome) -> Result<()> {
        let Held {
            lease,
            pool,
            key,
            named,
            reset_sequences,
        } = *self;
        if outcome != Outcome::Passed {
            return keep_failed(inner, lease, pool, named).await;
        }
        // Once the test's connections are back, their sessions are reset and the database is
        // emptied through one of them.
        let Some(conns) = pool.all_connections().await else {
            pool.discard().await;
            // Cleaned before its next test (the lease is not known clean).
            return Err(Error::Isolation {
                strategy: inner.strategy,
                message: "a connection of the test's pool did not come back within 2 s; the \
                          database is emptied before its next test"
                    .into(),
            });
        };
        // The test's own connection holds the lease (a process that runs one test): its locks
        // stay, and the slot is marked emptied for the next process that takes it.
        let by_test = lease.held_by_the_test();
        let written = lease.written_query();
        let (healthy, written, mut conns) = if by_test {
            pool.reset_sessions_keeping_locks(conns, written).await
        } else {
            let (healthy, _, conns) = pool.reset_sessions(conns, None).await;
            (healthy, None, conns)
        };
        let cleaned = match conns.first_mut() {
            Some(conn) if healthy => slots::clean_after(
                &lease,
                conn,
                reset_sequences,
                named,
                by_test && !named,
                written,
            )
            .await
            .map(|_| ()),
            // Cleaned before its next test.
            _ => Ok(()),
        };
        if by_test {
            drop(conns);
            pool.discard().await;
        } else {
            pool.keep(&key, conns, healthy && cleaned.is_ok()).await;
        }
        cleaned
    }
}

/// Ends a failed test: its database is kept as the test left it. A slot is renamed out of its
/// set (which makes another when a test needs it) and recorded as kept; a database the user
/// named stays as it is, to be emptied before its next test.
async fn keep_failed(
    inner: &Inner<Postgres>,
    lease: Lease,
    pool: SharedPool,
    named: bool,
) -> Result<()> {
    if named {
        // Not known clean: the next test empties it first.
        pool.discard().await;
        return Ok(());
    }
    let slot = lease.slot.database.clone();
    let base = slot
        .rsplit_once('_')
        .map_or(slot.as_str(), |(base, _)| base);
    // No other process may claim it once its lease goes with the connections below.
    if let Err(e) = slots::close_for_keeping(inner.server, &slot, base).await {
        pool.discard().await;
        return Err(e);
    }
    // Nothing of the process stays connected to it: the test's connections (one of which holds
    // the lease in a process that runs one test) and the one that holds the lease otherwise.
    pool.discard().await;
    super::super::pool::close_kept_pools_of(&slot).await;
    slots::give_up(lease).await;
    let kept = slots::keep_failed(inner.server, &slot, base, inner.ctx.name()).await?;
    inner.keep(Kept::Database(kept));
    Ok(())
}

/// Makes every connection of the test's pool act as the test's role (`set_role`), and the ones
/// it opens later too (after the session settings `set`).
pub(super) async fn act_as_role(
    shared: &SharedPool,
    set: &str,
    set_role: &str,
    database: &str,
) -> Result<()> {
    if !shared.on_every_connection(set_role).await {
        return Err(Error::Connection {
            database: database.to_string(),
            message: format!(
                "it could not act as the test's role (`{set_role}`): the user seedbed connects \
                 as must be a member of the role (`GRANT <role> TO <user>`)"
            ),
        });
    }
    shared.set_session(Some(&format!("{set}; {set_role}")));
    Ok(())
}
