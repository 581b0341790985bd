//! The statements factories send: sea-query's builder for the backend, how values are bound and
//! rows decoded, how a row is found again, and what a failed statement says.

use std::any::Any;
use std::future::Future;

use crate::error::ConstraintKind;

/// Decodes a row into a model, boxed.
pub type DecodeFn<DB> =
    fn(&<DB as sqlx::Database>::Row) -> std::result::Result<Box<dyn Any + Send>, sqlx::Error>;

/// How to decode a model's rows on each backend seedbed was built with: one entry per backend,
/// set where the model implements `sqlx::FromRow` for that backend's rows. Factories carry it
/// for the rows they may create; the backend the rows are written on picks its entry
/// ([`Dialect::decoder`]).
#[derive(Clone, Copy, Default)]
pub struct Decoders {
    #[cfg(feature = "postgres")]
    pub(crate) postgres: Option<DecodeFn<sqlx::Postgres>>,
    #[cfg(feature = "sqlite")]
    pub(crate) sqlite: Option<DecodeFn<sqlx::Sqlite>>,
    #[cfg(feature = "mysql")]
    pub(crate) mysql: Option<DecodeFn<sqlx::MySql>>,
}

impl Decoders {
    /// The entries of both, `a`'s first; `None` when neither has any.
    pub fn join(a: Option<Decoders>, b: Option<Decoders>) -> Option<Decoders> {
        match (a, b) {
            (None, None) => None,
            (Some(one), None) | (None, Some(one)) => Some(one),
            #[allow(unused_variables)]
            (Some(a), Some(b)) => Some(Decoders {
                #[cfg(feature = "postgres")]
                postgres: a.postgres.or(b.postgres),
                #[cfg(feature = "sqlite")]
                sqlite: a.sqlite.or(b.sqlite),
                #[cfg(feature = "mysql")]
                mysql: a.mysql.or(b.mysql),
            }),
        }
    }
}

impl std::fmt::Debug for Decoders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = f.debug_struct("Decoders");
        #[cfg(feature = "postgres")]
        out.field("postgres", &self.postgres.is_some());
        #[cfg(feature = "sqlite")]
        out.field("sqlite", &self.sqlite.is_some());
        #[cfg(feature = "mysql")]
        out.field("mysql", &self.mysql.is_some());
        out.finish()
    }
}

/// What a failed statement reported, in the backend's own terms made common.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementFailure {
    /// What kind of failure.
    pub kind: FailureKind,
    /// The schema of the table it concerns, where reported.
    pub schema: Option<String>,
    /// The table it concerns, where reported.
    pub table: Option<String>,
    /// The constraint that failed, where reported.
    pub constraint: Option<String>,
    /// The domain (type) whose constraint failed, where reported.
    pub data_type: Option<String>,
    /// The column it concerns, where reported.
    pub column: Option<String>,
    /// The server's detail (the conflicting values), where reported.
    pub detail: Option<String>,
    /// The server's message.
    pub message: String,
}

/// The failures a factory explains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// A constraint refused the row.
    Constraint(ConstraintKind),
    /// The table (or its schema) does not exist.
    UndefinedTable,
    /// A column does not exist.
    UndefinedColumn,
    /// Anything else.
    Other,
}

/// What a factory's multi-row `INSERT` writes, for a backend whose statements return no rows
/// ([`Dialect::insert_returning`]).
#[derive(Debug, Clone)]
pub struct InsertShape<'a> {
    /// The table's schema, when the model names one.
    pub schema: Option<&'a str>,
    /// The table.
    pub table: &'a str,
    /// The columns to read back, in the model's order.
    pub columns: Vec<&'a str>,
    /// The columns the database assigns (`#[factory(generated)]`).
    pub generated: Vec<&'a str>,
    /// How many rows the statement inserts.
    pub rows: usize,
    /// The columns the statement writes and each row's values, when the backend reads rows back
    /// by their key ([`Dialect::READS_BACK_WRITTEN_KEYS`]) and no column is generated.
    pub written: Option<(&'a [&'a str], &'a [Vec<sea_query::Value>])>,
}

/// How factories write on a backend.
pub trait Dialect: sqlx::Database {
    /// sea-query's builder for the backend's SQL.
    type QueryBuilder: sea_query::QueryBuilder + Default + Send + Sync;

