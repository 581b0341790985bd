//! Emptying a migrated database again: the cleaner that Truncate runs after (and before) every
//! test, and that Rollback runs when code under test committed despite it.
//!
//! A database is *prepared* once, right after its migrations, by [`prepare`]:
//!
//! - the rows migrations inserted (lookup data such as roles or statuses) are copied into
//!   `seedbed.baseline_<oid>` tables, and statement-level triggers on those tables record in
//!   `seedbed.dirty` that a test changed them;
//! - the position of every sequence is recorded in `seedbed.sequences`;
//! - the tables are recorded in `seedbed.plan` in deletion order (children first), with their
//!   names quoted by [`crate::sql::quote_ident`] and, for lookup tables, the
//!   statement that refills them.
//!
//! [`prepare_tracked`] (Truncate's databases, Template's clones) also gives every table a
//! statement-level trigger, enabled `ALWAYS`, that notes in `seedbed.dirty` once per transaction
//! that a statement wrote it. Cleaning is then one round trip when the test wrote nothing and two
//! when it did: one query reads the notes; one script deletes from those tables, children first,
//! and refills the lookup tables among them. A test that wrote 3 of 33 tables pays for 3
//! `DELETE`s, and a few microseconds a statement for the notes; a cold server session (a test
//! process under nextest) does not load the catalog entries of the 30 tables it never touched.
//! An untracked database (Rollback's, or one an older seedbed prepared) is asked instead, table by
//! table, whether it has rows (`EXISTS`, 33 of them in about 0.15 ms warm, 3.7 ms cold).
//!
//! As a superuser the script runs with `session_replication_role = replica`, so foreign-key
//! checks and the application's triggers (an audit trigger, say) do not fire while it deletes;
//! otherwise deferrable constraints are deferred and the probe runs again until it finds nothing,
//! so rows written by triggers during the deletion are removed too (the script does not note its
//! own deletes, only what triggers write meanwhile).
//!
//! `DELETE` was chosen over `TRUNCATE` by measurement: `TRUNCATE` must name every table that
//! references the ones it empties (in the reference schema, emptying `users` means naming 25
//! tables) and creates new files for each; see `benches/isolation.rs`.

use std::fmt::Write as _;

use sqlx::PgConnection;

use crate::error::{Error, Result};
use crate::schema::Schema;
use crate::sql::{quote_ident, quote_literal};

mod install;
pub use self::install::{prepare, prepare_tracked, watch_schema_changes};

/// The version of what [`prepare`] installs; part of a prepared database's name, so a seedbed that
/// prepares differently never reuses a database an older one prepared.
pub const VERSION: u32 = 7;

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

/// How to empty one prepared database: its tables in deletion order and the two statements the
/// cleaner runs, read once per process from `seedbed.plan`.
#[derive(Debug, Clone)]
pub struct CleaningPlan {
    tables: Vec<PlanTable>,
    probe: String,
    superuser: bool,
    /// The database records its schema changes ([`watch_schema_changes`]).
    watched: bool,
    /// Its tables note the statements that write them ([`prepare_tracked`]).
    tracked: bool,
}

#[derive(Debug, Clone)]
struct PlanTable {
    oid: i64,
    /// The quoted, qualified name.
    name: String,
    /// For lookup tables, the statement that refills them.
    restore: Option<String>,
}

impl CleaningPlan {
    /// Reads the plan of the database `conn` is connected to.
    pub async fn load(conn: &mut PgConnection) -> Result<Self> {
        Ok(Self::load_reading(conn, "false").await?.0)
    }

