//! Factories' statements on MySQL: sea-query's MySQL builder, multi-row `VALUES` within the
//! protocol's 65,535 bind parameters, and failures read from MySQL's error numbers and messages
//! (the same on MySQL 8 and MariaDB, but for a failed `CHECK`: 3819 on MySQL, 4025 on MariaDB).

use std::any::Any;
use std::fmt::Write as _;

use sea_query::{Alias, Expr, Value};
use sqlx::Row;
use sqlx::mysql::{MySqlArguments, MySqlRow};
use sqlx::{MySql, MySqlConnection};

use super::server::{Flavor, error_number};
use crate::backend::KeyColumns;
use crate::backend::{DecodeFn, Decoders, Dialect, FailureKind, InsertShape, StatementFailure};
use crate::error::ConstraintKind;
use crate::sql::{quote_mysql_ident as q, quote_mysql_list};

impl Dialect for MySql {
    type QueryBuilder = sea_query::MysqlQueryBuilder;

    const MAX_BIND_PARAMETERS: usize = 65_535;
    const ARRAY_COLUMNS: bool = false;

    fn arguments(values: sea_query_sqlx::SqlxValues) -> MySqlArguments {
        sqlx::IntoArguments::<MySql>::into_arguments(values)
    }

    fn bind_arrays(_arrays: Vec<Vec<Value>>) -> std::result::Result<MySqlArguments, String> {
        Err("MySQL has no array parameters".into())
    }

    async fn fetch_all(
        conn: &mut MySqlConnection,
        sql: String,
        args: MySqlArguments,
    ) -> std::result::Result<Vec<MySqlRow>, sqlx::Error> {
        sqlx::query_with(sqlx::AssertSqlSafe(sql), args)
            .fetch_all(conn)
            .await
    }

    const READS_BACK_WRITTEN_KEYS: bool = true;

    /// MariaDB returns the rows from the statement (`INSERT … RETURNING`, 10.5 and later). MySQL
    /// returns none: the rows are read back by their `AUTO_INCREMENT` key, from
    /// `LAST_INSERT_ID()` (the first key the statement assigned) on, since InnoDB gives the rows
    /// of one multi-row `INSERT` consecutive keys; a model with no `#[factory(generated)]`
    /// column writes its key itself, and its rows are read back by the values written to the
    /// table's primary key (or a unique key of NOT NULL columns), in the order written.
    async fn insert_returning(
        conn: &mut MySqlConnection,
        sql: String,
        args: MySqlArguments,
        shape: InsertShape<'_>,
    ) -> std::result::Result<Vec<MySqlRow>, sqlx::Error> {
        let table = match shape.schema {
            Some(schema) => format!("{}.{}", q(schema), q(shape.table)),
            None => q(shape.table),
        };
        let columns = quote_mysql_list(shape.columns.iter().copied());
        if flavor(conn).await? == Flavor::MariaDb {
            return Self::fetch_all(conn, format!("{sql} RETURNING {columns}"), args).await;
        }
        if let (true, Some((written, values))) = (shape.generated.is_empty(), shape.written) {
            return insert_then_read_by_key(conn, sql, args, &shape, &table, written, values).await;
        }
        let key = match shape.generated.as_slice() {
            [key] => (*key).to_string(),
            // Several generated columns (a key and defaults): the catalog says which is the key.
            _ => auto_increment_column(conn, shape.schema, shape.table)
                .await?
                .filter(|k| shape.generated.contains(&k.as_str()))
                .ok_or_else(|| {
                    sqlx::Error::Protocol(format!(
                        "MySQL returns no rows from an INSERT, so seedbed reads them back by \
                         their AUTO_INCREMENT key, and table {} has no AUTO_INCREMENT column \
                         among the {} marked #[factory(generated)] (MariaDB returns rows itself)",
                        shape.table,
                        shape.generated.len()
                    ))
                })?,
        };
        let done = sqlx::query_with(sqlx::AssertSqlSafe(sql), args)
            .execute(&mut *conn)
            .await?;
        let first = done.last_insert_id();
        if first == 0 {
            return Err(sqlx::Error::Protocol(format!(
                "the INSERT into {} assigned no AUTO_INCREMENT key to read its rows back by: \
                 is `{key}` an AUTO_INCREMENT column?",
                shape.table
            )));
        }
        // The statement's keys are consecutive steps of the session's increment (1 unless
        // replication set another).
        let step: u64 = sqlx::query_scalar("SELECT CAST(@@auto_increment_increment AS UNSIGNED)")
            .fetch_one(&mut *conn)
            .await?;
        let step = step.max(1);
        let last = first + done.rows_affected().saturating_sub(1) * step;
        let select = format!(
            "SELECT {columns} FROM {table} WHERE {k} BETWEEN ? AND ? AND ({k} - ?) % ? = 0 \
             ORDER BY {k}",
            k = q(&key)
        );
        sqlx::query(sqlx::AssertSqlSafe(select))
            .bind(first)
            .bind(last)
            .bind(first)
            .bind(step)
            .fetch_all(conn)
            .await
    }