    /// The most bind parameters one statement may carry.
    const MAX_BIND_PARAMETERS: usize;

    /// Whether a bulk insert may send each column as one array (`SELECT unnest($1), …`), bound
    /// by [`bind_arrays`](Self::bind_arrays); else it sends a `VALUES` list.
    const ARRAY_COLUMNS: bool;

    /// Binds the values sea-query collected for a statement.
    fn arguments(values: sea_query_sqlx::SqlxValues) -> Self::Arguments;

    /// Binds each column's values as one array (NULL elements included).
    fn bind_arrays(
        arrays: Vec<Vec<sea_query::Value>>,
    ) -> std::result::Result<Self::Arguments, String>;

    /// Runs `sql` with `args` on `conn` and returns its rows.
    fn fetch_all<'c>(
        conn: &'c mut Self::Connection,
        sql: String,
        args: Self::Arguments,
    ) -> impl Future<Output = std::result::Result<Vec<Self::Row>, sqlx::Error>> + Send + 'c;

    /// Runs a multi-row `INSERT` built by [`QueryBuilder`](Self::QueryBuilder) with a
    /// `RETURNING` clause, and returns the rows it wrote. By default the statement returns them;
    /// a backend whose builder leaves `RETURNING` out reads them back its own way.
    fn insert_returning<'c>(
        conn: &'c mut Self::Connection,
        sql: String,
        args: Self::Arguments,
        shape: InsertShape<'c>,
    ) -> impl Future<Output = std::result::Result<Vec<Self::Row>, sqlx::Error>> + Send + 'c {
        let _ = shape;
        Self::fetch_all(conn, sql, args)
    }

    /// This backend's entry of `decoders`.
    fn decoder(decoders: &Decoders) -> Option<DecodeFn<Self>>;

    /// [`Decoders`] with this backend's entry decoding `M`.
    fn decoders<M>() -> Decoders
    where
        M: for<'r> sqlx::FromRow<'r, Self::Row> + Send + 'static;

    /// Whether [`insert_returning`](Self::insert_returning) may need the values written (to
    /// read rows back by a key the model sets itself): [`InsertShape::written`] is then filled
    /// for a table with no `#[factory(generated)]` column.
    const READS_BACK_WRITTEN_KEYS: bool = false;

    /// Whether an `UPDATE` can return the rows it changed (`UPDATE … RETURNING`); without it
    /// they are read again by their location.
    const UPDATE_RETURNING: bool = true;

    /// Expressions `RETURNING` adds, after the model's columns, so that a row can be found again
    /// (to set a reference that closes a foreign-key cycle once its target exists).
    fn locator_returning() -> Vec<sea_query::Expr>;

    /// Whether a row of the table `keys` describes can be found again after its `INSERT` (to
    /// close a foreign-key cycle through it).
    fn can_locate(keys: &KeyColumns<'_>) -> bool {
        let _ = keys;
        true
    }

    /// Reads a row's location from the row [`locator_returning`](Self::locator_returning)'s
    /// expressions were returned in, with the model's columns (`keys` says which find it).
    fn read_locator(
        row: &Self::Row,
        keys: &KeyColumns<'_>,
    ) -> std::result::Result<Vec<sea_query::Value>, sqlx::Error>;

    /// The condition that selects the row at `location`.
    fn at_locator(location: &[sea_query::Value]) -> sea_query::Condition;

    /// What a failed statement reported, when the server reported it (`None`: not a database
    /// error, such as a lost connection).
    fn failure(error: &sqlx::Error) -> Option<StatementFailure>;
}

/// The columns of a factory's table a row can be found again by, as the model declares them:
/// what a backend without a row address (MySQL) finds a row by after its `INSERT`.
///
/// ```
/// use seedbed::backend::KeyColumns;
/// let keys = KeyColumns { table: "boards", generated: &["id"], unique: &[] };
/// assert_eq!(keys.generated, ["id"]);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct KeyColumns<'a> {
    /// The table's name, for messages.
    pub table: &'a str,
    /// The columns marked `#[factory(generated)]` (an `AUTO_INCREMENT` key among them).
    pub generated: &'a [&'a str],
    /// The columns marked `#[factory(unique)]`.
    pub unique: &'a [&'a str],
}
