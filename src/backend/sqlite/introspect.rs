//! Reading a SQLite database's schema into the [`Schema`] model: tables and views from
//! `sqlite_schema`, columns from `pragma_table_xinfo`, keys from `pragma_index_list` and
//! `pragma_index_info`, foreign keys from `pragma_foreign_key_list`.
//!
//! CHECK constraints live in the table's SQL text only: they are read from it as written (their
//! text between the parentheses). What SQLite's catalog does not say is left out: whether a
//! foreign key is deferrable (taken as not), and the expression of a generated column.

use std::collections::BTreeMap;

use sqlx::{Sqlite, SqliteConnection};

use crate::backend::Introspect;
use crate::error::{Error, Result};
use crate::schema::{
    Check, Column, ColumnDefault, FkAction, ForeignKey, Schema, Table, TableKind, UniqueKey, View,
};
use crate::sql::{QualifiedName, quote_ident};

/// `pragma_table_xinfo`: cid, name, declared type, notnull, default, pk position, hidden.
type ColumnRow = (i64, String, String, i64, Option<String>, i64, i64);
/// `pragma_foreign_key_list`: id, seq, referenced table, from, to, on update, on delete.
type ForeignKeyRow = (i64, i64, String, String, Option<String>, String, String);

impl Introspect for Sqlite {
    async fn user_schemas(conn: &mut SqliteConnection) -> Result<Vec<String>> {
        sqlx::query_scalar(
            "SELECT name FROM pragma_database_list WHERE name <> 'temp' ORDER BY seq",
        )
        .fetch_all(conn)
        .await
        .map_err(Error::db("listing the attached databases"))
    }

