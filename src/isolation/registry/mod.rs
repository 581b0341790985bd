//! The registry of the databases seedbed makes for tests, kept in the server itself so that test
//! processes (`cargo nextest` runs one per test) and CI hosts sharing a server coordinate without
//! a daemon.
//!
//! It is a table, `seedbed.databases`, in the maintenance database: one row per clone, with its
//! kind, state (`building`, `spare`, `in_use`, `kept`), the template it came from, and the run,
//! host and process that made or hold it. Ownership is a **lease**: a session-level advisory lock
//! on `seedbed:lease:<name>` held by the owner's connection. A process that dies (on any host)
//! drops its connection and with it its leases, without heartbeats; the **sweeper** drops the
//! databases whose rows say `building` or `in_use` but whose lease nobody holds. Spares belong to
//! no one until claimed; kept databases (of failed tests) stay until `seedbed sweep --kept`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), seedbed::Error> {
//! let server = seedbed::server::Server::resolve().await?;
//! let mut conn = server.connect().await?;
//! for entry in seedbed::isolation::registry::list(&mut conn).await? {
//!     println!("{} {} held={}", entry.name, entry.state, entry.leased);
//! }
//! let swept = seedbed::isolation::registry::sweep(&mut conn, false).await?;
//! # Ok(()) }
//! ```

use std::sync::OnceLock;

use sqlx::PgConnection;

use crate::backend::postgres::admin;
use crate::backend::postgres::coord;
use crate::error::{Error, Result};
use crate::sql::quote_literal;

mod owner;
mod sweep;

pub use self::owner::Owner;

pub use self::sweep::{Entry, Swept, list, sweep};
pub(crate) use self::sweep::{anything_to_sweep, sweep_except};

/// The SQL expression of the lease key of the database named by `$n` (computed by the server, so
/// every process, whatever its version, agrees).
fn lease_key(param: &str) -> String {
    coord::key_sql(&format!("'lease:' || {param}"))
}

