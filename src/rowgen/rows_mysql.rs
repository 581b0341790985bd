//! The row generator on MySQL and MariaDB: the schema read through `information_schema`, MySQL's
//! column types read as the generator's, CHECK constraints as the server prints them, and rows
//! written as multi-row `INSERT … VALUES` with one bind parameter per value.
//!
//! A plan made on one database is written into others of the same schema (copies, slots): its
//! tables are named in [`SCHEMA`], a label, and written under their bare names, in the database
//! the writing connection is on.

use std::sync::{Arc, Mutex, OnceLock};

use chrono::{DateTime, Utc};
use sqlx::mysql::MySqlArguments;
use sqlx::{Arguments, MySql, MySqlConnection};

use super::*;
use crate::backend::Introspect;
use crate::backend::mysql::{Flavor, flavor};
use crate::schema::Check;
use crate::sql::{quote_mysql_ident, quote_mysql_list};

#[path = "rows_mysql_check.rs"]
mod check_text;
use self::check_text::check_text;

/// The schema the tables of a MySQL plan are named in ([`QualifiedName::schema`]): not the
/// database the plan was made on, since the plan is written into other databases of the same
/// schema, each through a connection to it. Messages read `db.users`: the table `users` of the
/// connection's database, whichever it is.
pub(crate) const SCHEMA: &str = "db";

/// The most bind parameters one MySQL statement takes.
const MAX_BIND_PARAMETERS: usize = 65_535;

impl RowPlan {
    /// [`analyze`](Self::analyze) on a MySQL or MariaDB database: plans rows for every table of
    /// the database `conn` is connected to (seedbed's own tables and `_sqlx_migrations` left
    /// out), then probes the plan by writing `rows` rows into every table in a transaction it
    /// rolls back.
    ///
    /// MySQL's column types are read as the generator's: the integer types with their own
    /// ranges (`tinyint unsigned` is 0 to 255, `year` 1901 to 2155, `bit(n)` 0 to 2ⁿ − 1),
    /// `tinyint(1)` as a boolean, `decimal(p,s)`, `float`, `double`, `char(n)`, `varchar(n)`,
    /// the text and blob types, `binary(n)` and `varbinary(n)` as text of at most `n`
    /// characters, `date`, `datetime`, `timestamp`, `time`, `json` (MariaDB's `longtext` with
    /// its `json_valid` check too), `enum` and `set` as their labels, and MariaDB's `uuid`.
    /// Columns of other types (`geometry`, `inet6`, …) are left to their defaults, or their
    /// table is skipped. CHECK constraints are read as the server prints them (comparisons,
    /// `IN` lists, `BETWEEN`, `char_length(…)`, `REGEXP` and `LIKE` patterns).
    ///
    /// The plan names its tables in the schema `db` (see [`tables`](Self::tables)) and writes
    /// them under their bare names: it fills any database of the same schema that the
    /// connection given to [`fill`](Self::fill) is on.
    ///
    /// MariaDB returns the rows it inserts (`RETURNING`); MySQL 8 does not, so there a child's
    /// rows learn their parents' `AUTO_INCREMENT` keys from `LAST_INSERT_ID()`, and keys other
    /// tables reference that a default expression would fill (`DEFAULT (UUID())`) are written by
    /// the generator instead.
    ///
    /// ```no_run
    /// # async fn demo(conn: &mut sqlx::MySqlConnection) -> Result<(), seedbed::Error> {
    /// let plan = seedbed::bench::RowPlan::analyze_mysql(conn, 20).await?;
    /// for skipped in plan.skipped() {
    ///     eprintln!("skipped {skipped}");
    /// }
    /// let tables = plan.choose_tables(6, 42);
    /// let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    /// plan.fill(&mut *tx, &tables, 20, 42).await?;
    /// # Ok(()) }
    /// ```
    pub async fn analyze_mysql(conn: &mut MySqlConnection, rows: usize) -> Result<RowPlan> {
        RowPlan::analyze_mysql_with(conn, Some(rows)).await
    }

    /// [`analyze_mysql`](Self::analyze_mysql), probing only when `probe` says how many rows
    /// per table.
    pub(crate) async fn analyze_mysql_with(
        conn: &mut MySqlConnection,
        probe: Option<usize>,
    ) -> Result<RowPlan> {
        let schemas = <MySql as Introspect>::user_schemas(conn).await?;
        let Some(database) = schemas.first().cloned() else {
            return Err(Error::Config(
                "the MySQL connection the rows are planned on has no database: connect to the \
                 migrated database (a URL ending in /name)"
                    .into(),
            ));
        };
        let mut schema = <MySql as Introspect>::introspect(conn, &[database.as_str()]).await?;
        schema.tables.retain(|t| is_application_table(&t.name.name));
        schema
            .foreign_keys
            .retain(|fk| is_application_table(&fk.table.name));
        relabel(&mut schema, &database);
        for table in &mut schema.tables {
            map_table(table);
        }
        let returns_rows = flavor(&mut *conn)
            .await
            .map_err(Error::db("reading the MySQL server's version"))?
            == Flavor::MariaDb;
        if !returns_rows {
            write_parent_keys(&mut schema);
        }
        let prefilled = mysql_prefilled(conn, &schema).await?;
        let existing_max = mysql_existing_max(conn, &schema, &prefilled).await?;
        let domains = HashMap::new();
        let cx = Context {
            schema: &schema,
            domains: &domains,
            prefilled: &prefilled,
            existing_max: &existing_max,
        };
        RowPlan::plan(conn, &cx, probe).await
    }
}

