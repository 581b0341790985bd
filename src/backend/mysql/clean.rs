//! Emptying a MySQL database again (Truncate, and Template's recycled databases).
//!
//! `prepare` copies the rows migrations left in a table into a baseline table beside it
//! (`seedbed__b_<hash>`), and notes the copy's digest (its row count and the XOR of its rows'
//! CRC-32s). A clean asks in one statement, one row of flags, whether each other table has rows
//! and whether each table with a baseline still has its digest, then, in one transaction with
//! foreign-key checks off (so cycles need no order), `DELETE`s the tables that differ and puts
//! their baselines back. `DELETE` rather than `TRUNCATE`: InnoDB's `TRUNCATE` drops and
//! re-creates the table, a DDL statement that costs milliseconds per table where a test's few
//! rows cost microseconds to delete. A `DELETE` trigger that writes another
//! table is followed: tables that have rows again are emptied in a further pass.

use sqlx::mysql::MySqlRow;
use sqlx::{MySql, MySqlConnection};

use super::admin::INTERNAL_PREFIX;
use crate::backend::Clean;
use crate::error::{Error, Result};
use crate::schema::{ColumnDefault, Schema};
use crate::sql::{quote_mysql_ident as q, quote_mysql_list};
use crate::util::hash::stable_hash;

/// How many passes a clean makes for tables that `DELETE` triggers fill again.
const PASSES: usize = 4;

/// What the cleaner reads once per database.
#[derive(Debug, Clone)]
pub struct MySqlPlan {
    /// Tables without baseline rows, probed for rows.
    tables: Vec<Table>,
    /// Tables whose migrations left rows: put back when they differ from their copy.
    baselines: Vec<Baseline>,
    /// `SELECT` of one row with a flag per table (`tables`, then `baselines`): 1 to clean it.
    probe: String,
}

/// A table whose migrations left rows, and the copy they are kept in.
#[derive(Debug, Clone)]
struct Baseline {
    table: Table,
    copy: String,
    /// The copy's [`digest`]: the table holds the migrations' rows while it has the same.
    digest: String,
}

#[derive(Debug, Clone)]
struct Table {
    name: String,
    /// Columns a row can be written with (generated ones left out).
    insertable: Vec<String>,
    auto_increment: bool,
    /// A `DELETE` trigger fires on it (deleting its rows may write another table).
    delete_trigger: bool,
    /// An `INSERT` trigger fires on it (putting its baseline back may write another table).
    insert_trigger: bool,
}

/// The baseline table of `table`.
fn baseline_name(table: &str) -> String {
    format!("{INTERNAL_PREFIX}b_{:016x}", stable_hash(table))
}

impl Clean for MySql {
    type Plan = MySqlPlan;

    async fn prepare(conn: &mut MySqlConnection, schema: &Schema, _track: bool) -> Result<()> {
        for table in &schema.tables {
            let name = &table.name.name;
            let has_rows: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT EXISTS (SELECT 1 FROM {})",
                q(name)
            )))
            .fetch_one(&mut *conn)
            .await
            .map_err(Error::db(format!("preparing {name} for the cleaner")))?;
            if has_rows == 1 {
                let sql = format!(
                    "CREATE TABLE {} ENGINE=InnoDB AS SELECT * FROM {}",
                    q(&baseline_name(name)),
                    q(name)
                );
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(&mut *conn)
                    .await
                    .map_err(Error::db(format!(
                        "keeping the rows migrations left in {name}"
                    )))?;
            }
        }
        let plan = catalog_plan(conn).await?;
        store_plan(conn, &plan).await
    }

    /// Read from `seedbed__plan`, which `prepare` wrote (one query, where reading the catalog
    /// takes several: every test process of `cargo nextest` reads it once); from the catalog
    /// for a database prepared before the table existed.
    async fn plan(conn: &mut MySqlConnection) -> Result<MySqlPlan> {
        plan_of(conn, None).await
    }

    async fn clean(
        conn: &mut MySqlConnection,
        plan: &MySqlPlan,
        reset_sequences: bool,
    ) -> Result<usize> {
        let dirty = dirty(conn, plan, None).await?;
        clean_dirty(conn, plan, reset_sequences, dirty).await
    }
}

