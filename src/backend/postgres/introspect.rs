//! Reading a [`Schema`] from `pg_catalog`.

use std::collections::HashMap;

use sqlx::PgConnection;

use crate::error::{Error, Result};
use crate::schema::{
    Check, Column, ColumnDefault, FkAction, ForeignKey, Schema, Table, TableKind, UniqueKey, View,
};
use crate::sql::QualifiedName;

type TableRow = (i64, String, String, String, Option<String>, Option<String>);
type ColumnRow = (
    i64,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    Vec<String>,
    bool,
    Option<String>,
    String,
    String,
    i16,
);
type ConstraintRow = (
    i64,
    String,
    String,
    Vec<i16>,
    Option<i64>,
    Option<Vec<i16>>,
    bool,
    bool,
    String,
    String,
);

impl Schema {
    /// Reads the tables, columns, keys and foreign keys of `schemas` from the database `conn` is
    /// connected to. seedbed's own bookkeeping (`_sqlx_migrations`) is left out.
    pub async fn introspect(conn: &mut PgConnection, schemas: &[&str]) -> Result<Schema> {
        let schemas: Vec<String> = schemas.iter().map(|s| s.to_string()).collect();
        let tables = read_tables(conn, &schemas).await?;
        let oids: Vec<i64> = tables.iter().map(|t| t.0).collect();
        let columns = read_columns(conn, &oids).await?;
        let constraints = read_constraints(conn, &oids).await?;
        let unique_indexes = read_unique_indexes(conn, &oids).await?;
        let views = read_views(conn, &schemas).await?;

        let names: HashMap<i64, QualifiedName> = tables
            .iter()
            .map(|(oid, schema, name, ..)| (*oid, QualifiedName::new(schema, name)))
            .collect();
        let mut columns_by_table: HashMap<i64, Vec<Column>> = HashMap::new();
        for row in columns {
            let (relid, name, sql_type, type_name, type_schema, type_kind, base, labels) =
                (row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7);
            let (not_null, default_expr, identity, generated, position) =
                (row.8, row.9, row.10, row.11, row.12);
            let default = match (identity.as_str(), generated.as_str(), default_expr) {
                ("a", _, _) => ColumnDefault::IdentityAlways,
                ("d", _, _) => ColumnDefault::IdentityByDefault,
                (_, "s", Some(expr)) => ColumnDefault::Generated(expr),
                (_, _, Some(expr)) => ColumnDefault::Expr(expr),
                _ => ColumnDefault::None,
            };
            columns_by_table.entry(relid).or_default().push(Column {
                name,
                sql_type,
                type_name,
                type_schema,
                type_kind: type_kind.chars().next().unwrap_or('b'),
                domain_base: base,
                enum_labels: labels,
                not_null,
                default,
                position,
            });
        }
        let column_name = |relid: i64, attnum: i16| -> String {
            columns_by_table
                .get(&relid)
                .and_then(|cols| cols.iter().find(|c| c.position == attnum))
                .map(|c| c.name.clone())
                .unwrap_or_else(|| format!("#{attnum}"))
        };

        let mut primary: HashMap<i64, Vec<String>> = HashMap::new();
        let mut checks: HashMap<i64, Vec<Check>> = HashMap::new();
        let mut foreign_keys = Vec::new();
        for (relid, name, kind, keys, frelid, fkeys, deferrable, deferred, del, def) in constraints
        {
            let cols: Vec<String> = keys.iter().map(|k| column_name(relid, *k)).collect();
            match kind.as_str() {
                "p" => {
                    primary.insert(relid, cols);
                }
                "c" => checks.entry(relid).or_default().push(Check {
                    name,
                    definition: def,
                    columns: cols,
                }),
                "f" => {
                    let (Some(frelid), Some(fkeys)) = (frelid, fkeys) else {
                        continue;
                    };
                    // A key pointing outside the schemas read is not part of this graph.
                    let Some(references) = names.get(&frelid) else {
                        continue;
                    };
                    let nullable = keys.iter().all(|k| {
                        columns_by_table
                            .get(&relid)
                            .and_then(|cs| cs.iter().find(|c| c.position == *k))
                            .is_some_and(|c| !c.not_null)
                    });
                    foreign_keys.push(ForeignKey {
                        name,
                        table: names[&relid].clone(),
                        columns: cols,
                        references: references.clone(),
                        referenced_columns: fkeys.iter().map(|k| column_name(frelid, *k)).collect(),
                        deferrable,
                        initially_deferred: deferred,
                        on_delete: match del.as_str() {
                            "r" => FkAction::Restrict,
                            "c" => FkAction::Cascade,
                            "n" => FkAction::SetNull,
                            "d" => FkAction::SetDefault,
                            _ => FkAction::NoAction,
                        },
                        nullable,
                    });
                }
                _ => {}
            }
        }
        let mut uniques: HashMap<i64, Vec<UniqueKey>> = HashMap::new();
        for (relid, name, keys) in unique_indexes {
            uniques.entry(relid).or_default().push(UniqueKey {
                name,
                columns: keys.iter().map(|k| column_name(relid, *k)).collect(),
            });
        }

        let mut out_tables = Vec::with_capacity(tables.len());
        for (oid, schema, name, relkind, parent_schema, parent_name) in tables {
            let kind = match (relkind.as_str(), parent_schema, parent_name) {
                ("p", ..) => TableKind::Partitioned,
                (_, Some(ps), Some(pn)) => TableKind::Partition {
                    parent: QualifiedName::new(ps, pn),
                },
                _ => TableKind::Ordinary,
            };
            out_tables.push(Table {
                name: QualifiedName::new(schema, name),
                oid,
                kind,
                columns: columns_by_table.remove(&oid).unwrap_or_default(),
                primary_key: primary.remove(&oid).unwrap_or_default(),
                unique_keys: uniques.remove(&oid).unwrap_or_default(),
                checks: checks.remove(&oid).unwrap_or_default(),
            });
        }
        out_tables.sort_by(|a, b| a.name.cmp(&b.name));
        foreign_keys.sort_by(|a, b| (&a.table, &a.name).cmp(&(&b.table, &b.name)));
        Ok(Schema {
            schemas,
            tables: out_tables,
            foreign_keys,
            views,
        })
    }
}