/// Whether a table of a MySQL database is the application's: not seedbed's own, nor sqlx's
/// record of migrations.
pub(crate) fn is_application_table(name: &str) -> bool {
    !name.starts_with("seedbed") && name != "_sqlx_migrations"
}

/// Names the tables of `database` in [`SCHEMA`], and the foreign keys that point at them.
/// Foreign keys into other databases keep naming those.
fn relabel(schema: &mut Schema, database: &str) {
    schema.schemas = vec![SCHEMA.to_string()];
    for t in &mut schema.tables {
        t.name.schema = SCHEMA.to_string();
    }
    for v in &mut schema.views {
        v.name.schema = SCHEMA.to_string();
    }
    for fk in &mut schema.foreign_keys {
        fk.table.schema = SCHEMA.to_string();
        if fk.references.schema == database {
            fk.references.schema = SCHEMA.to_string();
        }
    }
}

/// What the generator makes of a MySQL column type.
#[derive(Debug, Clone, PartialEq)]
struct Mapped {
    /// The generator's type (PostgreSQL's names: `int4`, `varchar`, `timestamptz`).
    type_name: String,
    /// The type the generator reads a length or a precision from (`varchar(80)`,
    /// `numeric(10,2)`).
    sql_type: String,
    /// The type's own bounds, where they are narrower than the generator type's: the lowest
    /// and the highest value, and the name of the check that says so.
    bounds: Option<Bounds>,
}

/// The range of a MySQL numeric type, as a check on its column.
#[derive(Debug, Clone, PartialEq)]
struct Bounds {
    lower: Option<i128>,
    upper: Option<i128>,
    name: String,
}

impl Bounds {
    /// Bounds named `range of {name}`.
    fn new(lower: Option<i128>, upper: Option<i128>, name: &str) -> Option<Bounds> {
        Some(Bounds {
            lower,
            upper,
            name: format!("range of {name}"),
        })
    }

    /// The check, in the text the check reader understands (`"qty" >= 0 AND "qty" <= 255`).
    fn check(&self, column: &str) -> Check {
        let c = quote_ident(column);
        let parts: Vec<String> = [
            self.lower.map(|n| format!("{c} >= {n}")),
            self.upper.map(|n| format!("{c} <= {n}")),
        ]
        .into_iter()
        .flatten()
        .collect();
        Check {
            name: self.name.clone(),
            definition: parts.join(" AND "),
            columns: vec![column.to_string()],
        }
    }
}

/// Has the generator write the keys other tables reference that the server would fill in from
/// an expression (`DEFAULT (UUID())`), for MySQL 8, which returns no rows from an `INSERT`: the
/// referencing rows could not learn them. Where the default makes UUIDs and the column holds
/// their 36 characters, the generator writes UUIDs. (`AUTO_INCREMENT` keys are read from
/// `LAST_INSERT_ID()` instead.)
fn write_parent_keys(schema: &mut Schema) {
    let referenced: HashSet<(QualifiedName, String)> = schema
        .foreign_keys
        .iter()
        .flat_map(|fk| {
            fk.referenced_columns
                .iter()
                .map(|c| (fk.references.clone(), c.clone()))
        })
        .collect();
    for t in &mut schema.tables {
        for c in &mut t.columns {
            if !referenced.contains(&(t.name.clone(), c.name.clone())) {
                continue;
            }
            let ColumnDefault::Expr(e) = &c.default else {
                continue;
            };
            let makes_uuids = e.to_ascii_lowercase().contains("uuid(");
            let holds_uuids = matches!(c.type_name.as_str(), "bpchar" | "varchar")
                && modifier(&c.sql_type).is_some_and(|(n, _)| n >= 36);
            if makes_uuids && holds_uuids {
                c.type_name = "uuid".to_string();
            }
            c.default = ColumnDefault::None;
        }
    }
}

/// Reads one table's column types as the generator's, its checks in the text the check reader
/// understands, and adds the checks the types' ranges make.
fn map_table(table: &mut Table) {
    for check in &mut table.checks {
        check.definition = check_text(&check.definition);
    }
    let mut checks = Vec::new();
    for column in &mut table.columns {
        if !column.enum_labels.is_empty() {
            // ENUM and SET: their labels are the values.
            continue;
        }
        let mapped = generator_type(&column.sql_type, &column.type_name);
        if let Some(bounds) = &mapped.bounds {
            checks.push(bounds.check(&column.name));
        }
        column.type_name = mapped.type_name;
        column.sql_type = mapped.sql_type;
    }
    table.checks.extend(checks);
}

/// The `(n)` or `(p,s)` of a MySQL column type.
fn modifier(column_type: &str) -> Option<(u32, Option<u32>)> {
    let inner = column_type.split_once('(')?.1.split_once(')')?.0;
    match inner.split_once(',') {
        Some((a, b)) => Some((a.trim().parse().ok()?, b.trim().parse().ok())),
        None => Some((inner.trim().parse().ok()?, None)),
    }
}

