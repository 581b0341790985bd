//! The one place identifiers are turned into SQL text.
//!
//! Statements that sea-query cannot build (`CREATE DATABASE`, `TRUNCATE … RESTART IDENTITY`,
//! `COMMENT ON DATABASE`) are assembled here, and every name in them goes through
//! [`quote_ident`]. No other module writes a table or database name into SQL.

use std::fmt;

/// Quotes a PostgreSQL identifier: wraps it in double quotes and doubles any quote inside.
///
/// ```
/// use seedbed::sql::quote_ident;
/// assert_eq!(quote_ident("users"), r#""users""#);
/// assert_eq!(quote_ident("order"), r#""order""#);
/// assert_eq!(quote_ident(r#"Weird "Name""#), r#""Weird ""Name""""#);
/// ```
pub fn quote_ident(ident: &str) -> String {
    let mut out = String::with_capacity(ident.len() + 2);
    out.push('"');
    for c in ident.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Quotes a MySQL or MariaDB identifier: wraps it in backticks and doubles any backtick inside.
/// Every name the MySQL backend writes into SQL goes through it.
///
/// ```
/// use seedbed::sql::quote_mysql_ident;
/// assert_eq!(quote_mysql_ident("users"), "`users`");
/// assert_eq!(quote_mysql_ident("we`ird"), "`we``ird`");
/// ```
pub fn quote_mysql_ident(ident: &str) -> String {
    let mut out = String::with_capacity(ident.len() + 2);
    out.push('`');
    for c in ident.chars() {
        if c == '`' {
            out.push('`');
        }
        out.push(c);
    }
    out.push('`');
    out
}

/// A list of MySQL identifiers, each quoted by [`quote_mysql_ident`], joined by `, `.
///
/// ```
/// use seedbed::sql::quote_mysql_list;
/// assert_eq!(quote_mysql_list(["a", "b c"]), "`a`, `b c`");
/// ```
pub fn quote_mysql_list<'a>(idents: impl IntoIterator<Item = &'a str>) -> String {
    idents
        .into_iter()
        .map(quote_mysql_ident)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Quotes a string literal for the few statements that cannot take bind parameters
/// (`COMMENT ON`, `SET`).
///
/// ```
/// use seedbed::sql::quote_literal;
/// assert_eq!(quote_literal("it's"), "'it''s'");
/// ```
pub fn quote_literal(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if c == '\'' {
            out.push('\'');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// A MySQL or MariaDB string literal of `value`, as a hex string with the `utf8mb4` introducer:
/// the same text under every `sql_mode` (`NO_BACKSLASH_ESCAPES`, `ANSI_QUOTES`) and character
/// set of the connection, and coercible to a column's collation. For statements sent as text,
/// several in one round trip, where a prepared statement would cost two the first time a
/// connection runs it.
///
/// ```
/// use seedbed::sql::mysql_literal;
/// assert_eq!(mysql_literal("it's"), "_utf8mb4 X'69742773'");
/// assert_eq!(mysql_literal(""), "_utf8mb4 X''");
/// ```
pub fn mysql_literal(value: &str) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(value.len() * 2 + 12);
    out.push_str("_utf8mb4 X'");
    for b in value.bytes() {
        let _ = write!(out, "{b:02x}");
    }
    out.push('\'');
    out
}

/// A schema-qualified table (or other relation) name.
///
/// Its [`Display`](fmt::Display) renders it quoted, ready for SQL.
///
/// ```
/// use seedbed::sql::QualifiedName;
/// let t = QualifiedName::new("public", "order");
/// assert_eq!(t.to_string(), r#""public"."order""#);
/// assert_eq!(t.unquoted(), "public.order");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QualifiedName {
    /// The schema (`public`, …).
    pub schema: String,
    /// The relation's name inside the schema.
    pub name: String,
}

impl QualifiedName {
    /// A name in `schema`.
    pub fn new(schema: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            schema: schema.into(),
            name: name.into(),
        }
    }

    /// `schema.name` without quotes, for messages.
    pub fn unquoted(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }

    /// The name as a sea-query table reference.
    #[cfg(feature = "postgres")]
    pub fn table_ref(&self) -> sea_query::TableRef {
        use sea_query::IntoTableRef;
        (
            sea_query::Alias::new(self.schema.clone()),
            sea_query::Alias::new(self.name.clone()),
        )
            .into_table_ref()
    }
}

impl fmt::Display for QualifiedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}",
            quote_ident(&self.schema),
            quote_ident(&self.name)
        )
    }
}

/// A list of quoted identifiers joined by `, `.
///
/// ```
/// use seedbed::sql::quote_list;
/// assert_eq!(quote_list(["a", "b c"]), r#""a", "b c""#);
/// ```
pub fn quote_list<'a>(idents: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::new();
    for (i, ident) in idents.into_iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&quote_ident(ident));
    }
    out
}