    /// Reads the plan, `changed` (one of this module's constant expressions), and, in a tracked
    /// database, the tables written so far (the first probe of [`clean`], in the same query).
    async fn load_reading(
        conn: &mut PgConnection,
        changed: &str,
    ) -> Result<(Self, bool, Option<Vec<i64>>)> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(Self::query_with(changed)))
            .fetch_all(&mut *conn)
            .await
            .map_err(Error::db("reading seedbed's cleaning plan"))?;
        Self::from_rows(&rows)
    }

    /// The query that reads a plan, to send with other statements; its rows make the plan with
    /// [`from_rows`](Self::from_rows).
    pub(crate) fn query() -> String {
        Self::query_with("false")
    }

    fn query_with(changed: &str) -> String {
        format!(
            "SELECT s.superuser, s.watched, s.tracked, s.changed, \
                    CASE WHEN s.tracked THEN ARRAY(SELECT relid::int8 FROM seedbed.dirty) END, \
                    p.table_oid, p.name, p.restore \
             FROM (SELECT current_setting('is_superuser') = 'on' AS superuser, \
                          to_regclass('seedbed.schema_changes') IS NOT NULL AS watched, \
                          to_regprocedure('seedbed.mark_written()') IS NOT NULL AS tracked, \
                          {changed} AS changed) s \
             LEFT JOIN seedbed.plan p ON true ORDER BY p.position"
        )
    }

    /// The plan [`query`](Self::query)'s rows describe, what its `changed` expression said, and
    /// the tables a tracked database noted as written.
    pub(crate) fn from_rows(
        rows: &[sqlx::postgres::PgRow],
    ) -> Result<(Self, bool, Option<Vec<i64>>)> {
        type Row = (
            bool,
            bool,
            bool,
            bool,
            Option<Vec<i64>>,
            Option<i64>,
            Option<String>,
            Option<String>,
        );
        let rows: Vec<Row> = rows
            .iter()
            .map(<Row as sqlx::FromRow<'_, sqlx::postgres::PgRow>>::from_row)
            .collect::<std::result::Result<_, _>>()
            .map_err(Error::db("reading seedbed's cleaning plan"))?;
        let (superuser, watched, tracked, changed, written) = rows
            .first()
            .map_or((false, false, false, false, None), |r| {
                (r.0, r.1, r.2, r.3, r.4.clone())
            });
        let tables: Vec<PlanTable> = rows
            .into_iter()
            .filter_map(|(_, _, _, _, _, oid, name, restore)| {
                Some(PlanTable {
                    oid: oid?,
                    name: name?,
                    restore,
                })
            })
            .collect();
        let s = quote_ident(SCHEMA);
        let probe = if tracked {
            format!("SELECT ARRAY[]::bool[], ARRAY(SELECT relid::int8 FROM {s}.dirty)")
        } else {
            let probes: Vec<String> = tables
                .iter()
                .filter(|t| t.restore.is_none())
                .map(|t| format!("EXISTS (SELECT 1 FROM {})", t.name))
                .collect();
            format!(
                "SELECT ARRAY[{}]::bool[], ARRAY(SELECT relid::int8 FROM {s}.dirty)",
                probes.join(", ")
            )
        };
        Ok((
            Self {
                tables,
                probe,
                superuser,
                watched,
                tracked,
            },
            changed,
            written,
        ))
    }

    /// The query that returns what a tracked database's tables noted (the tables written since
    /// it was last emptied), to send with other statements; `None` for an untracked database.
    pub(crate) fn written_query(&self) -> Option<String> {
        self.tracked.then(|| {
            format!(
                "SELECT ARRAY(SELECT relid::int8 FROM {}.dirty)",
                quote_ident(SCHEMA)
            )
        })
    }

    /// Whether the database records its schema changes, so [`recycle`] can tell whether a test
    /// changed it.
    pub fn watches_schema_changes(&self) -> bool {
        self.watched
    }

    /// The script that empties `touched` (positions in the plan) and refills the lookup tables
    /// among them, `last` run before it commits.
    fn script(&self, touched: &[usize], reset: bool, last: Option<&str>) -> String {
        let s = quote_ident(SCHEMA);
        // The cleaning need not wait for the disk: if the server crashes before it is durable,
        // what it deleted comes back with its notes in seedbed.dirty (a logged table, written in
        // the writers' own transactions) and the mark that says it was emptied is gone (an
        // unlogged table), so the next test empties it again.
        let mut sql = String::from("BEGIN;\nSET LOCAL synchronous_commit = off;\n");
        if self.superuser {
            sql.push_str("SET LOCAL session_replication_role = replica;\n");
        }
        sql.push_str("SET CONSTRAINTS ALL DEFERRED;\n");
        if self.tracked {
            // The notes go first; the tables emptied here do not note this transaction's own
            // deletes and refills, so what triggers write while it deletes (without superuser
            // rights the application's triggers fire) is noted for the next pass.
            let _ = writeln!(sql, "DELETE FROM {s}.dirty;");
            for &i in touched {
                let _ = writeln!(
                    sql,
                    "SELECT set_config('seedbed.written_{}', 'y', true);",
                    self.tables[i].oid
                );
            }
        }
        for &i in touched {
            let _ = writeln!(sql, "DELETE FROM {};", self.tables[i].name);
        }
        for &i in touched.iter().rev() {
            if let Some(restore) = &self.tables[i].restore {
                let _ = writeln!(sql, "{restore};");
            }
        }
        if !self.tracked {
            let _ = writeln!(sql, "DELETE FROM {s}.dirty;");
        }
        if reset {
            // Only those that moved: setval writes to the log.
            let _ = writeln!(
                sql,
                "SELECT setval(q.seq, q.last_value, q.is_called) FROM {s}.sequences q \
                 CROSS JOIN LATERAL {s}.sequence_state(q.seq) st \
                 WHERE (st.last_value, st.is_called) IS DISTINCT FROM (q.last_value, q.is_called);"
            );
        }
        if let Some(last) = last {
            let _ = writeln!(sql, "{last};");
        }
        sql.push_str("COMMIT;");
        sql
    }
}