/// The generator's type for a MySQL column: `column_type` as `information_schema.COLUMNS`
/// writes it (`int(10) unsigned`, `decimal(10,2)`), `data_type` its lowercase base name.
fn generator_type(column_type: &str, data_type: &str) -> Mapped {
    let lower = column_type.trim().to_ascii_lowercase();
    let unsigned = lower.split_whitespace().any(|w| w == "unsigned");
    let m = modifier(&lower);
    let keep = |type_name: &str| Mapped {
        type_name: type_name.to_string(),
        sql_type: column_type.to_string(),
        bounds: None,
    };
    let int = |type_name: &str, lo: i128, hi: i128, name: &str| Mapped {
        type_name: type_name.to_string(),
        sql_type: column_type.to_string(),
        bounds: Bounds::new(Some(lo), Some(hi), name),
    };
    // Exact decimals (and floats given a precision): numeric(p,s), at least 0 when unsigned.
    let numeric = |p: u32, s: u32| Mapped {
        type_name: "numeric".to_string(),
        sql_type: format!("numeric({p},{s})"),
        bounds: if unsigned {
            Bounds::new(Some(0), None, &format!("{data_type} unsigned"))
        } else {
            None
        },
    };
    let float = |type_name: &str| Mapped {
        bounds: if unsigned {
            Bounds::new(Some(0), None, &format!("{data_type} unsigned"))
        } else {
            None
        },
        ..keep(type_name)
    };
    match data_type {
        "bool" | "boolean" => keep("bool"),
        "tinyint" if !unsigned && m == Some((1, None)) => keep("bool"),
        "tinyint" if unsigned => int("int2", 0, 255, "tinyint unsigned"),
        "tinyint" => int("int2", -128, 127, "tinyint"),
        "smallint" if unsigned => int("int4", 0, 65_535, "smallint unsigned"),
        "smallint" => keep("int2"),
        "mediumint" if unsigned => int("int4", 0, 16_777_215, "mediumint unsigned"),
        "mediumint" => int("int4", -8_388_608, 8_388_607, "mediumint"),
        "int" | "integer" if unsigned => int("int8", 0, 4_294_967_295, "int unsigned"),
        "int" | "integer" => keep("int4"),
        "bigint" if unsigned => Mapped {
            bounds: Bounds::new(Some(0), None, "bigint unsigned"),
            ..keep("int8")
        },
        "bigint" => keep("int8"),
        "decimal" | "numeric" | "dec" | "fixed" => match m {
            Some((p, s)) => numeric(p, s.unwrap_or(0)),
            None => numeric(10, 0),
        },
        "float" => match m {
            Some((p, Some(s))) => numeric(p, s),
            _ => float("float4"),
        },
        "double" | "real" | "double precision" => match m {
            Some((p, Some(s))) => numeric(p, s),
            _ => float("float8"),
        },
        "bit" => {
            let bits = m.map_or(1, |(n, _)| n).clamp(1, 64);
            let hi = (1i128 << bits) - 1;
            let name = format!("bit({bits})");
            match bits {
                1..=15 => int("int2", 0, hi, &name),
                16..=31 => int("int4", 0, hi, &name),
                _ => int("int8", 0, hi.min(i128::from(i64::MAX)), &name),
            }
        }
        "year" => int("int2", 1901, 2155, "year"),
        "char" | "binary" => keep("bpchar"),
        "varchar" | "varbinary" => keep("varchar"),
        "tinytext" | "tinyblob" => Mapped {
            sql_type: "varchar(255)".to_string(),
            ..keep("varchar")
        },
        "text" | "mediumtext" | "longtext" | "blob" | "mediumblob" | "longblob" => keep("text"),
        "date" => keep("date"),
        "datetime" | "timestamp" => keep("timestamptz"),
        "time" => keep("time"),
        "json" => keep("jsonb"),
        "uuid" => keep("uuid"),
        "inet4" => keep("inet"),
        other => keep(other),
    }
}

/// `CAST(JSON_OBJECT(?, `a`, ?, `b`) AS CHAR)`: the row as JSON text, its keys bound as
/// parameters (the text cast, so MySQL 8's JSON type reads as MariaDB's text does), each column
/// read as [`json_value`] says from its type in `types`.
fn json_object(columns: &[&str], types: &TableColumns) -> String {
    let pairs: Vec<String> = columns
        .iter()
        .map(|c| format!("?, {}", json_value(c, types.data_type(c))))
        .collect();
    format!("CAST(JSON_OBJECT({}) AS CHAR)", pairs.join(", "))
}

/// How a column of MySQL type `data_type` goes into `JSON_OBJECT`, which copies the bytes of
/// binary values into its text as they are: `bit(n)` as its number, binary strings and blobs as
/// text (the generator writes text into them), spatial values as their WKT; the rest as it is.
fn json_value(column: &str, data_type: &str) -> String {
    let c = quote_mysql_ident(column);
    match data_type {
        "bit" => format!("CAST({c} AS UNSIGNED)"),
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => {
            format!("CAST({c} AS CHAR)")
        }
        "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring"
        | "multipolygon" | "geometrycollection" => format!("ST_AsText({c})"),
        _ => c,
    }
}