    fn decoder(decoders: &Decoders) -> Option<DecodeFn<MySql>> {
        decoders.mysql
    }

    fn decoders<M>() -> Decoders
    where
        M: for<'r> sqlx::FromRow<'r, MySqlRow> + Send + 'static,
    {
        #[allow(
            clippy::needless_update,
            reason = "the other backends' entries exist with their features only"
        )]
        Decoders {
            mysql: Some(|row| M::from_row(row).map(|m| Box::new(m) as Box<dyn Any + Send>)),
            ..Decoders::default()
        }
    }

    /// Neither MySQL nor MariaDB returns rows from an `UPDATE`.
    const UPDATE_RETURNING: bool = false;

    /// MySQL has no row address: a row is found again by its key, among the model's columns
    /// read back after the `INSERT` (see [`can_locate`](Dialect::can_locate)).
    fn locator_returning() -> Vec<Expr> {
        Vec::new()
    }

    /// A row is found again by the model's `#[factory(generated)]` columns that hold integers
    /// (its `AUTO_INCREMENT` key among them) and its `#[factory(unique)]` columns, all together:
    /// a table with neither cannot close a foreign-key cycle.
    fn can_locate(keys: &KeyColumns<'_>) -> bool {
        !keys.generated.is_empty() || !keys.unique.is_empty()
    }

    /// The location: the name and value of each column that finds the row, in turn.
    fn read_locator(
        row: &MySqlRow,
        keys: &KeyColumns<'_>,
    ) -> std::result::Result<Vec<Value>, sqlx::Error> {
        // All of them: an integer default (a position, a version) alone would match other rows;
        // with the AUTO_INCREMENT key or a unique column beside it, one row matches.
        let mut location = Vec::new();
        for &c in keys.generated {
            if let Some(value) = integer(row, c) {
                location.extend([Value::from(c), value]);
            }
        }
        for &c in keys.unique {
            if let Some(value) = any_value(row, c)? {
                location.extend([Value::from(c), value]);
            }
        }
        if location.is_empty() {
            return Err(sqlx::Error::Protocol(format!(
                "a row of {} cannot be found again after its INSERT: it has no integer column \
                 marked #[factory(generated)] (its AUTO_INCREMENT key) nor one marked \
                 #[factory(unique)]",
                keys.table
            )));
        }
        Ok(location)
    }

    fn at_locator(location: &[Value]) -> sea_query::Condition {
        let mut condition = sea_query::Condition::all();
        for pair in location.chunks(2) {
            if let [Value::String(Some(name)), value] = pair {
                condition = condition.add(sea_query::ExprTrait::eq(
                    Expr::col(Alias::new(name.as_str())),
                    value.clone(),
                ));
            } else {
                // Not a location read_locator made: find nothing rather than the wrong row.
                return sea_query::Condition::all().add(Expr::val(false));
            }
        }
        condition
    }

    fn failure(error: &sqlx::Error) -> Option<StatementFailure> {
        let db = error.as_database_error()?;
        let message = db.message().to_string();
        let number = error_number(error);
        let kind = match number {
            Some(1062 | 1586) => FailureKind::Constraint(ConstraintKind::Unique),
            Some(1451 | 1452 | 1216 | 1217) => FailureKind::Constraint(ConstraintKind::ForeignKey),
            Some(1048 | 1364) => FailureKind::Constraint(ConstraintKind::NotNull),
            Some(3819 | 4025) => FailureKind::Constraint(ConstraintKind::Check),
            Some(1146) => FailureKind::UndefinedTable,
            Some(1054) => FailureKind::UndefinedColumn,
            _ => FailureKind::Other,
        };
        let (table, constraint, column) = subject(&kind, &message);
        Some(StatementFailure {
            kind,
            schema: None,
            table,
            constraint,
            data_type: None,
            column,
            detail: None,
            message,
        })
    }
}

