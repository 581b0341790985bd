//! Factories' statements on SQLite: sea-query's SQLite builder, multi-row `VALUES` within
//! SQLite's bind-parameter limit, rows found again by `rowid`, and failures read from SQLite's
//! extended result codes and messages.

use std::any::Any;

use sea_query::{Alias, Expr, ExprTrait, Value};
use sqlx::error::ErrorKind;
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{Row, Sqlite, SqliteConnection};

use crate::backend::{DecodeFn, Decoders, Dialect, FailureKind, StatementFailure};
use crate::error::ConstraintKind;

impl Dialect for Sqlite {
    type QueryBuilder = sea_query::SqliteQueryBuilder;

    /// `SQLITE_MAX_VARIABLE_NUMBER` of SQLite 3.32 and later (the bundled library).
    const MAX_BIND_PARAMETERS: usize = 32_766;
    const ARRAY_COLUMNS: bool = false;

    fn arguments(values: sea_query_sqlx::SqlxValues) -> SqliteArguments {
        sqlx::IntoArguments::<Sqlite>::into_arguments(values)
    }

    fn bind_arrays(_arrays: Vec<Vec<Value>>) -> std::result::Result<SqliteArguments, String> {
        Err("SQLite has no array parameters".into())
    }

    async fn fetch_all(
        conn: &mut SqliteConnection,
        sql: String,
        args: SqliteArguments,
    ) -> std::result::Result<Vec<SqliteRow>, sqlx::Error> {
        sqlx::query_with(sqlx::AssertSqlSafe(sql), args)
            .fetch_all(conn)
            .await
    }

    fn decoder(decoders: &Decoders) -> Option<DecodeFn<Sqlite>> {
        decoders.sqlite
    }

    fn decoders<M>() -> Decoders
    where
        M: for<'r> sqlx::FromRow<'r, SqliteRow> + Send + 'static,
    {
        #[allow(
            clippy::needless_update,
            reason = "the other backends' entries exist with their features only"
        )]
        Decoders {
            sqlite: Some(|row| M::from_row(row).map(|m| Box::new(m) as Box<dyn Any + Send>)),
            ..Decoders::default()
        }
    }

    fn locator_returning() -> Vec<Expr> {
        vec![Expr::col(Alias::new("rowid"))]
    }

    fn read_locator(
        row: &SqliteRow,
        _keys: &crate::backend::KeyColumns<'_>,
    ) -> std::result::Result<Vec<Value>, sqlx::Error> {
        // The last column: SQLite names a returned `rowid` after the column that aliases it
        // (`id` for an `INTEGER PRIMARY KEY`).
        let last = row
            .len()
            .checked_sub(1)
            .ok_or(sqlx::Error::ColumnIndexOutOfBounds { index: 0, len: 0 })?;
        let rowid: i64 = row.try_get(last)?;
        Ok(vec![Value::from(rowid)])
    }

    fn at_locator(location: &[Value]) -> sea_query::Condition {
        match location {
            [rowid] => {
                sea_query::Condition::all().add(Expr::col(Alias::new("rowid")).eq(rowid.clone()))
            }
            // Not a location this backend wrote: matches nothing.
            _ => sea_query::Condition::all().add(Expr::val(false)),
        }
    }

    fn failure(error: &sqlx::Error) -> Option<StatementFailure> {
        let db = error.as_database_error()?;
        let message = db.message().to_string();
        let kind = match db.kind() {
            ErrorKind::UniqueViolation => FailureKind::Constraint(ConstraintKind::Unique),
            ErrorKind::ForeignKeyViolation => FailureKind::Constraint(ConstraintKind::ForeignKey),
            ErrorKind::NotNullViolation => FailureKind::Constraint(ConstraintKind::NotNull),
            ErrorKind::CheckViolation => FailureKind::Constraint(ConstraintKind::Check),
            _ if message.starts_with("no such table:") => FailureKind::UndefinedTable,
            _ if message.contains(" has no column named ")
                || message.starts_with("no such column:") =>
            {
                FailureKind::UndefinedColumn
            }
            _ => FailureKind::Other,
        };
        // "UNIQUE constraint failed: users.email, users.org_id", "NOT NULL constraint failed:
        // users.email", "CHECK constraint failed: positive_amount".
        let subject = message
            .split_once("constraint failed: ")
            .map(|(_, rest)| rest.to_string());
        let (table, column, constraint) = match (&kind, subject) {
            (FailureKind::Constraint(ConstraintKind::Check), Some(name)) => {
                (None, None, Some(name))
            }
            (FailureKind::Constraint(kind), Some(columns)) => {
                let first = columns.split(", ").next().unwrap_or_default();
                let (table, column) = match first.split_once('.') {
                    Some((t, c)) => (Some(t.to_string()), Some(c.to_string())),
                    None => (None, Some(first.to_string())),
                };
                let constraint = match kind {
                    ConstraintKind::NotNull => None,
                    _ => Some(format!("{} ({columns})", kind_word(*kind))),
                };
                (table, column, constraint)
            }
            (FailureKind::Constraint(ConstraintKind::ForeignKey), None) => {
                (None, None, Some("FOREIGN KEY".to_string()))
            }
            _ => (None, None, None),
        };
        // "table users has no column named foo" names the column in quotes elsewhere: the
        // factory's message looks for a quoted name.
        let message = match message.split_once(" has no column named ") {
            Some((_, column)) => format!("column \"{column}\" does not exist ({message})"),
            None => message,
        };
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

fn kind_word(kind: ConstraintKind) -> &'static str {
    match kind {
        ConstraintKind::Unique => "UNIQUE",
        ConstraintKind::ForeignKey => "FOREIGN KEY",
        ConstraintKind::NotNull => "NOT NULL",
        ConstraintKind::Check => "CHECK",
        _ => "constraint",
    }
}
