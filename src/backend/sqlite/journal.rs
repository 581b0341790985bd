//! Namespace's row journal on SQLite. SQLite has no session settings, so the journal's key is not
//! read by shared triggers: each connection of a test's pool gets `TEMP` triggers of its own (a
//! `TEMP` trigger belongs to one connection and may write to the main database) that record the
//! `rowid` of every row it inserts under a key written into the trigger as a literal
//! ([`attach_script`]). Cleaning is one statement, `DELETE FROM seedbed_journal WHERE token = ?`:
//! a trigger on the journal deletes each recorded row as its entry goes, and foreign keys are
//! checked when the statement ends, so the order of the rows does not matter.
//!
//! What this cannot do, said where it matters: rows written by connections the test opens
//! itself from the database's URL are not recorded; `WITHOUT ROWID` tables have no `rowid`, so
//! a database with one is refused (Template or Truncate isolate it); and SQLite lets one writer
//! at a time into a file, so Namespace tests writing at once wait for each other.

use std::fmt::Write as _;

use sqlx::SqliteConnection;

use super::provision::Directory;
use crate::error::{Error, Result};
use crate::schema::Schema;
use crate::sql::{quote_ident, quote_literal};

/// The journal: one row per inserted row, by token.
const JOURNAL: &str = "seedbed_journal";
/// The tables the journal covers.
const TABLES: &str = "seedbed_journal_tables";
/// The trigger that deletes a recorded row as its journal entry is deleted.
const REMOVE_TRIGGER: &str = "seedbed_journal_remove";

/// The lock a test holds while its token is alive (the sweeper's proof of life).
pub(crate) fn token_lock(token: &str) -> String {
    format!("token:{token}")
}

fn is_own(name: &str) -> bool {
    name.starts_with("seedbed_")
}

pub(crate) async fn install(conn: &mut SqliteConnection, schema: &Schema) -> Result<()> {
    let without_rowid: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM pragma_table_list WHERE schema = 'main' AND wr = 1 \
             AND name NOT LIKE 'seedbed\\_%' ESCAPE '\\'",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(Error::db("looking for WITHOUT ROWID tables"))?;
    if let Some(table) = without_rowid.first() {
        return Err(Error::Config(format!(
            "Namespace on SQLite records the rows a test inserts by rowid, and table {table} is \
             WITHOUT ROWID: use strategy = \"template\" or \"truncate\" for this schema"
        )));
    }
    let mut sql = format!(
        "CREATE TABLE IF NOT EXISTS {j} (token TEXT NOT NULL, pos INTEGER NOT NULL, \
         tbl TEXT NOT NULL, rid INTEGER NOT NULL, PRIMARY KEY (token, pos, rid)) WITHOUT ROWID; \
         CREATE INDEX IF NOT EXISTS seedbed_journal_by_row ON {j} (tbl, rid); \
         DROP TABLE IF EXISTS {t}; \
         CREATE TABLE {t} (position INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);",
        j = quote_ident(JOURNAL),
        t = quote_ident(TABLES),
    );
    // Children first: a DELETE visits a WITHOUT ROWID table's rows in primary-key order, so
    // removal by token deletes a row before the rows it references (`ON DELETE RESTRICT` is
    // checked at once, even inside one statement).
    let order = schema.deletion_order();
    let tables: Vec<&str> = order
        .tables()
        .filter(|t| t.schema == "main" && !is_own(&t.name))
        .map(|t| t.name.as_str())
        .collect();
    let mut remove = String::new();
    for (position, table) in tables.iter().enumerate() {
        let _ = write!(
            sql,
            " INSERT INTO {} VALUES ({position}, {});",
            quote_ident(TABLES),
            quote_literal(table)
        );
        let _ = write!(
            remove,
            " DELETE FROM {} WHERE OLD.tbl = {} AND rowid = OLD.rid;",
            quote_ident(table),
            quote_literal(table)
        );
    }
    if remove.is_empty() {
        remove.push_str(" SELECT 1;");
    }
    let _ = write!(
        sql,
        " DROP TRIGGER IF EXISTS {trigger}; \
         CREATE TRIGGER {trigger} BEFORE DELETE ON {j} WHEN OLD.token <> '' \
         BEGIN{remove} END;",
        trigger = quote_ident(REMOVE_TRIGGER),
        j = quote_ident(JOURNAL),
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&mut *conn)
        .await
        .map_err(Error::db("installing the row journal"))?;
    Ok(())
}

pub(crate) async fn is_installed(conn: &mut SqliteConnection) -> Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?)",
    )
    .bind(TABLES)
    .fetch_one(&mut *conn)
    .await
    .map_err(Error::db("looking for the row journal"))
}

/// The statement that gives a connection its `TEMP` triggers, per table: recording inserted rows
/// under `token` (the key its rows are removed by); forgetting, whoever recorded them, rows the
/// connection deletes (so a `rowid` SQLite reuses later is not taken for the row that had it);
/// and following a row whose `rowid` the connection changes.
pub(crate) async fn attach_script(conn: &mut SqliteConnection, token: &str) -> Result<String> {
    triggers(conn, token, false).await
}

