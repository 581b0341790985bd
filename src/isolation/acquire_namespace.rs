//! What Namespace does as a test starts: data mode (a token on the shared database) or schema
//! mode (a schema from the pool), and the test's token.

use super::builder::{
    Acquired, Isolation, NamespaceMode, application_name, refuse_unmarked_namespace, run_fixtures,
};
use super::engine;
use super::pool::SharedPool;
use super::testdb::StrategyState;
use crate::context::token_for;
use crate::error::{Error, Result};
use crate::server::Server;
use crate::sql::quote_literal;
use crate::strategy::Strategy;

impl Isolation {
    /// Namespace: data mode ([`Self::namespace_data`]) or a schema per test
    /// ([`Self::namespace_schema`]).
    pub(super) async fn acquire_namespace(
        &self,
        server: &'static Server,
        test_name: &str,
        base_seed: u64,
    ) -> Result<Acquired> {
        if self.namespace_mode == NamespaceMode::Schema {
            if self.database.is_some() {
                return Err(Error::Config(
                    "namespace = \"schema\" makes its schemas in a database of its own; it cannot \
                     use a database named with .database(…)"
                        .into(),
                ));
            }
            return self.namespace_schema(server, test_name, base_seed).await;
        }
        self.namespace_data(server, test_name, base_seed).await
    }

    /// Namespace's data mode: the test's first connection to the shared database takes the
    /// test's token (a session advisory lock there, which the journal's sweeper looks for), reads
    /// the database's marker and records the run, with the session's settings, in one round
    /// trip; no other connection is needed. The first test of a run sweeps the rows of tests
    /// whose process died.
    pub(super) async fn namespace_data(
        &self,
        server: &'static Server,
        test_name: &str,
        base_seed: u64,
    ) -> Result<Acquired> {
        let app_name = application_name(test_name);
        let database = match &self.database {
            Some(db) => db.clone(),
            None => self.build_name(&self.build("namespace")).await?,
        };
        let key = format!(
            "{database}|{:?}|{:?}|{}",
            self.statement_timeout, self.lock_timeout, self.max_connections
        );
        let set_for = |token: &str| {
            format!(
                "SET application_name = {}; SET {} = {}",
                quote_literal(&app_name),
                super::namespace::TOKEN_SETTING,
                quote_literal(token)
            )
        };
        let mut attempts = 0;
        let (shared, claimed, token) = loop {
            attempts += 1;
            let token = token_for(test_name, base_seed, 0);
            let claim = super::namespace::claim_statement(&token, self.database.is_some());
            let opened = SharedPool::for_test_claiming(
                server,
                &key,
                &database,
                || self.connect_options(server, &database),
                self.max_connections,
                &set_for(&token),
                &claim,
            )
            .await;
            let (shared, row) = match opened {
                Ok(opened) => opened,
                Err(e) if attempts < 3 && super::namespace::is_unprepared(&e) => {
                    match &self.database {
                        Some(db) => self.own_namespace_database(server, db).await?,
                        None => {
                            self.namespace_database(server).await?;
                        }
                    }
                    continue;
                }
                Err(e) => return Err(e),
            };
            let claimed = super::namespace::read_claim(&row)?;
            let ours = claimed.ready;
            let refused = match &self.database {
                Some(db) if claimed.marker.is_none() && !self.allow_unmarked => {
                    Some(refuse_unmarked_namespace(db))
                }
                None if !ours => Some(Error::Isolation {
                    strategy: Strategy::Namespace,
                    message: format!(
                        "database {database} is not ready: another process is building it, or one \
                         left it half-built (run the tests again; `seedbed sweep` clears it)"
                    ),
                }),
                _ => None,
            };
            match refused {
                None => break (shared, claimed, token),
                Some(e) => {
                    shared.discard().await;
                    if attempts >= 3 || self.database.is_some() {
                        return Err(e);
                    }
                    // Being built by another process, or left half-built: wait for it, or build.
                    self.namespace_database(server).await?;
                }
            }
        };
        let started = async {
            let mut conn = shared
                .pool
                .acquire()
                .await
                .map_err(Error::db(format!("connecting to {database}")))?;
            let token = if claimed.got {
                Ok(token)
            } else {
                super::namespace::claim_next(&mut conn, test_name, base_seed).await
            };
            let swept = match &token {
                Ok(_) if claimed.first_of_run => {
                    super::namespace::sweep_run(&mut conn, &database).await
                }
                _ => Ok(()),
            };
            conn.return_to_pool().await;
            let token = token?;
            swept?;
            if !claimed.got && !shared.on_every_connection(&set_for(&token)).await {
                return Err(Error::Connection {
                    database: database.to_string(),
                    message: "it failed as the test started".into(),
                });
            }
            run_fixtures(&shared.pool, &self.fixtures).await?;
            Ok(token)
        }
        .await;
        match started {
            Ok(token) => Ok(Acquired {
                database,
                pool: shared.pool.clone(),
                state: StrategyState::Namespace {
                    pool: shared,
                    key,
                    token: token.clone(),
                    keep_rows: self.keep_rows,
                    schema: None,
                },
                token: Some(token),
                token_claim: None,
            }),
            Err(e) => {
                // The token's lock goes with the pool's connections.
                shared.discard().await;
                Err(e)
            }
        }
    }

