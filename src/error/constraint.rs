//! A factory's row that broke a constraint: the kind of constraint, its name, the table and the
//! values, as the server reported them.

use std::fmt;

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

/// A factory's row broke a constraint: what [`Error::ConstraintViolation`](crate::Error::ConstraintViolation) holds.
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
