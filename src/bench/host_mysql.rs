//! The MySQL (and MariaDB) side of a run: the migrated database rows are planned on and the
//! floor writes into, the baseline as `#[sqlx::test]` runs it on MySQL, counting rows and
//! connections, and the isolation check.
//!
//! Table names travel unqualified: the plan is made on one database and written into others
//! (slots, copies, the baseline's databases), each connection's own.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use sqlx::{Connection, MySql, MySqlConnection, Row};

use super::{Expected, Planned};
use crate::backend::Introspect;
use crate::backend::mysql::{MySqlServer, admin};
use crate::bench::report::IsolationCheck;
use crate::error::{Error, Result};
use crate::isolation::Migrations;
use crate::rowgen::rows::RowPlan;
use crate::rowgen::rows::mysql::is_application_table;
use crate::sql::{QualifiedName, quote_mysql_ident};

/// A name part no other process on any host shares: the process id and a random number (two
/// containers on one server can have the same process ids).
fn run_part() -> String {
    static NONCE: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let nonce = NONCE.get_or_init(rand::random);
    format!("{}_{nonce:08x}", std::process::id())
}

/// The database rows are planned on and floor processes write into: this run's.
fn plan_database() -> String {
    format!("seedbed_bench_plan_{}", run_part())
}

/// The database of this process's baseline test `test`.
pub(crate) fn baseline_database(test: usize) -> String {
    format!("seedbed_bench_b_{}_{test}", run_part())
}

/// A connection to `database`.
pub(crate) async fn connect(server: &MySqlServer, database: &str) -> Result<MySqlConnection> {
    server.connect_to(database).await
}

/// Creates and migrates this run's database, plans rows on it and reads what it holds.
pub(super) async fn plan(
    server: &'static MySqlServer,
    migrations: &Migrations,
    rows: usize,
) -> Result<Planned> {
    let database = plan_database();
    let mut maintenance = server.maintenance().await?;
    let created = async {
        admin::drop_database(&mut maintenance, &database).await?;
        admin::create(&mut maintenance, &database).await
    }
    .await;
    let _ = maintenance.close().await;
    created?;
    let planned = async {
        let mut conn = connect(server, &database).await?;
        let planned = async {
            migrations
                .apply_at(&mut conn, &server.url_for(&database))
                .await?;
            let plan = RowPlan::analyze_mysql(&mut conn, rows).await?;
            let expected = expected(&mut conn).await?;
            Ok::<_, Error>((plan, expected))
        }
        .await;
        let _ = conn.close().await;
        planned
    }
    .await;
    match planned {
        Ok((plan, expected)) => Ok(Planned {
            plan,
            expected,
            database,
        }),
        Err(e) => {
            forget_plan(server, &database).await;
            Err(e)
        }
    }
}

/// Drops this run's database.
pub(super) async fn forget_plan(server: &MySqlServer, database: &str) {
    if let Ok(mut conn) = server.maintenance().await {
        let _ = admin::drop_database(&mut conn, database).await;
        let _ = conn.close().await;
    }
}

/// What the freshly migrated database `conn` is connected to holds (seedbed's and sqlx's own
/// tables left out).
async fn expected(conn: &mut MySqlConnection) -> Result<Expected> {
    let schemas = <MySql as Introspect>::user_schemas(conn).await?;
    let names: Vec<&str> = schemas.iter().map(String::as_str).collect();
    let schema = <MySql as Introspect>::introspect(conn, &names).await?;
    let tables: Vec<QualifiedName> = schema
        .top_level_tables()
        .filter(|t| is_application_table(&t.name.name))
        .map(|t| t.name.clone())
        .collect();
    let counts = counts(conn, &tables).await?;
    // A MySQL database is one schema: there are no others to leave behind.
    Ok(Expected {
        tables,
        counts,
        schemas: Vec::new(),
    })
}

/// `SELECT (SELECT COUNT(*) FROM t1), …`: every table's rows in one statement, the tables
/// named without their database (the connection's own).
fn count_sql(tables: &[QualifiedName]) -> String {
    let mut sql = String::from("SELECT ");
    for (i, t) in tables.iter().enumerate() {
        if i > 0 {
            sql.push_str(", ");
        }
        let _ = write!(
            sql,
            "(SELECT CAST(COUNT(*) AS SIGNED) FROM {})",
            quote_mysql_ident(&t.name)
        );
    }
    sql
}

async fn counts(conn: &mut MySqlConnection, tables: &[QualifiedName]) -> Result<Vec<i64>> {
    if tables.is_empty() {
        return Ok(Vec::new());
    }
    let row = sqlx::query(sqlx::AssertSqlSafe(count_sql(tables)))
        .fetch_one(conn)
        .await
        .map_err(Error::db("counting rows"))?;
    (0..tables.len())
        .map(|i| row.try_get::<i64, _>(i).map_err(Error::db("counting rows")))
        .collect()
}

