//! Filling a table: its rows drawn from the plan, inserted in batches, and the keys its children
//! will reference read back.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;

use rand::RngExt;
use sqlx::PgConnection;
use sqlx::types::JsonValue;

use super::{ALIAS, RowPlan, RowWriter, TablePlan};
use crate::error::Error;
use crate::factory::BuildRng;
use crate::rowgen::values::{Draw, Value};
use crate::sql::{QualifiedName, quote_ident, quote_list};

impl RowPlan {
    /// Writes up to `rows` rows into one table; returns the rows as inserted (JSON objects) and
    /// the number of statements. The error carries the number of rows of the failed statement.
    pub(crate) async fn fill_table<W: RowWriter + ?Sized>(
        &self,
        conn: &mut W,
        t: &TablePlan,
        rows: usize,
        written: &HashMap<QualifiedName, Vec<JsonValue>>,
        overrides: &[(String, JsonValue)],
        rng: &mut BuildRng,
    ) -> std::result::Result<(Vec<JsonValue>, usize), (sqlx::Error, usize)> {
        // Parent keys for each foreign key: rows this test wrote, else rows migrations wrote.
        let mut pools: Vec<Option<Vec<Vec<JsonValue>>>> = Vec::with_capacity(t.fks.len());
        for fk in &t.fks {
            if fk.self_reference {
                pools.push(None);
                continue;
            }
            let source = written
                .get(&fk.parent)
                .filter(|r| !r.is_empty())
                .or_else(|| self.prefilled.get(&fk.parent).filter(|r| !r.is_empty()));
            let keys = source.map(|rows| keys_of(rows, &fk.parent_columns));
            match keys.filter(|k| !k.is_empty()) {
                Some(k) => pools.push(Some(k)),
                None if fk.required => return Ok((Vec::new(), 0)),
                None => pools.push(None),
            }
        }
        // Keys made of foreign keys only may not repeat a combination of parents.
        let mut n = rows;
        let mut radix: Vec<usize> = Vec::new();
        for group in &t.fk_groups {
            let mut combinations: usize = 1;
            let mut nullable_member = false;
            for &j in group {
                match &pools[j] {
                    Some(p) => combinations = combinations.saturating_mul(p.len()),
                    None => nullable_member = true,
                }
                if !radix.contains(&j) && pools[j].is_some() {
                    radix.push(j);
                }
            }
            if !nullable_member {
                n = n.min(combinations);
            }
        }
        let self_ref = t.fks.iter().position(|fk| fk.self_reference);
        let first = match self_ref {
            Some(_) => n.div_ceil(2),
            None => n,
        };
        let mut seen = self.prefilled_values(t);
        let mut made = Vec::with_capacity(n);
        for i in 0..first {
            made.push(self.row(t, i, &pools, &radix, None, &mut seen, rng));
        }
        set_values(&mut made, overrides);
        let mut statements = 0;
        let mut inserted = Vec::new();
        if !made.is_empty() {
            inserted = self.insert(conn, t, made).await.map_err(|e| (e, first))?;
            statements += 1;
        }
        if let Some(s) = self_ref
            && n > first
            && !inserted.is_empty()
        {
            let parents = keys_of(&inserted, &t.fks[s].parent_columns);
            let mut made = Vec::with_capacity(n - first);
            for i in first..n {
                made.push(self.row(t, i, &pools, &radix, Some((s, &parents)), &mut seen, rng));
            }
            set_values(&mut made, overrides);
            let more = self
                .insert(conn, t, made)
                .await
                .map_err(|e| (e, n - first))?;
            statements += 1;
            inserted.extend(more);
        }
        Ok((inserted, statements))
    }

    /// The values of `t`'s unique columns in the rows migrations inserted, as a draw is
    /// compared with them: a generated key never repeats a lookup row's (`'l'` drawn for a
    /// `VARCHAR(8)` code beside `'s'`, `'m'`, `'l'`). Integer keys start above the largest
    /// already.
    fn prefilled_values(&self, t: &TablePlan) -> Vec<HashSet<String>> {
        let rows = self.prefilled.get(&t.name).map_or(&[][..], Vec::as_slice);
        t.columns
            .iter()
            .map(|c| {
                if !c.unique {
                    return HashSet::new();
                }
                rows.iter()
                    .filter_map(|r| match r.get(&c.name)? {
                        JsonValue::String(s) => Some(seen_key(&Value::Text(s.clone()))),
                        _ => None,
                    })
                    .collect()
            })
            .collect()
    }

