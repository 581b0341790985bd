//! The row generator on SQLite: the schema read through SQLite's catalog, its declared types read
//! as the generator's types, and rows written as one JSON parameter per statement, taken apart
//! by `json_each`.

use sqlx::{Sqlite, SqliteConnection};

use super::*;
use crate::backend::Introspect;

use crate::sql::{quote_list, quote_literal};

impl RowPlan {
    /// [`analyze`](Self::analyze) on a SQLite database: plans rows for every table of the
    /// databases `conn` has open (seedbed's own tables left out), then probes the plan by writing
    /// `rows` rows into every table in a transaction it rolls back.
    ///
    /// SQLite's declared types are read as the generator's types (`INTEGER` as a 64-bit integer,
    /// `VARCHAR(80)` as text of at most 80 characters, `BOOLEAN`, `DATE`, `TIMESTAMP`, `UUID`,
    /// `JSON`, `REAL`, `NUMERIC`, `BLOB`; anything else as text), and CHECK constraints as the
    /// table's SQL text writes them (`IN` lists, `BETWEEN`, `length(…)`, `GLOB` and `LIKE`
    /// patterns, comparisons).
    ///
    /// ```no_run
    /// # async fn demo(conn: &mut sqlx::SqliteConnection) -> Result<(), seedbed::Error> {
    /// let plan = seedbed::bench::RowPlan::analyze_sqlite(conn, 20).await?;
    /// let tables = plan.choose_tables(6, 42);
    /// plan.fill(conn, &tables, 20, 42).await?;
    /// # Ok(()) }
    /// ```
    pub async fn analyze_sqlite(conn: &mut SqliteConnection, rows: usize) -> Result<RowPlan> {
        RowPlan::analyze_sqlite_with(conn, Some(rows)).await
    }

    /// [`analyze_sqlite`](Self::analyze_sqlite), probing only when `probe` says how many rows
    /// per table.
    pub(crate) async fn analyze_sqlite_with(
        conn: &mut SqliteConnection,
        probe: Option<usize>,
    ) -> Result<RowPlan> {
        let schemas = <Sqlite as Introspect>::user_schemas(conn).await?;
        let names: Vec<&str> = schemas.iter().map(String::as_str).collect();
        let mut schema = <Sqlite as Introspect>::introspect(conn, &names).await?;
        schema.tables.retain(|t| is_application_table(&t.name.name));
        schema
            .foreign_keys
            .retain(|fk| is_application_table(&fk.table.name));
        for column in schema.tables.iter_mut().flat_map(|t| t.columns.iter_mut()) {
            let (mut type_name, sql_type) = generator_type(&column.sql_type);
            if type_name == "text"
                && let ColumnDefault::Expr(e) = &column.default
            {
                type_name = default_type(e).unwrap_or(type_name);
            }
            column.type_name = type_name.to_string();
            column.sql_type = sql_type;
        }
        let prefilled = sqlite_prefilled(conn, &schema).await?;
        let existing_max = sqlite_existing_max(conn, &schema, &prefilled).await?;
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

/// Whether a table of a SQLite database is the application's: not seedbed's own, nor sqlx's
/// record of migrations.
pub(crate) fn is_application_table(name: &str) -> bool {
    !name.starts_with("seedbed_") && name != "_sqlx_migrations"
}

/// The generator's type for a SQLite declared type, and the declared type as the generator reads
/// its length from (`varchar(80)`).
fn generator_type(declared: &str) -> (&'static str, String) {
    let d = declared.trim().to_ascii_lowercase();
    let base = d.split('(').next().unwrap_or("").trim();
    let name = match base {
        "boolean" | "bool" => "bool",
        "date" => "date",
        "datetime" | "timestamp" | "timestamptz" => "timestamptz",
        "time" => "time",
        "uuid" => "uuid",
        "json" | "jsonb" => "jsonb",
        "varchar" | "character varying" | "nvarchar" | "varying character" | "native character" => {
            "varchar"
        }
        "char" | "character" | "nchar" => "bpchar",
        "decimal" | "numeric" => "numeric",
        "blob" => "bytea",
        // SQLite's affinity rules, in their order.
        b if b.contains("int") => "int8",
        b if b.contains("char") || b.contains("clob") || b.contains("text") => "text",
        b if b.contains("real") || b.contains("floa") || b.contains("doub") => "float8",
        _ => "text",
    };
    (name, d)
}

/// The type a text column's default says it holds: dates and times are text on SQLite.
fn default_type(default: &str) -> Option<&'static str> {
    let d = default.to_ascii_lowercase();
    if d.contains("current_date") || d.starts_with("date(") || d.starts_with("(date(") {
        Some("date")
    } else if d.contains("current_timestamp")
        || d.contains("datetime(")
        || (d.contains("strftime(") && d.contains("'now'"))
    {
        Some("timestamptz")
    } else {
        None
    }
}

/// `json_object('a', "a", …)` over `columns` of `alias` (blobs as hex, which JSON can hold).
fn json_object(columns: &[&str]) -> String {
    let mut out = String::from("json_object(");
    for (i, c) in columns.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let q = quote_ident(c);
        out.push_str(&format!(
            "{}, iif(typeof({q}) = 'blob', hex({q}), {q})",
            quote_literal(c)
        ));
    }
    out.push(')');
    out
}

/// The JSON path of a key (`$."name"`).
fn json_path(column: &str) -> String {
    quote_literal(&format!("$.\"{}\"", column.replace('"', "\\\"")))
}

