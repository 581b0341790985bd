//! Namespace: tests run in parallel on one shared, migrated database and really commit; each
//! test's rows carry its token and are removed when it ends. It needs no `CREATE DATABASE` and no
//! wait for another test; its price is that a test must look only at its own rows (query them
//! through the token, a value the test created, or ids it holds).
//!
//! - **Unique values** made by factories carry the test's token under this strategy, so parallel
//!   tests never collide on unique constraints nor wait on each other's uncommitted keys; the
//!   same token is `db.token()` for raw SQL and the code under test.
//! - **Connections** from `db.pool()` carry the token as the session setting `seedbed.token`
//!   (`current_setting('seedbed.token', true)`), so triggers or the application can read it; the
//!   URL from `db.url()` sets it too.
//! - **The journal**: when the database is prepared, every table gets a statement-level
//!   `AFTER INSERT` trigger with a transition table that records, for sessions carrying a token,
//!   the primary keys of the rows inserted — by factories, raw SQL, the application or its
//!   triggers alike — in `seedbed.journal`. One trigger call per statement, one journal row per
//!   inserted row; sessions without a token pay one `current_setting` per statement.
//! - **Cleanup**: at the end of the test, `seedbed.ns_clean(token)` deletes the journaled rows,
//!   children first (cycles in one pass with deferrable constraints deferred), and repeats until
//!   the journal holds nothing of the token (deleting can make triggers insert). Rows the test
//!   updated but did not insert are not restored. `cleanup = "none"` keeps the rows and forgets
//!   their journal entries. `seedbed sweep` removes the rows of tokens whose process died.
//! - **A failed test's rows stay**, journaled under its token, which `seedbed.kept` records:
//!   no later test claims that token (a re-run of the test takes the next one), the sweeper
//!   leaves them, `seedbed list` shows them and `seedbed sweep --kept` removes them.

use std::fmt::Write as _;

use sqlx::{Connection, PgConnection};

use super::clean::SCHEMA;
use super::coord;
use super::server::Server;
use crate::error::{Error, Result};
use crate::schema::{Schema, TableKind};
use crate::sql::{quote_ident, quote_literal};

/// The version of what [`prepare`] installs; part of the database's name.
pub const VERSION: u32 = 9;

/// The tokens of failed tests whose rows are kept.
const KEPT_TABLE: &str = "CREATE UNLOGGED TABLE seedbed.kept (token text PRIMARY KEY, \
                          test text NOT NULL, kept_at timestamptz NOT NULL DEFAULT now())";

/// The SQL expression that takes `token`'s lock on the connection it runs on, unless a failed
/// test's rows are kept under it (then it is `false`, as for a token another test holds).
pub(crate) fn claim_expression(token: &str) -> String {
    let key = coord::key_of(&format!("token:{token}"));
    format!(
        "CASE WHEN EXISTS (SELECT 1 FROM seedbed.kept WHERE token = {}) THEN false \
         ELSE pg_try_advisory_lock({key}) END",
        quote_literal(token)
    )
}

/// Takes `token` on `conn` (see [`claim_expression`]).
pub(crate) async fn try_claim(conn: &mut PgConnection, token: &str) -> Result<bool> {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT {}",
        claim_expression(token)
    )))
    .fetch_one(conn)
    .await
    .map_err(Error::db(format!("claiming test token {token}")))
}

/// The statement that keeps the rows of the failed test `test` with `token` (records the token
/// in `seedbed.kept`, if it has rows), sent as [`clean_statement`]'s is: it acts on the
/// connection holding the token's lock alone.
pub(crate) fn keep_statement(token: &str, test: &str) -> String {
    let key = coord::key_of(&format!("token:{token}"));
    let tok = quote_literal(token);
    format!(
        "INSERT INTO seedbed.kept (token, test) SELECT {tok}, {test} \
         WHERE pg_try_advisory_lock({key}) \
         AND EXISTS (SELECT 1 FROM seedbed.journal WHERE token = {tok}) \
         ON CONFLICT (token) DO NOTHING",
        test = quote_literal(test)
    )
}

