//! The row generator on MySQL and MariaDB (features `mysql` and `bench`): the reference schema
//! (`migrations/mysql`: 33 tables, ENUM and SET columns, ON UPDATE CURRENT_TIMESTAMP, triggers, a
//! foreign-key cycle, composite keys, CHECKs) planned and probed, then filled for tests chosen
//! along its foreign keys, in a transaction rolled back, and into a second database of the same
//! schema; and MySQL's own column types written within their ranges.
//!
//! The server: `SEEDBED_MYSQL_URL`, else a `mysql://` `DATABASE_URL`, else the embedded server.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "test code: a failed expectation is a failed test"
)]

use seedbed::backend::Provision;
use seedbed::bench::RowPlan;
use seedbed::isolation::Migrations;
use seedbed::sql::quote_mysql_ident;
use sqlx::mysql::MySqlConnectOptions;
use sqlx::{Connection, MySql, MySqlConnection};

/// A connection to the server, in no database.
async fn server_connection() -> MySqlConnection {
    let server = <MySql as Provision>::server().await.unwrap();
    let options: MySqlConnectOptions = server.url_for("").parse().unwrap();
    MySqlConnection::connect_with(&options).await.unwrap()
}

/// Rows of `table` the connection sees.
async fn count(conn: &mut MySqlConnection, table: &str) -> i64 {
    let sql = format!("SELECT COUNT(*) FROM {}", quote_mysql_ident(table));
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(conn)
        .await
        .unwrap()
}

/// A connection to `database`, migrated to the reference schema.
async fn migrated(database: &str) -> MySqlConnection {
    let server = <MySql as Provision>::server().await.unwrap();
    let mut conn =
        MySqlConnection::connect_with(&<MySql as Provision>::connect_options(server, database))
            .await
            .unwrap();
    Migrations::from_dir("migrations/mysql")
        .await
        .unwrap()
        .apply_at(&mut conn, &server.url_for(database))
        .await
        .unwrap();
    conn
}

/// Plans rows on the migrated reference schema in `database`, fills six tables for each of a few
/// seeds, then every table of `copy`, a second database of the same schema.
async fn plan_and_fill(database: &str, copy: &str) {
    let mut conn = migrated(database).await;

    let plan = RowPlan::analyze_mysql(&mut conn, 20).await.unwrap();
    for skipped in plan.skipped() {
        eprintln!("skipped {skipped}");
    }
    let fillable: Vec<String> = plan.tables().map(|t| t.unquoted()).collect();
    eprintln!("fillable ({}): {}", fillable.len(), fillable.join(", "));
    assert_eq!(plan.schema_tables(), 33);
    assert!(
        plan.skipped().is_empty(),
        "every table of the reference schema can be filled: {:?}",
        plan.skipped()
    );
    // Tables are named in the plan's label, not the database they were read from.
    assert!(
        fillable.iter().all(|t| t.starts_with("db.")),
        "{fillable:?}"
    );

    for seed in [1, 7, 42, 1234] {
        let tables = plan.choose_tables(6, seed);
        let mut tx = conn.begin().await.unwrap();
        let stats = plan.fill(&mut *tx, &tables, 20, seed).await.unwrap();
        assert!(stats.rows >= 20, "seed {seed}: {stats:?} for {tables:?}");
        let mut seen = 0;
        for t in &tables {
            seen += count(&mut tx, &t.name).await;
        }
        assert!(
            seen >= i64::try_from(stats.rows).unwrap(),
            "seed {seed}: {seen} rows seen, {} written",
            stats.rows
        );
        tx.rollback().await.unwrap();
    }

    // Every table at once, parents first: keys read back from the parents' rows.
    let all: Vec<_> = plan.tables().cloned().collect();
    let mut tx = conn.begin().await.unwrap();
    let stats = plan.fill(&mut *tx, &all, 20, 99).await.unwrap();
    assert!(stats.rows >= 20 * 30, "{stats:?}");
    assert_eq!(count(&mut tx, "issue_labels").await, 20);
    assert!(
        count(&mut tx, "issue_events").await >= 40,
        "the trigger's rows too"
    );
    tx.rollback().await.unwrap();
    assert_eq!(count(&mut conn, "issues").await, 0);

    // The plan written into another database of the same schema: its tables, not the plan's.
    let mut other = migrated(copy).await;
    plan.fill(&mut other, &all, 5, 3).await.unwrap();
    assert_eq!(count(&mut other, "issues").await, 5);
    assert_eq!(count(&mut conn, "issues").await, 0);
    other.close().await.unwrap();
    conn.close().await.unwrap();
}

