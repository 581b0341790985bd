//! Namespace as a strategy: data mode (the test's token on the shared database, its rows removed
//! by token at the end) or schema mode (a schema of its own from the pool), and the tokens tests
//! claim. The row journal is [`journal`](crate::backend::postgres::journal); the schemas,
//! [`schema_pool`](super::super::schema_pool).

use async_trait::async_trait;
use sqlx::Postgres;

use super::super::builder::{
    Acquired, Isolation, application_name, refuse_unmarked_namespace, run_fixtures,
};
use super::super::pool::SharedPool;
use super::super::testdb::{Inner, Kept, Outcome};
use super::super::{NamespaceMode, NamespaceOptions};
use super::super::{engine, schema_pool};
use super::{Ending, Isolate};
use crate::backend::postgres::coord;
use crate::backend::postgres::journal;
use crate::backend::postgres::marker::Marker;
use crate::backend::postgres::server::Server;
use crate::context::token_for;
use crate::error::{Error, Result};
use crate::sql::quote_literal;
use crate::strategy::Strategy;

/// The Namespace strategy.
pub(crate) struct Namespace;

impl Isolate<Postgres> for Namespace {
    type Options = NamespaceOptions;

    fn options(iso: &Isolation) -> &NamespaceOptions {
        &iso.namespace
    }

    /// Namespace: data mode ([`Isolation::namespace_data`]) or a schema per test
    /// ([`Isolation::namespace_schema`]).
    async fn acquire(
        iso: &Isolation,
        options: &NamespaceOptions,
        server: &'static Server,
        test_name: &str,
        base_seed: u64,
    ) -> Result<Acquired<Postgres>> {
        match options.mode {
            NamespaceMode::Schema if iso.database.is_some() => Err(Error::Config(
                "namespace = \"schema\" makes its schemas in a database of its own; it cannot \
                 use a database named with .database(…)"
                    .into(),
            )),
            NamespaceMode::Schema if options.keep_rows => Err(Error::Config(
                "cleanup = \"none\" (keep_rows) keeps a data-mode test's rows; namespace = \
                 \"schema\" drops the test's schema after it: use one or the other"
                    .into(),
            )),
            NamespaceMode::Schema => iso.namespace_schema(server, test_name, base_seed).await,
            NamespaceMode::Data => {
                iso.namespace_data(server, test_name, base_seed, options.keep_rows)
                    .await
            }
        }
    }
}

