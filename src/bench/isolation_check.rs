//! The isolation check: after a target's runs, the databases its tests used hold what
//! migrations left (the same schemas, the same number of rows in every table) and the databases
//! that had to go (Template's clones, the baseline's databases) are gone.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection};

use super::report::IsolationCheck;
use crate::backend::postgres::clean;
use crate::backend::postgres::server::Server;
use crate::error::{Error, Result};
use crate::isolation::registry;
use crate::schema::Schema;
use crate::sql::QualifiedName;

/// What a database holds right after its migrations.
#[derive(Debug, Clone)]
pub(crate) struct Expected {
    pub(crate) tables: Vec<QualifiedName>,
    pub(crate) counts: Vec<i64>,
    pub(crate) schemas: Vec<String>,
}

/// `SELECT ARRAY[(SELECT count(*) FROM t1), …]` for every table.
fn count_sql(tables: &[QualifiedName]) -> String {
    let mut sql = String::from("SELECT ARRAY[");
    for (i, t) in tables.iter().enumerate() {
        if i > 0 {
            sql.push_str(", ");
        }
        let _ = write!(sql, "(SELECT count(*) FROM {t})");
    }
    sql.push_str("]::int8[]");
    sql
}

async fn counts(conn: &mut PgConnection, tables: &[QualifiedName]) -> Result<Vec<i64>> {
    if tables.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query_scalar(sqlx::AssertSqlSafe(count_sql(tables)))
        .fetch_one(conn)
        .await
        .map_err(Error::db("counting rows"))
}

/// Reads what the freshly migrated database `conn` is connected to holds.
pub(crate) async fn expected(conn: &mut PgConnection) -> Result<Expected> {
    let schemas = clean::user_schemas(conn).await?;
    let names: Vec<&str> = schemas.iter().map(String::as_str).collect();
    let schema = Schema::introspect(conn, &names).await?;
    let tables: Vec<QualifiedName> = schema.top_level_tables().map(|t| t.name.clone()).collect();
    let counts = counts(conn, &tables).await?;
    Ok(Expected {
        tables,
        counts,
        schemas,
    })
}

/// The names of the server's databases.
pub(crate) async fn database_names(server: &Server) -> Result<BTreeSet<String>> {
    let mut conn = server.connect().await?;
    let names: Vec<String> = sqlx::query_scalar("SELECT datname::text FROM pg_database")
        .fetch_all(&mut conn)
        .await
        .map_err(Error::db("listing databases"))?;
    let _ = conn.close().await;
    Ok(names.into_iter().collect())
}

/// Whose registry entries the isolation check looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Registered {
    /// None: the target registers nothing.
    Unchecked,
    /// This process's (the in-process runs).
    ByThisProcess,
    /// Any process's (the test processes of a process-per-test run, which have exited).
    ByAnyProcess,
}

