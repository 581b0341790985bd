//! The row generator: rows for any schema, made from what introspection says about it.
//!
//! [`RowPlan::analyze`] reads a migrated database once: its tables, columns, keys, foreign keys,
//! CHECK constraints and domains, and the rows migrations inserted (lookup tables). For every
//! table it decides which columns to write and how (see the module [`bench`](super) docs), which
//! parents a row needs, and in which order tables can be written; then it *probes*: it writes
//! rows into every table inside a transaction it rolls back, so a table whose rows the server
//! refuses is skipped with the server's reason (the constraint, or the column) before any
//! measurement starts.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::sync::atomic::AtomicU64;

use rand::{RngExt, SeedableRng};
use sqlx::PgConnection;
use sqlx::types::JsonValue;

use super::check::TableRules;
use super::values::Gen;
use crate::backend::postgres::clean;
use crate::error::{Error, Result};
use crate::factory::BuildRng;
use crate::schema::{ColumnDefault, ForeignKey, Schema, Table};
use crate::sql::{QualifiedName, quote_ident};

#[path = "rows_plan.rs"]
mod plan;
#[path = "rows_read.rs"]
mod read;

use self::plan::{order, plan_table};
use self::read::{read_domains, read_existing_max, read_prefilled};
#[path = "rows_fill.rs"]
mod fill;
#[cfg(feature = "mysql")]
#[path = "rows_mysql.rs"]
pub(crate) mod mysql;
#[cfg(feature = "sqlite")]
#[path = "rows_sqlite.rs"]
pub(crate) mod sqlite;

pub use self::fill::insert_sql;
use self::fill::{explain, rows_error};

pub(crate) mod sealed {
    /// Keeps [`RowWriter`](super::RowWriter) to the connections seedbed writes on.
    pub trait Sealed {}
}

/// A connection the row generator writes on: a `PgConnection`, or (feature `sqlite`) a
/// `SqliteConnection`, or (feature `mysql`) a `MySqlConnection`. A transaction or a pooled
/// connection gives one with `&mut *tx`.
///
/// ```no_run
/// # async fn demo(plan: &seedbed::bench::RowPlan, pool: &sqlx::PgPool) -> Result<(), seedbed::Error> {
/// let mut conn = pool.acquire().await?;
/// let tables = plan.choose_tables(4, 7);
/// plan.fill(&mut *conn, &tables, 20, 7).await?;
/// # Ok(()) }
/// ```
#[async_trait::async_trait]
pub trait RowWriter: sealed::Sealed + Send {
    /// Inserts `rows` (JSON objects keyed by column) into `table`, writing `columns`, and returns
    /// the rows as inserted, with at least the `returning` columns.
    async fn insert_rows(
        &mut self,
        table: &QualifiedName,
        columns: &[&str],
        returning: &[&str],
        rows: Vec<JsonValue>,
    ) -> std::result::Result<Vec<JsonValue>, sqlx::Error>;

    /// Runs statements without results.
    async fn execute(&mut self, sql: &'static str) -> std::result::Result<(), sqlx::Error>;

    /// What the probe runs first in its transaction: constraints checked at once where they
    /// can be deferred.
    fn probe_setup(&self) -> Option<&'static str>;

    /// Checks what the database defers to the commit (a probe is rolled back, so it never
    /// commits), after rows were written into `table`.
    async fn check_written(
        &mut self,
        table: &QualifiedName,
    ) -> std::result::Result<(), sqlx::Error> {
        let _ = table;
        Ok(())
    }
}

/// The alias of the target table in the generator's `INSERT`s.
const ALIAS: &str = "seedbed_new";

/// At most this many rows of a lookup table are read to reference them.
const PREFILLED_LIMIT: i64 = 1000;

/// A table the generator leaves out, and why.
///
/// ```
/// use seedbed::bench::Skipped;
/// use seedbed::sql::QualifiedName;
///
/// let s = Skipped {
///     table: QualifiedName::new("public", "shapes"),
///     column: Some("outline".into()),
///     constraint: None,
///     reason: "seedbed cannot generate values of type polygon".into(),
/// };
/// assert_eq!(
///     s.to_string(),
///     "public.shapes, column outline: seedbed cannot generate values of type polygon"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The table.
    pub table: QualifiedName,
    /// The column that stopped it, if one did.
    pub column: Option<String>,
    /// The constraint that stopped it, if one did.
    pub constraint: Option<String>,
    /// What happened.
    pub reason: String,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.table.unquoted())?;
        if let Some(c) = &self.column {
            write!(f, ", column {c}")?;
        }
        if let Some(c) = &self.constraint {
            write!(f, ", constraint {c}")?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// What [`RowPlan::fill`] wrote.
///
/// ```
/// let stats = seedbed::bench::FillStats::default();
/// assert_eq!(stats.rows, 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FillStats {
    /// Rows inserted.
    pub rows: usize,
    /// `INSERT` statements sent.
    pub statements: usize,
}