/// Whether the rows of `token` are kept (after [`keep_statement`]).
pub(crate) async fn is_kept(conn: &mut PgConnection, token: &str) -> Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM seedbed.kept WHERE token = $1)")
        .bind(token)
        .fetch_one(conn)
        .await
        .map_err(Error::db(format!(
            "checking the kept rows of token {token}"
        )))
}

/// The session setting that carries a test's token.
pub const TOKEN_SETTING: &str = "seedbed.token";

/// Installs the journal and the cleanup function in a freshly migrated database.
pub async fn prepare(conn: &mut PgConnection, schema: &Schema) -> Result<()> {
    let s = quote_ident(SCHEMA);
    let mut sql = format!(
        "CREATE SCHEMA IF NOT EXISTS {s};\n\
         CREATE UNLOGGED TABLE {s}.journal (token text NOT NULL, relid oid NOT NULL, pk text[] NOT NULL);\n\
         CREATE INDEX journal_token ON {s}.journal (token, relid);\n\
         CREATE UNLOGGED TABLE {s}.runs (run_id text PRIMARY KEY, at timestamptz NOT NULL DEFAULT now());\n\
         {KEPT_TABLE};\n"
    );
    let mut deletes = String::new();
    let order = schema.deletion_order();
    for t in order.tables() {
        let Some(table) = schema.table(t) else {
            continue;
        };
        if matches!(table.kind, TableKind::Partition { .. }) {
            continue;
        }
        // The key the journal records: the primary key, else the row's physical address.
        let key: Vec<(String, String)> = if table.primary_key.is_empty() {
            vec![("ctid".to_string(), "tid".to_string())]
        } else {
            table
                .primary_key
                .iter()
                .map(|c| {
                    let ty = table
                        .column(c)
                        .map(|col| col.sql_type.clone())
                        .unwrap_or_else(|| "text".into());
                    (c.clone(), ty)
                })
                .collect()
        };
        let oid = table.oid;
        let f = quote_ident(&format!("journal_{oid}"));
        let record = key
            .iter()
            .map(|(c, _)| format!("n.{}::text", quote_ident(c)))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            sql,
            "CREATE FUNCTION {s}.{f}() RETURNS trigger LANGUAGE plpgsql AS $f$\n\
             DECLARE tok text := current_setting({setting}, true);\n\
             BEGIN\n\
             \x20 IF tok IS NULL OR tok = '' THEN RETURN NULL; END IF;\n\
             \x20 INSERT INTO {s}.journal (token, relid, pk) SELECT tok, {oid}, ARRAY[{record}] FROM seedbed_new n;\n\
             \x20 RETURN NULL;\n\
             END\n$f$;\n\
             CREATE TRIGGER seedbed_journal AFTER INSERT ON {t} REFERENCING NEW TABLE AS seedbed_new\n\
             \x20 FOR EACH STATEMENT EXECUTE FUNCTION {s}.{f}();",
            setting = quote_literal(TOKEN_SETTING),
        );
        // The rows to delete are found through the table's key index, whatever the table's
        // size: the keys come as an array (`= ANY`, an index scan, in the generic plan a
        // function runs after its fifth call as in a custom one), not as a join the planner
        // may turn into a scan of the table. A composite key is looked up by its first column
        // and matched on all of them.
        let from_journal = format!("FROM {s}.journal j WHERE j.token = tok AND j.relid = {oid}");
        let (first, first_ty) = &key[0];
        // `ty` is the server's own `format_type` output.
        let mut condition = format!(
            "x.{} = ANY (ARRAY(SELECT j.pk[1]::{first_ty} {from_journal}))",
            quote_ident(first)
        );
        if key.len() > 1 {
            let columns = key
                .iter()
                .map(|(c, _)| format!("x.{}", quote_ident(c)))
                .collect::<Vec<_>>()
                .join(", ");
            let values = key
                .iter()
                .enumerate()
                .map(|(i, (_, ty))| format!("j.pk[{}]::{ty}", i + 1))
                .collect::<Vec<_>>()
                .join(", ");
            let _ = write!(
                condition,
                " AND ({columns}) IN (SELECT {values} {from_journal})"
            );
        }
        // One function per table, compiled only in a session that deletes from it: a test
        // process, whose session starts cold, compiles what its test wrote and nothing more.
        // `ns_clean` calls it by a static statement, planned once per session when first run.
        let d = quote_ident(&format!("ns_delete_{oid}"));
        let _ = writeln!(
            sql,
            "CREATE FUNCTION {s}.{d}(tok text) RETURNS void LANGUAGE plpgsql AS $f$\n\
             BEGIN\n\
             \x20 DELETE FROM {t} x WHERE {condition};\n\
             END\n$f$;",
        );
        let _ = writeln!(
            deletes,
            "\x20   IF {oid} = ANY(rels) THEN PERFORM {s}.{d}(tok); END IF;"
        );
    }
    // A test that inserted nothing costs one index probe: the settings below (changing
    // session_replication_role resets every cached plan of the session) are made only when
    // there are rows to delete.
    let _ = writeln!(
        sql,
        "CREATE FUNCTION {s}.ns_clean(tok text) RETURNS integer LANGUAGE plpgsql AS $clean$\n\
         DECLARE\n\
         \x20 rels oid[];\n\
         \x20 total integer := 0;\n\
         \x20 replica boolean := current_setting('is_superuser') = 'on';\n\
         BEGIN\n\
         \x20 FOR pass IN 1..8 LOOP\n\
         \x20   SELECT array_agg(DISTINCT relid) INTO rels FROM {s}.journal WHERE token = tok;\n\
         \x20   EXIT WHEN rels IS NULL;\n\
         \x20   IF pass = 1 THEN\n\
         \x20     IF replica THEN SET LOCAL session_replication_role = replica; END IF;\n\
         \x20     SET CONSTRAINTS ALL DEFERRED;\n\
         \x20   END IF;\n\
         \x20   total := total + cardinality(rels);\n\
         {deletes}\
         \x20   DELETE FROM {s}.journal WHERE token = tok AND relid = ANY(rels);\n\
         \x20   EXIT WHEN replica;\n\
         \x20 END LOOP;\n\
         \x20 RETURN total;\n\
         END\n$clean$;"
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&mut *conn)
        .await
        .map_err(Error::db("preparing the database for Namespace"))?;
    Ok(())
}