    async fn introspect(conn: &mut SqliteConnection, schemas: &[&str]) -> Result<Schema> {
        let mut out = Schema {
            schemas: schemas.iter().map(|s| s.to_string()).collect(),
            tables: Vec::new(),
            foreign_keys: Vec::new(),
            views: Vec::new(),
        };
        for &schema in schemas {
            read_schema(conn, schema, &mut out).await?;
        }
        // A key that names no columns references the primary key of its table.
        for fk in &mut out.foreign_keys {
            if fk.referenced_columns.is_empty()
                && let Some(target) = out.tables.iter().find(|t| t.name == fk.references)
            {
                fk.referenced_columns = target.primary_key.clone();
            }
        }
        out.tables.sort_by(|a, b| a.name.cmp(&b.name));
        out.views.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}

async fn read_schema(conn: &mut SqliteConnection, schema: &str, out: &mut Schema) -> Result<()> {
    let context = || format!("reading the schema of SQLite database {schema}");
    let sql = format!(
        "SELECT rowid, type, name, coalesce(sql, '') FROM {}.sqlite_schema \
         WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
        quote_ident(schema)
    );
    let relations: Vec<(i64, String, String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await
        .map_err(Error::db(context()))?;
    for (rowid, kind, name, create) in relations {
        let qualified = QualifiedName::new(schema, &name);
        if kind == "view" {
            out.views.push(View {
                name: qualified,
                materialized: false,
            });
            continue;
        }
        let columns: Vec<ColumnRow> = sqlx::query_as(
            "SELECT cid, name, type, \"notnull\", dflt_value, pk, hidden \
             FROM pragma_table_xinfo(?1, ?2) ORDER BY cid",
        )
        .bind(&name)
        .bind(schema)
        .fetch_all(&mut *conn)
        .await
        .map_err(Error::db(context()))?;
        let mut primary: Vec<(i64, String)> = columns
            .iter()
            .filter(|c| c.5 > 0)
            .map(|c| (c.5, c.1.clone()))
            .collect();
        primary.sort();
        let primary_key: Vec<String> = primary.into_iter().map(|(_, c)| c).collect();
        // A single INTEGER PRIMARY KEY column is the rowid: the database assigns it.
        let rowid_alias = match primary_key.as_slice() {
            [only] => columns
                .iter()
                .any(|c| &c.1 == only && c.2.eq_ignore_ascii_case("integer")),
            _ => false,
        };
        let columns: Vec<Column> = columns
            .into_iter()
            .map(|(cid, column, declared, not_null, default, _, hidden)| {
                let default = match (hidden, default) {
                    (2 | 3, _) => ColumnDefault::Generated(String::new()),
                    _ if rowid_alias && primary_key.first() == Some(&column) => {
                        ColumnDefault::IdentityByDefault
                    }
                    (_, Some(expr)) => ColumnDefault::Expr(expr),
                    (_, None) => ColumnDefault::None,
                };
                let type_name = declared.to_ascii_lowercase();
                // The rowid is never NULL (SQLite assigns one for a NULL), whatever the pragma
                // says of its alias.
                let rowid = rowid_alias && primary_key.first() == Some(&column);
                Column {
                    name: column,
                    sql_type: type_name.clone(),
                    type_name,
                    type_schema: schema.to_string(),
                    type_kind: 'b',
                    domain_base: None,
                    enum_labels: Vec::new(),
                    not_null: not_null != 0 || rowid,
                    default,
                    position: i16::try_from(cid + 1).unwrap_or(i16::MAX),
                }
            })
            .collect();
        let unique_keys = unique_keys(conn, schema, &name).await?;
        let foreign_keys: Vec<ForeignKeyRow> = sqlx::query_as(
            "SELECT id, seq, \"table\", \"from\", \"to\", on_update, on_delete \
             FROM pragma_foreign_key_list(?1, ?2) ORDER BY id, seq",
        )
        .bind(&name)
        .bind(schema)
        .fetch_all(&mut *conn)
        .await
        .map_err(Error::db(context()))?;
        let mut grouped: BTreeMap<i64, Vec<ForeignKeyRow>> = BTreeMap::new();
        for row in foreign_keys {
            grouped.entry(row.0).or_default().push(row);
        }
        for (id, rows) in grouped {
            let Some(first) = rows.first() else { continue };
            let references = QualifiedName::new(schema, &first.2);
            let from: Vec<String> = rows.iter().map(|r| r.3.clone()).collect();
            let nullable = from
                .iter()
                .all(|f| columns.iter().any(|c| &c.name == f && !c.not_null));
            out.foreign_keys.push(ForeignKey {
                name: format!("{name}_fk{id}"),
                table: qualified.clone(),
                columns: from,
                // A key naming no columns references the primary key.
                referenced_columns: rows.iter().filter_map(|r| r.4.clone()).collect(),
                references,
                deferrable: false,
                initially_deferred: false,
                on_delete: action(&first.6),
                nullable,
            });
        }
        let checks = checks(&create, &name, &columns);
        out.tables.push(Table {
            name: qualified,
            oid: rowid,
            kind: TableKind::Ordinary,
            columns,
            primary_key,
            unique_keys,
            checks,
        });
    }
    Ok(())
}

/// The table's unique indexes (constraints and `CREATE UNIQUE INDEX`), primary key excluded,
/// partial indexes left out (they do not make a column unique).
async fn unique_keys(
    conn: &mut SqliteConnection,
    schema: &str,
    table: &str,
) -> Result<Vec<UniqueKey>> {
    let context = || format!("reading the unique keys of {schema}.{table}");
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM pragma_index_list(?1, ?2) \
         WHERE \"unique\" AND origin <> 'pk' AND NOT partial ORDER BY name",
    )
    .bind(table)
    .bind(schema)
    .fetch_all(&mut *conn)
    .await
    .map_err(Error::db(context()))?;
    let mut keys = Vec::with_capacity(indexes.len());
    for index in indexes {
        let columns: Vec<Option<String>> =
            sqlx::query_scalar("SELECT name FROM pragma_index_info(?1, ?2) ORDER BY seqno")
                .bind(&index)
                .bind(schema)
                .fetch_all(&mut *conn)
                .await
                .map_err(Error::db(context()))?;
        // An index on an expression has a column without a name: not a key on plain columns.
        if let Some(columns) = columns.into_iter().collect::<Option<Vec<String>>>() {
            keys.push(UniqueKey {
                name: index,
                columns,
            });
        }
    }
    Ok(keys)
}

fn action(on_delete: &str) -> FkAction {
    match on_delete.to_ascii_uppercase().as_str() {
        "CASCADE" => FkAction::Cascade,
        "SET NULL" => FkAction::SetNull,
        "SET DEFAULT" => FkAction::SetDefault,
        "RESTRICT" => FkAction::Restrict,
        _ => FkAction::NoAction,
    }
}

/// The CHECK constraints of a `CREATE TABLE` statement, column and table constraints alike, in
/// the order written: `CHECK (<expression>)` as written, named by their `CONSTRAINT` clause or
/// `<table>_check<n>`.
fn checks(create: &str, table: &str, columns: &[Column]) -> Vec<Check> {
    let chars: Vec<char> = create.chars().collect();
    let mut out = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\'' | '"' | '`' | '[' => {
                let close = if c == '[' { ']' } else { c };
                let start = i + 1;
                i = start;
                while i < chars.len() {
                    if chars[i] == close {
                        if close != ']' && chars.get(i + 1) == Some(&close) {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                if c != '\'' {
                    let ident: String = chars[start..i.min(chars.len())].iter().collect();
                    words.push(ident.replace(&format!("{close}{close}"), &close.to_string()));
                }
                i += 1;
            }
            '-' if chars.get(i + 1) == Some(&'-') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if chars.get(i + 1) == Some(&'*') => {
                i += 2;
                while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                    i += 1;
                }
                i += 2;
            }
            c if c.is_alphanumeric() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                if word.eq_ignore_ascii_case("check") {
                    let mut j = i;
                    while j < chars.len() && chars[j].is_whitespace() {
                        j += 1;
                    }
                    if chars.get(j) == Some(&'(')
                        && let Some(end) = closing_paren(&chars, j)
                    {
                        let expression: String = chars[j + 1..end].iter().collect();
                        let expression = expression.trim().to_string();
                        let named = match words.as_slice() {
                            [.., keyword, name] if keyword.eq_ignore_ascii_case("constraint") => {
                                Some(name.clone())
                            }
                            _ => None,
                        };
                        let name =
                            named.unwrap_or_else(|| format!("{table}_check{}", out.len() + 1));
                        let mentioned = mentioned_columns(&expression, columns);
                        out.push(Check {
                            name,
                            definition: format!("CHECK ({expression})"),
                            columns: mentioned,
                        });
                        i = end + 1;
                        words.clear();
                        continue;
                    }
                }
                words.push(word);
            }
            _ => i += 1,
        }
    }
    out
}

