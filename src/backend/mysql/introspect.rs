//! Reading a MySQL database's schema into the [`Schema`] model, from `information_schema`:
//! tables and views (`TABLES`), columns (`COLUMNS`), keys (`STATISTICS`), foreign keys
//! (`KEY_COLUMN_USAGE`, `REFERENTIAL_CONSTRAINTS`) and checks (`CHECK_CONSTRAINTS`).
//!
//! A schema is a database. MySQL has no deferrable keys (every key is checked per statement, or
//! not at all with `FOREIGN_KEY_CHECKS = 0`). Columns are read as MySQL 8 and MariaDB both report
//! them; MariaDB's quoted defaults (`'text'`, `NULL`) are read as MySQL's.

use std::collections::BTreeMap;

use sqlx::{MySql, MySqlConnection};

use super::admin::INTERNAL_PREFIX;
use crate::backend::Introspect;
use crate::error::{Error, Result};
use crate::schema::{
    Check, Column, ColumnDefault, FkAction, ForeignKey, Schema, Table, TableKind, UniqueKey, View,
};
use crate::sql::QualifiedName;

/// `COLUMNS`: table, column, column type, data type, nullable, default, extra, position,
/// generation expression.
type ColumnRow = (
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    i64,
    Option<String>,
);

impl Introspect for MySql {
    async fn user_schemas(conn: &mut MySqlConnection) -> Result<Vec<String>> {
        let current: Option<String> = sqlx::query_scalar("SELECT CAST(DATABASE() AS CHAR)")
            .fetch_one(conn)
            .await
            .map_err(Error::db("reading the connection's database"))?;
        Ok(current.into_iter().collect())
    }