/// Empties the tables of `dirty` (what [`dirty`] found), and those that
/// `DELETE` and `INSERT` triggers fill again; how many tables it emptied: [`Clean::clean`] after
/// its probe.
pub(crate) async fn clean_dirty(
    conn: &mut MySqlConnection,
    plan: &MySqlPlan,
    reset_sequences: bool,
    mut dirty: Vec<usize>,
) -> Result<usize> {
    let mut emptied: Vec<usize> = Vec::new();
    for _ in 0..PASSES {
        if dirty.is_empty() {
            break;
        }
        let mut script = String::from("SET SESSION FOREIGN_KEY_CHECKS = 0; START TRANSACTION;");
        for &i in &dirty {
            let table = plan.table(i);
            script.push_str(&format!("DELETE FROM {};", q(&table.name)));
            if let Some(copy) = plan.copy(i) {
                let list = quote_mysql_list(table.insertable.iter().map(String::as_str));
                script.push_str(&format!(
                    "INSERT INTO {t} ({list}) SELECT {list} FROM {c};",
                    t = q(&table.name),
                    c = q(copy)
                ));
            }
        }
        script.push_str("COMMIT; SET SESSION FOREIGN_KEY_CHECKS = 1;");
        if let Err(e) = sqlx::raw_sql(sqlx::AssertSqlSafe(script))
            .execute(&mut *conn)
            .await
        {
            let _ = sqlx::raw_sql("ROLLBACK; SET SESSION FOREIGN_KEY_CHECKS = 1")
                .execute(&mut *conn)
                .await;
            return Err(Error::db("emptying the test's tables")(e));
        }
        for &i in &dirty {
            if !emptied.contains(&i) {
                emptied.push(i);
            }
        }
        // A DELETE trigger of a table emptied, or an INSERT trigger of a table put back, may
        // have written a table again (an audit table): looked at again. Otherwise the
        // tables are as the migrations left them.
        let fired = dirty.iter().any(|&i| {
            let table = plan.table(i);
            table.delete_trigger || (plan.copy(i).is_some() && table.insert_trigger)
        });
        dirty = if fired {
            self::dirty(conn, plan, None).await?
        } else {
            Vec::new()
        };
    }
    if !dirty.is_empty() {
        let names: Vec<&str> = dirty.iter().map(|&i| plan.table(i).name.as_str()).collect();
        return Err(Error::Internal(format!(
            "tables {names:?} differed from their state after the migrations again after \
             {PASSES} passes of the cleaner: a trigger keeps writing them"
        )));
    }
    if reset_sequences {
        reset(conn, emptied.iter().map(|&i| plan.table(i))).await?;
    }
    Ok(emptied.len())
}

