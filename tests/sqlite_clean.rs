//! The cleaner on SQLite (feature `sqlite`): after a test wrote rows everywhere (a foreign-key
//! cycle, a generated column, an AUTOINCREMENT table) and changed the lookup rows migrations
//! inserted, cleaning leaves exactly what migrations left, and restarts AUTOINCREMENT counters on
//! request. In-memory databases: no server.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "test code: a failed expectation is a failed test"
)]

use seedbed::Error;
use seedbed::backend::{Clean, Introspect};
use sqlx::{Connection, Sqlite, SqliteConnection};

/// What migrations leave: the schema and two lookup rows.
const MIGRATIONS: &str = r#"
    CREATE TABLE roles (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
    INSERT INTO roles (id, name) VALUES (1, 'admin'), (2, 'member');
    CREATE TABLE users (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        role_id INTEGER NOT NULL REFERENCES roles (id),
        email TEXT NOT NULL,
        email_lower TEXT GENERATED ALWAYS AS (lower(email)) STORED
    );
    CREATE TABLE boards (
        id INTEGER PRIMARY KEY,
        default_column_id INTEGER REFERENCES columns (id)
    );
    CREATE TABLE columns (
        id INTEGER PRIMARY KEY,
        board_id INTEGER NOT NULL REFERENCES boards (id)
    );
"#;

async fn migrated() -> SqliteConnection {
    let mut conn = SqliteConnection::connect("sqlite::memory:").await.unwrap();
    sqlx::raw_sql("PRAGMA foreign_keys = ON")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::raw_sql(MIGRATIONS).execute(&mut conn).await.unwrap();
    prepare(&mut conn).await;
    conn
}

/// Prepares the database for the cleaner, from what introspection reads.
async fn prepare(conn: &mut SqliteConnection) {
    let schema = <Sqlite as Introspect>::introspect(conn, &["main"])
        .await
        .unwrap();
    <Sqlite as Clean>::prepare(conn, &schema, false)
        .await
        .unwrap();
}

async fn count(conn: &mut SqliteConnection, table: &str) -> i64 {
    let sql = format!("SELECT count(*) FROM {}", seedbed::sql::quote_ident(table));
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(conn)
        .await
        .unwrap()
}

/// What a test does: rows in every table, the cycle closed, the lookup rows changed.
async fn a_test_writes(conn: &mut SqliteConnection) {
    sqlx::raw_sql(
        "INSERT INTO users (role_id, email) VALUES (1, 'A@x'), (2, 'B@x'), (2, 'C@x');
         INSERT INTO boards (id) VALUES (10);
         INSERT INTO columns (id, board_id) VALUES (20, 10);
         UPDATE boards SET default_column_id = 20 WHERE id = 10;
         INSERT INTO roles (id, name) VALUES (3, 'guest');
         UPDATE roles SET name = 'owner' WHERE id = 1;",
    )
    .execute(&mut *conn)
    .await
    .unwrap();
}

#[tokio::test]
async fn cleaning_leaves_what_migrations_left() {
    let mut conn = migrated().await;
    a_test_writes(&mut conn).await;
    let plan = <Sqlite as Clean>::plan(&mut conn).await.unwrap();
    let cleaned = <Sqlite as Clean>::clean(&mut conn, &plan, false)
        .await
        .unwrap();
    assert_eq!(
        cleaned, 4,
        "users, columns, boards and the lookup table roles"
    );
    for table in ["users", "boards", "columns"] {
        assert_eq!(count(&mut conn, table).await, 0, "{table} emptied");
    }
    let roles: Vec<(i64, String)> = sqlx::query_as("SELECT id, name FROM roles ORDER BY id")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        roles,
        [(1, "admin".to_string()), (2, "member".to_string())],
        "the lookup rows as migrations left them"
    );
    let violations: Vec<(String,)> =
        sqlx::query_as("SELECT \"table\" FROM pragma_foreign_key_check")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert!(violations.is_empty(), "{violations:?}");

    // Without reset_sequences, AUTOINCREMENT keeps counting; with it, ids start again.
    let next: i64 =
        sqlx::query_scalar("INSERT INTO users (role_id, email) VALUES (1, 'd@x') RETURNING id")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(next, 4);
    let cleaned = <Sqlite as Clean>::clean(&mut conn, &plan, true)
        .await
        .unwrap();
    assert_eq!(cleaned, 2, "users and the lookup table");
    let first: i64 =
        sqlx::query_scalar("INSERT INTO users (role_id, email) VALUES (1, 'e@x') RETURNING id")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(first, 1, "sqlite_sequence restarted");
    let lower: String = sqlx::query_scalar("SELECT email_lower FROM users")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(lower, "e@x", "the generated column still computes");
}

#[tokio::test]
async fn a_database_seedbed_did_not_prepare_is_refused() {
    let mut conn = SqliteConnection::connect("sqlite::memory:").await.unwrap();
    sqlx::raw_sql(MIGRATIONS).execute(&mut conn).await.unwrap();
    let err = <Sqlite as Clean>::plan(&mut conn).await.unwrap_err();
    assert!(matches!(err, Error::ForeignDatabase { .. }), "{err:?}");
    assert!(err.to_string().contains("not prepared by seedbed"), "{err}");
    assert_eq!(count(&mut conn, "roles").await, 2, "nothing touched");
}

#[tokio::test]
async fn preparing_again_keeps_seedbeds_tables_out_of_the_plan() {
    let mut conn = migrated().await;
    prepare(&mut conn).await;
    a_test_writes(&mut conn).await;
    let plan = <Sqlite as Clean>::plan(&mut conn).await.unwrap();
    let cleaned = <Sqlite as Clean>::clean(&mut conn, &plan, false)
        .await
        .unwrap();
    assert_eq!(cleaned, 4);
    assert_eq!(count(&mut conn, "roles").await, 2);
    assert_eq!(
        count(&mut conn, "seedbed_baseline_roles").await,
        2,
        "the baseline is kept"
    );
}
