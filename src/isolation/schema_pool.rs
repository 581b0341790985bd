//! Namespace's schema-per-test mode (`namespace = "schema"`), for single-schema applications
//! whose code never names its schema: each test gets a schema of its own, with every migration
//! applied in it, reached through `search_path`, and dropped after the test.
//!
//! The schemas live in one database per migrations checksum (`seedbed_nsschema_<checksum>`) and
//! are made ahead of demand: a pool of spares, recorded in `seedbed.schemas` inside that database
//! and claimed with `FOR UPDATE SKIP LOCKED`; the claimer holds a lease (a session advisory lock)
//! on its process's connection to that database, so a process that dies frees its schemas for the
//! sweeper. Making a schema runs the migrations with `search_path` set to it, which is why the
//! migrations must not name a schema themselves: the first build checks that every relation they
//! create landed in the schema, and reports those that did not, pointing to Namespace's data mode
//! or Template.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use sqlx::{Connection, PgConnection};

use super::databases;
use super::engine;
use super::migrations::Migrations;
use crate::backend::postgres::admin;
use crate::backend::postgres::marker::{self, Marker};
use crate::backend::postgres::server::Server;
use crate::error::{Error, Result};
use crate::sql::quote_ident;

/// How many schemas are kept ready per database.
const SPARES: i64 = 4;

/// The version of the schema-pool database's own tables and functions; part of its name.
pub const VERSION: u32 = 2;

/// The marker kind of a schema-pool database.
pub const KIND: &str = "namespace-schemas";

/// The database holding the schemas for `migrations`, made (empty, with the pool's table) if
/// needed, under a database-level lock; its marker says when it is ready. Checked once per
/// process and database, like the migrated databases of the other strategies.
pub(crate) async fn database(server: &'static Server, migrations: &Migrations) -> Result<String> {
    let name = databases::database_name(&format!("nsschema{VERSION}"), migrations.checksum());
    ready()
        .get_or_try_init(&name, ensure_database(server, migrations, name.clone()))
        .await
}

/// The schema databases this process found ready, by name.
fn ready() -> &'static engine::KeyedOnce<String> {
    static READY: OnceLock<engine::KeyedOnce<String>> = OnceLock::new();
    READY.get_or_init(engine::KeyedOnce::new)
}

async fn ensure_database(
    server: &'static Server,
    migrations: &Migrations,
    name: String,
) -> Result<String> {
    let ready =
        |m: Option<Marker>| m.is_some_and(|m| m.kind == KIND && m.get("state") == Some("ready"));
    let mut conn = server.connect().await?;
    let is_ready = ready(marker::read(&mut conn, &name).await?);
    let _ = conn.close().await;
    if is_ready {
        return Ok(name);
    }
    let mut lock = crate::backend::postgres::coord::DbLock::acquire(
        server,
        &format!("nsschema:{name}"),
        crate::backend::postgres::coord::LockMode::Exclusive,
        std::time::Duration::from_secs(120),
    )
    .await?;
    let made = async {
        let c = lock.connection();
        if ready(marker::read(c, &name).await?) {
            return Ok(());
        }
        // Left half-made by a process that died: start again.
        admin::drop_database(c, &name).await?;
        admin::create_database(c, &name, None, admin::CloneMethod::Default).await?;
        let mut mark = Marker::new(KIND)
            .with("checksum", migrations.checksum())
            .with("state", "building");
        marker::write(c, &name, &mark).await?;
        let mut db = PgConnection::connect_with(&server.database_options(&name))
            .await
            .map_err(Error::db(format!("connecting to {name}")))?;
        let setup = sqlx::raw_sql(sqlx::AssertSqlSafe(setup_sql()))
            .execute(&mut db)
            .await;
        let _ = db.close().await;
        setup.map_err(Error::db(format!("setting up {name}")))?;
        mark.set("state", "ready");
        marker::write(c, &name, &mark).await
    }
    .await;
    lock.release().await?;
    made.map(|()| name)
}