/// The flavor of the server factories and the row generator write to, asked once per process (a
/// process's MySQL tests use one server).
pub(crate) async fn flavor(conn: &mut MySqlConnection) -> std::result::Result<Flavor, sqlx::Error> {
    static FLAVOR: std::sync::OnceLock<Flavor> = std::sync::OnceLock::new();
    if let Some(flavor) = FLAVOR.get() {
        return Ok(*flavor);
    }
    let version: String = sqlx::query_scalar("SELECT CAST(VERSION() AS CHAR)")
        .fetch_one(conn)
        .await?;
    let flavor = if version.to_ascii_lowercase().contains("mariadb") {
        Flavor::MariaDb
    } else {
        Flavor::MySql
    };
    Ok(*FLAVOR.get_or_init(|| flavor))
}

/// Runs a multi-row `INSERT` whose rows have no generated column, then reads them back by the
/// values written to a key of the table: one statement joining the table to the written keys
/// (a `VALUES` table, MySQL 8.0.19 and later), ordered as written.
async fn insert_then_read_by_key(
    conn: &mut MySqlConnection,
    sql: String,
    args: MySqlArguments,
    shape: &InsertShape<'_>,
    table: &str,
    written: &[&str],
    values: &[Vec<Value>],
) -> std::result::Result<Vec<MySqlRow>, sqlx::Error> {
    let key = written_key(conn, shape.schema, shape.table, written)
        .await?
        .ok_or_else(|| {
            sqlx::Error::Protocol(format!(
                "MySQL returns no rows from an INSERT, so seedbed reads them back by a key: \
                 table {} has no AUTO_INCREMENT column marked #[factory(generated)], and the \
                 model writes no primary key or unique key of NOT NULL columns to find its \
                 rows by (MariaDB returns rows itself). Mark the AUTO_INCREMENT key \
                 #[factory(generated)], or add the key's columns to the model",
                shape.table
            ))
        })?;
    let mut positions = Vec::with_capacity(key.len());
    for part in &key {
        let Some(p) = written
            .iter()
            .position(|w| w.eq_ignore_ascii_case(&part.column))
        else {
            continue;
        };
        // The server assigns the value instead of the one written: the row cannot be found by
        // it. Refused before anything is written.
        if part.auto_increment && values.iter().any(|row| row.get(p).is_none_or(zero_or_null)) {
            return Err(sqlx::Error::Protocol(format!(
                "column {} of {} is AUTO_INCREMENT and the model writes 0 or NULL to it, so the \
                 server assigns the key and MySQL (which returns no rows from an INSERT) cannot \
                 read the row back: mark the field #[factory(generated)]",
                part.column, shape.table
            )));
        }
        positions.push(p);
    }
    sqlx::query_with(sqlx::AssertSqlSafe(sql), args)
        .execute(&mut *conn)
        .await?;
    // SELECT t.cols FROM t JOIN (VALUES ROW(0, ?, …), ROW(1, ?, …)) AS w (i, k0, …)
    //   ON t.key0 = w.k0 … ORDER BY w.i
    let mut rows_sql = String::new();
    let mut bound = Vec::with_capacity(values.len() * positions.len());
    for (i, row) in values.iter().enumerate() {
        if i > 0 {
            rows_sql.push_str(", ");
        }
        let _ = write!(rows_sql, "ROW({i}");
        for &p in &positions {
            rows_sql.push_str(", ?");
            bound.push(row.get(p).cloned().unwrap_or(Value::Bool(None)));
        }
        rows_sql.push(')');
    }
    let names: Vec<String> = std::iter::once(q("seedbed__i"))
        .chain((0..positions.len()).map(|n| q(&format!("seedbed__k{n}"))))
        .collect();
    let on = key
        .iter()
        .enumerate()
        .map(|(n, part)| format!("t.{} = w.{}", q(&part.column), q(&format!("seedbed__k{n}"))))
        .collect::<Vec<_>>()
        .join(" AND ");
    let columns = shape
        .columns
        .iter()
        .map(|c| format!("t.{}", q(c)))
        .collect::<Vec<_>>()
        .join(", ");
    let select = format!(
        "SELECT {columns} FROM {table} AS t JOIN (VALUES {rows_sql}) AS w ({}) ON {on} \
         ORDER BY w.{}",
        names.join(", "),
        q("seedbed__i")
    );
    let args = MySql::arguments(sea_query_sqlx::SqlxValues(sea_query::Values(bound)));
    let rows = sqlx::query_with(sqlx::AssertSqlSafe(select), args)
        .fetch_all(conn)
        .await?;
    if rows.len() != values.len() {
        let columns: Vec<&str> = key.iter().map(|part| part.column.as_str()).collect();
        return Err(sqlx::Error::Protocol(format!(
            "{} of the {} rows written to {} were found again by their key ({}): a trigger \
             changed a key value as the row was written, or skipped the row",
            rows.len(),
            values.len(),
            shape.table,
            columns.join(", ")
        )));
    }
    Ok(rows)
}

