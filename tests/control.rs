//! The control connection holds the process's leases, budget slots and tokens. If the server ends
//! its session while tests run, the next connection takes them back, so a sweeper never mistakes a
//! live test's database for an abandoned one. (A binary of its own: ending the control connection
//! would disturb other tests of the same process.)

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "test code: a failed expectation is a failed test"
)]

use std::time::Duration;

use seedbed::isolation::registry;
use seedbed::server::Server;
use seedbed::{Isolation, Strategy, TestDb};
use sqlx::Connection;

async fn acquire(name: &str) -> seedbed::Result<TestDb> {
    Isolation::new(Strategy::Template)
        .migrations("migrations")
        .test_name(name)
        .acquire()
        .await
}

/// The tests of this binary run one at a time: one of them ends the process's control connection.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn leased(name: &str) -> bool {
    let server = Server::resolve().await.unwrap();
    let mut conn = server.connect().await.unwrap();
    let list = registry::list(&mut conn).await.unwrap();
    list.iter().any(|e| e.name == name && e.leased)
}

/// The server processes holding the lease `prefix` + `name` on `conn`'s database.
async fn holders(conn: &mut sqlx::PgConnection, prefix: &str, name: &str) -> Vec<i32> {
    sqlx::query_scalar(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted \
         AND ((classid::int8 << 32) | objid::int8) = hashtextextended($1 || $2, 0)",
    )
    .bind(prefix)
    .bind(name)
    .fetch_all(conn)
    .await
    .unwrap()
}

/// Has the server end the one session holding the lease, and waits until the lease is free.
async fn end_the_holder(conn: &mut sqlx::PgConnection, prefix: &str, name: &str) {
    let pids = holders(conn, prefix, name).await;
    assert_eq!(pids.len(), 1, "one session holds the lease of {name}");
    sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(pids[0])
        .execute(&mut *conn)
        .await
        .unwrap();
    for _ in 0..100 {
        if holders(conn, prefix, name).await.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the lease of {name} did not go with the session");
}

/// The first of three tries that gets a database: the first use of a connection the server ended
/// fails; the next reconnects (and takes back what the lost one held).
async fn next_test<F, Fut>(acquire: F) -> TestDb
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = seedbed::Result<TestDb>>,
{
    for attempt in 0..3 {
        match acquire(format!("control::next{attempt}")).await {
            Ok(db) => return db,
            Err(e) => eprintln!("attempt {attempt}: {e}"),
        }
    }
    panic!("no test got a database after the connection was lost");
}

#[tokio::test]
async fn a_lost_control_connection_takes_its_leases_back() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let db = acquire("control::held").await.expect("acquire");
    let name = db.database().to_string();
    assert!(leased(&name).await);

    // The server ends the session that holds the lease.
    let server = Server::resolve().await.unwrap();
    let mut admin = server.connect().await.unwrap();
    end_the_holder(&mut admin, "seedbed:lease:", &name).await;
    assert!(!leased(&name).await);

    let next = next_test(|name| async move { acquire(&name).await }).await;
    assert!(leased(&name).await, "the first test's lease was taken back");
    assert!(leased(next.database()).await);
    // A sweep leaves the live test's database alone.
    let swept = registry::sweep(&mut admin, false).await.unwrap();
    assert!(!swept.abandoned.contains(&name), "{swept:?}");

    next.finish().await.expect("finish");
    db.finish().await.expect("finish after the reconnection");
    let _ = admin.close().await;
}

/// Two tests of one process hold budget slots of their own: the session lock of a slot is
/// re-entrant, so a second reservation must skip the slots the first holds rather than share them.
/// A pool reserves a slot for each connection it opens, beyond the process's one free pass.
#[tokio::test]
async fn two_tests_of_one_process_do_not_share_budget_slots() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let with_pool = |name: &'static str| {
        Isolation::new(Strategy::Template)
            .migrations("migrations")
            .max_connections(4)
            .test_name(name)
            .acquire()
    };
    let first = with_pool("control::budget_a").await.expect("acquire");
    let second = with_pool("control::budget_b").await.expect("acquire");
    // Each test holds three connections at once: six connections, at most one on the free pass.
    let mut held = Vec::new();
    for db in [&first, &second] {
        for _ in 0..3 {
            held.push(db.pool().acquire().await.expect("a connection"));
        }
    }
    let server = Server::resolve().await.unwrap();
    let mut admin = server.connect().await.unwrap();
    // The slots (two-key advisory locks under hashtext('seedbed:budget')) held by the session that
    // holds the first test's lease: this process's control connection.
    let slots: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_locks b WHERE b.locktype = 'advisory' AND b.granted \
         AND b.objsubid = 2 AND b.classid::int8 = (hashtext('seedbed:budget')::int8 & 4294967295) \
         AND b.pid = (SELECT l.pid FROM pg_locks l WHERE l.locktype = 'advisory' \
             AND ((l.classid::int8 << 32) | l.objid::int8) = \
                 hashtextextended('seedbed:lease:' || $1, 0))",
    )
    .bind(first.database())
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert!(
        slots >= 5,
        "two tests holding 3 connections each hold {slots} slots"
    );
    drop(held);
    second.finish().await.expect("finish");
    first.finish().await.expect("finish");
    let _ = admin.close().await;
}

/// The same for a Namespace test's schema, whose lease the connection to the schema database
/// holds.
#[tokio::test]
async fn a_lost_schema_holder_takes_its_leases_back() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let schema_test = |name: String| {
        Isolation::new(Strategy::Namespace)
            .namespace_mode(seedbed::isolation::NamespaceMode::Schema)
            .migrations("tests/single_schema_migrations")
            .test_name(&name)
            .acquire()
    };
    let db = schema_test("control::schema_held".into())
        .await
        .expect("acquire");
    let schema: String = sqlx::query_scalar("SELECT current_schema()")
        .fetch_one(&db.pool())
        .await
        .unwrap();
    let server = Server::resolve().await.unwrap();
    let mut look = sqlx::PgConnection::connect_with(&server.database_options(db.database()))
        .await
        .unwrap();
    end_the_holder(&mut look, "seedbed:schema-lease:", &schema).await;

    let next = next_test(schema_test).await;
    assert_eq!(
        holders(&mut look, "seedbed:schema-lease:", &schema)
            .await
            .len(),
        1,
        "the first test's schema lease was taken back"
    );
    // A sweep leaves the live test's schema alone.
    let swept = seedbed::isolation::schema_pool::sweep(server, db.database())
        .await
        .unwrap();
    assert!(!swept.contains(&schema), "{swept:?}");
    next.finish().await.expect("finish");
    db.finish().await.expect("finish after the reconnection");
    let _ = look.close().await;
}
