//! Emptying a migrated database again: the cleaner that Truncate runs after (and before) every
//! test, and that Rollback runs when code under test committed despite it.
//!
//! A database is *prepared* once, right after its migrations, by [`prepare`]:
//!
//! - the rows migrations inserted (lookup data such as roles or statuses) are copied into
//!   `seedbed.baseline_<oid>` tables, and statement-level triggers on those tables record in
//!   `seedbed.dirty` that a test changed them;
//! - the position of every sequence owned by a table is recorded in `seedbed.sequences`;
//! - a PL/pgSQL function `seedbed.clean(reset_sequences boolean)` is generated from the schema's
//!   deletion order, with every table name quoted by [`quote_ident`](crate::sql::quote_ident).
//!
//! Cleaning is then one round trip: `SELECT seedbed.clean(false)`. The function looks at every
//! table in deletion order (children first) and deletes from those that have rows, so a test that
//! wrote 3 of 33 tables pays for 3 `DELETE`s and 30 empty-table probes, and nothing is paid on
//! the test's writes. Lookup tables are emptied and refilled from their baseline only when their
//! trigger marked them dirty. As a superuser the function runs with
//! `session_replication_role = replica`, so foreign-key checks and the application's triggers
//! (an audit trigger, say) do not fire while it deletes; otherwise it deletes children first with
//! deferrable constraints deferred and repeats until a pass finds nothing, so rows written by
//! triggers during the deletion are removed too.
//!
//! `DELETE` was chosen over `TRUNCATE` by measurement: `TRUNCATE` must name every table that
//! references the ones it empties (in the reference schema, emptying `users` means naming 25
//! tables) and creates new files for each; see `benches/isolation.rs`.

use std::fmt::Write as _;

use sqlx::PgConnection;

use crate::error::{Error, Result};
use crate::schema::Schema;
use crate::sql::{QualifiedName, quote_ident, quote_list};

/// The version of what [`prepare`] installs; part of a prepared database's name, so a seedbed that
/// prepares differently never reuses a database an older one prepared.
pub const VERSION: u32 = 1;

/// The schema seedbed keeps its bookkeeping in, inside prepared databases.
pub const SCHEMA: &str = "seedbed";

/// The schemas of a database that hold the application's tables: every schema but the system
/// ones and seedbed's own.
pub async fn user_schemas(conn: &mut PgConnection) -> Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace \
         WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast', 'seedbed') \
           AND nspname NOT LIKE 'pg_temp_%' AND nspname NOT LIKE 'pg_toast_temp_%' \
         ORDER BY 1",
    )
    .fetch_all(conn)
    .await
    .map_err(Error::db("listing schemas"))
}

/// Reads the application's schema (all user schemas).
pub async fn read_schema(conn: &mut PgConnection) -> Result<Schema> {
    let schemas = user_schemas(conn).await?;
    let names: Vec<&str> = schemas.iter().map(String::as_str).collect();
    Schema::introspect(conn, &names).await
}

/// Prepares a freshly migrated database for cleaning (see the module docs).
pub async fn prepare(conn: &mut PgConnection, schema: &Schema) -> Result<()> {
    let order = schema.deletion_order();
    // Which tables did migrations fill?
    let mut probe = String::from("SELECT ARRAY[");
    let tables: Vec<&QualifiedName> = order.tables().collect();
    for (i, t) in tables.iter().enumerate() {
        if i > 0 {
            probe.push_str(", ");
        }
        let _ = write!(probe, "EXISTS (SELECT 1 FROM {t})");
    }
    probe.push_str("]::bool[]");
    let filled: Vec<bool> = if tables.is_empty() {
        Vec::new()
    } else {
        sqlx::query_scalar(sqlx::AssertSqlSafe(probe))
            .fetch_one(&mut *conn)
            .await
            .map_err(Error::db("looking for rows inserted by migrations"))?
    };
    let baseline: Vec<&QualifiedName> = tables
        .iter()
        .zip(&filled)
        .filter(|(_, f)| **f)
        .map(|(t, _)| *t)
        .collect();

    let mut sql = String::new();
    let s = quote_ident(SCHEMA);
    // The position of each sequence a table owns (serial and identity columns), read with
    // dynamic SQL because a sequence's state is only reachable through its name.
    let _ = writeln!(
        sql,
        "CREATE SCHEMA {s};\n\
         CREATE UNLOGGED TABLE {s}.dirty (relid oid PRIMARY KEY);\n\
         CREATE FUNCTION {s}.mark_dirty() RETURNS trigger LANGUAGE plpgsql AS $f$\n\
         BEGIN\n  INSERT INTO {s}.dirty VALUES (TG_RELID) ON CONFLICT DO NOTHING;\n  RETURN NULL;\nEND\n$f$;\n\
         CREATE FUNCTION {s}.sequence_state(seq regclass, OUT last_value bigint, OUT is_called boolean)\n\
         LANGUAGE plpgsql AS $f$\n\
         BEGIN\n  EXECUTE 'SELECT last_value, is_called FROM ' || seq INTO last_value, is_called;\nEND\n$f$;\n\
         CREATE TABLE {s}.sequences AS\n\
         \x20 SELECT d.refobjid::int8 AS table_oid, d.objid::regclass AS seq, st.last_value, st.is_called\n\
         \x20 FROM pg_depend d\n\
         \x20 JOIN pg_class c ON c.oid = d.objid AND c.relkind = 'S'\n\
         \x20 CROSS JOIN LATERAL {s}.sequence_state(d.objid::regclass) st\n\
         \x20 WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass\n\
         \x20   AND d.deptype IN ('a', 'i');"
    );
    for t in &baseline {
        let table = schema.table(t).ok_or_else(|| {
            Error::Config(format!(
                "table {} vanished during preparation",
                t.unquoted()
            ))
        })?;
        let _ = writeln!(
            sql,
            "CREATE TABLE {s}.{b} AS SELECT * FROM {t};\n\
             CREATE TRIGGER seedbed_dirty AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {t}\n\
               FOR EACH STATEMENT EXECUTE FUNCTION {s}.mark_dirty();",
            b = quote_ident(&baseline_name(table.oid)),
        );
    }
    sql.push_str(&clean_function(schema, &baseline));
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&mut *conn)
        .await
        .map_err(Error::db("preparing the database for cleaning"))?;
    Ok(())
}