/// The pool's table and claim function, in each schema database.
fn setup_sql() -> String {
    format!(
        "CREATE SCHEMA seedbed;
CREATE TABLE seedbed.schemas (
    name text PRIMARY KEY,
    state text NOT NULL CHECK (state IN ('building', 'spare', 'in_use')),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE SEQUENCE seedbed.schema_ids;
-- Claims a spare without ever waiting for a lease while holding a row: a spare whose maker has
-- not let go of it yet is skipped.
CREATE FUNCTION seedbed.claim_schema() RETURNS text LANGUAGE plpgsql AS $f$
DECLARE n text;
BEGIN
    FOR n IN SELECT name FROM seedbed.schemas WHERE state = 'spare'
             ORDER BY created_at FOR UPDATE SKIP LOCKED
    LOOP
        IF pg_try_advisory_lock({lease_n}) THEN
            UPDATE seedbed.schemas SET state = 'in_use' WHERE name = n;
            RETURN n;
        END IF;
    END LOOP;
    RETURN NULL;
END
$f$;",
        lease_n = lease_key("n"),
    )
}

/// The process's connection to a schema database, on the engine runtime: it holds the leases of
/// the schemas this process's tests use.
fn holder(database: &str) -> Arc<engine::Control> {
    Arc::clone(
        holders()
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(database.to_string())
            .or_insert_with(|| Arc::new(engine::Control::new(true))),
    )
}

/// Forgets the connections to schema databases (they lived on a runtime that has ended).
pub(crate) fn forget_holders() {
    let all: Vec<Arc<engine::Control>> = holders()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .drain()
        .map(|(_, h)| h)
        .collect();
    for holder in all {
        holder.forget();
    }
}

fn holders() -> &'static Mutex<HashMap<String, Arc<engine::Control>>> {
    static HOLDERS: OnceLock<Mutex<HashMap<String, Arc<engine::Control>>>> = OnceLock::new();
    HOLDERS.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Forgets what this process kept for `database`, which is gone: the next test checks it again
/// and connects afresh.
fn forget_database(database: &str) {
    ready().forget(database);
    holders()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(database);
}

fn lease_key(param: &str) -> String {
    crate::backend::postgres::coord::key_sql(&format!("'schema-lease:' || {param}"))
}

/// Claims a spare schema (or makes one) for a test. The lease is held until [`release`].
pub(crate) async fn acquire(
    server: &'static Server,
    database: &str,
    migrations: Arc<Migrations>,
) -> Result<String> {
    sweep_once(server, database).await?;
    let control = holder(database);
    let db = database.to_string();
    let claimed = control
        .with_database(server, &db, move |conn| {
            Box::pin(async move {
                // Never waits for a lease while holding a row (see claim_schema).
                let row: Option<String> = sqlx::query_scalar("SELECT seedbed.claim_schema()")
                    .fetch_one(conn)
                    .await
                    .map_err(Error::db("claiming a schema"))?;
                Ok(row)
            })
        })
        .await?;
    let name = match claimed {
        Some(name) => {
            control.hold(engine::Held::SchemaLease(name.clone()));
            name
        }
        None => build(server, database, &migrations, "in_use").await?,
    };
    refill_in_background(server, database, migrations);
    Ok(name)
}

/// Makes a schema with every migration applied, recorded in `state`; its lease is held by the
/// process's connection (`in_use`) or released when it is ready (`spare`).
async fn build(
    server: &'static Server,
    database: &str,
    migrations: &Migrations,
    state: &'static str,
) -> Result<String> {
    let control = holder(database);
    let db = database.to_string();
    let name: String = control
        .with_database(server, &db, |conn| {
            Box::pin(async move {
                let sql = format!(
                    "WITH n AS (SELECT 'sb_' || nextval('seedbed.schema_ids') AS name) \
                     INSERT INTO seedbed.schemas (name, state) \
                     SELECT n.name, 'building' FROM n, LATERAL (SELECT pg_advisory_lock({})) l \
                     RETURNING name",
                    lease_key("n.name")
                );
                sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql))
                    .fetch_one(conn)
                    .await
                    .map_err(Error::db("registering a schema"))
            })
        })
        .await?;
    control.hold(engine::Held::SchemaLease(name.clone()));
    let made = match migrate_into(server, database, migrations, &name).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(named)) => {
            // The migrations wrote outside the schema: nothing of this database is usable, and
            // what they made elsewhere would make the next attempt fail differently. It goes.
            let mut admin = server.connect().await?;
            let _ = admin::drop_database(&mut admin, database).await;
            let _ = admin.close().await;
            forget_database(database);
            return Err(Error::Config(format!(
                "the migrations name their schema explicitly ({named}), so they cannot be \
                 applied once per test schema: use Namespace's data mode (leave out namespace = \
                 \"schema\") or strategy = \"template\""
            )));
        }
        Err(e) => Err(e),
    };
    let (db, schema) = (database.to_string(), name.clone());
    let holding = Arc::clone(&control);
    control
        .with_database(server, &db, move |conn| {
            Box::pin(async move {
                let held = engine::Held::SchemaLease(schema.clone());
                match made {
                    Ok(()) => {
                        sqlx::query("UPDATE seedbed.schemas SET state = $2 WHERE name = $1")
                            .bind(&schema)
                            .bind(state)
                            .execute(&mut *conn)
                            .await
                            .map_err(Error::db("recording a schema"))?;
                        if state == "spare" {
                            let unlocked = unlock(conn, &schema).await;
                            holding.let_go(&held);
                            unlocked?;
                        }
                        Ok(())
                    }
                    Err(e) => {
                        let _ = drop_schema(conn, &schema).await;
                        let _ = unlock(conn, &schema).await;
                        holding.let_go(&held);
                        Err(e)
                    }
                }
            })
        })
        .await?;
    Ok(name)
}