/// The `INSERT` of `rows` rows into `table` (its bare name), writing `columns`, each value a
/// bind parameter; with `returning` columns, MariaDB's `RETURNING` of each row as JSON text.
///
/// ```text
/// INSERT INTO `order` (`id`, `placed At`) VALUES (?, ?), (?, ?)
///     RETURNING CAST(JSON_OBJECT(?, `id`) AS CHAR)
/// ```
fn insert_sql(
    table: &str,
    columns: &[&str],
    rows: usize,
    returning: &[&str],
    types: &TableColumns,
) -> String {
    let placeholders = vec!["?"; columns.len()].join(", ");
    let tuple = format!("({placeholders})");
    let mut sql = format!(
        "INSERT INTO {} ({}) VALUES {}",
        quote_mysql_ident(table),
        quote_mysql_list(columns.iter().copied()),
        vec![tuple.as_str(); rows.max(1)].join(", ")
    );
    if !returning.is_empty() {
        sql.push_str(" RETURNING ");
        sql.push_str(&json_object(returning, types));
    }
    sql
}

/// How many rows one `INSERT` of `columns` takes, its `returned` keys bound too, within
/// [`MAX_BIND_PARAMETERS`].
fn rows_per_statement(columns: usize, returned: usize) -> usize {
    (MAX_BIND_PARAMETERS.saturating_sub(returned) / columns.max(1)).max(1)
}

/// The text MySQL takes for a generated value: an RFC 3339 time (what the generator writes for
/// timestamps) as `YYYY-MM-DD HH:MM:SS[.ffffff]` in UTC, which `DATETIME` and `TIMESTAMP`
/// columns take in strict mode; other values as they are.
fn mysql_value(value: JsonValue) -> JsonValue {
    match value {
        JsonValue::String(s) => match mysql_datetime(&s) {
            Some(t) => JsonValue::String(t),
            None => JsonValue::String(s),
        },
        other => other,
    }
}

/// `2026-03-01T10:00:00.123456+02:00` as `2026-03-01 08:00:00.123456`; `None` for text that is
/// not an RFC 3339 time.
fn mysql_datetime(text: &str) -> Option<String> {
    let t = DateTime::parse_from_rfc3339(text).ok()?.with_timezone(&Utc);
    let format = if t.timestamp_subsec_micros() == 0 {
        "%Y-%m-%d %H:%M:%S"
    } else {
        "%Y-%m-%d %H:%M:%S%.6f"
    };
    Some(t.format(format).to_string())
}

/// Binds one value by its JSON kind; a missing key as NULL.
fn bind(
    args: &mut MySqlArguments,
    value: Option<&JsonValue>,
) -> std::result::Result<(), sqlx::Error> {
    let added = match value {
        None | Some(JsonValue::Null) => args.add(Option::<String>::None),
        Some(JsonValue::Bool(b)) => args.add(*b),
        Some(JsonValue::Number(n)) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => args.add(i),
            (None, Some(u)) => args.add(u),
            (None, None) => args.add(n.as_f64().unwrap_or_default()),
        },
        Some(JsonValue::String(s)) => args.add(s.clone()),
        Some(other) => args.add(other.to_string()),
    };
    added.map_err(sqlx::Error::Encode)
}

/// Parses a row read as JSON text.
fn parse_row(text: &[u8]) -> std::result::Result<JsonValue, sqlx::Error> {
    let text = std::str::from_utf8(text).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    text.parse().map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

/// Gives `column` of each row the key MySQL generated for it: `first` for the first row, then
/// steps of `step` (`@@auto_increment_increment`), as InnoDB numbers the rows of one multi-row
/// `INSERT`.
fn fill_generated(rows: &mut [JsonValue], column: &str, first: u64, step: u64) {
    let mut next = first;
    for row in rows {
        if let Some(obj) = row.as_object_mut() {
            obj.insert(column.to_string(), JsonValue::from(next));
        }
        next = next.saturating_add(step);
    }
}

/// What the writer reads of a table's columns from the catalog: their MySQL types and the
/// `AUTO_INCREMENT` column.
#[derive(Debug, Clone, Default)]
struct TableColumns {
    data_types: HashMap<String, String>,
    auto_increment: Option<String>,
}

impl TableColumns {
    /// The MySQL type of `column` (`""` when unknown).
    fn data_type(&self, column: &str) -> &str {
        self.data_types.get(column).map_or("", String::as_str)
    }
}

/// The columns of `table` in the connection's database, asked of the catalog once per process
/// for each table and list of `columns` (the plan's: a plan is written into copies of one
/// schema).
async fn table_columns(
    conn: &mut MySqlConnection,
    table: &str,
    columns: &[&str],
) -> std::result::Result<Arc<TableColumns>, sqlx::Error> {
    type Cache = Mutex<HashMap<(String, Vec<String>), Arc<TableColumns>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let key = (
        table.to_string(),
        columns.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
    );
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(known) = cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
        return Ok(known);
    }
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT CAST(COLUMN_NAME AS CHAR), CAST(DATA_TYPE AS CHAR), CAST(EXTRA AS CHAR) \
         FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
    )
    .bind(table)
    .fetch_all(&mut *conn)
    .await?;
    let mut out = TableColumns::default();
    for (name, data_type, extra) in rows {
        if extra.to_ascii_lowercase().contains("auto_increment") {
            out.auto_increment = Some(name.clone());
        }
        out.data_types.insert(name, data_type.to_ascii_lowercase());
    }
    let out = Arc::new(out);
    if let Ok(mut c) = cache.lock() {
        c.insert(key, Arc::clone(&out));
    }
    Ok(out)
}