/// Whether a value written to an `AUTO_INCREMENT` column lets the server assign the key.
fn zero_or_null(value: &Value) -> bool {
    match value {
        Value::TinyInt(v) => v.is_none_or(|v| v == 0),
        Value::SmallInt(v) => v.is_none_or(|v| v == 0),
        Value::Int(v) => v.is_none_or(|v| v == 0),
        Value::BigInt(v) => v.is_none_or(|v| v == 0),
        Value::TinyUnsigned(v) => v.is_none_or(|v| v == 0),
        Value::SmallUnsigned(v) => v.is_none_or(|v| v == 0),
        Value::Unsigned(v) => v.is_none_or(|v| v == 0),
        Value::BigUnsigned(v) => v.is_none_or(|v| v == 0),
        _ => false,
    }
}

/// A column of the key a model's rows are read back by.
struct KeyPart {
    column: String,
    auto_increment: bool,
}

/// The columns of `table`'s primary key, else of its first unique key of NOT NULL columns, whose
/// columns are all among `written` (names compare as MySQL compares them, case aside).
async fn written_key(
    conn: &mut MySqlConnection,
    schema: Option<&str>,
    table: &str,
    written: &[&str],
) -> std::result::Result<Option<Vec<KeyPart>>, sqlx::Error> {
    let parts: Vec<(String, Option<String>, String, Option<String>)> = sqlx::query_as(
        "SELECT CAST(s.INDEX_NAME AS CHAR), CAST(s.COLUMN_NAME AS CHAR), \
         CAST(s.NULLABLE AS CHAR), CAST(c.EXTRA AS CHAR) \
         FROM information_schema.STATISTICS s \
         LEFT JOIN information_schema.COLUMNS c ON c.TABLE_SCHEMA = s.TABLE_SCHEMA \
           AND c.TABLE_NAME = s.TABLE_NAME AND c.COLUMN_NAME = s.COLUMN_NAME \
         WHERE s.TABLE_SCHEMA = COALESCE(?, DATABASE()) AND s.TABLE_NAME = ? \
           AND s.NON_UNIQUE = 0 \
         ORDER BY s.INDEX_NAME <> 'PRIMARY', s.INDEX_NAME, s.SEQ_IN_INDEX",
    )
    .bind(schema)
    .bind(table)
    .fetch_all(conn)
    .await?;
    type Key = (String, Vec<Option<KeyPart>>, bool);
    let mut keys: Vec<Key> = Vec::new();
    for (index, column, nullable, extra) in parts {
        // A functional key part has no column.
        let part = column.map(|column| KeyPart {
            column,
            auto_increment: extra
                .is_some_and(|e| e.to_ascii_lowercase().contains("auto_increment")),
        });
        match keys.last_mut() {
            Some((name, parts, usable)) if *name == index => {
                *usable &= nullable.is_empty();
                parts.push(part);
            }
            _ => keys.push((index, vec![part], nullable.is_empty())),
        }
    }
    Ok(keys.into_iter().find_map(|(_, parts, usable)| {
        // A nullable column lets NULLs repeat.
        let parts: Option<Vec<KeyPart>> = parts.into_iter().collect();
        parts.filter(|parts| {
            usable
                && parts
                    .iter()
                    .all(|p| written.iter().any(|w| w.eq_ignore_ascii_case(&p.column)))
        })
    }))
}

/// The `AUTO_INCREMENT` column of `table` (in `schema`, else the connection's database).
async fn auto_increment_column(
    conn: &mut MySqlConnection,
    schema: Option<&str>,
    table: &str,
) -> std::result::Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT CAST(COLUMN_NAME AS CHAR) FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? \
         AND EXTRA LIKE '%auto_increment%'",
    )
    .bind(schema)
    .bind(table)
    .fetch_optional(conn)
    .await
}