    /// Row `i` of a table; `seen` holds the values of its unique columns drawn so far.
    #[allow(
        clippy::too_many_arguments,
        reason = "the state of one table's fill, passed down"
    )]
    fn row(
        &self,
        t: &TablePlan,
        i: usize,
        pools: &[Option<Vec<Vec<JsonValue>>>],
        radix: &[usize],
        self_parents: Option<(usize, &Vec<Vec<JsonValue>>)>,
        seen: &mut [HashSet<String>],
        rng: &mut BuildRng,
    ) -> JsonValue {
        let mut row = JsonValue::Object(Default::default());
        let Some(obj) = row.as_object_mut() else {
            return row;
        };
        let mut stride: usize = 1;
        for (j, fk) in t.fks.iter().enumerate() {
            let key = if let Some((_, parents)) = self_parents.filter(|(s, _)| *s == j) {
                parents.get(rng.random_range(0..parents.len().max(1)))
            } else {
                match &pools[j] {
                    Some(pool) if radix.contains(&j) => {
                        let k = pool.get((i / stride) % pool.len());
                        stride = stride.saturating_mul(pool.len());
                        k
                    }
                    Some(pool) => pool.get(rng.random_range(0..pool.len())),
                    None => None,
                }
            };
            if let Some(key) = key {
                for (c, v) in fk.columns.iter().zip(key) {
                    obj.insert(c.clone(), v.clone());
                }
            }
        }
        let mut values: Vec<Value> = Vec::with_capacity(t.columns.len());
        for (c, seen) in t.columns.iter().zip(seen.iter_mut()) {
            let mut attempts = 0;
            loop {
                let seq = self.seq.fetch_add(self.seq_step, Ordering::Relaxed);
                let v = c.values.draw(&mut Draw { rng, seq });
                attempts += 1;
                if !c.unique || attempts >= 32 || seen.insert(seen_key(&v)) {
                    values.push(v);
                    break;
                }
            }
        }
        for &(greater, lesser, strict) in &t.relations {
            let low = values[lesser].clone();
            values[greater].order_after(&low, strict, rng);
        }
        for (c, v) in t.columns.iter().zip(values) {
            obj.insert(c.name.clone(), v.into_json());
        }
        row
    }
}

/// How a drawn value is told apart from the others of a unique column: text compared as a
/// case-insensitive collation with trailing spaces ignored would (MySQL's and
/// MariaDB's default ones), so `'l'` is not drawn beside a lookup row's `'L'`.
fn seen_key(v: &Value) -> String {
    match v {
        Value::Text(s) => format!("{:?}", Value::Text(s.trim_end().to_lowercase())),
        other => format!("{other:?}"),
    }
}

/// Gives every row the caller's values.
fn set_values(rows: &mut [JsonValue], values: &[(String, JsonValue)]) {
    if values.is_empty() {
        return;
    }
    for row in rows {
        if let Some(obj) = row.as_object_mut() {
            for (c, v) in values {
                obj.insert(c.clone(), v.clone());
            }
        }
    }
}

/// The values of `columns` in each row (rows with a NULL among them left out).
fn keys_of(rows: &[JsonValue], columns: &[String]) -> Vec<Vec<JsonValue>> {
    rows.iter()
        .filter_map(|r| {
            let key: Vec<JsonValue> = columns
                .iter()
                .map(|c| r.get(c).cloned().unwrap_or(JsonValue::Null))
                .collect();
            (!key.iter().any(JsonValue::is_null)).then_some(key)
        })
        .collect()
}

