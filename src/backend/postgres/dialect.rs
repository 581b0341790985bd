//! Factories' statements on PostgreSQL: sea-query's PostgreSQL builder, columns bound as arrays
//! for `INSERT … SELECT unnest(…)`, rows found again by `(tableoid, ctid)`, and failures read
//! from the fields PostgreSQL reports.

use std::any::Any;

use sea_query::{Alias, Expr, ExprTrait, Value};
use sqlx::postgres::{PgArguments, PgDatabaseError, PgRow};
use sqlx::{PgConnection, Postgres, Row};

use crate::backend::{DecodeFn, Decoders, Dialect, FailureKind, StatementFailure};
use crate::error::ConstraintKind;

impl Dialect for Postgres {
    type QueryBuilder = sea_query::PostgresQueryBuilder;

    const MAX_BIND_PARAMETERS: usize = 65_535;
    const ARRAY_COLUMNS: bool = true;

    fn arguments(values: sea_query_sqlx::SqlxValues) -> PgArguments {
        sqlx::IntoArguments::<Postgres>::into_arguments(values)
    }

    fn bind_arrays(arrays: Vec<Vec<Value>>) -> std::result::Result<PgArguments, String> {
        bind_arrays(arrays)
    }

    async fn fetch_all(
        conn: &mut PgConnection,
        sql: String,
        args: PgArguments,
    ) -> std::result::Result<Vec<PgRow>, sqlx::Error> {
        sqlx::query_with(sqlx::AssertSqlSafe(sql), args)
            .fetch_all(conn)
            .await
    }

    fn decoder(decoders: &Decoders) -> Option<DecodeFn<Postgres>> {
        decoders.postgres
    }

    fn decoders<M>() -> Decoders
    where
        M: for<'r> sqlx::FromRow<'r, PgRow> + Send + 'static,
    {
        #[allow(
            clippy::needless_update,
            reason = "the other backends' entries exist with their features only"
        )]
        Decoders {
            postgres: Some(|row| M::from_row(row).map(|m| Box::new(m) as Box<dyn Any + Send>)),
            ..Decoders::default()
        }
    }

    fn locator_returning() -> Vec<Expr> {
        vec![
            Expr::col(Alias::new("tableoid")).cast_as(Alias::new("bigint")),
            Expr::col(Alias::new("ctid")).cast_as(Alias::new("text")),
        ]
    }

    fn read_locator(
        row: &PgRow,
        _keys: &crate::backend::KeyColumns<'_>,
    ) -> std::result::Result<Vec<Value>, sqlx::Error> {
        let oid: i64 = row.try_get("tableoid")?;
        let ctid: String = row.try_get("ctid")?;
        Ok(vec![Value::from(oid), Value::from(ctid)])
    }

    fn at_locator(location: &[Value]) -> sea_query::Condition {
        let mut condition = sea_query::Condition::all();
        if let [oid, ctid] = location {
            condition = condition
                .add(
                    Expr::col(Alias::new("tableoid"))
                        .cast_as(Alias::new("bigint"))
                        .eq(oid.clone()),
                )
                .add(
                    Expr::col(Alias::new("ctid"))
                        .eq(Expr::val(ctid.clone()).cast_as(Alias::new("tid"))),
                );
        } else {
            // Not a location this backend wrote: matches nothing.
            condition = condition.add(Expr::val(false));
        }
        condition
    }

    fn failure(error: &sqlx::Error) -> Option<StatementFailure> {
        let pg = error
            .as_database_error()
            .and_then(|e| e.try_downcast_ref::<PgDatabaseError>())?;
        let kind = match (ConstraintKind::from_sqlstate(pg.code()), pg.code()) {
            (Some(kind), _) => FailureKind::Constraint(kind),
            // undefined_table, invalid_schema_name
            (None, "42P01" | "3F000") => FailureKind::UndefinedTable,
            (None, "42703") => FailureKind::UndefinedColumn,
            (None, _) => FailureKind::Other,
        };
        Some(StatementFailure {
            kind,
            schema: pg.schema().map(str::to_string),
            table: pg.table().map(str::to_string),
            constraint: pg.constraint().map(str::to_string),
            data_type: pg.data_type().map(str::to_string),
            column: pg.column().map(str::to_string),
            detail: pg.detail().map(str::to_string),
            message: pg.message().to_string(),
        })
    }
}

/// Binds each column's values as one PostgreSQL array (NULL elements included).
fn bind_arrays(
    arrays: Vec<Vec<Value>>,
) -> std::result::Result<sqlx::postgres::PgArguments, String> {
    use sqlx::Arguments;
    let mut args = sqlx::postgres::PgArguments::default();
    for column in arrays {
        macro_rules! bind {
            ($variant:ident $(, $map:expr)?) => {{
                let mut out = Vec::with_capacity(column.len());
                for value in column {
                    match value {
                        Value::$variant(v) => out.push(v $(.map($map))?),
                        other => return Err(format!("a column mixes {other:?} with other kinds")),
                    }
                }
                args.add(out).map_err(|e| e.to_string())?;
            }};
        }
        match column.first() {
            Some(Value::Bool(_)) => bind!(Bool),
            Some(Value::SmallInt(_)) => bind!(SmallInt),
            Some(Value::Int(_)) => bind!(Int),
            Some(Value::BigInt(_)) => bind!(BigInt),
            Some(Value::Float(_)) => bind!(Float),
            Some(Value::Double(_)) => bind!(Double),
            Some(Value::String(_)) => bind!(String),
            Some(Value::Bytes(_)) => bind!(Bytes),
            Some(Value::Uuid(_)) => bind!(Uuid),
            Some(Value::Json(_)) => bind!(Json, |json: Box<sea_query::value::prelude::Json>| *json),
            Some(Value::ChronoDate(_)) => bind!(ChronoDate),
            Some(Value::ChronoTime(_)) => bind!(ChronoTime),
            Some(Value::ChronoDateTime(_)) => bind!(ChronoDateTime),
            Some(Value::ChronoDateTimeUtc(_)) => bind!(ChronoDateTimeUtc),
            Some(Value::ChronoDateTimeWithTimeZone(_)) => bind!(ChronoDateTimeWithTimeZone),
            Some(Value::Enum(_)) => {
                let mut labels: Vec<Option<String>> = Vec::with_capacity(column.len());
                for value in column {
                    match value {
                        Value::Enum(sea_query::OptionEnum::Some(e)) => {
                            labels.push(Some(e.value.into_owned()));
                        }
                        Value::Enum(sea_query::OptionEnum::None(_)) => labels.push(None),
                        other => return Err(format!("a column mixes {other:?} with enums")),
                    }
                }
                args.add(labels).map_err(|e| e.to_string())?;
            }
            Some(other) => return Err(format!("{other:?} has no array form")),
            None => args
                .add(Vec::<Option<String>>::new())
                .map_err(|e| e.to_string())?,
        }
    }
    Ok(args)
}