/// Adds to a database an earlier seedbed prepared what this one needs (the record of runs).
pub async fn upgrade(conn: &mut PgConnection) -> Result<()> {
    let sql = format!(
        "CREATE UNLOGGED TABLE IF NOT EXISTS seedbed.runs \
         (run_id text PRIMARY KEY, at timestamptz NOT NULL DEFAULT now()); {}",
        KEPT_TABLE.replace(
            "CREATE UNLOGGED TABLE",
            "CREATE UNLOGGED TABLE IF NOT EXISTS"
        )
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(conn)
        .await
        .map_err(Error::db("preparing the database for Namespace"))?;
    Ok(())
}

/// Whether `err` says the shared database is missing or lacks what [`prepare`] installs.
pub(crate) fn is_unprepared(err: &Error) -> bool {
    matches!(
        err,
        Error::Database { source: sqlx::Error::Database(db), .. }
            if matches!(db.code().as_deref(), Some("3D000" | "42P01" | "3F000"))
    )
}

/// Whether the database `conn` is connected to has the journal.
pub async fn is_prepared(conn: &mut PgConnection) -> Result<bool> {
    sqlx::query_scalar("SELECT to_regprocedure('seedbed.ns_clean(text)') IS NOT NULL")
        .fetch_one(conn)
        .await
        .map_err(Error::db("looking for seedbed's journal"))
}

/// Deletes the rows the test with `token` inserted. Returns how many tables had some.
pub async fn clean(conn: &mut PgConnection, token: &str) -> Result<i32> {
    sqlx::query_scalar("SELECT seedbed.ns_clean($1)")
        .bind(token)
        .fetch_one(conn)
        .await
        .map_err(Error::db(format!(
            "removing the rows of test token {token}"
        )))
}

/// The statements that delete the rows of `token` (what [`clean`] runs), to send on every
/// connection of its test after their sessions are reset and before their locks go: they act
/// on the connection that holds the token's lock alone (taking it again there; elsewhere the
/// lock is taken and they do nothing), or on one that takes it if that connection is gone. The
/// session carries the token while they run, so rows that triggers write meanwhile are journaled
/// and deleted too.
pub(crate) fn clean_statement(token: &str) -> String {
    let key = coord::key_of(&format!("token:{token}"));
    let token = quote_literal(token);
    format!(
        "SET {TOKEN_SETTING} = {token}; \
         SELECT seedbed.ns_clean({token}) WHERE pg_try_advisory_lock({key}); \
         RESET {TOKEN_SETTING}"
    )
}

/// The statement that forgets the journal of `token` (what [`forget`] runs), to send as
/// [`clean_statement`]'s is: it acts on the connection holding the token's lock alone.
pub(crate) fn forget_statement(token: &str) -> String {
    let key = coord::key_of(&format!("token:{token}"));
    format!(
        "DELETE FROM seedbed.journal WHERE token = {} AND (SELECT pg_try_advisory_lock({key}))",
        quote_literal(token)
    )
}

/// Forgets the journal of `token`, keeping its rows (`cleanup = "none"`).
pub async fn forget(conn: &mut PgConnection, token: &str) -> Result<()> {
    sqlx::query("DELETE FROM seedbed.journal WHERE token = $1")
        .bind(token)
        .execute(conn)
        .await
        .map_err(Error::db(format!(
            "forgetting the rows of test token {token}"
        )))?;
    Ok(())
}

/// Tokens with rows in the journal of the database `conn` is connected to whose test is gone
/// (nobody holds the token's lock there: a running test holds it on its first connection), after
/// removing their rows; a failed test's kept rows are left. Returns them.
pub async fn sweep(conn: &mut PgConnection) -> Result<Vec<String>> {
    sweep_with(conn, false).await
}

/// [`sweep`], and with `kept` the rows kept for failed tests too (`seedbed sweep --kept`).
pub async fn sweep_with(conn: &mut PgConnection, kept: bool) -> Result<Vec<String>> {
    let tokens: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT token FROM seedbed.journal j \
         WHERE $1 OR NOT EXISTS (SELECT 1 FROM seedbed.kept k WHERE k.token = j.token)",
    )
    .bind(kept)
    .fetch_all(&mut *conn)
    .await
    .map_err(Error::db("listing the tokens of the journal"))?;
    let mut swept = Vec::new();
    for token in tokens {
        let name = format!("token:{token}");
        // Holding the token's lock proves its test is gone.
        if coord::try_lock_on(conn, &name, coord::LockMode::Exclusive).await? {
            // Its test may have failed and kept its rows between the list and the lock.
            if !kept && is_kept(conn, &token).await? {
                coord::unlock_on(conn, &name, coord::LockMode::Exclusive).await?;
                continue;
            }
            let mut cleaned = clean(conn, &token).await;
            if cleaned.is_ok() {
                cleaned = sqlx::query("DELETE FROM seedbed.kept WHERE token = $1")
                    .bind(&token)
                    .execute(&mut *conn)
                    .await
                    .map(|_| 0)
                    .map_err(Error::db(format!("forgetting kept token {token}")));
            }
            coord::unlock_on(conn, &name, coord::LockMode::Exclusive).await?;
            cleaned?;
            swept.push(token);
        }
    }
    if kept {
        // Kept tokens whose rows are gone some other way.
        sqlx::query(
            "DELETE FROM seedbed.kept k \
             WHERE NOT EXISTS (SELECT 1 FROM seedbed.journal j WHERE j.token = k.token)",
        )
        .execute(&mut *conn)
        .await
        .map_err(Error::db("forgetting kept tokens without rows"))?;
    }
    Ok(swept)
}

