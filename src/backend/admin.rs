//! Database administration: whether a database exists, creating, cloning and dropping one, and
//! the [`Marker`] that tells a database seedbed made from any other.

use std::future::Future;

use super::Provision;
use crate::error::Result;

/// Creating, cloning and dropping databases, and reading and writing their markers. `conn` is a
/// connection to the server's maintenance database.
pub trait Admin: Provision {
    /// Whether a database named `name` exists.
    fn database_exists(
        conn: &mut Self::Connection,
        name: &str,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Creates the empty database `name`; a missing privilege is an
    /// [`Error::CreateDatabase`](crate::Error::CreateDatabase) that says which.
    fn create_database(
        conn: &mut Self::Connection,
        name: &str,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Creates `name` as a copy of `template`, by the fastest way the backend measured.
    fn clone_database(
        server: &Self::Server,
        conn: &mut Self::Connection,
        name: &str,
        template: &str,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Drops `name` if it exists, whoever is connected to it.
    fn drop_database(
        conn: &mut Self::Connection,
        name: &str,
    ) -> impl Future<Output = Result<()>> + Send;

    /// The marker of `database` (`None`: no such database, or not seedbed's).
    fn read_marker(
        conn: &mut Self::Connection,
        database: &str,
    ) -> impl Future<Output = Result<Option<Marker>>> + Send;

    /// Writes the marker of `database`.
    fn write_marker(
        conn: &mut Self::Connection,
        database: &str,
        marker: &Marker,
    ) -> impl Future<Output = Result<()>> + Send;
}

const PREFIX: &str = "seedbed:v1";

/// The marker of a database seedbed made: what it is, and attributes such as its migrations'
/// checksum and whether it is ready. Its text form is the same on every backend; where it is
/// kept is the backend's (PostgreSQL: the database's comment).
///
/// ```
/// use seedbed::backend::Marker;
/// let m = Marker::new("migrated").with("checksum", "0123abcd").with("state", "ready");
/// let text = m.to_comment();
/// assert_eq!(text, "seedbed:v1 kind=migrated checksum=0123abcd state=ready");
/// assert_eq!(Marker::parse(&text), Some(m));
/// assert_eq!(Marker::parse("production data, do not touch"), None);
/// ```
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