/// Creates the registry if it does not exist (under a transaction-level advisory lock, so
/// concurrent processes do not race on `CREATE … IF NOT EXISTS`).
pub async fn ensure(conn: &mut PgConnection) -> Result<()> {
    let sql = format!(
        "BEGIN;
         SELECT pg_advisory_xact_lock({registry});
         CREATE SCHEMA IF NOT EXISTS seedbed;
         CREATE TABLE IF NOT EXISTS seedbed.databases (
             name       text PRIMARY KEY,
             kind       text NOT NULL,
             state      text NOT NULL CHECK (state IN ('building', 'spare', 'in_use', 'kept')),
             template   text,
             run_id     text NOT NULL,
             host       text NOT NULL,
             pid        integer NOT NULL,
             test       text,
             created_at timestamptz NOT NULL DEFAULT now(),
             claimed_at timestamptz
         );
         CREATE INDEX IF NOT EXISTS databases_spares
             ON seedbed.databases (template, created_at) WHERE state = 'spare';
         CREATE SEQUENCE IF NOT EXISTS seedbed.database_ids;
         -- Claims a spare without ever waiting for a lease while holding a row: a spare whose
         -- maker has not let go of it yet is skipped.
         CREATE OR REPLACE FUNCTION seedbed.claim_spare(tpl text, run text, h text, p integer, t text)
         RETURNS text LANGUAGE plpgsql AS $f$
         DECLARE n text;
         BEGIN
             FOR n IN SELECT name FROM seedbed.databases
                      WHERE template = tpl AND state = 'spare'
                      ORDER BY (host = h AND pid = p) DESC, created_at
                      FOR UPDATE SKIP LOCKED
             LOOP
                 IF pg_try_advisory_lock({lease_n}) THEN
                     -- A session lock outlives the statement's rollback: given back on error.
                     BEGIN
                         UPDATE seedbed.databases
                         SET state = 'in_use', claimed_at = now(), run_id = run, host = h,
                             pid = p, test = t
                         WHERE name = n;
                     EXCEPTION WHEN OTHERS THEN
                         PERFORM pg_advisory_unlock({lease_n});
                         RAISE;
                     END;
                     RETURN n;
                 END IF;
             END LOOP;
             RETURN NULL;
         END
         $f$;
         -- A spare if there is one, else a new clone's row, in use, with its lease: one round
         -- trip before the copy a test without a spare waits for.
         CREATE OR REPLACE FUNCTION seedbed.claim_or_register(
             tpl text, run text, h text, p integer, t text, prefix text,
             OUT db text, OUT warm boolean)
         LANGUAGE plpgsql AS $f$
         BEGIN
             db := seedbed.claim_spare(tpl, run, h, p, t);
             warm := db IS NOT NULL;
             IF warm THEN RETURN; END IF;
             db := prefix || nextval('seedbed.database_ids');
             PERFORM pg_advisory_lock({lease_db});
             BEGIN
                 INSERT INTO seedbed.databases (name, kind, state, template, run_id, host, pid,
                                                test, claimed_at)
                 VALUES (db, 'clone', 'in_use', tpl, run, h, p, t, now());
             EXCEPTION WHEN OTHERS THEN
                 PERFORM pg_advisory_unlock({lease_db});
                 RAISE;
             END;
         END
         $f$;
         -- claim_or_register, trying `preferred` first: the spare the caller already opened a
         -- connection to.
         CREATE OR REPLACE FUNCTION seedbed.claim_clone(
             tpl text, run text, h text, p integer, t text, prefix text, preferred text,
             OUT db text, OUT warm boolean)
         LANGUAGE plpgsql AS $f$
         BEGIN
             IF preferred IS NOT NULL THEN
                 PERFORM 1 FROM seedbed.databases
                 WHERE name = preferred AND template = tpl AND state = 'spare'
                 FOR UPDATE SKIP LOCKED;
                 IF FOUND AND pg_try_advisory_lock({lease_preferred})
                 THEN
                     BEGIN
                         UPDATE seedbed.databases
                         SET state = 'in_use', claimed_at = now(), run_id = run, host = h,
                             pid = p, test = t
                         WHERE name = preferred;
                     EXCEPTION WHEN OTHERS THEN
                         PERFORM pg_advisory_unlock(
                             {lease_preferred});
                         RAISE;
                     END;
                     db := preferred;
                     warm := true;
                     RETURN;
                 END IF;
             END IF;
             SELECT c.db, c.warm INTO db, warm
             FROM seedbed.claim_or_register(tpl, run, h, p, t, prefix) c;
         END
         $f$;
         -- The most clones of each template in use at once, as seen when one was given back.
         CREATE TABLE IF NOT EXISTS seedbed.pools (
             template text PRIMARY KEY,
             peak     integer NOT NULL
         );
         -- The runs that have begun (nextest's run id, or one per process): what is done once
         -- per run (sweeping) is done by the first process to record it.
         CREATE TABLE IF NOT EXISTS seedbed.runs (
             run_id     text NOT NULL,
             task       text NOT NULL,
             host       text NOT NULL,
             started_at timestamptz NOT NULL DEFAULT now(),
             PRIMARY KEY (run_id, task)
         );
         CREATE OR REPLACE FUNCTION seedbed.begin_run(run text, what text, h text)
         RETURNS boolean LANGUAGE plpgsql AS $f$
         DECLARE first boolean;
         BEGIN
             INSERT INTO seedbed.runs (run_id, task, host) VALUES (run, what, h)
             ON CONFLICT DO NOTHING;
             first := FOUND;
             IF first THEN
                 DELETE FROM seedbed.runs WHERE started_at < now() - interval '7 days';
             END IF;
             RETURN first;
         END
         $f$;
         COMMIT;",
        registry = coord::key_of("registry"),
        lease_db = lease_key("db"),
        lease_n = lease_key("n"),
        lease_preferred = lease_key("preferred"),
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(conn)
        .await
        .map_err(Error::db(
            "creating seedbed's registry (schema seedbed in the maintenance database)",
        ))?;
    Ok(())
}

/// Whether `err` says the registry (or one of its functions) does not exist on this server yet.
pub(crate) fn is_missing(err: &Error) -> bool {
    match err {
        Error::Database {
            source: sqlx::Error::Database(db),
            ..
        } => matches!(db.code().as_deref(), Some("42883" | "42P01" | "3F000")),
        _ => false,
    }
}

/// Runs `op` on `conn`; if the registry is missing (the first use on this server, or a seedbed
/// that added to it), creates it and runs `op` again. The registry is never checked otherwise:
/// a test process pays nothing for it.
pub(crate) async fn with_registry<T, F>(conn: &mut PgConnection, mut op: F) -> Result<T>
where
    F: for<'c> FnMut(&'c mut PgConnection) -> super::engine::ConnFuture<'c, T>,
{
    match op(&mut *conn).await {
        Err(e) if is_missing(&e) => {
            ensure(&mut *conn).await?;
            op(conn).await
        }
        other => other,
    }
}

/// A new clone name: `seedbed_c_<host>_<run>_<n>`, at most 63 bytes.
pub async fn new_clone_name(conn: &mut PgConnection) -> Result<String> {
    let n: i64 = sqlx::query_scalar("SELECT nextval('seedbed.database_ids')")
        .fetch_one(conn)
        .await
        .map_err(Error::db("numbering a new test database"))?;
    Ok(format!("{}{n}", Owner::current().clone_prefix()))
}

/// Records a database being built, taking its lease on `conn` (which must stay open while the
/// database is used: the lease dies with it).
pub async fn begin_build(
    conn: &mut PgConnection,
    name: &str,
    kind: &str,
    template: &str,
    test: Option<&str>,
) -> Result<()> {
    let sql = format!(
        "WITH lease AS (SELECT pg_advisory_lock({}))
         INSERT INTO seedbed.databases (name, kind, state, template, run_id, host, pid, test)
         SELECT $1, $2, 'building', $3, $4, $5, $6, $7 FROM lease",
        lease_key("$1::text")
    );
    insert_row(conn, sql, name, kind, template, test)
        .await
        .map_err(Error::db(format!("registering test database {name}")))
}

/// Runs `sql`, an insert of the registry row of `name` with the parameters `$1` … `$7` (name,
/// kind, template, and this process's run, host and pid, then the test).
async fn insert_row(
    conn: &mut PgConnection,
    sql: String,
    name: &str,
    kind: &str,
    template: &str,
    test: Option<&str>,
) -> std::result::Result<(), sqlx::Error> {
    let owner = Owner::current();
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(name)
        .bind(kind)
        .bind(template)
        .bind(&owner.run_id)
        .bind(&owner.host)
        .bind(i32::try_from(owner.pid).unwrap_or(i32::MAX))
        .bind(test)
        .execute(conn)
        .await
        .map(|_| ())
}

/// Renames the database `from` to `name` and records it as kept for `test` (its `kind`, and the
/// database it came from as `template`), with its `marker`, in one transaction: a kept database
/// is never left unrecorded, nor a record without its database. It accepts connections again
/// (see [`allow_connections`]). Nothing may be connected to `from` (else the server refuses:
/// see [`admin::is_in_use`]).
pub(crate) async fn record_kept(
    conn: &mut PgConnection,
    from: &str,
    name: &str,
    kind: &str,
    template: &str,
    test: &str,
    marker: &crate::backend::postgres::marker::Marker,
) -> Result<()> {
    use sqlx::Connection as _;
    let context = format!("keeping database {from} as {name}");
    let mut tx = conn.begin().await.map_err(Error::db(context.clone()))?;
    insert_row(
        &mut tx,
        "INSERT INTO seedbed.databases (name, kind, state, template, run_id, host, pid, test) \
         VALUES ($1, $2, 'kept', $3, $4, $5, $6, $7)"
            .into(),
        name,
        kind,
        template,
        Some(test),
    )
    .await
    .map_err(Error::db(context.clone()))?;
    let rename = format!(
        "ALTER DATABASE {from} RENAME TO {name}; COMMENT ON DATABASE {name} IS {}; \
         ALTER DATABASE {name} ALLOW_CONNECTIONS true",
        quote_literal(&marker.to_comment()),
        from = crate::sql::quote_ident(from),
        name = crate::sql::quote_ident(name),
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(rename))
        .execute(&mut *tx)
        .await
        .map_err(Error::db(context.clone()))?;
    tx.commit().await.map_err(Error::db(context))?;
    Ok(())
}

/// Lets the database `name` accept new connections, or not (those it has stay).
pub(crate) async fn allow_connections(
    conn: &mut PgConnection,
    name: &str,
    allow: bool,
) -> Result<()> {
    let sql = format!(
        "ALTER DATABASE {} ALLOW_CONNECTIONS {allow}",
        crate::sql::quote_ident(name)
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(conn)
        .await
        .map_err(Error::db(format!(
            "setting whether {name} accepts connections"
        )))?;
    Ok(())
}

/// Moves a database to `state` (`spare`, `in_use`, `kept`).
pub async fn set_state(
    conn: &mut PgConnection,
    name: &str,
    state: &str,
    test: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "UPDATE seedbed.databases SET state = $2, test = COALESCE($3, test), \
         claimed_at = CASE WHEN $2 = 'in_use' THEN now() ELSE claimed_at END WHERE name = $1",
    )
    .bind(name)
    .bind(state)
    .bind(test)
    .execute(conn)
    .await
    .map_err(Error::db(format!("updating test database {name}")))?;
    Ok(())
}

/// Takes the lease on `name` on `conn` if it is free (a new control connection taking back what
/// the lost one held).
pub(crate) async fn try_lease(conn: &mut PgConnection, name: &str) -> Result<bool> {
    let sql = format!("SELECT pg_try_advisory_lock({})", lease_key("$1::text"));
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(name)
        .fetch_one(conn)
        .await
        .map_err(Error::db(format!("taking back the lease of {name}")))
}

/// Releases the lease on `name` held by `conn`.
pub async fn release(conn: &mut PgConnection, name: &str) -> Result<()> {
    let sql = format!("SELECT pg_advisory_unlock({})", lease_key("$1::text"));
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(name)
        .execute(conn)
        .await
        .map_err(Error::db(format!("releasing test database {name}")))?;
    Ok(())
}

/// What [`claim`] gave a test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The database's name.
    pub name: String,
    /// Whether it is a spare, ready to use; else a new name, registered in use, for the caller
    /// to clone into.
    pub warm: bool,
}