/// Runs the migrations with `search_path` set to `schema`, and checks nothing landed elsewhere:
/// `Ok(Err(names))` lists what did.
async fn migrate_into(
    server: &Server,
    database: &str,
    migrations: &Migrations,
    schema: &str,
) -> Result<std::result::Result<(), String>> {
    let options = server
        .database_options(database)
        .options([("search_path", schema)]);
    let mut conn = PgConnection::connect_with(&options)
        .await
        .map_err(Error::db(format!("connecting to {database}")))?;
    let result = async {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE SCHEMA {}",
            quote_ident(schema)
        )))
        .execute(&mut conn)
        .await
        .map_err(Error::db(format!("creating schema {schema}")))?;
        let before = relations_outside(&mut conn, schema).await?;
        let url = server.url_for_schema(database, schema);
        migrations.apply_at(&mut conn, &url).await?;
        let after = relations_outside(&mut conn, schema).await?;
        let named: Vec<String> = after.difference(&before).cloned().collect();
        if !named.is_empty() {
            return Ok(Err(named
                .iter()
                .take(5)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")));
        }
        Ok(Ok(()))
    }
    .await;
    let _ = conn.close().await;
    result
}

/// Every relation and schema outside `schema` (and the system's and seedbed's own).
async fn relations_outside(conn: &mut PgConnection, schema: &str) -> Result<BTreeSet<String>> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT n.nspname || '.' || c.relname FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast', 'seedbed') \
           AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname NOT LIKE 'sb\\_%' AND n.nspname <> $1 \
         UNION ALL \
         SELECT nspname || ' (schema)' FROM pg_namespace \
         WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast', 'seedbed', 'public') \
           AND nspname NOT LIKE 'pg\\_%' AND nspname NOT LIKE 'sb\\_%' AND nspname <> $1",
    )
    .bind(schema)
    .fetch_all(conn)
    .await
    .map_err(Error::db("listing relations"))?;
    Ok(names.into_iter().collect())
}

/// Takes the lease of `schema` on `conn` if it is free (a new holder connection taking back what
/// the lost one held).
pub(crate) async fn try_lease(conn: &mut PgConnection, schema: &str) -> Result<bool> {
    let sql = format!("SELECT pg_try_advisory_lock({})", lease_key("$1::text"));
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(schema)
        .fetch_one(conn)
        .await
        .map_err(Error::db(format!(
            "taking back the lease of schema {schema}"
        )))
}

async fn unlock(conn: &mut PgConnection, schema: &str) -> Result<()> {
    let sql = format!("SELECT pg_advisory_unlock({})", lease_key("$1::text"));
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(schema)
        .execute(conn)
        .await
        .map_err(Error::db(format!("releasing schema {schema}")))?;
    Ok(())
}

async fn drop_schema(conn: &mut PgConnection, schema: &str) -> Result<()> {
    let sql = format!("DROP SCHEMA IF EXISTS {} CASCADE", quote_ident(schema));
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&mut *conn)
        .await
        .map_err(Error::db(format!("dropping schema {schema}")))?;
    sqlx::query("DELETE FROM seedbed.schemas WHERE name = $1")
        .bind(schema)
        .execute(conn)
        .await
        .map_err(Error::db(format!("forgetting schema {schema}")))?;
    Ok(())
}

