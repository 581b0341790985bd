//! The marker that tells a database seedbed created from any other.
//!
//! It is the database's comment (`COMMENT ON DATABASE`), readable from any database on the server
//! without connecting to the marked one, and not copied by `CREATE DATABASE … TEMPLATE`: a clone
//! carries one only if it is written for it (spares, and clones kept for a failed test; a clone
//! made while its test waits is recorded in the [registry](crate::isolation::registry) alone). Truncate
//! refuses to touch a database without it; the sweeper acts only on databases in the registry.
//!
//! ```
//! use seedbed::backend::postgres::marker::Marker;
//! let m = Marker::new("migrated").with("checksum", "0123abcd").with("state", "ready");
//! let text = m.to_comment();
//! assert_eq!(text, "seedbed:v1 kind=migrated checksum=0123abcd state=ready");
//! assert_eq!(Marker::parse(&text), Some(m));
//! assert_eq!(Marker::parse("production data, do not touch"), None);
//! ```

use sqlx::PgConnection;

use crate::error::{Error, Result};
use crate::sql::{quote_ident, quote_literal};

pub use crate::backend::Marker;

/// Reads the marker of `database` (`None`: no such database, or not seedbed's).
pub async fn read(conn: &mut PgConnection, database: &str) -> Result<Option<Marker>> {
    let comment: Option<Option<String>> = sqlx::query_scalar(
        "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1",
    )
    .bind(database)
    .fetch_optional(conn)
    .await
    .map_err(Error::db(format!(
        "reading the marker of database {database}"
    )))?;
    Ok(comment.flatten().as_deref().and_then(Marker::parse))
}

/// Reads the marker of the database `conn` is connected to.
pub async fn read_current(conn: &mut PgConnection) -> Result<Option<Marker>> {
    let comment: Option<String> = sqlx::query_scalar(
        "SELECT shobj_description(oid, 'pg_database') FROM pg_database \
         WHERE datname = current_database()",
    )
    .fetch_one(conn)
    .await
    .map_err(Error::db("reading the marker of the current database"))?;
    Ok(comment.as_deref().and_then(Marker::parse))
}

/// Writes the marker of `database` (seedbed must own it).
pub async fn write(conn: &mut PgConnection, database: &str, marker: &Marker) -> Result<()> {
    let sql = format!(
        "COMMENT ON DATABASE {} IS {}",
        quote_ident(database),
        quote_literal(&marker.to_comment())
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(conn)
        .await
        .map_err(Error::db(format!("marking database {database}")))?;
    Ok(())
}