#[derive(Debug)]
pub(crate) struct ColumnPlan {
    pub(crate) name: String,
    pub(crate) values: Gen,
    /// In a primary key or unique key: a value drawn twice for one table in one test is drawn
    /// again.
    pub(crate) unique: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct FkPlan {
    pub(crate) name: String,
    pub(crate) columns: Vec<String>,
    pub(crate) parent: QualifiedName,
    pub(crate) parent_columns: Vec<String>,
    /// NOT NULL: a row cannot be written without a parent.
    pub(crate) required: bool,
    pub(crate) self_reference: bool,
}

#[derive(Debug)]
pub(crate) struct TablePlan {
    pub(crate) name: QualifiedName,
    pub(crate) columns: Vec<ColumnPlan>,
    pub(crate) fks: Vec<FkPlan>,
    /// `(greater, lesser, strict)`, indexes into `columns`.
    pub(crate) relations: Vec<(usize, usize, bool)>,
    /// Unique keys made only of foreign-key columns, as indexes into `fks`: their parents must be
    /// combined without repeating a combination.
    pub(crate) fk_groups: Vec<Vec<usize>>,
    /// Parents that must be written in the same test (NOT NULL keys to tables migrations left
    /// empty).
    pub(crate) requires: Vec<QualifiedName>,
}

/// How to write rows into the tables of one schema, planned as [`crate::bench`]'s docs describe.
///
/// ```no_run
/// # async fn demo(conn: &mut sqlx::PgConnection) -> Result<(), seedbed::Error> {
/// use seedbed::bench::RowPlan;
///
/// let plan = RowPlan::analyze(conn, 20).await?;
/// for skipped in plan.skipped() {
///     eprintln!("skipped {skipped}");
/// }
/// let tables = plan.choose_tables(4, 42); // four tables along the foreign-key graph
/// let mut tx = sqlx::Connection::begin(&mut *conn).await?;
/// let stats = plan.fill(&mut *tx, &tables, 20, 42).await?;
/// println!("{} rows in {} statements", stats.rows, stats.statements);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct RowPlan {
    /// Fillable tables, parents before children.
    pub(crate) tables: Vec<TablePlan>,
    pub(crate) index: HashMap<QualifiedName, usize>,
    pub(crate) skipped: Vec<Skipped>,
    pub(crate) prefilled: HashMap<QualifiedName, Vec<JsonValue>>,
    /// Top-level tables of the schema.
    pub(crate) schema_tables: usize,
    /// A number unique in the run for every value drawn.
    pub(crate) seq: AtomicU64,
    /// How far `seq` moves per value: 1, or the number of plans drawing in turns (see
    /// [`interleave`](Self::interleave)).
    pub(crate) seq_step: u64,
    /// Every column of each table, where the plan was made from the schema (not a saved plan):
    /// what SQLite returns of the rows [`TestDb::rows`](crate::TestDb::rows) writes.
    pub(crate) all_columns: HashMap<QualifiedName, Vec<String>>,
}

/// What introspection and the domains say about one table before it is planned.
#[derive(Clone, Copy)]
struct Context<'a> {
    schema: &'a Schema,
    domains: &'a HashMap<(String, String), Domain>,
    prefilled: &'a HashMap<QualifiedName, Vec<JsonValue>>,
    existing_max: &'a HashMap<(QualifiedName, String), i64>,
}