/// [`Clean::plan`]; with `database`, the connection's default database becomes it first, in the
/// same round trip.
pub(crate) async fn plan_of(
    conn: &mut MySqlConnection,
    database: Option<&str>,
) -> Result<MySqlPlan> {
    // As text: one round trip, where a statement prepared the first time (in every process
    // that runs one test) costs two.
    let select = format!(
        "SELECT name, copy, digest, auto_increment, delete_trigger, insert_trigger, columns \
         FROM {} ORDER BY position",
        q(PLAN_TABLE)
    );
    let sql = match database {
        Some(database) => format!("USE {}; {select}", q(database)),
        None => select,
    };
    let stored: std::result::Result<Vec<PlanTuple>, sqlx::Error> =
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .fetch_all(&mut *conn)
            .await
            .and_then(|rows| {
                rows.iter()
                    .map(<PlanTuple as sqlx::FromRow<'_, sqlx::mysql::MySqlRow>>::from_row)
                    .collect()
            });
    match stored {
        Ok(rows) if !rows.is_empty() => Ok(MySqlPlan::assemble(
            rows.into_iter().map(into_entry).collect(),
        )),
        Ok(_) => catalog_plan(conn).await,
        // No plan table (a database prepared before it existed), or one without a column this
        // version reads (the `USE` before it has taken effect).
        Err(e) if matches!(super::error_number(&e), Some(1146 | 1054)) => catalog_plan(conn).await,
        Err(e) => Err(Error::db("reading the cleaner's plan")(e)),
    }
}

async fn catalog_plan(conn: &mut MySqlConnection) -> Result<MySqlPlan> {
    let schemas = <MySql as crate::backend::Introspect>::user_schemas(&mut *conn).await?;
    let schemas: Vec<&str> = schemas.iter().map(String::as_str).collect();
    let schema = <MySql as crate::backend::Introspect>::introspect(&mut *conn, &schemas).await?;
    let existing: Vec<String> = sqlx::query_scalar(
        "SELECT CAST(TABLE_NAME AS CHAR) FROM information_schema.TABLES \
         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE 'seedbed\\_\\_b\\_%'",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(Error::db("reading the cleaner's baselines"))?;
    let triggers: Vec<(String, String)> = sqlx::query_as(
        "SELECT CAST(EVENT_OBJECT_TABLE AS CHAR), CAST(EVENT_MANIPULATION AS CHAR) \
         FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA = DATABASE()",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(Error::db("reading the triggers the cleaner may fire"))?;
    let fires = |table: &str, event: &str| {
        triggers
            .iter()
            .any(|(t, e)| t == table && e.eq_ignore_ascii_case(event))
    };
    let mut entries = Vec::new();
    for t in &schema.tables {
        let table = Table {
            name: t.name.name.clone(),
            insertable: t
                .columns
                .iter()
                .filter(|c| !matches!(c.default, ColumnDefault::Generated(_)))
                .map(|c| c.name.clone())
                .collect(),
            auto_increment: t
                .columns
                .iter()
                .any(|c| c.default == ColumnDefault::IdentityByDefault),
            delete_trigger: fires(&t.name.name, "DELETE"),
            insert_trigger: fires(&t.name.name, "INSERT"),
        };
        let copy = baseline_name(&table.name);
        let copy = existing.contains(&copy).then_some(copy);
        entries.push((table, copy));
    }
    with_digests(conn, entries).await
}

/// The plan of `entries` (each table with its baseline copy, if it has one), the copies'
/// digests read in one statement.
async fn with_digests(
    conn: &mut MySqlConnection,
    entries: Vec<(Table, Option<String>)>,
) -> Result<MySqlPlan> {
    let copies: Vec<String> = entries
        .iter()
        .filter_map(|(table, copy)| copy.as_ref().map(|copy| digest(table, copy)))
        .collect();
    let mut digests = if copies.is_empty() {
        Vec::new()
    } else {
        let row = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("SELECT {}", copies.join(", "))))
            .fetch_one(&mut *conn)
            .await
            .map_err(Error::db("reading the digests of the cleaner's baselines"))?;
        (0..copies.len())
            .map(|i| sqlx::Row::try_get::<String, _>(&row, i))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(Error::db("reading the digests of the cleaner's baselines"))?
    }
    .into_iter();
    let entries = entries
        .into_iter()
        .map(|(table, copy)| {
            let copy = copy.map(|copy| (copy, digests.next().unwrap_or_default()));
            (table, copy)
        })
        .collect();
    Ok(MySqlPlan::assemble(entries))
}

/// A statement's expression for the digest of `from`'s rows (read with `table`'s columns): the
/// row count and the XOR of every row's CRC-32, one scan of a small table and no temporary table
/// (as `EXCEPT` would make).
fn digest(table: &Table, from: &str) -> String {
    let row = table
        .insertable
        .iter()
        .map(|c| format!("IFNULL({}, 0x00)", q(c)))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "(SELECT CAST(CONCAT(COUNT(*), ':', COALESCE(BIT_XOR(CRC32(CONCAT_WS(0x1f, {row}))), 0)) \
         AS CHAR) FROM {})",
        q(from)
    )
}