/// Claims a database cloned from `template` for `test`, taking its lease on `conn`, in one
/// statement: a spare if there is one (one this process made first: it may have a connection
/// open to it already; else the oldest), else a new name (`seedbed_c_<host>_<run>_<n>`, at most
/// 63 bytes) registered as in use, which the caller must clone into, or drop and release. The
/// sweeper treats `in_use` as it treats `building`: it waits for the lease.
///
/// ```no_run
/// # async fn example(conn: &mut sqlx::PgConnection) -> seedbed::Result<()> {
/// use seedbed::isolation::registry;
/// let claim = registry::claim(conn, "seedbed_tpl_0123abcd", "my_test").await?;
/// if !claim.warm {
///     // CREATE DATABASE claim.name TEMPLATE seedbed_tpl_0123abcd …
/// }
/// // … the test uses it; then it goes, row and all, and the lease with it:
/// registry::drop_database(conn, &claim.name).await?;
/// registry::release(conn, &claim.name).await?;
/// # Ok(()) }
/// ```
pub async fn claim(conn: &mut PgConnection, template: &str, test: &str) -> Result<Claim> {
    let (claim, _) = claim_with(conn, template, test, None, false).await?;
    Ok(claim)
}

/// What [`claim_in_run`] found besides the claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClaimContext {
    /// This process is the first of its run to claim: it sweeps.
    pub(crate) first_of_run: bool,
    /// Spares of the template left after the claim.
    pub(crate) spares_left: i64,
}

