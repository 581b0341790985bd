//! Emptying a SQLite database again (Truncate's cleaner on SQLite): the rows migrations inserted
//! are kept as a baseline when the database is prepared, and cleaning deletes every row, children
//! first, puts the baseline back and, on request, puts the `AUTOINCREMENT` counters
//! (`sqlite_sequence`) back as migrations left them.
//!
//! Every statement sqlx sends SQLite is a round trip to the connection's worker thread, and the
//! round trips, not SQLite's work, are what cleaning costs. So preparing installs the whole
//! cleaning as the body of a trigger on a one-row table, `seedbed_clean_state`, and cleaning is
//! one `UPDATE` of that row: one statement, so one transaction whose foreign keys are checked
//! when it ends, that also counts the tables that had rows (`RETURNING`). Emptying an empty table
//! costs SQLite next to nothing, so no dirty-table tracking is installed; `track` is accepted and
//! ignored. The delete pass runs twice, so rows the application's own delete triggers write (an
//! audit table, say) go too.

use std::fmt::Write as _;

use sqlx::{Sqlite, SqliteConnection};

use crate::backend::Clean;
use crate::error::{Error, Result};
use crate::schema::{ColumnDefault, Schema};
use crate::sql::{QualifiedName, quote_ident, quote_literal};

/// The table that lists the prepared database's tables in deletion order, and which of them
/// have a baseline.
const PLAN_TABLE: &str = "seedbed_clean_plan";
/// The prefix of the tables that hold a table's baseline rows.
const BASELINE_PREFIX: &str = "seedbed_baseline_";
/// The one-row table whose update runs the cleaning trigger.
const STATE_TABLE: &str = "seedbed_clean_state";
/// The cleaning trigger.
const TRIGGER: &str = "seedbed_clean_run";
/// The `AUTOINCREMENT` counters as migrations left them.
const SEQUENCE_BASELINE: &str = "seedbed_baseline_sequence";

/// How to empty one prepared SQLite database: its tables in deletion order, and the baselines
/// to put back.
#[derive(Debug, Clone)]
pub struct SqlitePlan {
    /// The `UPDATE` that runs the cleaning trigger and returns how many tables had rows (a
    /// lookup table counts always: it is rewritten whether or not it changed); `?1` says whether
    /// to restart `AUTOINCREMENT` counters.
    statement: String,
}

impl Clean for Sqlite {
    type Plan = SqlitePlan;

    async fn prepare(conn: &mut SqliteConnection, schema: &Schema, _track: bool) -> Result<()> {
        // seedbed's own tables (a database prepared again) are not the application's.
        let order: Vec<QualifiedName> = schema
            .deletion_order()
            .tables()
            .filter(|t| {
                t.name != PLAN_TABLE
                    && t.name != STATE_TABLE
                    && !t.name.starts_with(BASELINE_PREFIX)
            })
            .cloned()
            .collect();
        let mut sql = format!(
            "DROP TABLE IF EXISTS {plan}; \
             CREATE TABLE {plan} (position INTEGER PRIMARY KEY, schema TEXT NOT NULL, \
             name TEXT NOT NULL, baseline TEXT, columns TEXT);",
            plan = quote_ident(PLAN_TABLE)
        );
        for (position, table) in order.iter().enumerate() {
            let columns = kept_columns(schema, table);
            let filled: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT EXISTS (SELECT 1 FROM {table})"
            )))
            .fetch_one(&mut *conn)
            .await
            .map_err(Error::db(format!("preparing {table} for the cleaner")))?;
            let baseline = filled.then(|| format!("{BASELINE_PREFIX}{}", table.name));
            if let Some(b) = &baseline {
                let _ = write!(
                    sql,
                    " DROP TABLE IF EXISTS {b}; CREATE TABLE {b} AS SELECT {columns} FROM {table};",
                    b = qualified(&table.schema, b)
                );
            }
            let _ = write!(
                sql,
                " INSERT INTO {} VALUES ({position}, {}, {}, {}, {});",
                quote_ident(PLAN_TABLE),
                quote_literal(&table.schema),
                quote_literal(&table.name),
                baseline
                    .as_deref()
                    .map_or("NULL".to_string(), quote_literal),
                quote_literal(&columns),
            );
        }
        sql.push_str(&cleaning_trigger(conn, schema, &order).await?);
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut *conn)
            .await
            .map_err(Error::db("preparing the database for the cleaner"))?;
        Ok(())
    }

    async fn plan(conn: &mut SqliteConnection) -> Result<SqlitePlan> {
        type PlanRow = (String, String, Option<String>, String);
        let rows: Vec<PlanRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT schema, name, baseline, columns FROM {} ORDER BY position",
            quote_ident(PLAN_TABLE)
        )))
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(db) if db.message().starts_with("no such table") => {
                Error::ForeignDatabase {
                    database: "this SQLite database".into(),
                    message: "it was not prepared by seedbed for cleaning (no seedbed_clean_plan \
                              table): let seedbed create and migrate its test databases"
                        .into(),
                }
            }
            _ => Error::db("reading the cleaner's plan")(e),
        })?;
        let mut statement = format!(
            "UPDATE {} SET reset = ?1, version = \
             (SELECT schema_version FROM pragma_schema_version), touched = 0",
            quote_ident(STATE_TABLE)
        );
        for (schema, name, baseline, _) in &rows {
            if baseline.is_some() {
                statement.push_str(" + 1");
            } else {
                let _ = write!(
                    statement,
                    " + EXISTS (SELECT 1 FROM {})",
                    qualified(schema, name)
                );
            }
        }
        statement.push_str(" RETURNING touched, version");
        Ok(SqlitePlan { statement })
    }

    async fn clean(
        conn: &mut SqliteConnection,
        plan: &SqlitePlan,
        reset_sequences: bool,
    ) -> Result<usize> {
        clean_and_version(conn, plan, reset_sequences)
            .await
            .map(|(touched, _)| touched)
    }
}