async fn read_tables(conn: &mut PgConnection, schemas: &[String]) -> Result<Vec<TableRow>> {
    sqlx::query_as(
        "SELECT c.oid::int8, n.nspname::text, c.relname::text, c.relkind::text, \
                pn.nspname::text, p.relname::text \
         FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         LEFT JOIN pg_inherits i ON i.inhrelid = c.oid AND c.relispartition \
         LEFT JOIN pg_class p ON p.oid = i.inhparent \
         LEFT JOIN pg_namespace pn ON pn.oid = p.relnamespace \
         WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY($1) \
           AND NOT (n.nspname = 'public' AND c.relname = '_sqlx_migrations') \
         ORDER BY n.nspname, c.relname",
    )
    .bind(schemas)
    .fetch_all(conn)
    .await
    .map_err(Error::db("reading tables from pg_catalog"))
}

async fn read_columns(conn: &mut PgConnection, oids: &[i64]) -> Result<Vec<ColumnRow>> {
    sqlx::query_as(
        "SELECT a.attrelid::int8, a.attname::text, format_type(a.atttypid, a.atttypmod), \
                t.typname::text, tn.nspname::text, t.typtype::text, bt.typname::text, \
                COALESCE((SELECT array_agg(e.enumlabel::text ORDER BY e.enumsortorder) \
                          FROM pg_enum e \
                          WHERE e.enumtypid = CASE WHEN t.typtype = 'd' THEN t.typbasetype \
                                                   ELSE t.oid END), '{}'::text[]), \
                a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attidentity::text, \
                a.attgenerated::text, a.attnum \
         FROM pg_attribute a \
         JOIN pg_type t ON t.oid = a.atttypid \
         JOIN pg_namespace tn ON tn.oid = t.typnamespace \
         LEFT JOIN pg_type bt ON bt.oid = t.typbasetype AND t.typtype = 'd' \
         LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
         WHERE a.attrelid::int8 = ANY($1) AND a.attnum > 0 AND NOT a.attisdropped \
         ORDER BY a.attrelid, a.attnum",
    )
    .bind(oids)
    .fetch_all(conn)
    .await
    .map_err(Error::db("reading columns from pg_catalog"))
}

async fn read_constraints(conn: &mut PgConnection, oids: &[i64]) -> Result<Vec<ConstraintRow>> {
    // conparentid <> 0 marks the copies PostgreSQL makes of a partitioned table's constraints on
    // its partitions (and of keys that reference a partitioned table, one per partition).
    sqlx::query_as(
        "SELECT con.conrelid::int8, con.conname::text, con.contype::text, con.conkey, \
                NULLIF(con.confrelid, 0)::int8, con.confkey, con.condeferrable, \
                con.condeferred, con.confdeltype::text, pg_get_constraintdef(con.oid) \
         FROM pg_constraint con \
         WHERE con.conrelid::int8 = ANY($1) AND con.contype IN ('p', 'c', 'f') \
           AND (con.contype <> 'f' OR con.conparentid = 0) \
         ORDER BY con.conrelid, con.conname",
    )
    .bind(oids)
    .fetch_all(conn)
    .await
    .map_err(Error::db("reading constraints from pg_catalog"))
}

async fn read_unique_indexes(
    conn: &mut PgConnection,
    oids: &[i64],
) -> Result<Vec<(i64, String, Vec<i16>)>> {
    // Unique constraints and unique indexes alike; expression and partial indexes are left out
    // (they constrain values seedbed cannot reason about column by column).
    sqlx::query_as(
        "SELECT x.indrelid::int8, ic.relname::text, ARRAY(SELECT unnest(x.indkey::int2[])) \
         FROM pg_index x JOIN pg_class ic ON ic.oid = x.indexrelid \
         WHERE x.indrelid::int8 = ANY($1) AND x.indisunique AND NOT x.indisprimary \
           AND x.indexprs IS NULL AND x.indpred IS NULL \
         ORDER BY x.indrelid, ic.relname",
    )
    .bind(oids)
    .fetch_all(conn)
    .await
    .map_err(Error::db("reading unique indexes from pg_catalog"))
}

async fn read_views(conn: &mut PgConnection, schemas: &[String]) -> Result<Vec<View>> {
    let rows: Vec<(String, String, bool)> = sqlx::query_as(
        "SELECT n.nspname::text, c.relname::text, c.relkind = 'm' \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('v', 'm') AND n.nspname = ANY($1) \
         ORDER BY n.nspname, c.relname",
    )
    .bind(schemas)
    .fetch_all(conn)
    .await
    .map_err(Error::db("reading views from pg_catalog"))?;
    Ok(rows
        .into_iter()
        .map(|(s, n, materialized)| View {
            name: QualifiedName::new(s, n),
            materialized,
        })
        .collect())
}