/// The `INSERT` of generated rows on SQLite: one JSON array parameter, taken apart by
/// `json_each`, each column read from its row's key.
fn sqlite_insert_sql(table: &QualifiedName, columns: &[&str], returning: &[&str]) -> String {
    let values: Vec<String> = columns
        .iter()
        .map(|c| format!("json_extract(value, {})", json_path(c)))
        .collect();
    format!(
        "INSERT INTO {table} ({}) SELECT {} FROM json_each(?1) ORDER BY key RETURNING {}",
        quote_list(columns.iter().copied()),
        values.join(", "),
        json_object(returning)
    )
}

/// Rows migrations inserted, per table (at most [`PREFILLED_LIMIT`] each).
async fn sqlite_prefilled(
    conn: &mut SqliteConnection,
    schema: &Schema,
) -> Result<HashMap<QualifiedName, Vec<JsonValue>>> {
    let mut out = HashMap::new();
    for t in schema.top_level_tables() {
        let columns: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
        let sql = format!("SELECT {} FROM {} LIMIT ?1", json_object(&columns), t.name);
        let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(PREFILLED_LIMIT)
            .fetch_all(&mut *conn)
            .await
            .map_err(Error::db(format!(
                "reading the rows of {}",
                t.name.unquoted()
            )))?;
        let rows: Vec<JsonValue> = rows.iter().filter_map(|r| r.parse().ok()).collect();
        if !rows.is_empty() {
            out.insert(t.name.clone(), rows);
        }
    }
    Ok(out)
}

/// The largest value of each unique integer column of the tables migrations filled.
async fn sqlite_existing_max(
    conn: &mut SqliteConnection,
    schema: &Schema,
    prefilled: &HashMap<QualifiedName, Vec<JsonValue>>,
) -> Result<HashMap<(QualifiedName, String), i64>> {
    let mut out = HashMap::new();
    for (t, c) in read::keyed_integer_columns(schema, prefilled) {
        let sql = format!(
            "SELECT max(CAST({} AS INTEGER)) FROM {}",
            quote_ident(c),
            t.name
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

impl sealed::Sealed for SqliteConnection {}

#[async_trait::async_trait]
impl RowWriter for SqliteConnection {
    async fn insert_rows(
        &mut self,
        table: &QualifiedName,
        columns: &[&str],
        returning: &[&str],
        rows: Vec<JsonValue>,
    ) -> std::result::Result<Vec<JsonValue>, sqlx::Error> {
        let returned: Vec<String> = if columns.is_empty() {
            let sql = format!(
                "INSERT INTO {table} DEFAULT VALUES RETURNING {}",
                json_object(returning)
            );
            let mut out = Vec::with_capacity(rows.len());
            for _ in &rows {
                out.push(
                    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.clone()))
                        .fetch_one(&mut *self)
                        .await?,
                );
            }
            out
        } else {
            let sql = sqlite_insert_sql(table, columns, returning);
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .bind(JsonValue::Array(rows).to_string())
                .fetch_all(&mut *self)
                .await?
        };
        returned
            .iter()
            .map(|r| r.parse().map_err(|e| sqlx::Error::Decode(Box::new(e))))
            .collect()
    }

    async fn execute(&mut self, sql: &'static str) -> std::result::Result<(), sqlx::Error> {
        sqlx::raw_sql(sql).execute(self).await.map(|_| ())
    }

    fn probe_setup(&self) -> Option<&'static str> {
        // Deferred keys are checked after each table instead (check_written).
        None
    }

    /// Deferred foreign keys are checked at the commit a probe never reaches: asks
    /// `pragma_foreign_key_check` instead.
    async fn check_written(
        &mut self,
        table: &QualifiedName,
    ) -> std::result::Result<(), sqlx::Error> {
        let broken: i64 =
            sqlx::query_scalar("SELECT count(*) FROM pragma_foreign_key_check(?1, ?2)")
                .bind(&table.name)
                .bind(&table.schema)
                .fetch_one(&mut *self)
                .await?;
        if broken == 0 {
            return Ok(());
        }
        Err(sqlx::Error::Protocol(format!(
            "FOREIGN KEY constraint failed: {broken} row(s) of {} reference no row (a deferred \
             key, checked at commit)",
            table.unquoted()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_types_map_by_name_then_affinity() {
        for (declared, expected) in [
            ("INTEGER", "int8"),
            ("BIGINT", "int8"),
            ("BOOLEAN", "bool"),
            ("VARCHAR(80)", "varchar"),
            ("TEXT", "text"),
            ("CLOB", "text"),
            ("DOUBLE PRECISION", "float8"),
            ("DECIMAL(10,2)", "numeric"),
            ("TIMESTAMP", "timestamptz"),
            ("BLOB", "bytea"),
            ("", "text"),
        ] {
            assert_eq!(generator_type(declared).0, expected, "{declared}");
        }
        assert_eq!(generator_type("VARCHAR(80)").1, "varchar(80)");
        assert_eq!(default_type("CURRENT_DATE"), Some("date"));
        assert_eq!(
            default_type("(strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))"),
            Some("timestamptz")
        );
        assert_eq!(default_type("'light'"), None);
    }

    #[test]
    fn inserts_take_one_json_parameter() {
        assert_eq!(
            sqlite_insert_sql(
                &QualifiedName::new("main", "order"),
                &["id", "placed At"],
                &["id"]
            ),
            "INSERT INTO \"main\".\"order\" (\"id\", \"placed At\") SELECT \
             json_extract(value, '$.\"id\"'), json_extract(value, '$.\"placed At\"') FROM \
             json_each(?1) ORDER BY key RETURNING json_object('id', iif(typeof(\"id\") = \
             'blob', hex(\"id\"), \"id\"))"
        );
    }
}