fn baseline_name(oid: i64) -> String {
    format!("baseline_{oid}")
}

/// Generates `seedbed.clean(reset_sequences boolean) RETURNS integer`.
fn clean_function(schema: &Schema, baseline: &[&QualifiedName]) -> String {
    let s = quote_ident(SCHEMA);
    let order = schema.deletion_order();
    let mut deletes = String::new();
    let mut restores = String::new();
    for t in order.tables() {
        let Some(table) = schema.table(t) else {
            continue;
        };
        let oid = table.oid;
        if baseline.contains(&t) {
            let _ = writeln!(
                deletes,
                "    IF EXISTS (SELECT 1 FROM {s}.dirty WHERE relid = {oid}) THEN\n\
                 \x20     DELETE FROM {t}; found := true; cleaned := cleaned || {oid}::int8;\n\
                 \x20   END IF;"
            );
        } else {
            let _ = writeln!(
                deletes,
                "    IF EXISTS (SELECT 1 FROM {t}) THEN\n\
                 \x20     DELETE FROM {t}; found := true; cleaned := cleaned || {oid}::int8;\n\
                 \x20   END IF;"
            );
        }
    }
    // Restore lookup rows parents first; generated columns are recomputed, identities kept.
    for t in order.insertion_order() {
        if !baseline.contains(&t) {
            continue;
        }
        let Some(table) = schema.table(t) else {
            continue;
        };
        let columns: Vec<&str> = table
            .columns
            .iter()
            .filter(|c| !matches!(c.default, crate::schema::ColumnDefault::Generated(_)))
            .map(|c| c.name.as_str())
            .collect();
        let cols = quote_list(columns.iter().copied());
        let _ = writeln!(
            restores,
            "    IF {oid}::int8 = ANY(cleaned) THEN\n\
             \x20     INSERT INTO {t} ({cols}) OVERRIDING SYSTEM VALUE SELECT {cols} FROM {s}.{b};\n\
             \x20   END IF;",
            oid = table.oid,
            b = quote_ident(&baseline_name(table.oid)),
        );
    }
    format!(
        "CREATE FUNCTION {s}.clean(reset_sequences boolean) RETURNS integer\n\
         LANGUAGE plpgsql AS $clean$\n\
         DECLARE\n\
         \x20 found boolean;\n\
         \x20 replica boolean := current_setting('is_superuser') = 'on';\n\
         \x20 cleaned int8[] := '{{}}';\n\
         \x20 total int8[] := '{{}}';\n\
         \x20 pass integer := 0;\n\
         BEGIN\n\
         \x20 IF replica THEN\n\
         \x20   SET LOCAL session_replication_role = replica;\n\
         \x20 END IF;\n\
         \x20 SET CONSTRAINTS ALL DEFERRED;\n\
         \x20 LOOP\n\
         \x20   found := false;\n\
         \x20   cleaned := '{{}}';\n\
         {deletes}\
         {restores}\
         \x20   DELETE FROM {s}.dirty;\n\
         \x20   total := total || cleaned;\n\
         \x20   pass := pass + 1;\n\
         \x20   EXIT WHEN NOT found OR replica;\n\
         \x20   IF pass > 8 THEN\n\
         \x20     RAISE EXCEPTION 'seedbed: triggers keep writing rows while the database is emptied';\n\
         \x20   END IF;\n\
         \x20 END LOOP;\n\
         \x20 IF reset_sequences THEN\n\
         \x20   PERFORM setval(q.seq, q.last_value, q.is_called)\n\
         \x20   FROM {s}.sequences q;\n\
         \x20 END IF;\n\
         \x20 RETURN (SELECT count(DISTINCT x)::integer FROM unnest(total) x);\n\
         END\n\
         $clean$;\n"
    )
}

/// Runs the cleaner on the database `conn` is connected to. Returns how many tables had rows.
pub async fn clean(conn: &mut PgConnection, reset_sequences: bool) -> Result<i32> {
    sqlx::query_scalar("SELECT seedbed.clean($1)")
        .bind(reset_sequences)
        .fetch_one(conn)
        .await
        .map_err(Error::db("emptying the test database"))
}

/// Whether the database `conn` is connected to was prepared by [`prepare`].
pub async fn is_prepared(conn: &mut PgConnection) -> Result<bool> {
    sqlx::query_scalar("SELECT to_regprocedure('seedbed.clean(boolean)') IS NOT NULL")
        .fetch_one(conn)
        .await
        .map_err(Error::db("looking for seedbed's cleaner"))
}