/// The value of `column` in `row` when it is a (signed or unsigned) integer that is not NULL.
fn integer(row: &MySqlRow, column: &str) -> Option<Value> {
    if let Ok(Some(i)) = row.try_get::<Option<i64>, _>(column) {
        return Some(Value::from(i));
    }
    match row.try_get::<Option<u64>, _>(column) {
        Ok(Some(u)) => Some(Value::from(u)),
        _ => None,
    }
}

/// The value of `column` in `row`, as an integer, text or bytes (`None`: NULL).
fn any_value(row: &MySqlRow, column: &str) -> std::result::Result<Option<Value>, sqlx::Error> {
    if let Some(v) = integer(row, column) {
        return Ok(Some(v));
    }
    if let Ok(Some(s)) = row.try_get::<Option<String>, _>(column) {
        return Ok(Some(Value::from(s)));
    }
    Ok(row.try_get::<Option<Vec<u8>>, _>(column)?.map(Value::from))
}

/// The table, constraint and column a MySQL message names.
fn subject(kind: &FailureKind, message: &str) -> (Option<String>, Option<String>, Option<String>) {
    let quoted: Vec<&str> = message.split(['\'', '`']).skip(1).step_by(2).collect();
    match kind {
        // "Duplicate entry 'a@b' for key 'users.email'" (MySQL 8 qualifies the key).
        FailureKind::Constraint(ConstraintKind::Unique) => {
            let key = quoted.get(1).map(|k| k.to_string());
            match key.as_deref().and_then(|k| k.split_once('.')) {
                Some((t, k)) => (Some(t.to_string()), Some(k.to_string()), None),
                None => (None, key, None),
            }
        }
        // "Cannot add or update a child row: a foreign key constraint fails (`db`.`posts`,
        // CONSTRAINT `posts_user_fk` FOREIGN KEY (`user_id`) REFERENCES `users` (`id`))"
        FailureKind::Constraint(ConstraintKind::ForeignKey) => {
            let constraint = message
                .split("CONSTRAINT `")
                .nth(1)
                .and_then(|rest| rest.split('`').next())
                .map(str::to_string);
            let table = message
                .split("`.`")
                .nth(1)
                .and_then(|rest| rest.split('`').next())
                .map(str::to_string);
            let column = message
                .split("FOREIGN KEY (`")
                .nth(1)
                .and_then(|rest| rest.split('`').next())
                .map(str::to_string);
            (table, constraint, column)
        }
        // "Column 'email' cannot be null", "Field 'email' doesn't have a default value"
        FailureKind::Constraint(ConstraintKind::NotNull) => {
            (None, None, quoted.first().map(|c| c.to_string()))
        }
        // "Check constraint 'positive_amount' is violated" / "CONSTRAINT `x` failed for `db`.`t`"
        FailureKind::Constraint(ConstraintKind::Check) => {
            let table = message
                .split("`.`")
                .nth(1)
                .and_then(|rest| rest.split('`').next())
                .map(str::to_string);
            (table, quoted.first().map(|c| c.to_string()), None)
        }
        // "Unknown column 'foo' in 'field list'"
        FailureKind::UndefinedColumn => (None, None, quoted.first().map(|c| c.to_string())),
        FailureKind::UndefinedTable => (
            quoted
                .first()
                .map(|t| t.rsplit('.').next().unwrap_or(t).to_string()),
            None,
            None,
        ),
        _ => (None, None, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_their_subjects() {
        let unique = FailureKind::Constraint(ConstraintKind::Unique);
        assert_eq!(
            subject(&unique, "Duplicate entry 'a@b.c' for key 'users.email'"),
            (Some("users".into()), Some("email".into()), None)
        );
        assert_eq!(
            subject(&unique, "Duplicate entry 'a@b.c' for key 'email'"),
            (None, Some("email".into()), None)
        );
        let fk = FailureKind::Constraint(ConstraintKind::ForeignKey);
        assert_eq!(
            subject(
                &fk,
                "Cannot add or update a child row: a foreign key constraint fails (`app`.`posts`, \
                 CONSTRAINT `posts_user_fk` FOREIGN KEY (`user_id`) REFERENCES `users` (`id`))"
            ),
            (
                Some("posts".into()),
                Some("posts_user_fk".into()),
                Some("user_id".into())
            )
        );
        let check = FailureKind::Constraint(ConstraintKind::Check);
        assert_eq!(
            subject(&check, "CONSTRAINT `positive` failed for `app`.`invoices`"),
            (Some("invoices".into()), Some("positive".into()), None)
        );
    }
}