/// Drops a test's schema (in the background) and releases its lease.
pub(crate) fn release(server: &'static Server, database: &str, schema: &str) {
    let (db, schema) = (database.to_string(), schema.to_string());
    engine::spawn_detached(async move {
        let control = holder(&db);
        let holding = Arc::clone(&control);
        let result = control
            .with_database(server, &db, move |conn| {
                Box::pin(async move {
                    let dropped = drop_schema(conn, &schema).await;
                    let unlocked = unlock(conn, &schema).await;
                    holding.let_go(&engine::Held::SchemaLease(schema));
                    unlocked?;
                    dropped
                })
            })
            .await;
        if let Err(e) = result {
            tracing::warn!("could not drop a test schema: {e} (seedbed sweep removes it)");
        }
    });
}

/// The `SET` that points a connection at `schema`.
pub(crate) fn search_path(schema: &str) -> String {
    format!("SET search_path = {}", quote_ident(schema))
}

fn refill_in_background(server: &'static Server, database: &str, migrations: Arc<Migrations>) {
    static RUNNING: engine::KeySet = engine::KeySet::new();
    if !RUNNING.insert(database) {
        return;
    }
    let db = database.to_string();
    engine::spawn_detached(async move {
        let result = refill(server, &db, &migrations).await;
        RUNNING.remove(&db);
        if let Err(e) = result {
            tracing::warn!("could not make spare test schemas in {db}: {e}");
        }
    });
}

async fn refill(server: &'static Server, database: &str, migrations: &Migrations) -> Result<()> {
    loop {
        let control = holder(database);
        let db = database.to_string();
        let spares: i64 = control
            .with_database(server, &db, |conn| {
                Box::pin(async move {
                    sqlx::query_scalar(
                        "SELECT count(*) FROM seedbed.schemas WHERE state IN ('spare', 'building')",
                    )
                    .fetch_one(conn)
                    .await
                    .map_err(Error::db("counting spare schemas"))
                })
            })
            .await?;
        if spares >= SPARES {
            return Ok(());
        }
        build(server, database, migrations, "spare").await?;
    }
}

/// Drops the schemas of processes that died (rows building or in use whose lease is free), once
/// per process and database.
async fn sweep_once(server: &'static Server, database: &str) -> Result<()> {
    static SWEPT: super::engine::KeySet = super::engine::KeySet::new();
    if !SWEPT.insert(database) {
        return Ok(());
    }
    sweep(server, database).await.map(|_| ())
}

/// Drops the schemas whose owner is gone. Returns their names.
pub async fn sweep(server: &Server, database: &str) -> Result<Vec<String>> {
    let mut conn = PgConnection::connect_with(&server.database_options(database))
        .await
        .map_err(Error::db(format!("connecting to {database}")))?;
    let result = async {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM seedbed.schemas WHERE state IN ('building', 'in_use')",
        )
        .fetch_all(&mut conn)
        .await
        .map_err(Error::db("listing test schemas"))?;
        let try_lease = format!("SELECT pg_try_advisory_lock({})", lease_key("$1::text"));
        let mut swept = Vec::new();
        for name in rows {
            let free: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(try_lease.clone()))
                .bind(&name)
                .fetch_one(&mut conn)
                .await
                .map_err(Error::db("checking a schema's lease"))?;
            if free {
                drop_schema(&mut conn, &name).await?;
                unlock(&mut conn, &name).await?;
                swept.push(name);
            }
        }
        Ok(swept)
    }
    .await;
    let _ = conn.close().await;
    result
}

/// Sweeps every schema database on the server (`seedbed sweep`). Returns, per database, the
/// schemas dropped.
pub async fn sweep_all(server: &Server) -> Result<Vec<(String, Vec<String>)>> {
    let mut conn = server.connect().await?;
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT datname::text FROM pg_database \
         WHERE starts_with(datname, 'seedbed_nsschema') AND datallowconn ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await
    .map_err(Error::db("listing schema databases"))?;
    let _ = conn.close().await;
    let mut out = Vec::new();
    for name in names {
        // A database another seedbed made half-way (no pool table yet) has nothing to sweep.
        match sweep(server, &name).await {
            Ok(schemas) => out.push((name, schemas)),
            Err(Error::Database {
                source: sqlx::Error::Database(db),
                ..
            }) if db.code().as_deref() == Some("42P01") => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}