/// Rows migrations inserted, per table (at most [`PREFILLED_LIMIT`] each), as
/// `JSON_OBJECT` gives them (booleans as 0 and 1, times as `YYYY-MM-DD HH:MM:SS`).
async fn mysql_prefilled(
    conn: &mut MySqlConnection,
    schema: &Schema,
) -> Result<HashMap<QualifiedName, Vec<JsonValue>>> {
    let mut out = HashMap::new();
    for t in schema.top_level_tables() {
        let columns: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
        if columns.is_empty() {
            continue;
        }
        let context = || format!("reading the rows of {}", t.name.unquoted());
        let types = table_columns(conn, &t.name.name, &columns)
            .await
            .map_err(Error::db(context()))?;
        let sql = format!(
            "SELECT {} FROM {} LIMIT ?",
            json_object(&columns, &types),
            quote_mysql_ident(&t.name.name)
        );
        let mut args = MySqlArguments::default();
        for c in &columns {
            args.add(*c)
                .map_err(|e| Error::db(context())(sqlx::Error::Encode(e)))?;
        }
        args.add(PREFILLED_LIMIT)
            .map_err(|e| Error::db(context())(sqlx::Error::Encode(e)))?;
        let rows: Vec<Vec<u8>> = sqlx::query_scalar_with(sqlx::AssertSqlSafe(sql), args)
            .fetch_all(&mut *conn)
            .await
            .map_err(Error::db(context()))?;
        let rows: Vec<JsonValue> = rows.iter().filter_map(|r| parse_row(r).ok()).collect();
        if !rows.is_empty() {
            out.insert(t.name.clone(), rows);
        }
    }
    Ok(out)
}

/// The largest value of each unique integer column of the tables migrations filled.
async fn mysql_existing_max(
    conn: &mut MySqlConnection,
    schema: &Schema,
    prefilled: &HashMap<QualifiedName, Vec<JsonValue>>,
) -> Result<HashMap<(QualifiedName, String), i64>> {
    let mut out = HashMap::new();
    for (t, c) in read::keyed_integer_columns(schema, prefilled) {
        let sql = format!(
            "SELECT CAST(MAX({}) AS SIGNED) FROM {}",
            quote_mysql_ident(c),
            quote_mysql_ident(&t.name.name)
        );
        let max: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(&mut *conn)
            .await
            .map_err(Error::db(format!(
                "reading the largest {c} of {}",
                t.name.unquoted()
            )))?;
        if let Some(m) = max {
            out.insert((t.name.clone(), c.clone()), m);
        }
    }
    Ok(out)
}

impl sealed::Sealed for MySqlConnection {}

/// Rows are written into the table of `table`'s bare name in the connection's database. MariaDB
/// returns them from the `INSERT` (`RETURNING`, each row as `JSON_OBJECT` gives it). MySQL 8
/// returns no rows: the rows given are returned, their times as written, with the key of the
/// table's `AUTO_INCREMENT` column filled in (from `LAST_INSERT_ID()` on); other columns the
/// server fills (defaults, generated columns) are absent from them. The types of a table's
/// columns and its `AUTO_INCREMENT` column are read from the catalog once per process.
#[async_trait::async_trait]
impl RowWriter for MySqlConnection {
    async fn insert_rows(
        &mut self,
        table: &QualifiedName,
        columns: &[&str],
        returning: &[&str],
        rows: Vec<JsonValue>,
    ) -> std::result::Result<Vec<JsonValue>, sqlx::Error> {
        let rows: Vec<JsonValue> = rows
            .into_iter()
            .map(|row| match row {
                JsonValue::Object(obj) => {
                    JsonValue::Object(obj.into_iter().map(|(k, v)| (k, mysql_value(v))).collect())
                }
                other => other,
            })
            .collect();
        let mariadb = flavor(&mut *self).await? == Flavor::MariaDb;
        let returned: &[&str] = if mariadb { returning } else { &[] };
        let missing: Vec<&str> = returning
            .iter()
            .filter(|c| !columns.contains(c))
            .copied()
            .collect();
        let types = table_columns(self, &table.name, returning).await?;
        let mut out = Vec::with_capacity(rows.len());
        for chunk in rows.chunks(rows_per_statement(columns.len(), returned.len())) {
            let sql = insert_sql(&table.name, columns, chunk.len(), returned, &types);
            let mut args = MySqlArguments::default();
            for row in chunk {
                for c in columns {
                    bind(&mut args, row.get(*c))?;
                }
            }
            for c in returned {
                args.add(*c).map_err(sqlx::Error::Encode)?;
            }
            if mariadb {
                let texts: Vec<Vec<u8>> = sqlx::query_scalar_with(sqlx::AssertSqlSafe(sql), args)
                    .fetch_all(&mut *self)
                    .await?;
                for text in &texts {
                    out.push(parse_row(text)?);
                }
                continue;
            }
            let done = sqlx::query_with(sqlx::AssertSqlSafe(sql), args)
                .execute(&mut *self)
                .await?;
            let mut written = chunk.to_vec();
            let first = done.last_insert_id();
            if first > 0
                && let Some(column) = &types.auto_increment
                && missing.contains(&column.as_str())
            {
                let step: u64 =
                    sqlx::query_scalar("SELECT CAST(@@auto_increment_increment AS UNSIGNED)")
                        .fetch_one(&mut *self)
                        .await?;
                fill_generated(&mut written, column, first, step.max(1));
            }
            out.extend(written);
        }
        Ok(out)
    }

