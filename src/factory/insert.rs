//! The statements a plan runs: bulk `INSERT`s within the bind-parameter limit (columns unnested
//! from arrays, or a `VALUES` list), `RETURNING` the model's columns, and where a row is when a
//! reference must be set after it (the backend's locator).

use sea_query::{Alias, Expr, IntoTableRef, Query, ReturningClause, TableRef, Value};

use crate::backend::Dialect;
use crate::factory::Table;

/// PostgreSQL's limit on bind parameters in one statement.
pub const MAX_BIND_PARAMETERS: usize = 65_535;
/// Rows per statement for a table without columns to write (`VALUES (DEFAULT), …`).
const DEFAULT_ROWS_PER_STATEMENT: usize = 10_000;

/// Rows per `INSERT` for `columns` columns: as many as fit in the bind-parameter limit.
///
/// ```
/// use seedbed::factory::rows_per_statement;
/// assert_eq!(rows_per_statement(4), 16_383);
/// assert_eq!(rows_per_statement(7), 9_362);
/// ```
pub fn rows_per_statement(columns: usize) -> usize {
    rows_within(MAX_BIND_PARAMETERS, columns)
}

/// Rows per `INSERT` for `columns` columns within `max_parameters` bind parameters.
pub(crate) fn rows_within(max_parameters: usize, columns: usize) -> usize {
    max_parameters
        .checked_div(columns)
        .map_or(DEFAULT_ROWS_PER_STATEMENT, |rows| rows.max(1))
}

/// A bulk `INSERT` ([`bulk_insert`]): the statement, and the columns' arrays when it unnests
/// them (bound by seedbed itself, so arrays may hold NULLs).
#[derive(Debug)]
pub struct BulkInsert {
    /// The statement, without `RETURNING`; its parameters are placeholders when `arrays` is set.
    pub statement: sea_query::InsertStatement,
    /// One array of values per column, bound in order, when the statement unnests them.
    pub arrays: Option<Vec<Vec<Value>>>,
}