#[derive(Debug, Clone)]
struct Domain {
    base: (String, String),
    base_is_domain: bool,
    checks: Vec<(String, String)>,
}

impl RowPlan {
    /// Plans rows for every table of the database `conn` is connected to (every schema but the
    /// system ones and seedbed's own), then probes the plan by writing `rows` rows into every
    /// table in a transaction it rolls back. Tables it cannot fill are in
    /// [`skipped`](Self::skipped); none at all is [`Error::BenchSchema`].
    pub async fn analyze(conn: &mut PgConnection, rows: usize) -> Result<RowPlan> {
        RowPlan::analyze_postgres(conn, Some(rows)).await
    }

    /// [`analyze`](Self::analyze), probing only when `probe` says how many rows per table.
    pub(crate) async fn analyze_postgres(
        conn: &mut PgConnection,
        probe: Option<usize>,
    ) -> Result<RowPlan> {
        let schema = clean::read_schema(conn).await?;
        let domains = read_domains(conn).await?;
        let prefilled = read_prefilled(conn, &schema).await?;
        let existing_max = read_existing_max(conn, &schema, &prefilled).await?;
        let cx = Context {
            schema: &schema,
            domains: &domains,
            prefilled: &prefilled,
            existing_max: &existing_max,
        };
        RowPlan::plan(conn, &cx, probe).await
    }

    /// Plans the tables `cx` describes, then probes the plan on `conn` with `probe` rows per
    /// table, when asked.
    async fn plan<W>(conn: &mut W, cx: &Context<'_>, probe: Option<usize>) -> Result<RowPlan>
    where
        W: RowWriter + sqlx::Connection,
        W::Database: sqlx::Database<Connection = W>,
    {
        let (schema, prefilled) = (cx.schema, cx.prefilled);
        let mut skipped = Vec::new();
        let mut planned = Vec::new();
        for table in schema.top_level_tables() {
            match plan_table(cx, table) {
                Ok(p) => planned.push(p),
                Err(s) => skipped.push(s),
            }
        }
        let tables = order(schema, planned, &mut skipped);
        let mut plan = RowPlan {
            index: HashMap::new(),
            tables,
            skipped,
            prefilled: prefilled.clone(),
            schema_tables: schema.top_level_tables().count(),
            seq: AtomicU64::new(1),
            seq_step: 1,
            all_columns: schema
                .top_level_tables()
                .map(|t| {
                    let names = t.columns.iter().map(|c| c.name.clone()).collect();
                    (t.name.clone(), names)
                })
                .collect(),
        };
        plan.reindex();
        if let Some(rows) = probe {
            plan.probe(conn, rows.max(1)).await?;
        }
        if plan.tables.is_empty() {
            let reasons: Vec<String> = plan.skipped.iter().map(|s| format!("  {s}")).collect();
            return Err(Error::BenchSchema {
                reasons: if reasons.is_empty() {
                    "  the database has no tables (do the migrations create any?)".into()
                } else {
                    reasons.join("\n")
                },
            });
        }
        Ok(plan)
    }

    pub(crate) fn reindex(&mut self) {
        self.index = self
            .tables
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
    }

    /// The tables it can fill, parents before children.
    pub fn tables(&self) -> impl Iterator<Item = &QualifiedName> {
        self.tables.iter().map(|t| &t.name)
    }

    /// The tables it leaves out, with the reason.
    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }

    /// How many tables the schema has (partitions not counted: they are filled through their
    /// parent).
    pub fn schema_tables(&self) -> usize {
        self.schema_tables
    }

