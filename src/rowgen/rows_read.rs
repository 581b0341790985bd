//! What the row generator reads from the migrated database: domains, the rows migrations
//! inserted, and the largest existing keys.

use super::*;

pub(crate) async fn read_domains(
    conn: &mut PgConnection,
) -> Result<HashMap<(String, String), Domain>> {
    type Row = (
        String,
        String,
        String,
        String,
        bool,
        Vec<String>,
        Vec<String>,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT n.nspname::text, t.typname::text, bn.nspname::text, bt.typname::text, \
                bt.typtype = 'd', \
                ARRAY(SELECT c.conname::text FROM pg_constraint c \
                      WHERE c.contypid = t.oid AND c.contype = 'c' ORDER BY c.conname), \
                ARRAY(SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c \
                      WHERE c.contypid = t.oid AND c.contype = 'c' ORDER BY c.conname) \
         FROM pg_type t \
         JOIN pg_namespace n ON n.oid = t.typnamespace \
         JOIN pg_type bt ON bt.oid = t.typbasetype \
         JOIN pg_namespace bn ON bn.oid = bt.typnamespace \
         WHERE t.typtype = 'd' AND n.nspname NOT IN ('pg_catalog', 'information_schema')",
    )
    .fetch_all(conn)
    .await
    .map_err(Error::db("reading domains from pg_catalog"))?;
    Ok(rows
        .into_iter()
        .map(|(s, n, bs, bn, base_is_domain, names, defs)| {
            (
                (s, n),
                Domain {
                    base: (bs, bn),
                    base_is_domain,
                    checks: names.into_iter().zip(defs).collect(),
                },
            )
        })
        .collect())
}

/// Rows migrations inserted, per table (at most [`PREFILLED_LIMIT`] each).
pub(crate) async fn read_prefilled(
    conn: &mut PgConnection,
    schema: &Schema,
) -> Result<HashMap<QualifiedName, Vec<JsonValue>>> {
    let mut out = HashMap::new();
    for t in schema.top_level_tables() {
        let alias = quote_ident("t");
        let sql = format!(
            "SELECT to_jsonb({alias}.*) FROM {} AS {alias} LIMIT $1",
            t.name
        );
        let rows: Vec<JsonValue> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(PREFILLED_LIMIT)
            .fetch_all(&mut *conn)
            .await
            .map_err(Error::db(format!(
                "reading the rows of {}",
                t.name.unquoted()
            )))?;
        if !rows.is_empty() {
            out.insert(t.name.clone(), rows);
        }
    }
    Ok(out)
}

/// The largest value of each unique integer column of the tables migrations filled, so generated
/// keys start above them.
pub(crate) async fn read_existing_max(
    conn: &mut PgConnection,
    schema: &Schema,
    prefilled: &HashMap<QualifiedName, Vec<JsonValue>>,
) -> Result<HashMap<(QualifiedName, String), i64>> {
    let mut out = HashMap::new();
    for (t, c) in keyed_integer_columns(schema, prefilled) {
        let sql = format!("SELECT max({})::int8 FROM {}", quote_ident(c), t.name);
        let max: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(&mut *conn)
            .await
            .map_err(Error::db(format!(
                "reading the largest {c} of {}",
                t.name.unquoted()
            )))?;
        if let Some(m) = max {
            out.insert((t.name.clone(), c.clone()), m);
        }
    }
    Ok(out)
}

/// The integer columns of a primary or unique key, in the tables migrations filled: generated
/// keys there start above the largest value.
pub(crate) fn keyed_integer_columns<'s>(
    schema: &'s Schema,
    prefilled: &HashMap<QualifiedName, Vec<JsonValue>>,
) -> Vec<(&'s Table, &'s String)> {
    let mut out = Vec::new();
    for t in schema.top_level_tables() {
        if !prefilled.contains_key(&t.name) {
            continue;
        }
        let keyed: BTreeSet<&String> = t
            .primary_key
            .iter()
            .chain(t.unique_keys.iter().flat_map(|k| k.columns.iter()))
            .collect();
        for c in keyed {
            if t.column(c)
                .is_some_and(|col| matches!(col.type_name.as_str(), "int2" | "int4" | "int8"))
            {
                out.push((t, c));
            }
        }
    }
    out
}