/// The names of the server's databases.
pub(super) async fn database_names(server: &MySqlServer) -> Result<BTreeSet<String>> {
    let mut conn = server.maintenance().await?;
    let names: std::result::Result<Vec<String>, sqlx::Error> =
        sqlx::query_scalar("SELECT CAST(SCHEMA_NAME AS CHAR) FROM information_schema.SCHEMATA")
            .fetch_all(&mut conn)
            .await;
    let _ = conn.close().await;
    Ok(names
        .map_err(Error::db("listing databases"))?
        .into_iter()
        .collect())
}

/// Checks the databases `used` (which stay) against `expected`, and waits up to `wait` for the
/// databases in `gone` (the baseline's) to be dropped.
pub(super) async fn check(
    server: &MySqlServer,
    expected: &Expected,
    used: &BTreeSet<String>,
    gone: &BTreeSet<String>,
    wait: Duration,
) -> Result<IsolationCheck> {
    let started = Instant::now();
    let mut names = database_names(server).await?;
    while gone.iter().any(|g| names.contains(g)) && started.elapsed() < wait {
        tokio::time::sleep(Duration::from_millis(50)).await;
        names = database_names(server).await?;
    }
    let mut out = IsolationCheck {
        databases_gone: gone.len(),
        ..IsolationCheck::default()
    };
    for name in gone.iter().filter(|g| names.contains(*g)) {
        out.problems.push(format!(
            "database {name} was left behind (remove it with DROP DATABASE)"
        ));
    }
    for db in used.iter().filter(|d| names.contains(*d)) {
        out.databases_checked += 1;
        let now = async {
            let mut conn = connect(server, db).await?;
            let now = counts(&mut conn, &expected.tables).await;
            let _ = conn.close().await;
            now
        }
        .await;
        match now {
            Ok(now) => {
                for ((t, before), after) in expected.tables.iter().zip(&expected.counts).zip(now) {
                    if after != *before {
                        out.problems.push(format!(
                            "{} has {after} rows in {db}, migrations leave {before}",
                            t.name
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

/// A test as `#[sqlx::test]` runs it on MySQL, on `admin` (a connection without a database,
/// kept open between tests as sqlx's harness keeps its pool): `CREATE DATABASE`, every
/// migration, the writes, `DROP DATABASE`. Returns the time until the writes, the writes' and
/// the drop's.
pub(crate) async fn baseline(
    server: &MySqlServer,
    admin: &mut MySqlConnection,
    name: &str,
    migrations: &Migrations,
    write: impl AsyncFnOnce(&mut MySqlConnection) -> Result<()>,
) -> Result<(Duration, Duration, Duration)> {
    let create = format!("CREATE DATABASE {}", quote_mysql_ident(name));
    let drop = format!("DROP DATABASE IF EXISTS {}", quote_mysql_ident(name));
    let started = Instant::now();
    let created = sqlx::raw_sql(sqlx::AssertSqlSafe(create.clone()))
        .execute(&mut *admin)
        .await;
    if let Err(e) = created {
        // 1007: left by a crashed run of a process with the same name: dropped, made again.
        if crate::backend::mysql::error_number(&e) != Some(1007) {
            return Err(admin::create_error(name, e));
        }
        sqlx::raw_sql(sqlx::AssertSqlSafe(drop.clone()))
            .execute(&mut *admin)
            .await
            .map_err(Error::db(format!("dropping MySQL database {name}")))?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(create))
            .execute(&mut *admin)
            .await
            .map_err(|e| admin::create_error(name, e))?;
    }
    let work = async {
        let mut conn = connect(server, name).await?;
        let result = async {
            migrations
                .apply_at(&mut conn, &server.url_for(name))
                .await?;
            let ready = started.elapsed();
            let w = Instant::now();
            write(&mut conn).await?;
            Ok::<_, Error>((ready, w.elapsed()))
        }
        .await;
        let _ = conn.close().await;
        result
    }
    .await;
    let e = Instant::now();
    let dropped = sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
        .execute(&mut *admin)
        .await
        .map_err(Error::db(format!("dropping MySQL database {name}")));
    let end = e.elapsed();
    let (ready, writes) = work?;
    dropped?;
    Ok((ready, writes, end))
}

/// The floor on MySQL: connect to the migrated `database`, `BEGIN`, the writes, `ROLLBACK`.
/// Returns the time until the writes, the writes' and the ending's.
pub(crate) async fn floor(
    server: &MySqlServer,
    database: &str,
    plan: &RowPlan,
    tables: &[QualifiedName],
    rows: usize,
    seed: u64,
) -> Result<(Duration, Duration, Duration)> {
    let t = Instant::now();
    let mut conn = connect(server, database).await?;
    let timed =
        super::super::runner::floor_on(&mut conn, t, database, plan, tables, (rows, seed)).await;
    let _ = conn.close().await;
    timed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_every_table_in_one_statement_without_its_database() {
        let tables = [
            QualifiedName::new("seedbed_bench_plan_1", "users"),
            QualifiedName::new("seedbed_bench_plan_1", "order`s"),
        ];
        assert_eq!(
            count_sql(&tables),
            "SELECT (SELECT CAST(COUNT(*) AS SIGNED) FROM `users`), \
             (SELECT CAST(COUNT(*) AS SIGNED) FROM `order``s`)"
        );
    }
}