/// The rows a failed test left in a Namespace database (see [`list_kept`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptRows {
    /// The shared database.
    pub database: String,
    /// The test's token, under which the journal lists the rows.
    pub token: String,
    /// The test.
    pub test: String,
    /// How many rows the journal lists.
    pub rows: i64,
}

/// The rows kept for failed tests in every Namespace database on the server (`seedbed list`).
pub async fn list_kept(server: &Server) -> Result<Vec<KeptRows>> {
    let mut out = Vec::new();
    for name in namespace_databases(server).await? {
        let mut db = server.open(&server.database_options(&name)).await?;
        let rows: std::result::Result<Vec<(String, String, i64)>, sqlx::Error> = sqlx::query_as(
            "SELECT k.token, k.test, (SELECT count(*) FROM seedbed.journal j WHERE j.token = k.token) \
             FROM seedbed.kept k ORDER BY k.kept_at",
        )
        .fetch_all(&mut db)
        .await;
        let _ = db.close().await;
        match rows {
            Ok(rows) => out.extend(rows.into_iter().map(|(token, test, rows)| KeptRows {
                database: name.clone(),
                token,
                test,
                rows,
            })),
            // Prepared by a seedbed that kept nothing.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P01") => {}
            Err(e) => return Err(Error::db(format!("listing the kept rows of {name}"))(e)),
        }
    }
    Ok(out)
}