    async fn execute(&mut self, sql: &'static str) -> std::result::Result<(), sqlx::Error> {
        sqlx::raw_sql(sql).execute(self).await.map(|_| ())
    }

    fn probe_setup(&self) -> Option<&'static str> {
        // InnoDB checks every foreign key at each statement: nothing is deferred.
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rowgen::check::{Pattern, TableRules};

    fn rules(clause: &str) -> TableRules {
        let mut t = TableRules::default();
        t.add_check("c", &check_text(clause), &|n| Some(n.to_string()), &|_| {
            false
        });
        t
    }

    #[test]
    fn column_types_map_to_the_generators() {
        let cases = [
            ("tinyint(1)", "tinyint", "bool", None),
            (
                "tinyint(4)",
                "tinyint",
                "int2",
                Some((Some(-128), Some(127))),
            ),
            (
                "tinyint(3) unsigned",
                "tinyint",
                "int2",
                Some((Some(0), Some(255))),
            ),
            ("smallint(6)", "smallint", "int2", None),
            (
                "smallint unsigned",
                "smallint",
                "int4",
                Some((Some(0), Some(65_535))),
            ),
            (
                "mediumint(9)",
                "mediumint",
                "int4",
                Some((Some(-8_388_608), Some(8_388_607))),
            ),
            ("int(11)", "int", "int4", None),
            (
                "int(10) unsigned",
                "int",
                "int8",
                Some((Some(0), Some(4_294_967_295))),
            ),
            ("bigint(20)", "bigint", "int8", None),
            ("bigint unsigned", "bigint", "int8", Some((Some(0), None))),
            ("decimal(12,2)", "decimal", "numeric", None),
            (
                "decimal(10,2) unsigned",
                "decimal",
                "numeric",
                Some((Some(0), None)),
            ),
            ("float", "float", "float4", None),
            ("double", "double", "float8", None),
            ("char(36)", "char", "bpchar", None),
            ("varchar(80)", "varchar", "varchar", None),
            ("binary(16)", "binary", "bpchar", None),
            ("varbinary(255)", "varbinary", "varchar", None),
            ("tinytext", "tinytext", "varchar", None),
            ("longtext", "longtext", "text", None),
            ("blob", "blob", "text", None),
            ("date", "date", "date", None),
            ("datetime(6)", "datetime", "timestamptz", None),
            ("timestamp", "timestamp", "timestamptz", None),
            ("time", "time", "time", None),
            ("year(4)", "year", "int2", Some((Some(1901), Some(2155)))),
            ("json", "json", "jsonb", None),
            ("bit(3)", "bit", "int2", Some((Some(0), Some(7)))),
            (
                "bit(64)",
                "bit",
                "int8",
                Some((Some(0), Some(i128::from(i64::MAX)))),
            ),
            ("uuid", "uuid", "uuid", None),
            ("geometry", "geometry", "geometry", None),
            ("inet6", "inet6", "inet6", None),
        ];
        for (column_type, data_type, expected, bounds) in cases {
            let m = generator_type(column_type, data_type);
            assert_eq!(m.type_name, expected, "{column_type}");
            assert_eq!(
                m.bounds.as_ref().map(|b| (b.lower, b.upper)),
                bounds,
                "{column_type}"
            );
        }
        assert_eq!(
            generator_type("decimal(12,2)", "decimal").sql_type,
            "numeric(12,2)"
        );
        assert_eq!(
            generator_type("double(8,3)", "double").sql_type,
            "numeric(8,3)"
        );
        assert_eq!(
            generator_type("tinytext", "tinytext").sql_type,
            "varchar(255)"
        );
        assert_eq!(
            generator_type("varchar(80)", "varchar").sql_type,
            "varchar(80)"
        );
        let bounds = generator_type("tinyint(3) unsigned", "tinyint").bounds;
        let check = bounds.map(|b| b.check("qty"));
        assert_eq!(
            check
                .as_ref()
                .map(|c| (c.name.as_str(), c.definition.as_str())),
            Some((
                "range of tinyint unsigned",
                "\"qty\" >= 0 AND \"qty\" <= 255"
            ))
        );
    }

