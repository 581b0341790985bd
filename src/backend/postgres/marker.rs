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

const PREFIX: &str = "seedbed:v1";

/// A parsed marker: a kind and key/value attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    /// What the database is (`migrated`, `template`, `clone`, …).
    pub kind: String,
    /// Further attributes, in order.
    pub attrs: Vec<(String, String)>,
}

impl Marker {
    /// A marker of `kind` with no attributes.
    pub fn new(kind: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            attrs: Vec::new(),
        }
    }

    /// Adds (or replaces) an attribute. Values must not contain spaces.
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.set(key, value);
        self
    }

    /// Sets an attribute in place.
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let key = key.into();
        let value: String = value.into().replace(char::is_whitespace, "_");
        match self.attrs.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.attrs.push((key, value)),
        }
    }

    /// An attribute's value.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The comment text.
    pub fn to_comment(&self) -> String {
        let mut out = format!("{PREFIX} kind={}", self.kind);
        for (k, v) in &self.attrs {
            out.push(' ');
            out.push_str(k);
            out.push('=');
            out.push_str(v);
        }
        out
    }

    /// Parses a comment; `None` when it is not a seedbed marker.
    pub fn parse(comment: &str) -> Option<Self> {
        let mut words = comment.split_whitespace();
        if words.next()? != PREFIX {
            return None;
        }
        let kind = words.next()?.strip_prefix("kind=")?.to_string();
        let attrs = words
            .filter_map(|w| w.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Some(Self { kind, attrs })
    }
}

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
