//! Preparing a freshly migrated database for the cleaner: the rows migrations inserted kept as
//! its baseline, the tables' dirty-tracking triggers, and the watch on schema changes.

use std::fmt::Write as _;

use sqlx::PgConnection;

use super::SCHEMA;
use crate::error::{Error, Result};
use crate::schema::Schema;
use crate::sql::{QualifiedName, quote_ident, quote_list, quote_literal};

/// Prepares a freshly migrated database for cleaning (see the [cleaner's docs](super)).
pub async fn prepare(conn: &mut PgConnection, schema: &Schema) -> Result<()> {
    prepare_with(conn, schema, false).await
}

/// [`prepare`], and every table records that a statement wrote it (a statement-level trigger,
/// enabled `ALWAYS` so that `session_replication_role = replica` does not silence it, which
/// notes the table once per transaction in `seedbed.dirty`): the cleaner then reads what a test
/// wrote from one small table instead of asking every table whether it has rows. In a test
/// process that runs one test, whose server session starts cold, asking every table costs
/// milliseconds (each table's catalog entries are loaded); the trigger costs a few microseconds a
/// statement. Truncate's databases and Template's clones are tracked; a write made with the
/// trigger disabled (`ALTER TABLE … DISABLE TRIGGER`) is not seen.
pub async fn prepare_tracked(conn: &mut PgConnection, schema: &Schema) -> Result<()> {
    prepare_with(conn, schema, true).await
}

async fn prepare_with(conn: &mut PgConnection, schema: &Schema, track: bool) -> Result<()> {
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
        "CREATE SCHEMA IF NOT EXISTS {s};\n\
         CREATE TABLE {s}.dirty (relid oid NOT NULL);\n\
         CREATE UNLOGGED TABLE {s}.clean_mark (at timestamptz NOT NULL DEFAULT now());\n\
         CREATE FUNCTION {s}.mark_dirty() RETURNS trigger LANGUAGE plpgsql AS $f$\n\
         BEGIN\n  INSERT INTO {s}.dirty VALUES (TG_RELID);\n  RETURN NULL;\nEND\n$f$;\n\
         CREATE FUNCTION {s}.sequence_state(seq regclass, OUT last_value bigint, OUT is_called boolean)\n\
         LANGUAGE plpgsql AS $f$\n\
         BEGIN\n  EXECUTE 'SELECT last_value, is_called FROM ' || seq INTO last_value, is_called;\nEND\n$f$;\n\
         CREATE TABLE {s}.sequences AS\n\
         \x20 SELECT d.refobjid::int8 AS table_oid, c.oid::regclass AS seq, st.last_value, st.is_called\n\
         \x20 FROM pg_class c\n\
         \x20 JOIN pg_namespace n ON n.oid = c.relnamespace\n\
         \x20 LEFT JOIN pg_depend d ON d.objid = c.oid AND d.classid = 'pg_class'::regclass\n\
         \x20   AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')\n\
         \x20 CROSS JOIN LATERAL {s}.sequence_state(c.oid::regclass) st\n\
         \x20 WHERE c.relkind = 'S' AND n.nspname <> {s_lit}\n\
         \x20   AND n.nspname NOT IN ('pg_catalog', 'information_schema')\n\
         \x20   AND n.nspname NOT LIKE 'pg\\_temp%' AND n.nspname NOT LIKE 'pg\\_toast%';",
        s_lit = quote_literal(SCHEMA)
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
            "CREATE TABLE {s}.{b} AS SELECT * FROM {t};",
            b = quote_ident(&baseline_name(table.oid)),
        );
        if !track {
            let _ = writeln!(
                sql,
                "CREATE TRIGGER seedbed_dirty AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {t}\n\
                   FOR EACH STATEMENT EXECUTE FUNCTION {s}.mark_dirty();"
            );
        }
    }
    if track {
        // Partitions are noted as their root, the table the plan empties.
        let _ = writeln!(
            sql,
            "CREATE FUNCTION {s}.mark_written() RETURNS trigger LANGUAGE plpgsql AS $f$\n\
             DECLARE r oid := COALESCE(pg_partition_root(TG_RELID), TG_RELID);\n\
             BEGIN\n\
             \x20 IF current_setting('seedbed.written_' || r, true) IS DISTINCT FROM 'y' THEN\n\
             \x20   INSERT INTO {s}.dirty VALUES (r);\n\
             \x20   PERFORM set_config('seedbed.written_' || r, 'y', true);\n\
             \x20 END IF;\n\
             \x20 RETURN NULL;\n\
             END\n$f$;"
        );
        for table in &schema.tables {
            let t = &table.name;
            let _ = writeln!(
                sql,
                "CREATE TRIGGER seedbed_written AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {t}\n\
                   FOR EACH STATEMENT EXECUTE FUNCTION {s}.mark_written();\n\
                 ALTER TABLE {t} ENABLE ALWAYS TRIGGER seedbed_written;"
            );
        }
    }
    let _ = writeln!(
        sql,
        "CREATE TABLE {s}.plan (position integer PRIMARY KEY, table_oid int8 NOT NULL, \
         name text NOT NULL, restore text);"
    );
    for (position, t) in order.tables().enumerate() {
        let Some(table) = schema.table(t) else {
            continue;
        };
        let restore = if baseline.contains(&t) {
            // Refill lookup rows; generated columns are recomputed, identities kept.
            let columns: Vec<&str> = table
                .columns
                .iter()
                .filter(|c| !matches!(c.default, crate::schema::ColumnDefault::Generated(_)))
                .map(|c| c.name.as_str())
                .collect();
            let cols = quote_list(columns.iter().copied());
            let b = quote_ident(&baseline_name(table.oid));
            quote_literal(&format!(
                "INSERT INTO {t} ({cols}) OVERRIDING SYSTEM VALUE SELECT {cols} FROM {s}.{b}"
            ))
        } else {
            "NULL".to_string()
        };
        let _ = writeln!(
            sql,
            "INSERT INTO {s}.plan VALUES ({position}, {oid}, {name}, {restore});",
            oid = table.oid,
            name = quote_literal(&t.to_string()),
        );
    }
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&mut *conn)
        .await
        .map_err(Error::db("preparing the database for cleaning"))?;
    Ok(())
}