/// The table `prepare` writes the cleaner's plan to.
const PLAN_TABLE: &str = "seedbed__plan";

/// A row of [`PLAN_TABLE`]: the table, its baseline copy and the copy's digest, whether it has
/// an auto-increment key, a DELETE trigger, an INSERT trigger, and its insertable columns one
/// per line.
type PlanTuple = (
    String,
    Option<String>,
    Option<String>,
    bool,
    bool,
    bool,
    String,
);

fn into_entry(row: PlanTuple) -> (Table, Option<(String, String)>) {
    let (name, copy, digest, auto_increment, delete_trigger, insert_trigger, columns) = row;
    let insertable = if columns.is_empty() {
        Vec::new()
    } else {
        columns.split('\n').map(str::to_string).collect()
    };
    (
        Table {
            name,
            insertable,
            auto_increment,
            delete_trigger,
            insert_trigger,
        },
        copy.map(|copy| (copy, digest.unwrap_or_default())),
    )
}

/// Writes `plan` to [`PLAN_TABLE`] in the database `conn` is on.
async fn store_plan(conn: &mut MySqlConnection, plan: &MySqlPlan) -> Result<()> {
    let context = "writing the cleaner's plan";
    let create = format!(
        "CREATE TABLE {} (position INT PRIMARY KEY, name VARCHAR(64) NOT NULL, \
         copy VARCHAR(64) NULL, digest VARCHAR(64) NULL, auto_increment BOOL NOT NULL, \
         delete_trigger BOOL NOT NULL, insert_trigger BOOL NOT NULL, columns TEXT NOT NULL) \
         ENGINE=InnoDB",
        q(PLAN_TABLE)
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(create))
        .execute(&mut *conn)
        .await
        .map_err(Error::db(context))?;
    let entries = plan.tables.iter().map(|t| (t, None)).chain(
        plan.baselines
            .iter()
            .map(|b| (&b.table, Some((b.copy.as_str(), b.digest.as_str())))),
    );
    for (position, (table, copy)) in entries.enumerate() {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {} (position, name, copy, digest, auto_increment, delete_trigger, \
             insert_trigger, columns) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            q(PLAN_TABLE)
        )))
        .bind(i64::try_from(position).unwrap_or(i64::MAX))
        .bind(&table.name)
        .bind(copy.map(|(copy, _)| copy))
        .bind(copy.map(|(_, digest)| digest))
        .bind(table.auto_increment)
        .bind(table.delete_trigger)
        .bind(table.insert_trigger)
        .bind(table.insertable.join("\n"))
        .execute(&mut *conn)
        .await
        .map_err(Error::db(context))?;
    }
    Ok(())
}

impl MySqlPlan {
    /// The plan of `entries` (each table with its baseline copy and the copy's digest, if it has
    /// one), with its probe.
    fn assemble(entries: Vec<(Table, Option<(String, String)>)>) -> MySqlPlan {
        let mut tables = Vec::new();
        let mut baselines = Vec::new();
        for (table, copy) in entries {
            match copy {
                Some((copy, digest)) => baselines.push(Baseline {
                    table,
                    copy,
                    digest,
                }),
                None => tables.push(table),
            }
        }
        // A flag per table: one without baseline rows is to clean when it has any rows, one
        // with baseline rows when its digest is no longer its copy's (noted as the plan was
        // made: the copy is not read again). Scalar subqueries in one row, where a UNION of
        // one SELECT per table costs the server about half as much again.
        let flags: Vec<String> = tables
            .iter()
            .map(|t| format!("EXISTS (SELECT 1 FROM {})", q(&t.name)))
            .chain(baselines.iter().map(|b| {
                format!(
                    "{} <> {}",
                    digest(&b.table, &b.table.name),
                    crate::sql::mysql_literal(&b.digest)
                )
            }))
            .collect();
        let probe = if flags.is_empty() {
            String::new()
        } else {
            format!("SELECT {}", flags.join(", "))
        };
        MySqlPlan {
            tables,
            baselines,
            probe,
        }
    }