/// Empties the database `conn` is connected to (see the module docs). Returns how many tables
/// had rows.
pub async fn clean(
    conn: &mut PgConnection,
    plan: &CleaningPlan,
    reset_sequences: bool,
) -> Result<usize> {
    clean_then(conn, plan, reset_sequences, None, None).await
}

/// [`clean`] a tracked database whose written tables were just read (with
/// [`CleaningPlan::written_query`]), so its first probe is not sent again.
pub(crate) async fn clean_written(
    conn: &mut PgConnection,
    plan: &CleaningPlan,
    reset_sequences: bool,
    mark: bool,
    written: Vec<i64>,
) -> Result<usize> {
    let last = mark.then(mark_statement);
    clean_then(conn, plan, reset_sequences, last.as_deref(), Some(written)).await
}

fn mark_statement() -> String {
    format!(
        "DELETE FROM {s}.clean_mark; INSERT INTO {s}.clean_mark DEFAULT VALUES",
        s = quote_ident(SCHEMA)
    )
}

/// [`clean`], then marks the database emptied (in the same transaction), for the next process
/// that takes it (see [`slots`](crate::isolation::slots)): it takes the mark away when it takes the
/// database.
pub async fn clean_and_mark(
    conn: &mut PgConnection,
    plan: &CleaningPlan,
    reset_sequences: bool,
) -> Result<usize> {
    clean_then(conn, plan, reset_sequences, Some(&mark_statement()), None).await
}

async fn clean_then(
    conn: &mut PgConnection,
    plan: &CleaningPlan,
    reset_sequences: bool,
    last: Option<&str>,
    first: Option<Vec<i64>>,
) -> Result<usize> {
    let mut cleaned = std::collections::BTreeSet::new();
    let mut first = first.filter(|_| plan.tracked);
    for pass in 0..8 {
        let (rows, dirty): (Vec<bool>, Vec<i64>) = match first.take() {
            Some(written) => (Vec::new(), written),
            None => sqlx::query_as(sqlx::AssertSqlSafe(plan.probe.clone()))
                .fetch_one(&mut *conn)
                .await
                .map_err(Error::db("looking for the rows a test left"))?,
        };
        let mut probed = rows.into_iter();
        let touched: Vec<usize> = plan
            .tables
            .iter()
            .enumerate()
            .filter(|(_, t)| match t.restore {
                // A tracked database notes every table a statement wrote.
                None if !plan.tracked => probed.next().unwrap_or(false),
                _ => dirty.contains(&t.oid),
            })
            .map(|(i, _)| i)
            .collect();
        let reset = reset_sequences && pass == 0;
        if touched.is_empty() && !reset {
            if let Some(last) = last {
                sqlx::raw_sql(sqlx::AssertSqlSafe(last.to_string()))
                    .execute(&mut *conn)
                    .await
                    .map_err(Error::db("marking the test database emptied"))?;
            }
            return Ok(cleaned.len());
        }
        // Without superuser rights, triggers may write while deleting: the mark waits for a probe
        // that finds nothing.
        let last_pass = plan.superuser;
        sqlx::raw_sql(sqlx::AssertSqlSafe(plan.script(
            &touched,
            reset,
            last.filter(|_| last_pass),
        )))
        .execute(&mut *conn)
        .await
        .map_err(Error::db("emptying the test database"))?;
        cleaned.extend(touched);
        if plan.superuser {
            // No trigger fired while deleting: nothing can have been written meanwhile.
            return Ok(cleaned.len());
        }
    }
    Err(Error::Config(
        "the test database is still not empty after 8 passes: triggers keep writing rows while \
         seedbed deletes them"
            .into(),
    ))
}