/// The `INSERT` of generated rows into `table`, writing `columns`.
///
/// Every value goes in one `jsonb` parameter and is read with each column's own input function:
///
/// ```
/// use seedbed::bench::insert_sql;
/// use seedbed::sql::QualifiedName;
///
/// assert_eq!(
///     insert_sql(&QualifiedName::new("public", "order"), &["id", "placedAt"]),
///     r#"INSERT INTO "public"."order" AS "seedbed_new" ("id", "placedAt") SELECT "id", "placedAt" FROM jsonb_populate_recordset(NULL::"public"."order", $1) RETURNING to_jsonb("seedbed_new".*)"#
/// );
/// ```
pub fn insert_sql(table: &QualifiedName, columns: &[&str]) -> String {
    let list = quote_list(columns.iter().copied());
    let alias = quote_ident(ALIAS);
    if columns.is_empty() {
        format!(
            "INSERT INTO {table} AS {alias} SELECT FROM jsonb_populate_recordset(NULL::{table}, $1) \
             RETURNING to_jsonb({alias}.*)"
        )
    } else {
        format!(
            "INSERT INTO {table} AS {alias} ({list}) SELECT {list} FROM \
             jsonb_populate_recordset(NULL::{table}, $1) RETURNING to_jsonb({alias}.*)"
        )
    }
}

impl RowPlan {
    /// Inserts generated rows into `t` and reads back, from each row, the columns some foreign
    /// key of the plan references (PostgreSQL returns every column).
    async fn insert<W: RowWriter + ?Sized>(
        &self,
        conn: &mut W,
        t: &TablePlan,
        rows: Vec<JsonValue>,
    ) -> std::result::Result<Vec<JsonValue>, sqlx::Error> {
        // Columns set by the caller that the plan leaves to the database.
        let extra: Vec<String> = match rows.first() {
            Some(JsonValue::Object(first)) => first
                .keys()
                .filter(|c| {
                    !t.columns.iter().any(|p| &p.name == *c)
                        && !t.fks.iter().any(|fk| fk.columns.contains(c))
                })
                .cloned()
                .collect(),
            _ => Vec::new(),
        };
        // The columns any row sets, in table order.
        let mut columns: Vec<&str> = Vec::new();
        for fk in &t.fks {
            for c in &fk.columns {
                if !columns.contains(&c.as_str()) && rows.iter().any(|r| r.get(c).is_some()) {
                    columns.push(c);
                }
            }
        }
        for c in t.columns.iter().map(|c| &c.name).chain(&extra) {
            columns.push(c);
        }
        let mut returning: Vec<&str> = self
            .all_columns
            .get(&t.name)
            .map(|all| all.iter().map(String::as_str).collect())
            .unwrap_or_default();
        for fk in self.tables.iter().flat_map(|other| &other.fks) {
            if fk.parent == t.name {
                for c in &fk.parent_columns {
                    if !returning.contains(&c.as_str()) {
                        returning.push(c);
                    }
                }
            }
        }
        conn.insert_rows(&t.name, &columns, &returning, rows).await
    }
}

impl super::sealed::Sealed for PgConnection {}

#[async_trait::async_trait]
impl RowWriter for PgConnection {
    async fn insert_rows(
        &mut self,
        table: &QualifiedName,
        columns: &[&str],
        _returning: &[&str],
        rows: Vec<JsonValue>,
    ) -> std::result::Result<Vec<JsonValue>, sqlx::Error> {
        let sql = insert_sql(table, columns);
        sqlx::query_scalar::<_, JsonValue>(sqlx::AssertSqlSafe(sql))
            .bind(JsonValue::Array(rows))
            .fetch_all(self)
            .await
    }

    async fn execute(&mut self, sql: &'static str) -> std::result::Result<(), sqlx::Error> {
        sqlx::raw_sql(sql).execute(self).await.map(|_| ())
    }

    fn probe_setup(&self) -> Option<&'static str> {
        Some("SET CONSTRAINTS ALL IMMEDIATE")
    }
}

/// The column, the constraint and the message of a refused statement.
pub(crate) fn explain(e: &sqlx::Error) -> (Option<String>, Option<String>, String) {
    match e {
        sqlx::Error::Database(db) => {
            let mut message = db.message().to_string();
            let mut column = None;
            if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                if let Some(detail) = pg.detail() {
                    message.push_str(&format!(" ({detail})"));
                }
                column = pg.column().map(str::to_string);
            }
            (column, db.constraint().map(str::to_string), message)
        }
        other => (None, None, other.to_string()),
    }
}

pub(crate) fn rows_error(t: &TablePlan, rows: usize, e: sqlx::Error) -> Error {
    let (column, constraint, message) = explain(&e);
    let message = match column {
        Some(c) => format!("{message} (column {c})"),
        None => message,
    };
    Error::BenchRows {
        table: t.name.unquoted(),
        rows,
        constraint,
        message,
    }
}