/// [`Clean::clean`], also returning the database's schema version (`PRAGMA schema_version`) as
/// the cleaning left it, in the same statement: Template gives an emptied copy to another test
/// only when the test did not change its schema.
pub(crate) async fn clean_and_version(
    conn: &mut SqliteConnection,
    plan: &SqlitePlan,
    reset_sequences: bool,
) -> Result<(usize, i64)> {
    let (touched, version): (i64, i64) =
        sqlx::query_as(sqlx::AssertSqlSafe(plan.statement.clone()))
            .bind(reset_sequences)
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| match &e {
                sqlx::Error::Database(db) if db.message().contains(STATE_TABLE) => {
                    Error::ForeignDatabase {
                        database: "this SQLite database".into(),
                        message: "it was prepared for cleaning by an older seedbed (no \
                                  seedbed_clean_state table): let seedbed build it again"
                            .into(),
                    }
                }
                _ => Error::db("emptying the test database")(e),
            })?;
    Ok((usize::try_from(touched).unwrap_or_default(), version))
}

/// The trigger that empties the database when `seedbed_clean_state`'s row is updated: every
/// table emptied children first (twice), the baselines put back parents first, and the
/// `AUTOINCREMENT` counters put back as migrations left them when the update sets `reset`.
async fn cleaning_trigger(
    conn: &mut SqliteConnection,
    schema: &Schema,
    order: &[QualifiedName],
) -> Result<String> {
    let mut body = String::new();
    for _pass in 0..2 {
        for table in order {
            let _ = write!(body, " DELETE FROM {};", quote_ident(&table.name));
        }
    }
    for table in order.iter().rev() {
        let filled: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT EXISTS (SELECT 1 FROM {table})"
        )))
        .fetch_one(&mut *conn)
        .await
        .map_err(Error::db(format!("preparing {table} for the cleaner")))?;
        if filled {
            let columns = kept_columns(schema, table);
            let _ = write!(
                body,
                " INSERT INTO {} ({columns}) SELECT {columns} FROM {};",
                quote_ident(&table.name),
                quote_ident(&format!("{BASELINE_PREFIX}{}", table.name))
            );
        }
    }
    let mut sequences = String::new();
    if has_sequences(conn).await? {
        // The counters as migrations left them, put back on request.
        let _ = write!(
            sequences,
            " DROP TABLE IF EXISTS {b}; CREATE TABLE {b} AS SELECT name, seq FROM sqlite_sequence;",
            b = quote_ident(SEQUENCE_BASELINE)
        );
        let _ = write!(
            body,
            " DELETE FROM sqlite_sequence WHERE NEW.reset; \
             INSERT INTO sqlite_sequence (name, seq) SELECT name, seq FROM {} WHERE NEW.reset;",
            quote_ident(SEQUENCE_BASELINE)
        );
    }
    if body.is_empty() {
        // No tables: a trigger needs a statement.
        body.push_str(" SELECT 1;");
    }
    Ok(format!(
        "{sequences} DROP TRIGGER IF EXISTS {trigger}; DROP TABLE IF EXISTS {state}; \
         CREATE TABLE {state} (id INTEGER PRIMARY KEY CHECK (id = 1), reset INTEGER NOT NULL, \
         touched INTEGER NOT NULL, version INTEGER NOT NULL); \
         INSERT INTO {state} VALUES (1, 0, 0, 0); \
         CREATE TRIGGER {trigger} AFTER UPDATE ON {state} BEGIN{body} END;",
        trigger = quote_ident(TRIGGER),
        state = quote_ident(STATE_TABLE),
    ))
}

/// The quoted columns a table's baseline keeps (generated columns are recomputed, not copied).
fn kept_columns(schema: &Schema, table: &QualifiedName) -> String {
    schema
        .table(table)
        .map(|t| {
            t.columns
                .iter()
                .filter(|c| !matches!(c.default, ColumnDefault::Generated(_)))
                .map(|c| quote_ident(&c.name))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

/// Whether the database has `AUTOINCREMENT` counters (SQLite makes `sqlite_sequence` with the
/// first such table).
pub(crate) async fn has_sequences(conn: &mut SqliteConnection) -> Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE name = 'sqlite_sequence')")
        .fetch_one(&mut *conn)
        .await
        .map_err(Error::db("looking for sqlite_sequence"))
}

/// Puts the `AUTOINCREMENT` counters back as migrations left them (what cleaning with
/// `reset_sequences` does), outside a cleaning.
pub(crate) async fn restore_sequences(conn: &mut SqliteConnection) -> Result<()> {
    let has_baseline: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?)",
    )
    .bind(SEQUENCE_BASELINE)
    .fetch_one(&mut *conn)
    .await
    .map_err(Error::db("looking for the counters' baseline"))?;
    if !has_baseline {
        // No AUTOINCREMENT table when the database was prepared: nothing counts.
        return Ok(());
    }
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DELETE FROM sqlite_sequence; INSERT INTO sqlite_sequence (name, seq) \
         SELECT name, seq FROM {};",
        quote_ident(SEQUENCE_BASELINE)
    )))
    .execute(&mut *conn)
    .await
    .map_err(Error::db("restarting AUTOINCREMENT counters"))?;
    Ok(())
}

/// `"schema"."name"`, both quoted.
fn qualified(schema: &str, name: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(name))
}
