//! [`TestDb::rows`]: rows for a table that has no model struct, made from the schema alone.

use std::future::Future;

use sqlx::types::JsonValue;

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::isolation::TestDb;
use crate::rowgen::rows::{RowPlan, RowWriter};
use crate::sql::QualifiedName;

/// The backends whose schema the row generator reads: PostgreSQL, SQLite (feature `sqlite`) and
/// MySQL or MariaDB (feature `mysql`).
pub trait SchemaRows: Backend
where
    Self::Connection: RowWriter,
{
    /// Plans rows for every table of the database `conn` is connected to.
    #[doc(hidden)]
    fn __plan(conn: &mut Self::Connection) -> impl Future<Output = Result<RowPlan>> + Send;
}

impl SchemaRows for sqlx::Postgres {
    async fn __plan(conn: &mut sqlx::PgConnection) -> Result<RowPlan> {
        RowPlan::analyze_postgres(conn, None).await
    }
}

#[cfg(feature = "sqlite")]
impl SchemaRows for sqlx::Sqlite {
    async fn __plan(conn: &mut sqlx::SqliteConnection) -> Result<RowPlan> {
        RowPlan::analyze_sqlite_with(conn, None).await
    }
}

#[cfg(feature = "mysql")]
impl SchemaRows for sqlx::MySql {
    async fn __plan(conn: &mut sqlx::MySqlConnection) -> Result<RowPlan> {
        RowPlan::analyze_mysql_with(conn, None).await
    }
}

/// Rows for one table, made from the schema alone: [`TestDb::rows`].
#[derive(Debug)]
#[must_use = "nothing is written until `create` is awaited"]
pub struct Rows<'a, DB: Backend> {
    db: &'a TestDb<DB>,
    table: String,
    values: Vec<(String, JsonValue)>,
}

impl<DB: Backend> TestDb<DB> {
    /// Rows for `table` (`"issues"`, `"billing.invoices"`) from the schema alone, for tables
    /// that have no model struct: every required column is filled from what the database says
    /// of it (its type, CHECK constraints, defaults, enum labels, unique keys), the parents a row
    /// needs are created first (about √n of each; n when a key is made of foreign keys), and
    /// [`set`](Rows::set) fixes columns of your own. Values are reproducible from the test's
    /// seed, as a factory's are.
    ///
    /// ```no_run
    /// # async fn demo(db: seedbed::TestDb) -> Result<(), seedbed::Error> {
    /// let issues = db.rows("issues").set("title", "Broken").create(10).await?;
    /// assert_eq!(issues.len(), 10);
    /// assert_eq!(issues[0]["title"], "Broken");
    /// # Ok(()) }
    /// ```
    pub fn rows(&self, table: &str) -> Rows<'_, DB> {
        Rows {
            db: self,
            table: table.to_string(),
            values: Vec::new(),
        }
    }
}

impl<DB> Rows<'_, DB>
where
    DB: SchemaRows,
    DB::Connection: RowWriter,
{
    /// Writes `value` into `column` of every row (a JSON value: text, a number, `true`, `null`;
    /// the database converts it to the column's type). The last write of a column wins.
    pub fn set(mut self, column: &str, value: impl Into<JsonValue>) -> Self {
        self.values.retain(|(c, _)| c != column);
        self.values.push((column.to_string(), value.into()));
        self
    }

    /// Writes `n` rows, and the parents they need, in one transaction (a savepoint inside the
    /// test's), and returns the rows as the database stored them, as JSON objects keyed by
    /// column. A table the generator cannot fill, or a row the database refuses, is an error
    /// naming the table and the column or constraint.
    pub async fn create(self, n: usize) -> Result<Vec<JsonValue>> {
        let pool = self.db.pool();
        let mut conn = pool
            .acquire()
            .await
            .map_err(Error::db("taking a connection for db.rows"))?;
        let plan = DB::__plan(&mut conn).await?;
        let target = resolve(&plan, &self.table)?;
        let Some(&index) = plan.index.get(&target) else {
            return Err(match plan.skipped.iter().find(|s| s.table == target) {
                Some(s) => Error::Config(format!("db.rows cannot fill {s}")),
                None => Error::Config(format!(
                    "db.rows cannot fill {}: no such table in the test's database",
                    self.table
                )),
            });
        };
        // A key made of foreign keys alone (a one-to-one table, a join table) needs a parent
        // combination per row: as many parents as rows. Else about √n of each.
        let parent_rows = if plan.tables[index].fk_groups.is_empty() {
            (n as f64).sqrt().ceil().max(1.0) as usize
        } else {
            n.max(1)
        };
        // The parents a row needs; and, for a key made of foreign keys, parents of this call
        // even where rows exist (the combinations of existing rows may be taken already).
        let mut needed = plan.closure(index);
        let target_plan = &plan.tables[index];
        for &j in target_plan.fk_groups.iter().flatten() {
            if let Some(&p) = plan.index.get(&target_plan.fks[j].parent)
                && p != index
            {
                needed.extend(plan.closure(p));
            }
        }
        let mut counts: Vec<(usize, usize)> = needed
            .into_iter()
            .filter(|&i| i != index)
            .map(|i| (i, parent_rows))
            .collect();
        counts.push((index, n));
        // Unique values continue from one call to the next, and differ between tests sharing
        // the database.
        let ctx = self.db.context();
        let call = ctx.next_sequence_by_hash(crate::util::hash::stable_hash("seedbed::rows"));
        // A wide range per test (its token) and per call: 2^20 values per call, 2^12 calls.
        let token = crate::util::hash::stable_hash(ctx.token()) & 0xF_FFFF;
        plan.seq.store(
            (token << 32) | ((call & 0xFFF) << 20),
            std::sync::atomic::Ordering::Relaxed,
        );
        let seed = ctx.seed() ^ crate::util::hash::stable_hash(&self.table) ^ call;
        let mut tx = sqlx::Connection::begin(&mut *conn)
            .await
            .map_err(Error::db("starting the transaction of db.rows"))?;
        let (_, rows) = plan
            .fill_counts(&mut *tx, &counts, &self.values, seed)
            .await?;
        if rows.len() != n {
            return Err(Error::Config(format!(
                "db.rows could make {} of the {n} rows asked of {}: its keys are made of \
                 foreign keys, and the rows they can point at allow no more combinations \
                 (create more parent rows first, or set the key columns)",
                rows.len(),
                target.unquoted()
            )));
        }
        tx.commit()
            .await
            .map_err(Error::db("committing the rows of db.rows"))?;
        Ok(rows)
    }
}

/// The table `name` names: `schema.table`, or a table of that name in the plan (the one in the
/// first schema when several have it).
fn resolve(plan: &RowPlan, name: &str) -> Result<QualifiedName> {
    let known = plan
        .tables
        .iter()
        .map(|t| &t.name)
        .chain(plan.skipped.iter().map(|s| &s.table));
    let mut found: Option<QualifiedName> = None;
    for t in known {
        if t.unquoted() == name {
            return Ok(t.clone());
        }
        if t.name == name && found.is_none() {
            found = Some(t.clone());
        }
    }
    found.ok_or_else(|| {
        Error::Config(format!(
            "db.rows: no table `{name}` in the test's database (name it as `table` or \
             `schema.table`)"
        ))
    })
}