    #[test]
    fn type_ranges_bound_the_values() {
        let mut t = TableRules::default();
        let check = generator_type("mediumint(9)", "mediumint")
            .bounds
            .map(|b| b.check("n"))
            .unwrap();
        t.add_check(
            &check.name,
            &check.definition,
            &|n| Some(n.to_string()),
            &|_| false,
        );
        let n = t.column("n").unwrap();
        assert_eq!(n.lower.as_ref().unwrap().0.number, Some(-8_388_608.0));
        assert_eq!(n.upper.as_ref().unwrap().0.number, Some(8_388_607.0));
        assert!(n.opaque.is_empty());
    }

    #[test]
    fn mariadb_checks_read_as_the_check_reader_understands() {
        assert_eq!(
            check_text("`qty` > 0 and `status` in ('a','b')"),
            "\"qty\" > 0 and \"status\" in ('a', 'b')"
        );
        assert_eq!(
            check_text("`it``s \"x\"` <> 'don''t' and `b` <> 'c\\'d'"),
            "\"it`s \"\"x\"\"\" <> 'don''t' and \"b\" <> 'c''d'"
        );
        assert_eq!(
            check_text("`key` regexp '^[A-Z][A-Z0-9]' and !(`key` regexp '[^A-Z0-9]')"),
            "\"key\" ~ '^[A-Z][A-Z0-9][A-Z0-9]*$' and (\"key\" NOT GLOB '*[^A-Z0-9]*')"
        );
        assert_eq!(
            check_text("`email` regexp '^[^@]+@[^@]+$' and !(`email` regexp '[[:space:]]')"),
            "\"email\" ~ '^[^@]+@[^@]+$' and (\"email\" !~ '[[:space:]]')"
        );
        let r =
            rules("`qty` > 0 and `status` in ('a','b') and char_length(`note`) between 1 and 9");
        assert_eq!(
            r.column("qty").unwrap().lower.as_ref().unwrap().0.number,
            Some(0.0)
        );
        assert_eq!(
            r.column("status").unwrap().one_of.as_deref(),
            Some(&["a".to_string(), "b".to_string()][..])
        );
        assert_eq!(r.column("note").unwrap().max_len, Some(9));
        let ip = rules("`ip` <> '' and !(`ip` regexp '[^0-9A-Fa-f.:/]')");
        assert_eq!(
            ip.column("ip").unwrap().chars.as_deref(),
            Some("0-9A-Fa-f.:/")
        );
        assert!(
            rules("json_valid(`payload`)")
                .column("payload")
                .unwrap()
                .json
        );
        let key = rules("`key` regexp '^[A-Z][A-Z0-9]' and !(`key` regexp '[^A-Z0-9]')");
        assert_eq!(
            key.column("key").unwrap().patterns,
            [Pattern::Regex("^[A-Z][A-Z0-9][A-Z0-9]*$".into())]
        );
        assert_eq!(key.column("key").unwrap().chars.as_deref(), Some("A-Z0-9"));
        assert!(key.column("key").unwrap().opaque.is_empty());
    }

    #[test]
    fn mysql_checks_lose_their_escapes_and_introducers() {
        assert_eq!(check_text("(`qty` > 0)"), "(\"qty\" > 0)");
        assert_eq!(
            check_text("(`status` in (_utf8mb4\\'a\\',_utf8mb4\\'it\\\\\\'s\\'))"),
            "(\"status\" in ('a', 'it''s'))"
        );
        assert_eq!(
            check_text(
                "(regexp_like(`key`,_utf8mb4'^[A-Z][A-Z0-9]') and \
                 (not(regexp_like(`key`,_utf8mb4'[^A-Z0-9]'))))"
            ),
            "((\"key\" ~ '^[A-Z][A-Z0-9][A-Z0-9]*$') and ((\"key\" NOT GLOB '*[^A-Z0-9]*')))"
        );
        let r = rules("((`ends_at` is null) or (`ends_at` > `started_at`)) && (`n` >= -5)");
        assert_eq!(
            r.column("n").unwrap().lower.as_ref().unwrap().0.number,
            Some(-5.0)
        );
        // A prefix is not confined where an OR may let other values through.
        assert_eq!(
            check_text("`a` regexp '^x' or !(`a` regexp '[^a-z]')"),
            "\"a\" ~ '^x' or (\"a\" NOT GLOB '*[^a-z]*')"
        );
    }

    #[test]
    fn times_are_written_as_mysql_datetimes() {
        assert_eq!(
            mysql_datetime("2026-03-01T10:00:00.123456789+02:00").as_deref(),
            Some("2026-03-01 08:00:00.123456")
        );
        assert_eq!(
            mysql_datetime("2026-03-01T10:00:00+00:00").as_deref(),
            Some("2026-03-01 10:00:00")
        );
        assert_eq!(mysql_datetime("2026-03-01"), None);
        assert_eq!(mysql_datetime("word 2026-03-01T10:00:00Z"), None);
        assert_eq!(
            mysql_value(JsonValue::from("2026-03-01T10:00:00Z")),
            JsonValue::from("2026-03-01 10:00:00")
        );
        assert_eq!(mysql_value(JsonValue::from(3)), JsonValue::from(3));
    }