fn baseline_name(oid: i64) -> String {
    format!("baseline_{oid}")
}

/// Records, in a prepared database, every schema change made in it from now on (by an event
/// trigger on `ddl_command_end` and `sql_drop`, which only a superuser may create), so that a
/// database a test used can be told unchanged and given to the next test once emptied (see
/// [`recycle`](super::recycle)). Changes to temporary objects are not recorded. Returns whether it could be
/// installed (`false` without superuser rights).
pub async fn watch_schema_changes(conn: &mut PgConnection) -> Result<bool> {
    let superuser: bool = sqlx::query_scalar("SELECT current_setting('is_superuser') = 'on'")
        .fetch_one(&mut *conn)
        .await
        .map_err(Error::db("checking for superuser rights"))?;
    if !superuser {
        return Ok(false);
    }
    let s = quote_ident(SCHEMA);
    let sql = format!(
        "CREATE UNLOGGED TABLE {s}.schema_changes (at timestamptz NOT NULL DEFAULT now());\n\
         CREATE FUNCTION {s}.note_ddl() RETURNS event_trigger LANGUAGE plpgsql SECURITY DEFINER\n\
         SET search_path = pg_catalog AS $f$\n\
         BEGIN\n\
         \x20 IF NOT EXISTS (SELECT 1 FROM pg_event_trigger_ddl_commands())\n\
         \x20    OR EXISTS (SELECT 1 FROM pg_event_trigger_ddl_commands() c\n\
         \x20               WHERE c.schema_name IS NULL OR c.schema_name NOT LIKE 'pg\\_temp%') THEN\n\
         \x20   INSERT INTO {s}.schema_changes DEFAULT VALUES;\n\
         \x20 END IF;\n\
         END\n$f$;\n\
         CREATE FUNCTION {s}.note_drop() RETURNS event_trigger LANGUAGE plpgsql SECURITY DEFINER\n\
         SET search_path = pg_catalog AS $f$\n\
         BEGIN\n\
         \x20 IF EXISTS (SELECT 1 FROM pg_event_trigger_dropped_objects() WHERE NOT is_temporary) THEN\n\
         \x20   INSERT INTO {s}.schema_changes DEFAULT VALUES;\n\
         \x20 END IF;\n\
         END\n$f$;\n\
         CREATE EVENT TRIGGER seedbed_schema_changes ON ddl_command_end\n\
         \x20 EXECUTE FUNCTION {s}.note_ddl();\n\
         CREATE EVENT TRIGGER seedbed_schema_drops ON sql_drop\n\
         \x20 EXECUTE FUNCTION {s}.note_drop();"
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&mut *conn)
        .await
        .map_err(Error::db("installing seedbed's schema-change watch"))?;
    Ok(true)
}