/// The `INSERT` of `rows` (values in `columns` order) into `table`, without its `RETURNING`.
///
/// Two rows or more whose columns all have a PostgreSQL array form are sent as one array per
/// column, `INSERT … SELECT unnest($1), unnest($2), …`: a statement of a few parameters, parsed
/// and planned in no time whatever the number of rows (the arrays are unnested in lockstep, so
/// rows keep their order). Rows with a column that is itself an array (`text[]`), or of a type
/// without an array form here (numeric, …), are sent as `INSERT … VALUES (…), (…)`, as is a
/// single row.
///
/// ```
/// use seedbed::factory::{BulkInsert, Factory, Value, bulk_insert};
/// use seedbed::factory::sea_query::PostgresQueryBuilder;
///
/// #[derive(Debug, seedbed::Factory)]
/// #[factory(table = "users")]
/// pub struct User {
///     #[factory(generated)]
///     pub id: i64,
///     #[factory(sequence = "user{n}@example.com")]
///     pub email: String,
///     pub invited_by_id: Option<i64>,
///     #[factory(default = vec!["a".to_string()])]
///     pub tags: Vec<String>,
/// }
///
/// let rows = |n, keep| -> Vec<Vec<Value>> {
///     User::factory().build_list(n).into_iter()
///         .map(|u| u.into_attributes().into_values().into_iter().take(keep).collect())
///         .collect()
/// };
/// let BulkInsert { statement, arrays } =
///     bulk_insert(User::TABLE, &["email", "invited_by_id"], rows(3, 2)).unwrap();
/// assert_eq!(
///     statement.build(PostgresQueryBuilder).0,
///     r#"INSERT INTO "users" ("email", "invited_by_id") SELECT unnest($1), unnest($2)"#
/// );
/// assert_eq!(arrays.map(|a| a[1].len()), Some(3)); // three NULLs, bound as one int8[]
///
/// // A text[] column: one VALUES tuple per row.
/// let insert = bulk_insert(User::TABLE, &["email", "invited_by_id", "tags"], rows(2, 3)).unwrap();
/// assert_eq!(
///     insert.statement.build(PostgresQueryBuilder).0,
///     r#"INSERT INTO "users" ("email", "invited_by_id", "tags") VALUES ($1, $2, $3), ($4, $5, $6)"#
/// );
/// assert!(insert.arrays.is_none());
/// ```
pub fn bulk_insert(
    table: &Table,
    columns: &[&'static str],
    rows: Vec<Vec<Value>>,
) -> std::result::Result<BulkInsert, sea_query::error::Error> {
    bulk_insert_with(table, columns, rows, true)
}

/// [`bulk_insert`], sending columns as arrays only where `arrays` allows (the backend's
/// [`Dialect::ARRAY_COLUMNS`](crate::backend::Dialect::ARRAY_COLUMNS)).
pub(crate) fn bulk_insert_with(
    table: &Table,
    columns: &[&'static str],
    rows: Vec<Vec<Value>>,
    arrays: bool,
) -> std::result::Result<BulkInsert, sea_query::error::Error> {
    let mut statement = Query::insert();
    statement.into_table(table_ref(table));
    if columns.is_empty() {
        statement.or_default_values_many(u32::try_from(rows.len()).unwrap_or(u32::MAX));
        return Ok(BulkInsert {
            statement,
            arrays: None,
        });
    }
    statement.columns(columns.iter().map(|c| Alias::new(*c)));
    let unnested = if arrays { unnest(rows) } else { Err(rows) };
    match unnested {
        Ok((select, arrays)) => {
            statement.select_from(select)?;
            Ok(BulkInsert {
                statement,
                arrays: Some(arrays),
            })
        }
        Err(rows) => {
            for row in rows {
                statement.values(row.into_iter().map(Expr::val))?;
            }
            Ok(BulkInsert {
                statement,
                arrays: None,
            })
        }
    }
}

type Unnested = (sea_query::SelectStatement, Vec<Vec<Value>>);

/// `SELECT unnest($1), unnest($2), …` and the columns' arrays, or the rows back when a column
/// has no array form, mixes value kinds, or there is a single row.
fn unnest(rows: Vec<Vec<Value>>) -> std::result::Result<Unnested, Vec<Vec<Value>>> {
    let Some(first) = rows.first().filter(|_| rows.len() > 1) else {
        return Err(rows);
    };
    let Some(types) = first.iter().map(array_type).collect::<Option<Vec<_>>>() else {
        return Err(rows);
    };
    let kinds: Vec<_> = first.iter().map(std::mem::discriminant).collect();
    let uniform = rows.iter().all(|row| {
        row.len() == kinds.len()
            && row
                .iter()
                .zip(&kinds)
                .all(|(v, k)| std::mem::discriminant(v) == *k)
    });
    if !uniform {
        return Err(rows);
    }
    let mut arrays: Vec<Vec<Value>> = types
        .iter()
        .map(|_| Vec::with_capacity(rows.len()))
        .collect();
    for row in rows {
        for (array, value) in arrays.iter_mut().zip(row) {
            array.push(value);
        }
    }
    let mut select = Query::select();
    for ty in types {
        // A placeholder of the array's type: renders `$n` (with the cast of an enum array).
        select.expr(sea_query::Func::cust("unnest").arg(Expr::val(Value::Array(ty, None))));
    }
    Ok((select, arrays))
}

/// The array type a column of these values is sent as, for the kinds the backend's
/// [`Dialect::bind_arrays`] binds.
fn array_type(value: &Value) -> Option<sea_query::ArrayType> {
    match value {
        Value::Bool(_)
        | Value::SmallInt(_)
        | Value::Int(_)
        | Value::BigInt(_)
        | Value::Float(_)
        | Value::Double(_)
        | Value::String(_)
        | Value::Enum(_)
        | Value::Bytes(_)
        | Value::Uuid(_)
        | Value::Json(_)
        | Value::ChronoDate(_)
        | Value::ChronoTime(_)
        | Value::ChronoDateTime(_)
        | Value::ChronoDateTimeUtc(_)
        | Value::ChronoDateTimeWithTimeZone(_) => Some(value.array_type()),
        _ => None,
    }
}

/// `schema.name` or `name`: how statistics and messages name a table.
pub(crate) fn display_table(table: &Table) -> String {
    match table.schema() {
        Some(schema) => format!("{schema}.{}", table.name()),
        None => table.name().to_string(),
    }
}

/// The table as sea-query names it (quoted, schema-qualified when the model names a schema).
pub(crate) fn table_ref(table: &Table) -> TableRef {
    match table.schema() {
        Some(schema) => (Alias::new(schema), Alias::new(table.name())).into_table_ref(),
        None => Alias::new(table.name()).into_table_ref(),
    }
}

/// `RETURNING` the model's columns, and where the row is (the backend's locator) when it must
/// be updated later.
pub(super) fn returning<DB: Dialect>(table: &Table, locate: bool) -> ReturningClause {
    let mut exprs: Vec<Expr> = table
        .columns()
        .iter()
        .map(|c| Expr::col(Alias::new(c.name())))
        .collect();
    if locate {
        exprs.extend(DB::locator_returning());
    }
    Query::returning().exprs(exprs)
}