/// [`claim`], trying `preferred` first (a spare the caller has a connection open to), recording
/// in the same statement that this run has begun claiming, and counting the spares left.
pub(crate) async fn claim_in_run(
    conn: &mut PgConnection,
    template: &str,
    test: &str,
    preferred: Option<&str>,
) -> Result<(Claim, ClaimContext)> {
    claim_with(conn, template, test, preferred, true).await
}

/// The claim, in plain SQL (no PL/pgSQL: a test process's first claim runs in a new session,
/// where loading the language and compiling its functions cost more than the claim itself).
/// A spare is taken row by row in the claim's order, skipping rows another claim holds and
/// spares whose lease is held (their maker has not let go yet), so it never waits for a lease
/// while holding a row; the first whose lease it gets is claimed. Without one, a new name is
/// registered in use with its lease (`OFFSET 0` keeps the lease test above the sort, where the
/// limit stops it at the first spare it gets, rather than pushed down to every spare). `$9` says whether to record the run (`seedbed.runs`: the
/// first process of a run to claim sweeps). The spares are counted before the claim.
fn claim_sql() -> &'static str {
    static SQL: OnceLock<String> = OnceLock::new();
    SQL.get_or_init(|| {
        format!(
            "\
    WITH spare AS ( \
        SELECT s.name FROM ( \
            SELECT name FROM seedbed.databases \
            WHERE template = $1 AND state = 'spare' \
            ORDER BY COALESCE(name = $7, false) DESC, (host = $3 AND pid = $4) DESC, created_at \
            OFFSET 0 FOR UPDATE SKIP LOCKED \
        ) s \
        WHERE pg_try_advisory_lock({lease_s}) \
        LIMIT 1 \
    ), claimed AS ( \
        UPDATE seedbed.databases d \
        SET state = 'in_use', claimed_at = now(), run_id = $2, host = $3, pid = $4, test = $5 \
        FROM spare WHERE d.name = spare.name \
        RETURNING d.name \
    ), fresh AS ( \
        INSERT INTO seedbed.databases \
            (name, kind, state, template, run_id, host, pid, test, claimed_at) \
        SELECT n.name, 'clone', 'in_use', $1, $2, $3, $4, $5, now() \
        FROM (SELECT $6 || nextval('seedbed.database_ids') AS name \
              WHERE NOT EXISTS (SELECT 1 FROM spare)) n, \
             LATERAL (SELECT pg_advisory_lock({lease_n})) l \
        RETURNING name \
    ), run AS ( \
        INSERT INTO seedbed.runs (run_id, task, host) SELECT $8, 'registry', $3 WHERE $9 \
        ON CONFLICT DO NOTHING RETURNING 1 \
    ), expired AS ( \
        DELETE FROM seedbed.runs \
        WHERE started_at < now() - interval '7 days' AND EXISTS (SELECT 1 FROM run) \
    ) \
    SELECT COALESCE((SELECT name FROM claimed), (SELECT name FROM fresh)), \
           EXISTS (SELECT 1 FROM claimed), \
           EXISTS (SELECT 1 FROM run), \
           (SELECT count(*) FROM seedbed.databases WHERE template = $1 AND state = 'spare')",
            lease_s = lease_key("s.name"),
            lease_n = lease_key("n.name"),
        )
    })
}