/// Runs `test` on a fresh database named `database`, dropped afterwards whatever the outcome.
async fn in_database<F, Fut>(database: &str, test: F)
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let database = format!("{database}_{}", std::process::id());
    let mut admin = server_connection().await;
    let create = format!("CREATE DATABASE {}", quote_mysql_ident(&database));
    sqlx::raw_sql(sqlx::AssertSqlSafe(create))
        .execute(&mut admin)
        .await
        .unwrap();
    let outcome = tokio::spawn(test(database.clone())).await;
    let drop = format!("DROP DATABASE {}", quote_mysql_ident(&database));
    sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
        .execute(&mut admin)
        .await
        .unwrap();
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

#[tokio::test]
async fn the_reference_schema_is_planned_and_filled() {
    in_database("seedbed_rowgen_reference", |database| async move {
        in_database("seedbed_rowgen_copy", |copy| async move {
            plan_and_fill(&database, &copy).await;
        })
        .await;
    })
    .await;
}

/// Columns of the types MySQL has and PostgreSQL names otherwise, each written within its own
/// range, and a type the generator cannot make left to its default.
#[tokio::test]
async fn mysql_types_are_written_within_their_ranges() {
    in_database("seedbed_rowgen_types", |database| async move {
        let server = <MySql as Provision>::server().await.unwrap();
        let mut conn = MySqlConnection::connect_with(&<MySql as Provision>::connect_options(
            server, &database,
        ))
        .await
        .unwrap();
        sqlx::raw_sql(
            "CREATE TABLE kinds (code CHAR(2) NOT NULL PRIMARY KEY, flags BIT(3) NOT NULL) \
             ENGINE=InnoDB; \
             INSERT INTO kinds VALUES ('#a', b'101'), ('#b', b'010'); \
             CREATE TABLE `odd table` ( \
               id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, \
               kind CHAR(2) NOT NULL, \
               tiny TINYINT NOT NULL, \
               small_u SMALLINT UNSIGNED NOT NULL UNIQUE, \
               medium MEDIUMINT NOT NULL, \
               big_u BIGINT UNSIGNED NOT NULL, \
               bits BIT(5) NOT NULL, \
               born YEAR NOT NULL, \
               ratio FLOAT(7,4) NOT NULL, \
               price DECIMAL(6,2) UNSIGNED NOT NULL, \
               flag BOOL NOT NULL, \
               hash BINARY(16) NOT NULL, \
               label TINYTEXT NOT NULL, \
               body MEDIUMBLOB NOT NULL, \
               at_time TIME NOT NULL, \
               stamped TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, \
               seen DATETIME(3) NOT NULL, \
               tags SET('a','b','c') NOT NULL, \
               doc JSON NOT NULL, \
               shape GEOMETRY NULL, \
               CONSTRAINT odd_tiny CHECK (tiny BETWEEN -3 AND 3 AND tiny <> 0), \
               FOREIGN KEY (kind) REFERENCES kinds (code) \
             ) ENGINE=InnoDB",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        let plan = RowPlan::analyze_mysql(&mut conn, 50).await.unwrap();
        assert!(plan.skipped().is_empty(), "{:?}", plan.skipped());
        let tables: Vec<_> = plan.tables().cloned().collect();
        assert_eq!(tables.len(), 2);
        let mut tx = conn.begin().await.unwrap();
        let stats = plan.fill(&mut *tx, &tables, 200, 5).await.unwrap();
        assert_eq!(stats.rows, 400, "{stats:?}");
        let (tiny_low, tiny_high, zeros): (i64, i64, i64) = sqlx::query_as(
            "SELECT CAST(MIN(tiny) AS SIGNED), CAST(MAX(tiny) AS SIGNED), \
             CAST(SUM(tiny = 0) AS SIGNED) FROM `odd table`",
        )
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        assert!(tiny_low >= -3 && tiny_high <= 3 && zeros == 0);
        tx.rollback().await.unwrap();
        conn.close().await.unwrap();
    })
    .await;
}