    /// Namespace's schema mode: the token claimed on the control connection, a schema from the
    /// pool of the schemas database, and a pool whose connections reach it through `search_path`.
    pub(super) async fn namespace_schema(
        &self,
        server: &'static Server,
        test_name: &str,
        base_seed: u64,
    ) -> Result<Acquired> {
        let app_name = application_name(test_name);
        // The token (on the control connection) and the schema (on the schemas database's
        // holder) are claimed at once.
        let schema = async {
            let migrations = self.migrations_resolved().await?;
            let database = super::schema_pool::database(server, &migrations).await?;
            let schema = super::schema_pool::acquire(server, &database, migrations).await?;
            Ok::<_, Error>((database, schema))
        };
        let (token, schema) = tokio::join!(claim_token(server, test_name, base_seed), schema);
        let (token, (database, schema)) = match (token, schema) {
            (Ok(token), Ok(schema)) => (token, schema),
            (Ok(token), Err(e)) => {
                release_token(server, token).await;
                return Err(e);
            }
            (Err(e), Ok((database, schema))) => {
                super::schema_pool::release(server, &database, &schema);
                return Err(e);
            }
            (Err(e), Err(_)) => return Err(e),
        };
        let acquired = async {
            let key = format!(
                "{database}|{:?}|{:?}|{}",
                self.statement_timeout, self.lock_timeout, self.max_connections
            );
            // Every connection of the pool carries the test's name, token and schema.
            let set = format!(
                "SET application_name = {}; SET {} = {}; {}",
                quote_literal(&app_name),
                super::namespace::TOKEN_SETTING,
                quote_literal(&token),
                super::schema_pool::search_path(&schema)
            );
            let shared = SharedPool::for_test(
                server,
                &key,
                &database,
                || self.connect_options(server, &database),
                self.max_connections,
                &set,
            )
            .await;
            let shared = match shared {
                Ok(shared) => shared,
                Err(e) => {
                    super::schema_pool::release(server, &database, &schema);
                    return Err(e);
                }
            };
            if let Err(e) = run_fixtures(&shared.pool, &self.fixtures).await {
                shared.discard().await;
                super::schema_pool::release(server, &database, &schema);
                return Err(e);
            }
            Ok((database, schema, shared, key))
        }
        .await;
        match acquired {
            Ok((database, schema, shared, key)) => Ok(Acquired {
                database,
                pool: shared.pool.clone(),
                state: StrategyState::Namespace {
                    pool: shared,
                    key,
                    token: token.clone(),
                    keep_rows: self.keep_rows,
                    schema: Some(schema),
                },
                token: Some(token.clone()),
                token_claim: Some(token),
            }),
            Err(e) => {
                release_token(server, token).await;
                Err(e)
            }
        }
    }
}

/// Claims a token no other running test holds, on the control connection (Namespace's schema
/// mode): the first free candidate derived from the test's name and seed.
pub(super) async fn claim_token(
    server: &'static Server,
    name: &str,
    base_seed: u64,
) -> Result<String> {
    let name = name.to_string();
    engine::control()
        .with(server, move |conn| {
            Box::pin(async move {
                for attempt in 0..1000 {
                    let token = token_for(&name, base_seed, attempt);
                    // A token another test of this process holds is taken: the session lock is
                    // re-entrant and would be granted again.
                    let held = engine::Held::Token(token.clone());
                    if engine::is_held(&held) {
                        continue;
                    }
                    let lock = format!("token:{token}");
                    if super::lock::try_lock_on(conn, &lock, super::lock::LockMode::Exclusive)
                        .await?
                    {
                        engine::hold(held);
                        return Ok(token);
                    }
                }
                Err(Error::Internal(
                    "no free test token among 1000 candidates".into(),
                ))
            })
        })
        .await
}

pub(super) async fn release_token(server: &'static Server, token: String) {
    let _ = engine::control()
        .with(server, move |conn| {
            Box::pin(async move {
                let released = super::lock::unlock_on(
                    conn,
                    &format!("token:{token}"),
                    super::lock::LockMode::Exclusive,
                )
                .await;
                engine::let_go(&engine::Held::Token(token));
                released
            })
        })
        .await;
}