    /// The indexes of the tables to clean, from the row the probe returned (`None` for a plan
    /// without tables).
    fn dirty_in(&self, row: Option<&MySqlRow>) -> Result<Vec<usize>> {
        let known = self.tables.len() + self.baselines.len();
        let context = "finding the tables the test wrote";
        let Some(row) = row else {
            return if known == 0 {
                Ok(Vec::new())
            } else {
                Err(Error::Internal(format!(
                    "the probe of {known} tables returned no row"
                )))
            };
        };
        let mut dirty = Vec::new();
        for i in 0..known {
            let flag: Option<i64> = sqlx::Row::try_get(row, i).map_err(Error::db(context))?;
            if flag != Some(0) {
                dirty.push(i);
            }
        }
        Ok(dirty)
    }

    /// The table of a probe index: the tables without baselines first, then those with.
    fn table(&self, i: usize) -> &Table {
        match self.tables.get(i) {
            Some(table) => table,
            None => &self.baselines[i - self.tables.len()].table,
        }
    }

    /// The baseline copy of a probe index's table, if it has one.
    fn copy(&self, i: usize) -> Option<&str> {
        i.checked_sub(self.tables.len())
            .and_then(|j| self.baselines.get(j))
            .map(|b| b.copy.as_str())
    }
}

/// Starts every auto-increment counter of the plan's tables again, at one past the largest key
/// left (Truncate's `reset_sequences`).
pub(crate) async fn reset_counters(conn: &mut MySqlConnection, plan: &MySqlPlan) -> Result<()> {
    let tables = plan
        .tables
        .iter()
        .chain(plan.baselines.iter().map(|b| &b.table));
    reset(conn, tables).await
}

/// Starts the auto-increment counters of `tables` again (those that have one).
async fn reset(conn: &mut MySqlConnection, tables: impl Iterator<Item = &Table>) -> Result<()> {
    for table in tables.filter(|t| t.auto_increment) {
        // InnoDB sets the counter to one past the largest key left.
        let sql = format!("ALTER TABLE {} AUTO_INCREMENT = 1", q(&table.name));
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut *conn)
            .await
            .map_err(Error::db(format!(
                "resetting the counter of {}",
                table.name
            )))?;
    }
    Ok(())
}

/// The indexes of the plan's tables that have rows (or, with baseline rows, other rows than the
/// migrations left); with `database`, the connection's default database becomes it first, in
/// the same round trip.
pub(crate) async fn dirty(
    conn: &mut MySqlConnection,
    plan: &MySqlPlan,
    database: Option<&str>,
) -> Result<Vec<usize>> {
    let context = "finding the tables the test wrote";
    let row = match database {
        // `USE` returns no row: the first row is the probe's.
        Some(database) => {
            let sql = if plan.probe.is_empty() {
                format!("USE {}", q(database))
            } else {
                format!("USE {}; {}", q(database), plan.probe)
            };
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .fetch_optional(conn)
                .await
                .map_err(Error::db(context))?
        }
        None if plan.probe.is_empty() => return Ok(Vec::new()),
        // A process that runs one test asks once: as text, one round trip where preparing the
        // statement first would cost two. Elsewhere the prepared statement serves every test.
        None if crate::util::env::one_test_per_process() => {
            sqlx::raw_sql(sqlx::AssertSqlSafe(plan.probe.clone()))
                .fetch_optional(conn)
                .await
                .map_err(Error::db(context))?
        }
        None => sqlx::query(sqlx::AssertSqlSafe(plan.probe.clone()))
            .fetch_optional(conn)
            .await
            .map_err(Error::db(context))?,
    };
    plan.dirty_in(row.as_ref())
}