    /// Makes this plan one of `parts` copies that draw their run-unique values in turns: this
    /// one draws the `part`-th of every `parts` numbers (of the sequence that makes text, keys
    /// and addresses unique, and of every unique integer column's counter). Copies of one plan
    /// loaded by separate processes ([`load`](Self::load)), each given a different `part`, never
    /// draw the same unique value, however many rows each writes: what one shared plan gives
    /// the tests of one process.
    ///
    /// ```no_run
    /// # fn demo(path: &std::path::Path) -> Result<(), seedbed::Error> {
    /// // Test process 3 of a run of 20.
    /// let mut plan = seedbed::bench::RowPlan::load(path)?;
    /// plan.interleave(3, 20)?;
    /// # Ok(()) }
    /// ```
    ///
    /// `part` must be below `parts` ([`Error::Config`] otherwise).
    pub fn interleave(&mut self, part: u64, parts: u64) -> Result<()> {
        if part >= parts {
            return Err(Error::Config(format!(
                "part {part} of a row plan split in {parts}: the part must be below the number \
                 of parts"
            )));
        }
        let step = self.seq_step;
        let seq = self.seq.get_mut();
        *seq = seq.saturating_add(part.saturating_mul(step));
        self.seq_step = step.saturating_mul(parts);
        let (part, parts) = (
            i64::try_from(part).unwrap_or(i64::MAX),
            i64::try_from(parts).unwrap_or(i64::MAX),
        );
        for t in &mut self.tables {
            for c in &mut t.columns {
                c.values.interleave(part, parts);
            }
        }
        Ok(())
    }

    /// About `k` tables for one test, chosen along the foreign-key graph from `seed`: tables
    /// picked at random, each with the parents its rows need, until `k` are chosen (more when a
    /// table needs more parents than `k` allows). Parents come before children.
    pub fn choose_tables(&self, k: usize, seed: u64) -> Vec<QualifiedName> {
        let mut rng = BuildRng::seed_from_u64(seed);
        let mut candidates: Vec<usize> = (0..self.tables.len()).collect();
        for i in (1..candidates.len()).rev() {
            let j = rng.random_range(0..=i);
            candidates.swap(i, j);
        }
        let mut chosen: BTreeSet<usize> = BTreeSet::new();
        let mut smallest: Option<BTreeSet<usize>> = None;
        for c in candidates {
            if chosen.len() >= k {
                break;
            }
            let closure = self.closure(c);
            let merged: BTreeSet<usize> = chosen.union(&closure).copied().collect();
            if merged.len() <= k {
                chosen = merged;
            } else if smallest.as_ref().is_none_or(|s| closure.len() < s.len()) {
                smallest = Some(closure);
            }
        }
        if chosen.is_empty()
            && let Some(s) = smallest
        {
            chosen = s;
        }
        chosen
            .into_iter()
            .map(|i| self.tables[i].name.clone())
            .collect()
    }

    /// A table and every table it needs, transitively.
    pub(crate) fn closure(&self, start: usize) -> BTreeSet<usize> {
        let mut out = BTreeSet::new();
        let mut stack = vec![start];
        while let Some(i) = stack.pop() {
            if !out.insert(i) {
                continue;
            }
            for parent in &self.tables[i].requires {
                if let Some(&p) = self.index.get(parent) {
                    stack.push(p);
                }
            }
        }
        out
    }

    /// Writes `rows` rows into each of `tables` (parents first, whatever order they are given
    /// in), with values drawn from `seed`. Tables this plan cannot fill are left out. A row the
    /// server refuses is [`Error::BenchRows`], naming the table and the constraint.
    pub async fn fill<W: RowWriter + ?Sized>(
        &self,
        conn: &mut W,
        tables: &[QualifiedName],
        rows: usize,
        seed: u64,
    ) -> Result<FillStats> {
        let mut order: Vec<usize> = tables
            .iter()
            .filter_map(|t| self.index.get(t).copied())
            .collect();
        order.sort_unstable();
        order.dedup();
        let counts: Vec<(usize, usize)> = order.into_iter().map(|i| (i, rows)).collect();
        let (stats, _) = self.fill_counts(conn, &counts, &[], seed).await?;
        Ok(stats)
    }

