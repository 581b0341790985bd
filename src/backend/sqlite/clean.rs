//! Emptying a SQLite database again (Truncate's cleaner on SQLite): the rows migrations inserted
//! are kept as a baseline when the database is prepared, and cleaning deletes every row of the
//! tables that have any, children first (foreign keys checked at commit), puts the baseline back
//! and, on request, restarts `AUTOINCREMENT` counters (`sqlite_sequence`).
//!
//! SQLite is in-process, so asking every table whether it has rows is one cheap statement: no
//! dirty-table triggers (SQLite's are per row) are installed; `track` is accepted and ignored.

use std::fmt::Write as _;

use sqlx::{Connection, Sqlite, SqliteConnection};

use crate::backend::Clean;
use crate::error::{Error, Result};
use crate::schema::{ColumnDefault, Schema};
use crate::sql::{QualifiedName, quote_ident, quote_literal};

/// The table that lists the prepared database's tables in deletion order, and which of them
/// have a baseline.
const PLAN_TABLE: &str = "seedbed_clean_plan";
/// The prefix of the tables that hold a table's baseline rows.
const BASELINE_PREFIX: &str = "seedbed_baseline_";

/// How to empty one prepared SQLite database: its tables in deletion order, and the baselines
/// to put back.
#[derive(Debug, Clone)]
pub struct SqlitePlan {
    tables: Vec<PlanTable>,
    /// The statement that asks every table at once whether it has rows.
    probe: String,
}

#[derive(Debug, Clone)]
struct PlanTable {
    /// The quoted, qualified name.
    name: String,
    /// The table's own name (for `sqlite_sequence`).
    bare: String,
    /// The quoted name of its baseline table, when migrations left rows in it, and the quoted
    /// list of the columns it keeps (generated columns are recomputed, not copied).
    baseline: Option<(String, String)>,
}

impl Clean for Sqlite {
    type Plan = SqlitePlan;

    async fn prepare(conn: &mut SqliteConnection, schema: &Schema, _track: bool) -> Result<()> {
        // seedbed's own tables (a database prepared again) are not the application's.
        let order: Vec<QualifiedName> = schema
            .deletion_order()
            .tables()
            .filter(|t| t.name != PLAN_TABLE && !t.name.starts_with(BASELINE_PREFIX))
            .cloned()
            .collect();
        let mut sql = format!(
            "DROP TABLE IF EXISTS {plan}; \
             CREATE TABLE {plan} (position INTEGER PRIMARY KEY, schema TEXT NOT NULL, \
             name TEXT NOT NULL, baseline TEXT, columns TEXT);",
            plan = quote_ident(PLAN_TABLE)
        );
        for (position, table) in order.iter().enumerate() {
            let columns = schema
                .table(table)
                .map(|t| {
                    t.columns
                        .iter()
                        .filter(|c| !matches!(c.default, ColumnDefault::Generated(_)))
                        .map(|c| quote_ident(&c.name))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
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
        let tables: Vec<PlanTable> = rows
            .into_iter()
            .map(|(schema, name, baseline, columns)| PlanTable {
                name: qualified(&schema, &name),
                baseline: baseline.map(|b| (qualified(&schema, &b), columns)),
                bare: name,
            })
            .collect();
        let mut probe = String::from("SELECT ");
        for (i, t) in tables.iter().enumerate() {
            if i > 0 {
                probe.push_str(", ");
            }
            let _ = write!(probe, "EXISTS (SELECT 1 FROM {})", t.name);
        }
        Ok(SqlitePlan { tables, probe })
    }

    async fn clean(
        conn: &mut SqliteConnection,
        plan: &SqlitePlan,
        reset_sequences: bool,
    ) -> Result<usize> {
        if plan.tables.is_empty() {
            return Ok(0);
        }
        // Which tables have rows, in one statement.
        let row = sqlx::query(sqlx::AssertSqlSafe(plan.probe.clone()))
            .fetch_one(&mut *conn)
            .await
            .map_err(Error::db("looking for the tables a test wrote"))?;
        let mut touched = Vec::new();
        for (i, t) in plan.tables.iter().enumerate() {
            let has_rows: bool = sqlx::Row::try_get(&row, i)
                .map_err(Error::db("looking for the tables a test wrote"))?;
            // A lookup table is rewritten whether or not the test changed it: comparing costs
            // as much as restoring.
            if has_rows || t.baseline.is_some() {
                touched.push(t);
            }
        }
        if touched.is_empty() {
            return Ok(0);
        }
        let mut script = String::from("PRAGMA defer_foreign_keys = ON;");
        for t in &touched {
            let _ = write!(script, " DELETE FROM {};", t.name);
        }
        for t in touched.iter().rev() {
            if let Some((b, columns)) = &t.baseline {
                let _ = write!(
                    script,
                    " INSERT INTO {} ({columns}) SELECT {columns} FROM {b};",
                    t.name
                );
            }
        }
        if reset_sequences && has_sequences(conn).await? {
            for t in &touched {
                let _ = write!(
                    script,
                    " DELETE FROM sqlite_sequence WHERE name = {};",
                    quote_literal(&t.bare)
                );
            }
        }
        let mut tx = conn
            .begin()
            .await
            .map_err(Error::db("starting the cleaner's transaction"))?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(script))
            .execute(&mut *tx)
            .await
            .map_err(Error::db("emptying the test database"))?;
        tx.commit()
            .await
            .map_err(Error::db("committing the cleaner's work"))?;
        Ok(touched.len())
    }
}

/// Whether the database has `AUTOINCREMENT` counters (SQLite makes `sqlite_sequence` with the
/// first such table).
pub(crate) async fn has_sequences(conn: &mut SqliteConnection) -> Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE name = 'sqlite_sequence')")
        .fetch_one(&mut *conn)
        .await
        .map_err(Error::db("looking for sqlite_sequence"))
}

/// `"schema"."name"`, both quoted.
fn qualified(schema: &str, name: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(name))
}