/// Checks the databases `used` (which stay) against `expected`, waits up to `wait` for the
/// databases in `gone` to be dropped, and looks for entries of the `used` and `gone` databases
/// still registered as in use by the processes `registered` names.
pub(crate) async fn check(
    server: &Server,
    expected: &Expected,
    used: &BTreeSet<String>,
    gone: &BTreeSet<String>,
    wait: Duration,
    registered: Registered,
) -> Result<IsolationCheck> {
    let mut out = IsolationCheck {
        databases_gone: gone.len(),
        ..IsolationCheck::default()
    };
    // Template's clones are emptied and given back as spares for the next tests (which must
    // hold what migrations left), or dropped in the background after their test: give them time.
    let started = Instant::now();
    let mut left: Vec<String>;
    let mut recycled: BTreeSet<String> = BTreeSet::new();
    loop {
        let names = database_names(server).await?;
        left = gone
            .iter()
            .filter(|g| names.contains(*g) && !recycled.contains(*g))
            .cloned()
            .collect();
        if !left.is_empty() {
            recycled.extend(spares(server, &left).await?);
            left.retain(|name| !recycled.contains(name));
        }
        if left.is_empty() || started.elapsed() > wait {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pid = i32::try_from(std::process::id()).unwrap_or(i32::MAX);
    let entries: Vec<registry::Entry> = if registered == Registered::Unchecked {
        Vec::new()
    } else {
        let mut conn = server.connect().await?;
        let entries = registry::list(&mut conn).await;
        let _ = conn.close().await;
        entries?
            .into_iter()
            .filter(|e| {
                (registered == Registered::ByAnyProcess || e.pid == pid)
                    && matches!(e.state.as_str(), "in_use" | "building" | "kept")
                    && (gone.contains(&e.name) || used.contains(&e.name))
            })
            .collect()
    };
    let holder = |e: &registry::Entry| {
        if e.pid == pid {
            "this process".to_string()
        } else {
            format!("test process {}, which has exited", e.pid)
        }
    };
    for name in &left {
        out.problems
            .push(match entries.iter().find(|e| &e.name == name) {
                Some(e) => format!(
                    "database {name} was left behind, still registered as {} by {} (the next \
                 start-up sweep of a test process, or seedbed sweep, drops it)",
                    e.state,
                    holder(e)
                ),
                None => format!("database {name} was left behind (seedbed sweep removes it)"),
            });
    }
    out.databases_gone = gone.len() - recycled.len();
    let names = database_names(server).await?;
    for db in used.iter().chain(&recycled).filter(|d| names.contains(*d)) {
        out.databases_checked += 1;
        if let Err(e) = check_database(server, db, expected, &mut out.problems).await {
            out.problems
                .push(format!("could not check database {db}: {e}"));
        }
    }
    for e in entries.iter().filter(|e| !left.contains(&e.name)) {
        out.problems.push(format!(
            "database {} is still registered as {} by {}",
            e.name,
            e.state,
            holder(e)
        ));
    }
    Ok(out)
}

/// Those of `names` that are registered spares, free for the next test.
async fn spares(server: &Server, names: &[String]) -> Result<Vec<String>> {
    let mut conn = server.connect().await?;
    let entries = registry::list(&mut conn).await;
    let _ = conn.close().await;
    Ok(entries?
        .into_iter()
        .filter(|e| e.state == "spare" && !e.leased && names.contains(&e.name))
        .map(|e| e.name)
        .collect())
}

async fn check_database(
    server: &Server,
    db: &str,
    expected: &Expected,
    problems: &mut Vec<String>,
) -> Result<()> {
    let mut conn = PgConnection::connect_with(&server.database_options(db))
        .await
        .map_err(Error::db(format!("connecting to {db}")))?;
    let result = async {
        let schemas = clean::user_schemas(&mut conn).await?;
        for s in schemas.iter().filter(|s| !expected.schemas.contains(s)) {
            problems.push(format!("schema {s} was left behind in {db}"));
        }
        let now = counts(&mut conn, &expected.tables).await?;
        for ((t, before), after) in expected.tables.iter().zip(&expected.counts).zip(now) {
            if after != *before {
                problems.push(format!(
                    "{} has {after} rows in {db}, migrations leave {before}",
                    t.unquoted()
                ));
            }
        }
        Ok(())
    }
    .await;
    let _ = conn.close().await;
    result
}

/// What the freshly migrated SQLite database `conn` has open holds (seedbed's and sqlx's own
/// tables left out).
#[cfg(feature = "sqlite")]
pub(crate) async fn expected_sqlite(conn: &mut sqlx::SqliteConnection) -> Result<Expected> {
    use crate::backend::Introspect;
    let schemas = <sqlx::Sqlite as Introspect>::user_schemas(conn).await?;
    let names: Vec<&str> = schemas.iter().map(String::as_str).collect();
    let schema = <sqlx::Sqlite as Introspect>::introspect(conn, &names).await?;
    let tables: Vec<QualifiedName> = schema
        .top_level_tables()
        .filter(|t| crate::rowgen::rows::sqlite::is_application_table(&t.name.name))
        .map(|t| t.name.clone())
        .collect();
    let counts = sqlite_counts(conn, &tables).await?;
    Ok(Expected {
        tables,
        counts,
        schemas,
    })
}

/// `SELECT json_array((SELECT count(*) FROM t1), …)`: every table's rows in one statement.
#[cfg(feature = "sqlite")]
async fn sqlite_counts(
    conn: &mut sqlx::SqliteConnection,
    tables: &[QualifiedName],
) -> Result<Vec<i64>> {
    if tables.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = String::from("SELECT json_array(");
    for (i, t) in tables.iter().enumerate() {
        if i > 0 {
            sql.push_str(", ");
        }
        let _ = write!(sql, "(SELECT count(*) FROM {t})");
    }
    sql.push(')');
    let text: String = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(conn)
        .await
        .map_err(Error::db("counting rows"))?;
    let counts: sqlx::types::JsonValue = text.parse().map_err(|e| {
        Error::Config(format!(
            "SQLite returned row counts seedbed cannot read: {e}"
        ))
    })?;
    Ok(counts
        .as_array()
        .map(|a| a.iter().map(|n| n.as_i64().unwrap_or(-1)).collect())
        .unwrap_or_default())
}

/// The databases (files) of a SQLite directory.
#[cfg(feature = "sqlite")]
pub(crate) fn sqlite_database_names(
    dir: &crate::backend::sqlite::Directory,
) -> Result<BTreeSet<String>> {
    let entries =
        std::fs::read_dir(dir.path()).map_err(Error::io("listing", dir.path().to_path_buf()))?;
    Ok(entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".db").map(str::to_string)
        })
        .collect())
}