    async fn introspect(conn: &mut MySqlConnection, schemas: &[&str]) -> Result<Schema> {
        let mut out = Schema {
            schemas: schemas.iter().map(|s| s.to_string()).collect(),
            tables: Vec::new(),
            foreign_keys: Vec::new(),
            views: Vec::new(),
        };
        for &schema in schemas {
            read_schema(conn, schema, &mut out).await?;
        }
        out.tables.sort_by(|a, b| a.name.cmp(&b.name));
        out.views.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}

fn internal(name: &str) -> bool {
    name.starts_with(INTERNAL_PREFIX)
}

async fn read_schema(conn: &mut MySqlConnection, schema: &str, out: &mut Schema) -> Result<()> {
    let context = || format!("reading the schema of MySQL database {schema}");
    let relations: Vec<(String, String)> = sqlx::query_as(
        "SELECT CAST(TABLE_NAME AS CHAR), CAST(TABLE_TYPE AS CHAR) FROM information_schema.TABLES \
         WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME",
    )
    .bind(schema)
    .fetch_all(&mut *conn)
    .await
    .map_err(Error::db(context()))?;
    let columns: Vec<ColumnRow> = sqlx::query_as(
        "SELECT CAST(TABLE_NAME AS CHAR), CAST(COLUMN_NAME AS CHAR), CAST(COLUMN_TYPE AS CHAR), \
         CAST(DATA_TYPE AS CHAR), CAST(IS_NULLABLE AS CHAR), CAST(COLUMN_DEFAULT AS CHAR), \
         CAST(EXTRA AS CHAR), CAST(ORDINAL_POSITION AS SIGNED), \
         CAST(GENERATION_EXPRESSION AS CHAR) \
         FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? \
         ORDER BY TABLE_NAME, ORDINAL_POSITION",
    )
    .bind(schema)
    .fetch_all(&mut *conn)
    .await
    .map_err(Error::db(context()))?;
    let keys: Vec<(String, String, i64, String)> = sqlx::query_as(
        "SELECT CAST(TABLE_NAME AS CHAR), CAST(INDEX_NAME AS CHAR), CAST(NON_UNIQUE AS SIGNED), \
         CAST(COLUMN_NAME AS CHAR) FROM information_schema.STATISTICS \
         WHERE TABLE_SCHEMA = ? AND COLUMN_NAME IS NOT NULL \
         ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX",
    )
    .bind(schema)
    .fetch_all(&mut *conn)
    .await
    .map_err(Error::db(context()))?;
    let checks = read_checks(conn, schema).await?;
    let fks: Vec<(String, String, String, String, String, String, String)> = sqlx::query_as(
        "SELECT CAST(k.CONSTRAINT_NAME AS CHAR), CAST(k.TABLE_NAME AS CHAR), \
         CAST(k.COLUMN_NAME AS CHAR), CAST(k.REFERENCED_TABLE_SCHEMA AS CHAR), \
         CAST(k.REFERENCED_TABLE_NAME AS CHAR), CAST(k.REFERENCED_COLUMN_NAME AS CHAR), \
         CAST(r.DELETE_RULE AS CHAR) FROM information_schema.KEY_COLUMN_USAGE k \
         JOIN information_schema.REFERENTIAL_CONSTRAINTS r \
           ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME \
          AND r.TABLE_NAME = k.TABLE_NAME \
         WHERE k.TABLE_SCHEMA = ? AND k.REFERENCED_TABLE_NAME IS NOT NULL \
         ORDER BY k.TABLE_NAME, k.CONSTRAINT_NAME, k.ORDINAL_POSITION",
    )
    .bind(schema)
    .fetch_all(&mut *conn)
    .await
    .map_err(Error::db(context()))?;

    let mut by_table: BTreeMap<String, Vec<Column>> = BTreeMap::new();
    for (table, name, column_type, data_type, nullable, default, extra, position, generated) in
        columns
    {
        let extra_lower = extra.to_ascii_lowercase();
        let default = if extra_lower.contains("auto_increment") {
            ColumnDefault::IdentityByDefault
        } else if let Some(expr) = generated.filter(|g| !g.is_empty()) {
            ColumnDefault::Generated(expr)
        } else {
            match default {
                None => ColumnDefault::None,
                // MariaDB writes a NULL default as the word.
                Some(d) if d == "NULL" => ColumnDefault::None,
                Some(d) => ColumnDefault::Expr(d),
            }
        };
        let enum_labels = enum_labels(&column_type);
        by_table.entry(table).or_default().push(Column {
            name,
            sql_type: column_type,
            type_name: data_type.to_ascii_lowercase(),
            type_schema: String::new(),
            type_kind: if enum_labels.is_empty() { 'b' } else { 'e' },
            domain_base: None,
            enum_labels,
            not_null: nullable == "NO",
            default,
            position: i16::try_from(position).unwrap_or(i16::MAX),
        });
    }
    let mut primary: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut uniques: BTreeMap<String, Vec<UniqueKey>> = BTreeMap::new();
    for (table, index, non_unique, column) in keys {
        if index == "PRIMARY" {
            primary.entry(table).or_default().push(column);
        } else if non_unique == 0 {
            let list = uniques.entry(table).or_default();
            match list.iter_mut().find(|k| k.name == index) {
                Some(key) => key.columns.push(column),
                None => list.push(UniqueKey {
                    name: index,
                    columns: vec![column],
                }),
            }
        }
    }
    let mut table_checks: BTreeMap<String, Vec<Check>> = BTreeMap::new();
    for (table, name, definition) in checks {
        let columns = by_table
            .get(&table)
            .map(|cols| {
                cols.iter()
                    .filter(|c| mentions(&definition, &c.name))
                    .map(|c| c.name.clone())
                    .collect()
            })
            .unwrap_or_default();
        table_checks.entry(table).or_default().push(Check {
            name,
            definition,
            columns,
        });
    }
    for (oid, (name, kind)) in relations.into_iter().enumerate() {
        if internal(&name) {
            continue;
        }
        let qualified = QualifiedName::new(schema, &name);
        if kind == "VIEW" || kind == "SYSTEM VIEW" {
            out.views.push(View {
                name: qualified,
                materialized: false,
            });
            continue;
        }
        out.tables.push(Table {
            name: qualified,
            oid: i64::try_from(oid).unwrap_or(i64::MAX),
            kind: TableKind::Ordinary,
            columns: by_table.remove(&name).unwrap_or_default(),
            primary_key: primary.remove(&name).unwrap_or_default(),
            unique_keys: uniques.remove(&name).unwrap_or_default(),
            checks: table_checks.remove(&name).unwrap_or_default(),
        });
    }
    let mut grouped: Vec<ForeignKey> = Vec::new();
    for (name, table, column, ref_schema, ref_table, ref_column, rule) in fks {
        if internal(&table) {
            continue;
        }
        let qualified = QualifiedName::new(schema, &table);
        match grouped
            .iter_mut()
            .find(|fk| fk.name == name && fk.table == qualified)
        {
            Some(fk) => {
                fk.columns.push(column);
                fk.referenced_columns.push(ref_column);
            }
            None => grouped.push(ForeignKey {
                name,
                table: qualified,
                columns: vec![column],
                references: QualifiedName::new(ref_schema, ref_table),
                referenced_columns: vec![ref_column],
                deferrable: false,
                initially_deferred: false,
                on_delete: match rule.as_str() {
                    "CASCADE" => FkAction::Cascade,
                    "SET NULL" => FkAction::SetNull,
                    "SET DEFAULT" => FkAction::SetDefault,
                    "RESTRICT" => FkAction::Restrict,
                    _ => FkAction::NoAction,
                },
                nullable: false,
            }),
        }
    }
    for fk in &mut grouped {
        fk.nullable = out
            .tables
            .iter()
            .find(|t| t.name == fk.table)
            .is_some_and(|t| {
                fk.columns
                    .iter()
                    .any(|c| t.column(c).is_some_and(|c| !c.not_null))
            });
    }
    out.foreign_keys.extend(grouped);
    Ok(())
}

/// The CHECK constraints of `schema`: table, name, clause. MariaDB names a check per table and
/// says which in `CHECK_CONSTRAINTS.TABLE_NAME`; MySQL names them per database and has no such
/// column, so its checks are joined to their tables by name.
async fn read_checks(
    conn: &mut MySqlConnection,
    schema: &str,
) -> Result<Vec<(String, String, String)>> {
    let context = || format!("reading the CHECK constraints of MySQL database {schema}");
    let mariadb = sqlx::query_as(
        "SELECT CAST(TABLE_NAME AS CHAR), CAST(CONSTRAINT_NAME AS CHAR), \
         CAST(CHECK_CLAUSE AS CHAR) FROM information_schema.CHECK_CONSTRAINTS \
         WHERE CONSTRAINT_SCHEMA = ? ORDER BY TABLE_NAME, CONSTRAINT_NAME",
    )
    .bind(schema)
    .fetch_all(&mut *conn)
    .await;
    match mariadb {
        Ok(rows) => Ok(rows),
        Err(e) if super::error_number(&e) == Some(1054) => sqlx::query_as(
            "SELECT CAST(t.TABLE_NAME AS CHAR), CAST(c.CONSTRAINT_NAME AS CHAR), \
             CAST(c.CHECK_CLAUSE AS CHAR) FROM information_schema.TABLE_CONSTRAINTS t \
             JOIN information_schema.CHECK_CONSTRAINTS c \
               ON c.CONSTRAINT_SCHEMA = t.CONSTRAINT_SCHEMA \
              AND c.CONSTRAINT_NAME = t.CONSTRAINT_NAME \
             WHERE t.TABLE_SCHEMA = ? AND t.CONSTRAINT_TYPE = 'CHECK' \
             ORDER BY t.TABLE_NAME, c.CONSTRAINT_NAME",
        )
        .bind(schema)
        .fetch_all(&mut *conn)
        .await
        .map_err(Error::db(context())),
        Err(e) => Err(Error::db(context())(e)),
    }
}

/// The labels of an `enum('a','b')` (or `set(…)`) column type.
fn enum_labels(column_type: &str) -> Vec<String> {
    let lower = column_type.to_ascii_lowercase();
    let inner = if lower.starts_with("enum(") {
        &column_type[5..]
    } else if lower.starts_with("set(") {
        &column_type[4..]
    } else {
        return Vec::new();
    };
    let inner = inner.strip_suffix(')').unwrap_or(inner);
    let mut labels = Vec::new();
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\'' {
            continue;
        }
        let mut label = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\'' if chars.peek() == Some(&'\'') => {
                    chars.next();
                    label.push('\'');
                }
                '\'' => break,
                '\\' => {
                    if let Some(next) = chars.next() {
                        label.push(next);
                    }
                }
                c => label.push(c),
            }
        }
        labels.push(label);
    }
    labels
}

/// Whether a check's text names `column` (as a whole word, quoted or not).
fn mentions(definition: &str, column: &str) -> bool {
    definition.contains(&format!("`{column}`"))
        || definition
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .any(|w| w == column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_labels_are_read_with_their_quotes() {
        assert_eq!(
            enum_labels("enum('draft','it''s','a,b')"),
            vec!["draft", "it's", "a,b"]
        );
        assert_eq!(enum_labels("set('x','y')"), vec!["x", "y"]);
        assert!(enum_labels("varchar(20)").is_empty());
    }

    #[test]
    fn checks_name_their_columns() {
        assert!(mentions("(`amount` > 0)", "amount"));
        assert!(mentions("amount > 0 and total >= amount", "total"));
        assert!(!mentions("(`amount_cents` > 0)", "amount"));
    }
}