/// The `TEMP` triggers of [`attach_script`], or only its `INSERT` ones.
async fn triggers(conn: &mut SqliteConnection, token: &str, inserts_only: bool) -> Result<String> {
    let tables: Vec<(i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT position, name FROM {} ORDER BY position",
        quote_ident(TABLES)
    )))
    .fetch_all(&mut *conn)
    .await
    .map_err(Error::db("reading the journal's tables"))?;
    let token = quote_literal(token);
    let mut sql = String::new();
    for (position, name) in tables {
        let table = quote_ident(&name);
        let tbl = quote_literal(&name);
        let _ = write!(
            sql,
            "CREATE TEMP TRIGGER seedbed_journal_ins_{position} AFTER INSERT ON main.{table} \
             BEGIN INSERT OR IGNORE INTO {j} (token, pos, tbl, rid) \
             VALUES ({token}, {position}, {tbl}, NEW.rowid); END; ",
            j = quote_ident(JOURNAL),
        );
        if inserts_only {
            continue;
        }
        let _ = write!(
            sql,
            "CREATE TEMP TRIGGER seedbed_journal_del_{position} AFTER DELETE ON main.{table} \
             BEGIN DELETE FROM {j} WHERE tbl = {tbl} AND rid = OLD.rowid; END; \
             CREATE TEMP TRIGGER seedbed_journal_upd_{position} AFTER UPDATE ON main.{table} \
             WHEN OLD.rowid <> NEW.rowid \
             BEGIN UPDATE {j} SET rid = NEW.rowid WHERE tbl = {tbl} AND rid = OLD.rowid; END; ",
            j = quote_ident(JOURNAL),
        );
    }
    Ok(sql)
}

/// The statement that gives the connection removing tests' rows what it needs of
/// [`attach_script`]: `INSERT` triggers recording under [`REMOVAL_KEY`], and only when the
/// application has triggers of its own (only they write while rows are deleted).
pub(crate) async fn removal_script(conn: &mut SqliteConnection) -> Result<String> {
    let app_triggers: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'trigger' \
         AND name NOT LIKE 'seedbed\\_%' ESCAPE '\\')",
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(Error::db("looking for the application's triggers"))?;
    if !app_triggers {
        return Ok(String::new());
    }
    triggers(conn, REMOVAL_KEY, true).await
}

/// The key under which a removing connection with [`attach_script`]'s triggers records the rows
/// the application's delete triggers write while a test's rows go (an audit table, say).
pub(crate) const REMOVAL_KEY: &str = "~removal";

/// Removes the rows recorded under `token`, then what the application's delete triggers wrote
/// meanwhile (recorded under [`REMOVAL_KEY`] when `conn` carries the journal's triggers).
pub(crate) async fn clean(conn: &mut SqliteConnection, token: &str) -> Result<()> {
    // Prepared statements, cached by the connection: preparing one compiles the triggers it
    // fires, which costs more than running it.
    for key in [token, REMOVAL_KEY] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {} WHERE token = ?",
            quote_ident(JOURNAL)
        )))
        .bind(key)
        .execute(&mut *conn)
        .await
        .map_err(Error::db(format!("removing the rows of token {key}")))?;
    }
    Ok(())
}

pub(crate) async fn forget(conn: &mut SqliteConnection, token: &str) -> Result<()> {
    // Detached first (an entry with an empty token deletes no row), then deleted.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "UPDATE OR REPLACE {j} SET token = '' WHERE token = {t}; \
         DELETE FROM {j} WHERE token = '';",
        j = quote_ident(JOURNAL),
        t = quote_literal(token),
    )))
    .execute(&mut *conn)
    .await
    .map_err(Error::db("forgetting a token's journal"))?;
    Ok(())
}

/// The journal token a failed test's rows are kept under: no test holds it, and the sweeper
/// leaves it until `seedbed sweep --sqlite --kept`.
pub(crate) fn kept_token(token: &str) -> String {
    format!("{KEPT_PREFIX}{token}")
}

const KEPT_PREFIX: &str = "kept:";

/// Keeps the rows journaled under `key` (a failed test's) under [`kept_token`]`(token)`;
/// returns whether there were any.
pub(crate) async fn keep(conn: &mut SqliteConnection, key: &str, token: &str) -> Result<bool> {
    let done = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE OR REPLACE {} SET token = ? WHERE token = ?",
        quote_ident(JOURNAL)
    )))
    .bind(kept_token(token))
    .bind(key)
    .execute(conn)
    .await
    .map_err(Error::db("keeping a failed test's rows"))?;
    Ok(done.rows_affected() > 0)
}

/// Removes the rows of tokens whose process is gone (its token lock is free).
pub(crate) async fn sweep(conn: &mut SqliteConnection) -> Result<Vec<String>> {
    sweep_with(conn, false).await
}

/// [`sweep`], and with `kept` the rows kept for failed tests too.
pub(crate) async fn sweep_with(conn: &mut SqliteConnection, kept: bool) -> Result<Vec<String>> {
    let dir = Directory::get().await?;
    let tokens: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT DISTINCT token FROM {} WHERE token <> ''",
        quote_ident(JOURNAL)
    )))
    .fetch_all(&mut *conn)
    .await
    .map_err(Error::db("reading the journal's tokens"))?;
    let mut swept = Vec::new();
    for token in tokens {
        let name = token_lock(&token);
        // Held while the rows go, so no test takes the token meanwhile.
        if token == REMOVAL_KEY {
            continue;
        }
        if token.starts_with(KEPT_PREFIX) {
            if kept {
                clean(conn, &token).await?;
                swept.push(token);
            }
            continue;
        }
        if let Some(lock) = super::coord::try_take(dir, &name, crate::backend::LockMode::Exclusive)?
        {
            // One token's rows that cannot go must not stop the others, nor the test sweeping.
            match clean(conn, &token).await {
                Ok(()) => swept.push(token),
                Err(e) => {
                    tracing::warn!(token = %token, error = %e, "cannot remove a dead test's rows");
                }
            }
            lock.remove(dir, &name);
        }
    }
    Ok(swept)
}