    #[test]
    fn inserts_bind_every_value_and_quote_the_bare_table_name() {
        let types = TableColumns {
            data_types: [("flags".to_string(), "bit".to_string())].into(),
            auto_increment: Some("id".into()),
        };
        assert_eq!(
            insert_sql("order`s", &["id", "placed At"], 2, &["id", "flags"], &types),
            "INSERT INTO `order``s` (`id`, `placed At`) VALUES (?, ?), (?, ?) RETURNING \
             CAST(JSON_OBJECT(?, `id`, ?, CAST(`flags` AS UNSIGNED)) AS CHAR)"
        );
        assert_eq!(
            insert_sql("t", &[], 3, &[], &TableColumns::default()),
            "INSERT INTO `t` () VALUES (), (), ()"
        );
        assert_eq!(json_value("h", "varbinary"), "CAST(`h` AS CHAR)");
        assert_eq!(json_value("g", "point"), "ST_AsText(`g`)");
        assert_eq!(json_value("n", "int"), "`n`");
        assert_eq!(rows_per_statement(10, 5), 6_553);
        assert_eq!(rows_per_statement(0, 0), 65_535);
        assert_eq!(rows_per_statement(70_000, 0), 1);
    }

    #[test]
    fn mysql_fills_in_the_keys_it_generated() {
        let mut rows = vec![
            serde_json::json!({"name": "a"}),
            serde_json::json!({"name": "b"}),
            serde_json::json!({"name": "c"}),
        ];
        fill_generated(&mut rows, "id", 41, 2);
        let ids: Vec<&JsonValue> = rows.iter().map(|r| &r["id"]).collect();
        assert_eq!(
            ids,
            [
                &JsonValue::from(41),
                &JsonValue::from(43),
                &JsonValue::from(45)
            ]
        );
    }

    #[test]
    fn keys_mysql_cannot_return_are_written_by_the_generator() {
        let column = |name: &str, sql_type: &str, default: &str| crate::schema::Column {
            name: name.into(),
            sql_type: sql_type.into(),
            type_name: if sql_type.starts_with("char") {
                "bpchar"
            } else {
                "varchar"
            }
            .into(),
            type_schema: String::new(),
            type_kind: 'b',
            domain_base: None,
            enum_labels: Vec::new(),
            not_null: true,
            default: ColumnDefault::Expr(default.into()),
            position: 1,
        };
        let table = Table {
            name: QualifiedName::new(SCHEMA, "projects"),
            oid: 1,
            kind: crate::schema::TableKind::Ordinary,
            columns: vec![
                column("id", "char(36)", "uuid()"),
                column("code", "varchar(8)", "'x'"),
                column("note", "varchar(80)", "uuid()"),
            ],
            primary_key: vec!["id".into()],
            unique_keys: Vec::new(),
            checks: Vec::new(),
        };
        let mut schema = Schema {
            schemas: vec![SCHEMA.into()],
            tables: vec![table],
            foreign_keys: vec![crate::schema::ForeignKey {
                name: "fk".into(),
                table: QualifiedName::new(SCHEMA, "issues"),
                columns: vec!["project_id".into(), "project_code".into()],
                references: QualifiedName::new(SCHEMA, "projects"),
                referenced_columns: vec!["id".into(), "code".into()],
                deferrable: false,
                initially_deferred: false,
                on_delete: crate::schema::FkAction::NoAction,
                nullable: false,
            }],
            views: Vec::new(),
        };
        write_parent_keys(&mut schema);
        let columns = &schema.tables[0].columns;
        assert_eq!(
            (columns[0].type_name.as_str(), &columns[0].default),
            ("uuid", &ColumnDefault::None)
        );
        assert_eq!(
            (columns[1].type_name.as_str(), &columns[1].default),
            ("varchar", &ColumnDefault::None)
        );
        // Not referenced: the server's default stays.
        assert_eq!(columns[2].default, ColumnDefault::Expr("uuid()".into()));
    }

    #[test]
    fn plans_name_tables_in_the_label_not_the_database() {
        let fk = |table: &str, schema: &str, references: &str| crate::schema::ForeignKey {
            name: "fk".into(),
            table: QualifiedName::new("app_1", table),
            columns: vec!["a".into()],
            references: QualifiedName::new(schema, references),
            referenced_columns: vec!["id".into()],
            deferrable: false,
            initially_deferred: false,
            on_delete: crate::schema::FkAction::NoAction,
            nullable: false,
        };
        let mut schema = Schema {
            schemas: vec!["app_1".into()],
            tables: Vec::new(),
            foreign_keys: vec![fk("b", "app_1", "a"), fk("b", "other", "a")],
            views: Vec::new(),
        };
        relabel(&mut schema, "app_1");
        assert_eq!(
            schema.foreign_keys[0].references,
            QualifiedName::new("db", "a")
        );
        assert_eq!(schema.foreign_keys[0].table.unquoted(), "db.b");
        assert_eq!(
            schema.foreign_keys[1].references,
            QualifiedName::new("other", "a")
        );
        assert!(is_application_table("issues"));
        assert!(!is_application_table("seedbed__journal"));
        assert!(!is_application_table("_sqlx_migrations"));
    }
}
