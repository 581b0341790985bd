//! Template as a strategy: a clone of the migrated template claimed for the test (a spare from
//! the warm pool, else cloned now), and at the end the clone emptied and given to the next test,
//! or kept for a failed one. Templates, clones and spares are [`clones`](super::super::clones).

use std::time::Duration;

use async_trait::async_trait;
use sqlx::Postgres;
use sqlx::postgres::PgConnectOptions;

use super::super::TemplateOptions;
use super::super::budget;
use super::super::builder::{Acquired, Isolation, application_name, millis};
use super::super::pool::{all_connections, budgeted_pool};
use super::super::testdb::{Inner, Outcome};
use super::super::{clones, engine};
use super::{Ending, Isolate};
use crate::backend::postgres::clean;
use crate::backend::postgres::server::Server;
use crate::error::{Error, Result};
use crate::sql::quote_literal;

/// The Template strategy.
pub(crate) struct Template;

impl Isolate<Postgres> for Template {
    type Options = TemplateOptions;

    fn options(iso: &Isolation) -> &TemplateOptions {
        &iso.template
    }

    /// Template: a clone claimed on the control connection (a spare, else cloned now), with the
    /// first run's sweep started beside it; the test's pool opens connections as it asks.
    async fn acquire(
        iso: &Isolation,
        options: &TemplateOptions,
        server: &'static Server,
        test_name: &str,
        _base_seed: u64,
    ) -> Result<Acquired<Postgres>> {
        if iso.database.is_some() {
            return Err(Error::Config(
                "Template clones the databases it makes; it cannot use a database named with \
                 .database(…): use rollback or truncate for that"
                    .into(),
            ));
        }
        let app_name = application_name(test_name);
        let build = iso.build("tpl");
        let template = iso.build_name(&build).await?;
        let spares = match options.spares {
            Some(n) => i64::try_from(n).unwrap_or(i64::MAX),
            None => clones::pool_size()?,
        };
        let recycle = clones::recycles()?;
        // A process that runs one test opens its connection to the clone its test slot gave back
        // last while it claims it (and claims that one first): the two connections open at once.
        // A process that runs many claims first a spare it has a connection open to.
        let (preferred, mut opened_ahead) = if engine::adopted() {
            (clones::preferred_clone(server, &template), None)
        } else {
            match clones::take_prepared_spare(&template) {
                Some((name, p)) => (Some(name), Some(p)),
                None => (None, None),
            }
        };
        let ahead = preferred
            .as_ref()
            .filter(|_| engine::adopted())
            .map(|name| {
                let options = with_role(
                    iso,
                    iso.connect_options(server, name)
                        .application_name(&app_name),
                );
                budgeted_pool(server, iso.max_connections).connect_lazy_with(options)
            });
        let claiming = clones::acquire(
            server,
            &template,
            test_name,
            spares,
            Box::pin(iso.built(server, build)),
            preferred.clone(),
        );
        let (claimed, opened) = match &ahead {
            Some(pool) => {
                // While the claim runs, the connection also prepares what emptying the clone at
                // the test's end will ask first.
                let opening = async {
                    let mut conn = pool.acquire().await?;
                    if recycle {
                        clean::warm_for_recycle(&mut conn).await;
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
            clones::discard_ahead(p).await;
        }
        let (database, _handover) = claimed?;
        // A pool this process opened ahead to its spare counts its connections against a
        // reservation of the test's, made at once for all it may open.
        let mut budget = None;
        let pool = match (
            ahead,
            opened_ahead.or_else(|| clones::take_prepared(&database)),
        ) {
            (Some(pool), _) => pool,
            // This process opened the spare's pool ahead of time: the test starts with its
            // connection open, once it carries the test's settings.
            (None, Some(p)) if iso.max_connections == clones::DEFAULT_POOL_CONNECTIONS => {
                let mut set = format!(
                    "SET application_name = {}; SET statement_timeout = {}; \
                     SET lock_timeout = {}",
                    quote_literal(&app_name),
                    quote_literal(&millis(iso.statement_timeout)),
                    quote_literal(&millis(iso.lock_timeout)),
                );
                if let Some(set_role) = iso.set_role(false) {
                    set = format!("{set}; {set_role}");
                }
                // Applied by the pool's next checkout, the test's first query.
                p.apply(set);
                drop(p.budget);
                budget = Some(
                    budget::reserve(&budget::postgres(server), iso.max_connections as usize)
                        .await?,
                );
                p.pool
            }
            (None, other) => {
                if let Some(p) = other {
                    clones::discard_ahead(p).await;
                }
                let options = with_role(
                    iso,
                    iso.connect_options(server, &database)
                        .application_name(&app_name),
                );
                budgeted_pool(server, iso.max_connections).connect_lazy_with(options)
            }
        };
        Ok(Acquired {
            database: database.clone(),
            pool,
            state: Box::new(Held {
                template,
                database,
                test: test_name.to_string(),
                spares,
                recycle,
                role: iso.role.is_some(),
                _budget: budget,
            }),
            token: None,
        })
    }
}

/// What Template keeps for the test's end: its clone and where it came from.
#[derive(Debug)]
struct Held {
    /// The template it was cloned from.
    template: String,
    database: String,
    test: String,
    /// The warm pool's configured size.
    spares: i64,
    /// A passing test's clone goes back to the pool (else it is dropped).
    recycle: bool,
    /// The test's connections acted as a role of its own: emptying acts as the connecting user.
    role: bool,
    /// The budget of a pool opened ahead by this process (given back with the strategy's state).
    _budget: Option<budget::Reservation>,
}

#[async_trait]
impl Ending<Postgres> for Held {
    async fn finish(self: Box<Self>, inner: &Inner<Postgres>, outcome: Outcome) -> Result<()> {
        let Held {
            template,
            database,
            test,
            spares,
            recycle,
            role,
            _budget,
        } = *self;
        if outcome != Outcome::Passed {
            let _ = tokio::time::timeout(Duration::from_secs(5), inner.pool.close()).await;
            inner.mark_kept();
            return clones::release(inner.server, &database, false, &test).await;
        }
        // Emptied through one of the test's connections and given to the next test when the
        // test changed no schema; else dropped in the background.
        let emptied = async {
            recycle
                && match all_connections(&inner.pool).await {
                    Some(mut conns) if !conns.is_empty() => {
                        if role && !act_as_connecting_user(&mut conns[0]).await {
                            return false;
                        }
                        clones::empty(conns).await
                    }
                    Some(_) => match inner.pool.acquire().await {
                        Ok(mut conn) => {
                            (!role || act_as_connecting_user(&mut conn).await)
                                && clones::empty(vec![conn]).await
                        }
                        Err(_) => false,
                    },
                    None => false,
                }
        };
        // A process that runs many tests opens, meanwhile, the connection its next test to
        // claim this clone starts with (the test's own connections live on the test's runtime,
        // which ends with it).
        let opening = async {
            if recycle && spares > 0 && !engine::adopted() {
                clones::open_ahead(inner.server, &template, &database).await
            } else {
                None
            }
        };
        let (recycled, ahead) = tokio::join!(emptied, opening);
        // Every connection of the test is closed before the clone goes back.
        let closed = tokio::time::timeout(Duration::from_secs(5), inner.pool.close())
            .await
            .is_ok();
        if recycled && closed {
            clones::recycle(inner.server, &template, &database, spares, ahead).await
        } else {
            if let Some(p) = ahead {
                clones::discard_ahead(p).await;
            }
            clones::release(inner.server, &database, true, &test).await
        }
    }

    /// A clone not finished (the test panicked in a harness of its own) is kept, as for a failed
    /// test.
    fn abandon(self: Box<Self>, inner: &Inner<Postgres>) {
        let server = inner.server;
        let Held { database, test, .. } = *self;
        engine::spawn_detached(async move {
            let _ = clones::release(server, &database, false, &test).await;
        });
    }
}

/// `options` for a connection that acts as the test's role from its start (the startup
/// packet's `role`), when it has one.
fn with_role(iso: &Isolation, options: PgConnectOptions) -> PgConnectOptions {
    match &iso.role {
        Some(role) => options.options([("role", role.as_str())]),
        None => options,
    }
}

/// Makes a connection that acted as the test's role act as the connecting user again, for
/// emptying the clone.
async fn act_as_connecting_user(conn: &mut sqlx::pool::PoolConnection<Postgres>) -> bool {
    sqlx::raw_sql("SET ROLE NONE")
        .execute(&mut **conn)
        .await
        .is_ok()
}