    /// Writes `rows` rows into each table of `counts` (indexes into the plan, parents first);
    /// the last table's rows take the column values of `overrides`. Returns the statistics and
    /// the last table's rows as inserted.
    pub(crate) async fn fill_counts<W: RowWriter + ?Sized>(
        &self,
        conn: &mut W,
        counts: &[(usize, usize)],
        overrides: &[(String, JsonValue)],
        seed: u64,
    ) -> Result<(FillStats, Vec<JsonValue>)> {
        let mut rng = BuildRng::seed_from_u64(seed);
        let mut written: HashMap<QualifiedName, Vec<JsonValue>> = HashMap::new();
        let mut stats = FillStats::default();
        let mut last = Vec::new();
        for (k, &(i, rows)) in counts.iter().enumerate() {
            let t = &self.tables[i];
            let set = if k + 1 == counts.len() {
                overrides
            } else {
                &[]
            };
            let (inserted, statements) = self
                .fill_table(conn, t, rows, &written, set, &mut rng)
                .await
                .map_err(|(e, n)| rows_error(t, n, e))?;
            stats.rows += inserted.len();
            stats.statements += statements;
            if k + 1 == counts.len() {
                last = inserted.clone();
            }
            written.insert(t.name.clone(), inserted);
        }
        Ok((stats, last))
    }

    /// Writes every table once inside a transaction that is rolled back; tables whose rows the
    /// server refuses are moved to `skipped`, with the tables that need them.
    async fn probe<W>(&mut self, conn: &mut W, rows: usize) -> Result<()>
    where
        W: RowWriter + sqlx::Connection,
        W::Database: sqlx::Database<Connection = W>,
    {
        // A transaction of its own, or a savepoint in the caller's; rolled back when dropped on
        // an error path.
        let mut tx = sqlx::Connection::begin(conn)
            .await
            .map_err(Error::db("starting the probe of the generated rows"))?;
        if let Some(setup) = tx.probe_setup() {
            tx.execute(setup)
                .await
                .map_err(Error::db("starting the probe of the generated rows"))?;
        }
        let (failed, notes) = self.probe_tables(&mut *tx, rows).await?;
        tx.rollback()
            .await
            .map_err(Error::db("ending the probe of the generated rows"))?;
        self.tables.retain(|t| !failed.contains(&t.name));
        self.skipped.extend(notes);
        self.reindex();
        Ok(())
    }

    /// The probe's writes, inside its transaction: the tables that failed, and why.
    async fn probe_tables<W: RowWriter + ?Sized>(
        &self,
        conn: &mut W,
        rows: usize,
    ) -> Result<(HashSet<QualifiedName>, Vec<Skipped>)> {
        let mut rng = BuildRng::seed_from_u64(0x5eed);
        let mut written: HashMap<QualifiedName, Vec<JsonValue>> = HashMap::new();
        let mut failed: HashSet<QualifiedName> = HashSet::new();
        let mut notes = Vec::new();
        for t in &self.tables {
            if let Some(parent) = t.requires.iter().find(|p| failed.contains(*p)) {
                notes.push(Skipped {
                    table: t.name.clone(),
                    column: None,
                    constraint: None,
                    reason: format!(
                        "its rows need rows of {}, which is skipped",
                        parent.unquoted()
                    ),
                });
                failed.insert(t.name.clone());
                continue;
            }
            conn.execute("SAVEPOINT seedbed_probe")
                .await
                .map_err(Error::db("probing the generated rows"))?;
            let filled = match self
                .fill_table(conn, t, rows, &written, &[], &mut rng)
                .await
            {
                Ok((inserted, _)) => match conn.check_written(&t.name).await {
                    Ok(()) => Ok(inserted),
                    Err(e) => Err((e, 0)),
                },
                Err(e) => Err(e),
            };
            match filled {
                Ok(inserted) => {
                    conn.execute("RELEASE SAVEPOINT seedbed_probe")
                        .await
                        .map_err(Error::db("probing the generated rows"))?;
                    if inserted.is_empty() {
                        notes.push(Skipped {
                            table: t.name.clone(),
                            column: None,
                            constraint: None,
                            reason: "no row could be made: a parent it needs has no rows".into(),
                        });
                        failed.insert(t.name.clone());
                    }
                    written.insert(t.name.clone(), inserted);
                }
                Err((e, _)) => {
                    conn.execute("ROLLBACK TO SAVEPOINT seedbed_probe")
                        .await
                        .map_err(Error::db("probing the generated rows"))?;
                    let (column, constraint, reason) = explain(&e);
                    notes.push(Skipped {
                        table: t.name.clone(),
                        column,
                        constraint,
                        reason: format!("the server refused its generated rows: {reason}"),
                    });
                    failed.insert(t.name.clone());
                }
            }
        }
        Ok((failed, notes))
    }
}