impl Isolation {
    /// Namespace's data mode: the test's first connection to the shared database takes the
    /// test's token (a session advisory lock there, which the journal's sweeper looks for), reads
    /// the database's marker and records the run, with the session's settings, in one round
    /// trip; no other connection is needed. The first test of a run sweeps the rows of tests
    /// whose process died.
    async fn namespace_data(
        &self,
        server: &'static Server,
        test_name: &str,
        base_seed: u64,
        keep_rows: bool,
    ) -> Result<Acquired<Postgres>> {
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
                journal::TOKEN_SETTING,
                quote_literal(token)
            )
        };
        let mut attempts = 0;
        let (shared, claimed, token) = loop {
            attempts += 1;
            let token = token_for(test_name, base_seed, 0);
            let claim = claim_statement(&token, self.database.is_some());
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
                Err(e) if attempts < 3 && journal::is_unprepared(&e) => {
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
            let claimed = read_claim(&row)?;
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
                claim_next(&mut conn, test_name, base_seed).await
            };
            let swept = match &token {
                Ok(_) if claimed.first_of_run => journal::sweep_run(&mut conn, &database).await,
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
            // A database seedbed built holds the fixtures already (see `Isolation::build`); one
            // the user named gets them per test.
            if self.database.is_some() {
                run_fixtures(&shared.pool, &self.fixtures).await?;
            }
            if let Some(set_role) = self.set_role(false) {
                super::truncate::act_as_role(&shared, &set_for(&token), &set_role, &database)
                    .await?;
            }
            Ok(token)
        }
        .await;
        match started {
            Ok(token) => Ok(Acquired {
                database,
                pool: shared.pool.clone(),
                state: Box::new(DataHeld {
                    pool: shared,
                    key,
                    token: token.clone(),
                    keep_rows,
                }),
                token: Some(token),
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
    async fn namespace_schema(
        &self,
        server: &'static Server,
        test_name: &str,
        base_seed: u64,
    ) -> Result<Acquired<Postgres>> {
        let app_name = application_name(test_name);
        // The token (on the control connection) and the schema (on the schemas database's
        // holder) are claimed at once.
        let schema = async {
            let migrations = self.migrations_resolved().await?;
            let database = schema_pool::database(server, &migrations).await?;
            let schema = schema_pool::acquire(server, &database, migrations).await?;
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
                schema_pool::release(server, &database, &schema);
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
                journal::TOKEN_SETTING,
                quote_literal(&token),
                schema_pool::search_path(&schema)
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
                    schema_pool::release(server, &database, &schema);
                    return Err(e);
                }
            };
            if let Err(e) = run_fixtures(&shared.pool, &self.fixtures).await {
                shared.discard().await;
                schema_pool::release(server, &database, &schema);
                return Err(e);
            }
            Ok((database, schema, shared, key))
        }
        .await;
        match acquired {
            Ok((database, schema, shared, key)) => Ok(Acquired {
                database: database.clone(),
                pool: shared.pool.clone(),
                state: Box::new(SchemaHeld {
                    pool: shared,
                    key,
                    claims: SchemaClaims {
                        server,
                        database: database.clone(),
                        schema,
                        token: token.clone(),
                    },
                }),
                token: Some(token.clone()),
            }),
            Err(e) => {
                release_token(server, token).await;
                Err(e)
            }
        }
    }
}

/// What data mode keeps for the test's end: the test's pool and its token.
#[derive(Debug)]
struct DataHeld {
    pool: SharedPool,
    key: String,
    token: String,
    /// The rows stay (`cleanup = "none"`); only their journal entries go.
    keep_rows: bool,
}

#[async_trait]
impl Ending<Postgres> for DataHeld {
    async fn finish(self: Box<Self>, inner: &Inner<Postgres>, outcome: Outcome) -> Result<()> {
        let DataHeld {
            pool,
            key,
            token,
            keep_rows,
        } = *self;
        let failed = outcome != Outcome::Passed && !keep_rows;
        // Once the test's connections are back (their work committed), its rows go.
        let Some(conns) = pool.all_connections().await else {
            pool.discard().await;
            return Err(Error::Isolation {
                strategy: inner.strategy,
                message: "a connection of the test's pool did not come back; its rows stay until \
                          `seedbed sweep`"
                    .into(),
            });
        };
        // The rows go (or their journal, with cleanup = "none") in the same round trip as the
        // sessions' reset.
        // A failed test's rows stay, recorded as kept under its token.
        let statement = if keep_rows {
            journal::forget_statement(&token)
        } else if failed {
            journal::keep_statement(&token, inner.ctx.name())
        } else {
            journal::clean_statement(&token)
        };
        let (healthy, cleaned, mut conns) = pool.reset_sessions(conns, Some(statement)).await;
        if failed
            && cleaned.is_ok()
            && let Some(conn) = conns.first_mut()
            && journal::is_kept(conn, &token).await.unwrap_or(false)
        {
            inner.keep(Kept::Rows {
                database: inner.database.clone(),
                token: token.clone(),
            });
        }
        pool.keep(&key, conns, healthy).await;
        cleaned
    }
}

/// What schema mode keeps for the test's end: the test's pool, and its claims.
#[derive(Debug)]
struct SchemaHeld {
    pool: SharedPool,
    key: String,
    claims: SchemaClaims,
}

/// The schema and the token a schema-mode test holds, given back when dropped: after the test's
/// connections went back, when its handle is dropped unfinished, or when its `finish` is
/// dropped before it completes.
#[derive(Debug)]
struct SchemaClaims {
    server: &'static Server,
    /// The schemas database.
    database: String,
    schema: String,
    /// Held on the control connection.
    token: String,
}

impl Drop for SchemaClaims {
    fn drop(&mut self) {
        // The schema goes back to the pool (dropped and replaced there). Nothing waits for the
        // token: a test claiming it meanwhile takes the next.
        schema_pool::release(self.server, &self.database, &self.schema);
        let server = self.server;
        let token = std::mem::take(&mut self.token);
        engine::spawn_detached(async move { release_token(server, token).await });
    }
}

#[async_trait]
impl Ending<Postgres> for SchemaHeld {
    async fn finish(self: Box<Self>, _inner: &Inner<Postgres>, _outcome: Outcome) -> Result<()> {
        let SchemaHeld { pool, key, claims } = *self;
        match pool.all_connections().await {
            Some(conns) => {
                let (healthy, _, conns) = pool.reset_sessions(conns, None).await;
                pool.keep(&key, conns, healthy).await;
            }
            None => pool.discard().await,
        }
        drop(claims);
        Ok(())
    }
}

/// Claims a token no other running test holds, on the control connection (Namespace's schema
/// mode): the first free candidate derived from the test's name and seed.
async fn claim_token(server: &'static Server, name: &str, base_seed: u64) -> Result<String> {
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
                    if coord::try_lock_on(conn, &lock, coord::LockMode::Exclusive).await? {
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

async fn release_token(server: &'static Server, token: String) {
    let _ = engine::control()
        .with(server, move |conn| {
            Box::pin(async move {
                let released =
                    coord::unlock_on(conn, &format!("token:{token}"), coord::LockMode::Exclusive)
                        .await;
                engine::let_go(&engine::Held::Token(token));
                released
            })
        })
        .await;
}

/// The statement a Namespace test's first connection runs (after its session settings, in the
/// same round trip): takes the lock of `token` (a session advisory lock, held by the test's
/// connection while it runs), records this run in the database (the first test of a run sweeps
/// it), and reads the database's marker. Read the row it returns with [`read_claim`].
fn claim_statement(token: &str, named: bool) -> String {
    // The token and the run are quoted literals.
    let got = journal::claim_expression(token);
    let run = quote_literal(&super::super::registry::Owner::current().run);
    // A database seedbed made says it is ready by a table in it; one the user named is asked
    // for its marker (whether seedbed made it).
    let ours = if named {
        "(SELECT shobj_description(oid, 'pg_database') FROM pg_database \
          WHERE datname = current_database()), false"
            .to_string()
    } else {
        format!(
            "NULL::text, {}",
            super::super::databases::ready_expression()
        )
    };
    format!(
        "WITH l AS MATERIALIZED (SELECT {got} AS got), \
              r AS (INSERT INTO seedbed.runs (run_id) VALUES ({run}) \
                    ON CONFLICT DO NOTHING RETURNING 1) \
         SELECT (SELECT got FROM l), EXISTS (SELECT 1 FROM r), {ours}"
    )
}

/// What [`claim_statement`] found.
#[derive(Debug, Clone)]
struct Claimed {
    /// The token was free and is now the test's.
    got: bool,
    /// This test is the first of its run on this database: it sweeps.
    first_of_run: bool,
    /// The marker of a database the user named.
    marker: Option<Marker>,
    /// A database seedbed made is ready (see [`READY_TABLE`](super::super::databases::READY_TABLE)).
    ready: bool,
}

/// Reads the row [`claim_statement`] returned.
fn read_claim(row: &sqlx::postgres::PgRow) -> Result<Claimed> {
    use sqlx::Row;
    let context = "starting a Namespace test";
    let got: bool = row.try_get(0).map_err(Error::db(context))?;
    let first_of_run: bool = row.try_get(1).map_err(Error::db(context))?;
    let comment: Option<String> = row.try_get(2).map_err(Error::db(context))?;
    let ready: bool = row.try_get(3).map_err(Error::db(context))?;
    Ok(Claimed {
        got,
        first_of_run,
        marker: comment.as_deref().and_then(Marker::parse),
        ready,
    })
}

/// Claims the next free token for a test whose first candidate was taken, on `conn`.
async fn claim_next(conn: &mut sqlx::PgConnection, test: &str, base_seed: u64) -> Result<String> {
    for attempt in 1..1000 {
        let token = crate::context::token_for(test, base_seed, attempt);
        if journal::try_claim(conn, &token).await? {
            return Ok(token);
        }
    }
    Err(Error::Internal(
        "no free test token among 1000 candidates".into(),
    ))
}