/// What a test changed that the cleaner cannot undo: a schema change recorded by
/// [`watch_schema_changes`] (a database without the watch fails here), a large object, a prepared
/// transaction or a database setting.
const CHANGED: &str = "EXISTS (SELECT 1 FROM seedbed.schema_changes) \
     OR EXISTS (SELECT 1 FROM pg_largeobject_metadata) \
     OR EXISTS (SELECT 1 FROM pg_prepared_xacts WHERE database = current_database()) \
     OR EXISTS (SELECT 1 FROM pg_db_role_setting WHERE setdatabase = \
                (SELECT oid FROM pg_database WHERE datname = current_database()))";

/// Makes a database a test used as it was before the test, for the next one: if the test changed
/// nothing but rows and sequences (no schema change recorded by [`watch_schema_changes`], no
/// large object, prepared transaction, database setting or other session left), empties it and
/// resets every sequence that moved (a failed or rolled-back insert moves one without writing its
/// table) and returns `true`; else leaves it and returns
/// `false` (it must be dropped). A database without the watch is an error. One query reads the
/// plan and looks for changes; emptying takes one or two more.
pub async fn recycle(conn: &mut PgConnection, own: &[i32]) -> Result<bool> {
    let (plan, changed, written) = CleaningPlan::load_reading(conn, &recycle_changed(own)).await?;
    if changed || !plan.watched {
        return Ok(false);
    }
    clean_then(conn, &plan, true, None, written).await?;
    Ok(true)
}

/// The `application_name` of the connections this process opens ahead to a database for its
/// next test (Template's spares): [`recycle`] does not count them as other sessions, as they
/// only ever serve a test of this process that claims that database, and do nothing until then.
pub(crate) fn ahead_application_name() -> &'static str {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| format!("seedbed ahead {}", std::process::id()))
}

/// What makes [`recycle`] refuse a database: a change [`CHANGED`] detects, or another session
/// still connected (code the test started that outlived it could write after the cleaning).
/// `own` are the server processes of the test's other connections, about to close; this
/// process's connections opened ahead ([`ahead_application_name`]) do not count either.
fn recycle_changed(own: &[i32]) -> String {
    format!(
        "{CHANGED} OR EXISTS (SELECT 1 FROM pg_stat_get_activity(NULL) a \
         WHERE a.datid = (SELECT datid FROM pg_stat_get_activity(pg_backend_pid())) \
           AND a.pid <> pg_backend_pid() AND a.pid <> ALL('{{{}}}'::int4[]) \
           AND a.application_name IS DISTINCT FROM {})",
        own.iter().map(i32::to_string).collect::<Vec<_>>().join(","),
        quote_literal(ahead_application_name())
    )
}

/// Asks, on a connection to a database a test is about to use alone, what [`recycle`] asks first
/// at its end, and forgets the answer: the session then has that statement prepared and its
/// catalogs cached, which a session new to the database spends several milliseconds on. For a
/// connection opened while something else is awaited (Template's claim); read-only.
pub async fn warm_for_recycle(conn: &mut PgConnection) {
    let _ = sqlx::query(sqlx::AssertSqlSafe(CleaningPlan::query_with(
        &recycle_changed(&[]),
    )))
    .fetch_all(conn)
    .await;
}

/// Whether the database `conn` is connected to was prepared by [`prepare`].
pub async fn is_prepared(conn: &mut PgConnection) -> Result<bool> {
    sqlx::query_scalar("SELECT to_regclass('seedbed.plan') IS NOT NULL")
        .fetch_one(conn)
        .await
        .map_err(Error::db("looking for seedbed's cleaner"))
}