/// The position of the parenthesis that closes the one at `open`, strings and quoted names
/// skipped.
fn closing_paren(chars: &[char], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    for (k, &c) in chars.iter().enumerate().skip(open) {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '\'' | '"' | '`' => quote = Some(c),
                '[' => quote = Some(']'),
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        return Some(k);
                    }
                }
                _ => {}
            },
        }
    }
    None
}

/// The table's columns an expression names (a word or quoted name equal to one).
fn mentioned_columns(expression: &str, columns: &[Column]) -> Vec<String> {
    let words: Vec<&str> = expression
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .collect();
    columns
        .iter()
        .filter(|c| {
            words.iter().any(|w| w.eq_ignore_ascii_case(&c.name))
                || expression.contains(&format!("\"{}\"", c.name))
        })
        .map(|c| c.name.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(name: &str) -> Column {
        Column {
            name: name.into(),
            sql_type: "text".into(),
            type_name: "text".into(),
            type_schema: "main".into(),
            type_kind: 'b',
            domain_base: None,
            enum_labels: Vec::new(),
            not_null: true,
            default: ColumnDefault::None,
            position: 1,
        }
    }

    #[test]
    fn checks_are_read_from_the_create_statement() {
        let create = "CREATE TABLE \"Odd\" (\n\
            id INTEGER PRIMARY KEY,\n\
            -- a comment with CHECK (nothing) in it\n\
            slug TEXT NOT NULL CHECK (slug GLOB '[a-z]*' AND slug <> ')'),\n\
            \"check\" TEXT DEFAULT 'CHECK (no)',\n\
            n INTEGER CONSTRAINT n_positive CHECK(n > 0),\n\
            CHECK ((\"check\" IS NULL) OR length(\"check\") <= 3)\n\
        )";
        let columns = ["id", "slug", "check", "n"].map(column);
        let found = checks(create, "Odd", &columns);
        let summary: Vec<(&str, &str, Vec<String>)> = found
            .iter()
            .map(|c| (c.name.as_str(), c.definition.as_str(), c.columns.clone()))
            .collect();
        assert_eq!(
            summary,
            [
                (
                    "Odd_check1",
                    "CHECK (slug GLOB '[a-z]*' AND slug <> ')')",
                    vec!["slug".to_string()]
                ),
                ("n_positive", "CHECK (n > 0)", vec!["n".to_string()]),
                (
                    "Odd_check3",
                    "CHECK ((\"check\" IS NULL) OR length(\"check\") <= 3)",
                    vec!["check".to_string()]
                ),
            ]
        );
    }
}
