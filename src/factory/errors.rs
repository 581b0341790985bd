//! What a failed factory statement becomes: a [`seedbed::Error`](crate::Error) that names the
//! factory, the table, the constraint and the values, from the fields PostgreSQL reports.

use std::fmt;

use sqlx::postgres::PgDatabaseError;

use crate::error::Error;
use crate::factory::Table;
use crate::factory::plan::display_table;

/// The kind of constraint a factory's row violated.
///
/// ```
/// use seedbed::factory::ConstraintKind;
/// assert_eq!(ConstraintKind::from_sqlstate("23505"), Some(ConstraintKind::Unique));
/// assert_eq!(ConstraintKind::Unique.to_string(), "unique constraint");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConstraintKind {
    /// `UNIQUE` or `PRIMARY KEY` (SQLSTATE 23505).
    Unique,
    /// `FOREIGN KEY` (23503).
    ForeignKey,
    /// `NOT NULL` (23502).
    NotNull,
    /// `CHECK`, on the table or on a domain (23514).
    Check,
    /// `EXCLUDE` (23P01).
    Exclusion,
}

impl ConstraintKind {
    /// The kind a SQLSTATE reports, if it is a constraint violation.
    pub fn from_sqlstate(code: &str) -> Option<Self> {
        Some(match code {
            "23505" => Self::Unique,
            "23503" => Self::ForeignKey,
            "23502" => Self::NotNull,
            "23514" => Self::Check,
            "23P01" => Self::Exclusion,
            _ => return None,
        })
    }

    /// What to do about it, for the error message.
    pub(crate) fn hint(&self) -> &'static str {
        match self {
            Self::Unique => {
                ". Another row already has this value: give the field a `sequence` or mark it \
                 `unique`, or set a different value"
            }
            Self::ForeignKey => {
                ". The referenced row does not exist: create it first and pass it with the \
                 association's `_ref` setter, or leave the field unset so its `belongs_to` \
                 association creates it"
            }
            Self::NotNull => {
                ". The factory wrote NULL: give the field a value (an `Option` field left unset \
                 is NULL; mark a column the database fills `generated`)"
            }
            Self::Check => {
                ". The value is outside what the constraint allows: change the field's default or faker"
            }
            Self::Exclusion => ". The row overlaps another one the constraint excludes",
        }
    }
}

impl fmt::Display for ConstraintKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unique => "unique constraint",
            Self::ForeignKey => "foreign key",
            Self::NotNull => "NOT NULL constraint",
            Self::Check => "check constraint",
            Self::Exclusion => "exclusion constraint",
        })
    }
}

/// A factory's row broke a constraint: what [`Error::ConstraintViolation`] holds.
///
/// ```
/// use seedbed::factory::{ConstraintKind, ConstraintViolation};
///
/// fn explain(err: &seedbed::Error) -> Option<(ConstraintKind, &str)> {
///     match err {
///         seedbed::Error::ConstraintViolation(v) => Some((v.kind, v.constraint.as_str())),
///         _ => None,
///     }
/// }
/// # let _ = explain;
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct ConstraintViolation {
    /// The factory (`module::Model`).
    pub factory: String,
    /// The table the row was for (`schema.name` outside `public`).
    pub table: String,
    /// The kind of constraint.
    pub kind: ConstraintKind,
    /// The constraint's name (and its domain's, for a domain's CHECK).
    pub constraint: String,
    /// The column, for a NOT NULL violation.
    pub column: Option<String>,
    /// The server's detail: the key and its values, or the failing row.
    pub detail: String,
    /// The driver's error.
    pub source: sqlx::Error,
}

impl fmt::Display for ConstraintViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} could not insert into {}: {} `{}` was violated",
            self.factory, self.table, self.kind, self.constraint
        )?;
        if let Some(column) = &self.column {
            write!(f, " (column {column})")?;
        }
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        f.write_str(self.kind.hint())
    }
}

impl std::error::Error for ConstraintViolation {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

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
