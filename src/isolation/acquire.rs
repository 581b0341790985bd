//! What Rollback, Truncate and Template do as a test starts: the database, the connection and
//! the claim each test gets.

use std::sync::Arc;

use super::builder::{
    Acquired, Claim, Isolation, application_name, millis, refuse_unmarked_truncate, run_fixtures,
};
use super::engine;
use super::pool::{ROLLBACK_POOLS, SharedPool, budgeted_pool, evict_kept_pools};
use super::rollback::{RollbackPool, Started, TokenClaim};
use super::testdb::StrategyState;
use super::truncate::{self, Lease};
use super::{cleaner, databases, template};
use crate::error::{Error, Result};
use crate::server::Server;
use crate::sql::quote_literal;

impl Isolation {
    /// Rollback: the test's one connection, straight to the migrated database (the process's only
    /// connection under `cargo nextest`). Its first statement checks the database's marker and
    /// claims the test's token there; the database is built (or waited for) only when it is
    /// missing or not ready.
    pub(super) async fn acquire_rollback(
        &self,
        server: &'static Server,
        test_name: &str,
        base_seed: u64,
    ) -> Result<Acquired> {
        let app_name = application_name(test_name);
        let ours = self.database.is_none();
        let database = match &self.database {
            Some(db) => db.clone(),
            None => self.build_name(&self.build("rollback")).await?,
        };
        let options = self.connect_options(server, &database);
        let key = format!(
            "{database}|{:?}|{:?}|{:?}",
            self.statement_timeout, self.lock_timeout, self.acquire_timeout
        );
        static VERIFIED: engine::KeySet = engine::KeySet::new();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let rp = match ROLLBACK_POOLS.take(&key) {
                Some(rp) => rp,
                None => {
                    super::budget::on_shortage(evict_kept_pools);
                    let reservation = super::budget::reserve_one(server).await?;
                    let opened = engine::run(RollbackPool::open(
                        server,
                        options.clone(),
                        self.acquire_timeout,
                    ))
                    .await;
                    match opened {
                        Ok(mut rp) => {
                            rp.budget = Some(reservation);
                            Arc::new(rp)
                        }
                        Err(e) if ours && attempts < 3 && databases::is_missing_database(&e) => {
                            drop(reservation);
                            self.migrated(server, "rollback").await?;
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
            match rp.start(&app_name, &self.fixtures, &claim, check).await {
                Ok(Started::Running { state, token }) => {
                    if check {
                        VERIFIED.insert(&database);
                    }
                    let pool = rp.pool.clone();
                    return Ok(Acquired {
                        database,
                        pool,
                        state: StrategyState::Rollback { rp, state, key },
                        token: Some(token),
                        token_claim: None,
                    });
                }
                Ok(Started::NotReady) if attempts < 3 => {
                    // Being built by another process, or left half-built: wait for it, or build.
                    ROLLBACK_POOLS.put(&key, rp);
                    self.migrated(server, "rollback").await?;
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

    /// Truncate: a slot of the migrated database (claimed on the control connection), and a pool
    /// to it that opens one connection now and more as the test asks.
    pub(super) async fn acquire_truncate(
        &self,
        server: &'static Server,
        test_name: &str,
    ) -> Result<Acquired> {
        let app_name = application_name(test_name);
        // Every connection of the pool carries the test's name.
        let set = format!("SET application_name = {}", quote_literal(&app_name));
        let named = self.database.is_some();
        let (lease, shared, key) = if engine::adopted() {
            self.truncate_slot_for_one_test(server, &set).await?
        } else {
            let lease = match &self.database {
                Some(db) => self.own_database_lease(server, db).await?,
                None => {
                    let base = self.build_name(&self.build("truncate")).await?;
                    let ready = Box::pin(self.migrated(server, "truncate"));
                    truncate::lease(server, &base, ready).await?
                }
            };
            let database = lease.slot.database.clone();
            let key = format!(
                "{database}|{:?}|{:?}|{}",
                self.statement_timeout, self.lock_timeout, self.max_connections
            );
            let shared = SharedPool::for_test(
                server,
                &key,
                &database,
                || self.connect_options(server, &database),
                self.max_connections,
                &set,
            )
            .await?;
            (lease, shared, key)
        };
        let database = lease.slot.database.clone();
        let started = async {
            if lease.needs_clean() || self.reset_sequences {
                let mut conn = shared
                    .pool
                    .acquire()
                    .await
                    .map_err(Error::db(format!("connecting to {database}")))?;
                let cleaned =
                    truncate::clean(&lease, &mut conn, self.reset_sequences, named, false).await;
                // Back before the test's first query, which would otherwise open another.
                conn.return_to_pool().await;
                cleaned?;
            }
            lease.begin_test();
            run_fixtures(&shared.pool, &self.fixtures).await
        }
        .await;
        match started {
            Ok(()) => Ok(Acquired {
                database,
                pool: shared.pool.clone(),
                state: StrategyState::Truncate {
                    lease,
                    pool: shared,
                    key,
                    named,
                },
                token: None,
                token_claim: None,
            }),
            Err(e) => {
                // The lease goes back not known clean: the next test empties it first.
                shared.discard().await;
                Err(e)
            }
        }
    }

    /// Truncate in a process that runs one test: the lease is taken by the test's own first
    /// connection, with its session settings, in one round trip, on the slot nextest's slot for
    /// the test points at; other slots are looked up (on the control connection) only when that
    /// one is taken or missing, and a new one is made only when all are taken.
    pub(super) async fn truncate_slot_for_one_test(
        &self,
        server: &'static Server,
        set: &str,
    ) -> Result<(Lease, SharedPool, String)> {
        let mut wait = truncate::SlotWait::new();
        let Some(db) = &self.database else {
            let base = self.build_name(&self.build("truncate")).await?;
            let preferred = truncate::preferred_slot(&base);
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
                    if let Some(name) =
                        truncate::create_slot(server, &base, preferred.clone()).await?
                        && let Claim::Taken(claimed) =
                            self.claim_slot_here(server, &name, &base, set).await?
                    {
                        return Ok(claimed);
                    }
                }
                // The others, looked up on the control connection, then a new one.
                let (others, _) = truncate::candidates(server, &base).await?;
                for name in others.iter().filter(|n| Some(*n) != preferred.as_ref()) {
                    if let Claim::Taken(claimed) =
                        self.claim_slot_here(server, name, &base, set).await?
                    {
                        return Ok(claimed);
                    }
                }
                self.migrated(server, "truncate").await?;
                if let Some(name) = truncate::create_slot(server, &base, None).await?
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
    pub(super) async fn claim_slot_here(
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
                format!("; {}", cleaner::CleaningPlan::query())
            } else {
                String::new()
            };
            let sql = format!("{set}; {}{plan}", truncate::claim_sql(slot));
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
                Some(cleaner::CleaningPlan::from_rows(plan_rows)?.0)
            } else {
                None
            };
            Ok::<_, Error>((truncate::read_claim(row)?, plan))
        }
        .await;
        let (claimed, plan) = match claimed {
            Ok(c) => c,
            Err(e) => {
                shared.discard().await;
                return Err(e);
            }
        };
        let refused = if slot && !truncate::is_slot_of(&claimed, base) {
            Some(truncate::not_a_slot(name, base))
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
        let lease = truncate::held_by_test(name, base, claimed.emptied, plan);
        let key = format!("{name}|held-by-test");
        Ok(Claim::Taken((lease, shared, key)))
    }

    /// Template: a clone claimed on the control connection (a spare, else cloned now), with the
    /// first run's sweep started beside it; the test's pool opens connections as it asks.
    pub(super) async fn acquire_template(
        &self,
        server: &'static Server,
        test_name: &str,
    ) -> Result<Acquired> {
        if self.database.is_some() {
            return Err(Error::Config(
                "Template clones the databases it makes; it cannot use a database named with \
                 .database(…): use rollback or truncate for that"
                    .into(),
            ));
        }
        let app_name = application_name(test_name);
        let build = self.build("tpl");
        let template = self.build_name(&build).await?;
        let spares = match self.spares {
            Some(n) => n,
            None => template::pool_size()?,
        };
        let recycle = template::recycles()?;
        // A process that runs one test opens its connection to the clone its test slot gave back
        // last while it claims it (and claims that one first): the two connections open at once.
        // A process that runs many claims first a spare it has a connection open to.
        let (preferred, mut opened_ahead) = if engine::adopted() {
            (template::preferred_clone(server, &template), None)
        } else {
            match template::take_prepared_spare(&template) {
                Some((name, p)) => (Some(name), Some(p)),
                None => (None, None),
            }
        };
        let ahead = preferred
            .as_ref()
            .filter(|_| engine::adopted())
            .map(|name| {
                let options = self
                    .connect_options(server, name)
                    .application_name(&app_name);
                budgeted_pool(server, self.max_connections).connect_lazy_with(options)
            });
        let claiming = template::acquire(
            server,
            &template,
            test_name,
            spares,
            Box::pin(self.built(server, build)),
            preferred.clone(),
        );
        let (claimed, opened) = match &ahead {
            Some(pool) => {
                // While the claim runs, the connection also prepares what emptying the clone at
                // the test's end will ask first.
                let opening = async {
                    let mut conn = pool.acquire().await?;
                    if recycle {
                        cleaner::warm_for_recycle(&mut conn).await;
                    }
                    Ok::<_, sqlx::Error>(conn)
                };
                let (claimed, opened) = tokio::join!(claiming, opening);
                (claimed, opened.ok())
            }
            None => (claiming.await, None),
        };
        let ahead = match (ahead, opened) {
            (Some(pool), Some(mut conn))
                if claimed
                    .as_ref()
                    .is_ok_and(|(db, _)| Some(db) == preferred.as_ref()) =>
            {
                conn.return_to_pool().await;
                Some(pool)
            }
            (Some(pool), conn) => {
                // The connection goes back before the pool closes (close waits for it).
                drop(conn);
                pool.close().await;
                None
            }
            (None, _) => None,
        };
        // The pool opened ahead to the spare this process preferred serves the test if the
        // claim gave that spare; else it goes.
        let got_preferred = matches!((&claimed, &preferred), (Ok((db, _)), Some(p)) if db == p);
        if !got_preferred && let Some(p) = opened_ahead.take() {
            template::discard_ahead(p).await;
        }
        let (database, _handover) = claimed?;
        // A pool this process opened ahead to its spare counts its connections against a
        // reservation of the test's, made at once for all it may open.
        let mut budget = None;
        let pool = match (
            ahead,
            opened_ahead.or_else(|| template::take_prepared(&database)),
        ) {
            (Some(pool), _) => pool,
            // This process opened the spare's pool ahead of time: the test starts with its
            // connection open, once it carries the test's settings.
            (None, Some(p)) if self.max_connections == template::DEFAULT_POOL_CONNECTIONS => {
                let set = format!(
                    "SET application_name = {}; SET statement_timeout = {}; \
                     SET lock_timeout = {}",
                    quote_literal(&app_name),
                    quote_literal(&millis(self.statement_timeout)),
                    quote_literal(&millis(self.lock_timeout)),
                );
                // Applied by the pool's next checkout, the test's first query.
                p.apply(set);
                drop(p.budget);
                budget = Some(super::budget::reserve(server, self.max_connections as usize).await?);
                p.pool
            }
            (None, other) => {
                if let Some(p) = other {
                    template::discard_ahead(p).await;
                }
                let options = self
                    .connect_options(server, &database)
                    .application_name(&app_name);
                budgeted_pool(server, self.max_connections).connect_lazy_with(options)
            }
        };
        Ok(Acquired {
            database: database.clone(),
            pool,
            state: StrategyState::Template {
                template,
                database,
                test: test_name.to_string(),
                spares,
                recycle,
                _budget: budget,
            },
            token: None,
            token_claim: None,
        })
    }
}
