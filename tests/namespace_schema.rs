//! Namespace's schema-per-test mode: each test gets a schema with the migrations applied,
//! reached through `search_path`, dropped after it.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "test code: a failed expectation is a failed test"
)]

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use seedbed::isolation::{NamespaceMode, NamespaceOptions};
use seedbed::server::Server;
use seedbed::{Isolation, Strategy, TestDb};
use sqlx::{Connection, PgConnection};
use tokio::sync::Barrier;

const PROCESSES: usize = 8;
const TESTS_PER_PROCESS: usize = 20;

async fn schema_test(name: &str) -> TestDb {
    Isolation::new(Strategy::Namespace)
        .namespace(NamespaceOptions::schema())
        .migrations("tests/single_schema_migrations")
        .test_name(name)
        .acquire()
        .await
        .unwrap()
}

async fn current_schema(db: &TestDb) -> String {
    sqlx::query_scalar("SELECT current_schema()")
        .fetch_one(&db.pool())
        .await
        .unwrap()
}

async fn schemas_in_use(database: &str) -> (i64, i64) {
    let server = Server::resolve().await.unwrap();
    let mut conn = PgConnection::connect_with(&server.database_options(database))
        .await
        .unwrap();
    let registered: (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE state <> 'spare'), \
                (SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'sb\\_%' \
                 AND nspname NOT IN (SELECT name FROM seedbed.schemas)) \
         FROM seedbed.schemas",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    let _ = conn.close().await;
    registered
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_test_gets_its_own_schema() {
    let barrier = Arc::new(Barrier::new(2));
    let run = |me: &'static str| {
        let barrier = Arc::clone(&barrier);
        async move {
            let db = schema_test(&format!("namespace_schema::own::{me}")).await;
            let schema = current_schema(&db).await;
            assert!(schema.starts_with("sb_"), "{schema}");
            // The same unique value in both tests: their tables are different tables.
            sqlx::query("INSERT INTO accounts (email) VALUES ('same@example.com')")
                .execute(&db.pool())
                .await
                .unwrap();
            barrier.wait().await;
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM accounts")
                .fetch_one(&db.pool())
                .await
                .unwrap();
            assert_eq!(n, 1);
            barrier.wait().await;
            let database = db.database().to_string();
            db.finish().await.unwrap();
            (schema, database)
        }
    };
    let ((a, database), (b, _)) = tokio::join!(run("a"), run("b"));
    assert_ne!(a, b);
    // Both schemas are dropped (in the background).
    let server = Server::resolve().await.unwrap();
    let mut conn = PgConnection::connect_with(&server.database_options(&database))
        .await
        .unwrap();
    let mut left = 2;
    for _ in 0..200 {
        left = sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM pg_namespace WHERE nspname = ANY($1)",
        )
        .bind(vec![a.clone(), b.clone()])
        .fetch_one(&mut conn)
        .await
        .unwrap();
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(left, 0, "the tests' schemas are dropped");
}

#[tokio::test]
async fn migrations_naming_their_schema_are_refused_clearly() {
    // Twice in one process: the second test gets the same clear error, not a stale database name.
    for attempt in 0..2 {
        let err = Isolation::new(Strategy::Namespace)
            .namespace_mode(NamespaceMode::Schema)
            .migrations("migrations")
            .test_name("namespace_schema::explicit")
            .acquire()
            .await
            .expect_err("the reference schema names audit explicitly");
        let text = err.to_string();
        assert!(text.contains("audit"), "attempt {attempt}: {text}");
        assert!(
            text.contains("data mode") && text.contains("template"),
            "attempt {attempt}: {text}"
        );
    }
}

#[tokio::test]
async fn twenty_schema_tests() {
    for i in 0..TESTS_PER_PROCESS {
        let db = schema_test(&format!("namespace_schema::twenty::{i}")).await;
        sqlx::query("INSERT INTO accounts (email) VALUES ('a@example.com')")
            .execute(&db.pool())
            .await
            .unwrap();
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM accounts")
            .fetch_one(&db.pool())
            .await
            .unwrap();
        assert_eq!(n, 1);
        db.finish().await.unwrap();
    }
}

#[tokio::test]
async fn eight_processes_leave_no_schema_behind() {
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..PROCESSES)
        .map(|_| {
            Command::new(&exe)
                .args(["twenty_schema_tests", "--exact", "--test-threads", "1"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "a process failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let db = schema_test("namespace_schema::after").await;
    let database = db.database().to_string();
    db.finish().await.unwrap();
    // Drops run in the background of processes that may have exited first: what they left is
    // swept (once the server has noticed their connections closed, which frees their leases),
    // and then nothing remains but spares. This process's own refill may still be building
    // spares, one after another, slowly on a loaded machine: wait for it, bounded.
    let server = Server::resolve().await.unwrap();
    let mut state = (1, 1);
    for _ in 0..300 {
        seedbed::isolation::schema_pool::sweep(server, &database)
            .await
            .unwrap();
        state = schemas_in_use(&database).await;
        if state == (0, 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        state,
        (0, 0),
        "(schemas in use or building, unregistered schemas)"
    );
}

/// Keeping a test's rows means nothing where its schema is dropped: the shorthand setters that
/// can still say both are refused with an error that says so (the typed options cannot say it).
#[tokio::test]
async fn keeping_rows_in_schema_mode_is_refused() {
    let err = Isolation::new(Strategy::Namespace)
        .namespace_mode(NamespaceMode::Schema)
        .keep_rows(true)
        .migrations("tests/single_schema_migrations")
        .test_name("namespace_schema::keep_rows")
        .acquire()
        .await
        .expect_err("keep_rows in schema mode");
    let message = err.to_string();
    assert!(
        message.contains("cleanup = \"none\"") && message.contains("namespace = \"schema\""),
        "{message}"
    );
}

/// A `finish` dropped before it completes (a timeout around it) still gives back the test's
/// token: the claims are released when the strategy's state is dropped, wherever that happens.
#[tokio::test]
async fn a_cancelled_finish_gives_the_token_back() {
    let db = schema_test("namespace_schema::cancelled_finish").await;
    let token = db.token().to_string();
    let lock = format!("token:{token}");
    let server = Server::resolve().await.unwrap();
    let mut conn = server.connect().await.unwrap();
    assert!(
        seedbed::backend::postgres::coord::is_held(&mut conn, &lock)
            .await
            .unwrap(),
        "the running test holds its token"
    );
    // A connection the test still holds keeps finish waiting for it (up to 2 s): the timeout
    // drops finish while it waits.
    let pool = db.pool();
    let busy = pool.acquire().await.unwrap();
    let cancelled = tokio::time::timeout(Duration::from_millis(100), db.finish()).await;
    assert!(cancelled.is_err(), "finish completed before the timeout");
    drop(busy);
    let mut held = true;
    for _ in 0..100 {
        held = seedbed::backend::postgres::coord::is_held(&mut conn, &lock)
            .await
            .unwrap();
        if !held {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = conn.close().await;
    assert!(
        !held,
        "token {token} still held after its finish was dropped"
    );
}