/// [`check`] on SQLite: the files `used` that still exist hold what migrations left, and the
/// files in `gone` are removed (waiting up to `wait` for them). With
/// [`Registered::ByThisProcess`], a Template copy of this process that is still there is the
/// one it keeps for its next Template test (emptied): it is checked, not missed.
#[cfg(feature = "sqlite")]
pub(crate) async fn check_sqlite(
    dir: &crate::backend::sqlite::Directory,
    expected: &Expected,
    used: &BTreeSet<String>,
    gone: &BTreeSet<String>,
    wait: Duration,
    registered: Registered,
) -> Result<IsolationCheck> {
    let own_copy = format!("seedbed_clone_{}_", std::process::id());
    let kept_for_next =
        |name: &String| registered == Registered::ByThisProcess && name.starts_with(&own_copy);
    let started = Instant::now();
    let mut names = sqlite_database_names(dir)?;
    while gone.iter().any(|g| names.contains(g) && !kept_for_next(g)) && started.elapsed() < wait {
        tokio::time::sleep(Duration::from_millis(50)).await;
        names = sqlite_database_names(dir)?;
    }
    let recycled: BTreeSet<String> = gone
        .iter()
        .filter(|g| names.contains(*g) && kept_for_next(g))
        .cloned()
        .collect();
    let mut out = IsolationCheck {
        databases_gone: gone.len() - recycled.len(),
        ..IsolationCheck::default()
    };
    let used: BTreeSet<String> = used.union(&recycled).cloned().collect();
    for name in gone
        .iter()
        .filter(|g| names.contains(*g) && !recycled.contains(*g))
    {
        out.problems.push(format!(
            "database {} was left behind (seedbed sweep --sqlite removes it)",
            dir.url(name)
        ));
    }
    for db in used.iter().filter(|d| names.contains(*d)) {
        out.databases_checked += 1;
        let checked = async {
            let mut conn = dir.connect(db).await?;
            let now = sqlite_counts(&mut conn, &expected.tables).await;
            let _ = conn.close().await;
            now
        }
        .await;
        match checked {
            Ok(now) => {
                for ((t, before), after) in expected.tables.iter().zip(&expected.counts).zip(now) {
                    if after != *before {
                        out.problems.push(format!(
                            "{} has {after} rows in {}, migrations leave {before}",
                            t.name,
                            dir.url(db)
                        ));
                    }
                }
            }
            Err(e) => out
                .problems
                .push(format!("could not check database {db}: {e}")),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::postgres::admin;

    /// Rows and databases left behind are found, and named.
    #[tokio::test]
    async fn finds_rows_schemas_and_databases_left_behind() {
        let server = Server::resolve().await.unwrap();
        let pid = std::process::id();
        let (db, stray) = (
            format!("seedbed_test_clean_{pid}"),
            format!("seedbed_test_stray_{pid}"),
        );
        let mut admin = server.connect().await.unwrap();
        for name in [&db, &stray] {
            admin::drop_database(&mut admin, name).await.unwrap();
            admin::create_database(&mut admin, name, None, admin::CloneMethod::Default)
                .await
                .unwrap();
        }
        let mut conn = PgConnection::connect_with(&server.database_options(&db))
            .await
            .unwrap();
        sqlx::raw_sql(
            "CREATE TABLE kinds (id int PRIMARY KEY); INSERT INTO kinds VALUES (1), (2);
             CREATE TABLE things (id int PRIMARY KEY);",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        let expected = expected(&mut conn).await.unwrap();
        let used: BTreeSet<String> = [db.clone()].into();
        let clean = check(
            server,
            &expected,
            &used,
            &BTreeSet::new(),
            Duration::ZERO,
            Registered::Unchecked,
        )
        .await
        .unwrap();
        assert!(clean.clean(), "{:?}", clean.problems);
        assert_eq!(clean.databases_checked, 1);

        sqlx::raw_sql("INSERT INTO things VALUES (1); DELETE FROM kinds; CREATE SCHEMA leftover;")
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        let gone: BTreeSet<String> = [stray.clone()].into();
        let dirty = check(
            server,
            &expected,
            &used,
            &gone,
            Duration::from_millis(100),
            Registered::Unchecked,
        )
        .await
        .unwrap();
        let text = dirty.problems.join("\n");
        assert!(text.contains("public.things has 1 rows"), "{text}");
        assert!(text.contains("public.kinds has 0 rows"), "{text}");
        assert!(text.contains("schema leftover was left behind"), "{text}");
        assert!(
            text.contains(&format!("database {stray} was left behind")),
            "{text}"
        );
        for name in [&db, &stray] {
            admin::drop_database(&mut admin, name).await.unwrap();
        }
    }

    #[test]
    fn counts_every_table_in_one_statement() {
        let sql = count_sql(&[
            QualifiedName::new("public", "order"),
            QualifiedName::new("audit", "Events"),
        ]);
        assert_eq!(
            sql,
            r#"SELECT ARRAY[(SELECT count(*) FROM "public"."order"), (SELECT count(*) FROM "audit"."Events")]::int8[]"#
        );
    }
}