async fn claim_with(
    conn: &mut PgConnection,
    template: &str,
    test: &str,
    preferred: Option<&str>,
    record_run: bool,
) -> Result<(Claim, ClaimContext)> {
    let owner = Owner::current();
    let (tpl, test) = (template.to_string(), test.to_string());
    let preferred = preferred.map(str::to_string);
    let (name, warm, first, spares): (Option<String>, bool, bool, i64) =
        with_registry(conn, move |conn| {
            let (template, test, preferred) = (tpl.clone(), test.clone(), preferred.clone());
            Box::pin(async move {
                sqlx::query_as(sqlx::AssertSqlSafe(claim_sql()))
                    .bind(&template)
                    .bind(&owner.run_id)
                    .bind(&owner.host)
                    .bind(i32::try_from(owner.pid).unwrap_or(i32::MAX))
                    .bind(&test)
                    .bind(owner.clone_prefix())
                    .bind(&preferred)
                    .bind(&owner.run)
                    .bind(record_run)
                    .fetch_one(conn)
                    .await
                    .map_err(Error::db("claiming a test database"))
            })
        })
        .await?;
    let name = name.ok_or_else(|| {
        Error::Internal(format!(
            "claiming a database cloned from {template} gave none"
        ))
    })?;
    // The count ran before the claim's update was visible to it: one fewer after a warm claim.
    let spares_left = if warm { spares - 1 } else { spares };
    Ok((
        Claim { name, warm },
        ClaimContext {
            first_of_run: first,
            spares_left: spares_left.max(0),
        },
    ))
}

