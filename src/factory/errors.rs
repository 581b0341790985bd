//! What a failed factory statement becomes: a [`seedbed::Error`](crate::Error) that names the
//! factory, the table, the constraint and the values, from the fields PostgreSQL reports.

use sqlx::postgres::PgDatabaseError;

use crate::error::{ConstraintKind, ConstraintViolation, Error};
use crate::factory::Table;
use crate::factory::plan::display_table;

/// The error of a factory statement on `table`.
pub(crate) fn statement_error(source: sqlx::Error, table: &'static Table) -> Error {
    let factory = table.factory().to_string();
    let pg = source
        .as_database_error()
        .and_then(|e| e.try_downcast_ref::<PgDatabaseError>());
    let Some(pg) = pg else {
        return Error::Database {
            context: format!("{factory} writing to {}", display_table(table)),
            source,
        };
    };
    if let Some(kind) = ConstraintKind::from_sqlstate(pg.code()) {
        let table_name = match (pg.schema(), pg.table()) {
            (Some(schema), Some(name)) if schema != "public" => format!("{schema}.{name}"),
            (_, Some(name)) => name.to_string(),
            _ => display_table(table),
        };
        let constraint = match (pg.constraint(), pg.data_type()) {
            (Some(c), Some(domain)) => format!("{c}` of domain `{domain}"),
            (Some(c), None) => c.to_string(),
            (None, _) => match pg.column() {
                Some(column) => format!("{column} NOT NULL"),
                None => "(unnamed)".to_string(),
            },
        };
        let detail = pg
            .detail()
            .map(str::to_string)
            .unwrap_or_else(|| pg.message().to_string());
        let column = pg.column().map(str::to_string);
        return Error::ConstraintViolation(Box::new(ConstraintViolation {
            factory,
            table: table_name,
            kind,
            constraint,
            column,
            detail,
            source,
        }));
    }
    match pg.code() {
        // undefined_table, undefined_column, invalid_schema_name
        "42P01" | "3F000" => Error::SchemaMismatch {
            factory,
            what: format!("table {}", display_table(table)),
            message: pg.message().to_string(),
            source,
        },
        "42703" => {
            let column = quoted_name(pg.message()).unwrap_or_default();
            Error::SchemaMismatch {
                factory,
                what: format!("column {column} of table {}", display_table(table)),
                message: pg.message().to_string(),
                source,
            }
        }
        _ => Error::Database {
            context: format!("{factory} writing to {}", display_table(table)),
            source,
        },
    }
}

/// The error of decoding a row `RETURNING` gave into the model.
pub(crate) fn decode_error(source: sqlx::Error, table: &'static Table) -> Error {
    Error::Factory {
        factory: table.factory().to_string(),
        message: format!(
            "the row written to {} could not be read back into the model: {source}. The model's \
             `sqlx::FromRow` must read the columns the factory knows (its fields; a \
             `#[factory(column = …)]` field needs `#[sqlx(rename = …)]`, a `#[factory(skip)]` field \
             `#[sqlx(skip)]`)",
            display_table(table)
        ),
    }
}

/// The first `"name"` in a server message.
fn quoted_name(message: &str) -> Option<&str> {
    let start = message.find('"')? + 1;
    let len = message[start..].find('"')?;
    Some(&message[start..start + len])
}