/// The Namespace databases seedbed made on the server.
async fn namespace_databases(server: &Server) -> Result<Vec<String>> {
    let mut conn = server.connect().await?;
    let names: std::result::Result<Vec<String>, sqlx::Error> = sqlx::query_scalar(
        "SELECT datname::text FROM pg_database \
         WHERE starts_with(datname, 'seedbed_namespace_') AND datallowconn ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await;
    let _ = conn.close().await;
    names.map_err(Error::db("listing Namespace databases"))
}

/// Removes the rows of tests whose process died from the journal of `database`, through
/// `conn`, a connection of the sweeping test to it; done by the first Namespace test of each run
/// (see the Namespace strategy's claim), before it writes, and prunes the record of runs older than a week.
pub(crate) async fn sweep_run(conn: &mut PgConnection, database: &str) -> Result<()> {
    let swept = sweep(conn).await?;
    sqlx::query("DELETE FROM seedbed.runs WHERE at < now() - interval '7 days'")
        .execute(&mut *conn)
        .await
        .map_err(Error::db("pruning the record of runs"))?;
    if !swept.is_empty() {
        tracing::info!(
            "removed the rows of {} test(s) whose process died ({database})",
            swept.len()
        );
    }
    Ok(())
}

/// Sweeps the journal of one database (see [`sweep_with`]), with connections of its own.
pub async fn sweep_database(server: &Server, database: &str, kept: bool) -> Result<Vec<String>> {
    let mut db = server.open(&server.database_options(database)).await?;
    // One an earlier seedbed prepared has no record of kept rows yet.
    let mut result = upgrade(&mut db).await.map(|()| Vec::new());
    if result.is_ok() {
        result = sweep_with(&mut db, kept).await;
    }
    let _ = db.close().await;
    result
}

/// Sweeps every Namespace database on the server (`seedbed sweep`; with `kept`, `seedbed sweep
/// --kept`). Returns, per database, the tokens whose rows were removed.
pub async fn sweep_all(server: &Server, kept: bool) -> Result<Vec<(String, Vec<String>)>> {
    let mut out = Vec::new();
    for name in namespace_databases(server).await? {
        let tokens = sweep_database(server, &name, kept).await?;
        out.push((name, tokens));
    }
    Ok(out)
}