/// Gives a clone its test emptied back as a spare of its template, releasing its lease (held by
/// `conn`), unless its template has enough spares (made or being made): at least `size`, or as
/// many as the most of its clones ever in use at once (recorded in `seedbed.pools`), so the warm
/// pool grows to what the suite runs at once and no further. It is decided under the template's
/// pool lock (the one refills take), in a transaction sent as one query string: one round trip.
/// Returns whether it was kept; if not, the caller drops it (its lease still held).
pub(crate) async fn give_back(conn: &mut PgConnection, name: &str, size: i64) -> Result<bool> {
    // Literals, not parameters: the lock and the decision are two statements of one string,
    // so the decision's snapshot is taken once the lock is held.
    let lit = quote_literal(name);
    let pool = coord::key_sql("'pool:' || template");
    let sql = format!(
        "BEGIN; \
         SELECT pg_advisory_xact_lock({pool}) \
         FROM seedbed.databases WHERE name = {lit}; \
         WITH t AS (SELECT template FROM seedbed.databases WHERE name = {lit}), \
              n AS (SELECT count(*) FILTER (WHERE d.state = 'spare' \
                           OR (d.state = 'building' AND d.kind = 'spare')) AS spares, \
                           count(*) FILTER (WHERE d.state = 'in_use') AS in_use \
                    FROM seedbed.databases d JOIN t ON d.template = t.template), \
              p AS (INSERT INTO seedbed.pools (template, peak) \
                    SELECT t.template, n.in_use FROM t, n \
                    ON CONFLICT (template) \
                    DO UPDATE SET peak = GREATEST(seedbed.pools.peak, EXCLUDED.peak) \
                    RETURNING peak), \
              kept AS (UPDATE seedbed.databases \
                       SET state = 'spare', kind = 'spare', test = NULL, claimed_at = NULL \
                       WHERE name = {lit} \
                         AND {size} > 0 \
                         AND (SELECT spares FROM n) < GREATEST({size}, (SELECT peak FROM p)) \
                       RETURNING 1) \
         SELECT k.kept, CASE WHEN k.kept THEN pg_advisory_unlock({key}) END \
         FROM (SELECT EXISTS (SELECT 1 FROM kept) AS kept) k; \
         COMMIT;",
        key = lease_key(&lit)
    );
    let name = name.to_string();
    let kept: bool = with_registry(conn, move |conn| {
        let (sql, name) = (sql.clone(), name.clone());
        Box::pin(async move {
            let rows = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .fetch_all(&mut *conn)
                .await;
            let rows = match rows {
                Ok(rows) => rows,
                Err(e) => {
                    // The failed statement left the transaction open and aborted.
                    let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
                    return Err(Error::db(format!("giving back test database {name}"))(e));
                }
            };
            use sqlx::Row;
            rows.last()
                .and_then(|row| row.try_get::<bool, _>(0).ok())
                .ok_or_else(|| Error::Internal(format!("giving back {name} said nothing")))
        })
    })
    .await?;
    Ok(kept)
}

/// The most clones of each template that tests have held at once (as seen when they gave them
/// back): the warm pool keeps up to that many spares, or `SEEDBED_TEMPLATE_SPARES` if more.
pub async fn peaks(conn: &mut PgConnection) -> Result<std::collections::HashMap<String, i64>> {
    let rows: Vec<(String, i32)> = with_registry(conn, |conn| {
        Box::pin(async move {
            sqlx::query_as("SELECT template, peak FROM seedbed.pools")
                .fetch_all(conn)
                .await
                .map_err(Error::db("reading the warm pools' sizes"))
        })
    })
    .await?;
    Ok(rows.into_iter().map(|(t, p)| (t, i64::from(p))).collect())
}

/// How many spares of `template` exist or are being built.
pub async fn spares(conn: &mut PgConnection, template: &str) -> Result<i64> {
    // A spare being built counts while its builder holds its lease: one whose process died
    // mid-build (a `cargo nextest` process ends as its test does) waits for a sweep, and must
    // not keep the pool from being refilled meanwhile.
    let sql = format!(
        "SELECT count(*) FROM seedbed.databases d \
         WHERE d.template = $1 AND d.kind = 'spare' \
           AND (d.state = 'spare' OR (d.state = 'building' \
                AND EXISTS (SELECT 1 FROM pg_locks l WHERE l.granted \
                      AND l.database = (SELECT oid FROM pg_database \
                                        WHERE datname = current_database()) \
                      AND {leased})))",
        leased = coord::pg_locks_match("l", &lease_key("d.name"))
    );
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(template)
        .fetch_one(conn)
        .await
        .map_err(Error::db("counting spare test databases"))
}

/// Drops a database and forgets it. Its lease, wherever it is held, stays until released.
pub async fn drop_database(conn: &mut PgConnection, name: &str) -> Result<()> {
    admin::drop_database(conn, name).await?;
    sqlx::query("DELETE FROM seedbed.databases WHERE name = $1")
        .bind(name)
        .execute(&mut *conn)
        .await
        .map_err(Error::db(format!("forgetting test database {name}")))?;
    Ok(())
}
