//! What a failed factory statement becomes: a [`seedbed::Error`](crate::Error) that names the
//! factory, the table, the constraint and the values, from what the backend reports ([`Dialect::failure`]).

use crate::backend::{Dialect, FailureKind};
use crate::error::{ConstraintViolation, Error};
use crate::factory::Table;
use crate::factory::plan::display_table;

/// The error of a factory statement on `table`, from what the backend `DB` reported.
pub(crate) fn statement_error<DB: Dialect>(source: sqlx::Error, table: &'static Table) -> Error {
    let factory = table.factory().to_string();
    let Some(failure) = DB::failure(&source) else {
        return Error::Database {
            context: format!("{factory} writing to {}", display_table(table)),
            source,
        };
    };
    match failure.kind {
        FailureKind::Constraint(kind) => {
            let table_name = match (&failure.schema, &failure.table) {
                (Some(schema), Some(name)) if schema != "public" => format!("{schema}.{name}"),
                (_, Some(name)) => name.clone(),
                _ => display_table(table),
            };
            let constraint = match (&failure.constraint, &failure.data_type) {
                (Some(c), Some(domain)) => format!("{c}` of domain `{domain}"),
                (Some(c), None) => c.clone(),
                (None, _) => match &failure.column {
                    Some(column) => format!("{column} NOT NULL"),
                    None => "(unnamed)".to_string(),
                },
            };
            let detail = failure.detail.unwrap_or(failure.message);
            Error::ConstraintViolation(Box::new(ConstraintViolation {
                factory,
                table: table_name,
                kind,
                constraint,
                column: failure.column,
                detail,
                source,
            }))
        }
        FailureKind::UndefinedTable => Error::SchemaMismatch {
            factory,
            what: format!("table {}", display_table(table)),
            message: failure.message,
            source,
        },
        FailureKind::UndefinedColumn => {
            let column = quoted_name(&failure.message)
                .unwrap_or_default()
                .to_string();
            Error::SchemaMismatch {
                factory,
                what: format!("column {column} of table {}", display_table(table)),
                message: failure.message,
                source,
            }
        }
        FailureKind::Other => Error::Database {
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
