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

#[tokio::test]
async fn a_lost_control_connection_takes_its_leases_back() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let db = acquire("control::held").await.expect("acquire");
    let name = db.database().to_string();
    assert!(leased(&name).await);

    // The server ends the session that holds the lease.
    let server = Server::resolve().await.unwrap();
    let mut admin = server.connect().await.unwrap();
    let holders: Vec<i32> = sqlx::query_scalar(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted \
         AND ((classid::int8 << 32) | objid::int8) = hashtextextended('seedbed:lease:' || $1, 0)",
    )
    .bind(&name)
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert_eq!(holders.len(), 1, "one session holds the lease");
    sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(holders[0])
        .execute(&mut admin)
        .await
        .unwrap();
    let mut freed = false;
    for _ in 0..100 {
        if !leased(&name).await {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(freed, "the lease went with the session");

    // The next use of the control connection finds it dead (that use fails); the one after
    // reconnects and takes the lease back.
    let mut next = None;
    for attempt in 0..3 {
        match acquire(&format!("control::next{attempt}")).await {
            Ok(db) => {
                next = Some(db);
                break;
            }
            Err(e) => eprintln!("attempt {attempt}: {e}"),
        }
    }
    let next = next.expect("a test after the connection was lost gets its database");
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
    assert!(slots >= 8, "two tests of 4 connections hold {slots} slots");
    second.finish().await.expect("finish");
    first.finish().await.expect("finish");
    let _ = admin.close().await;
}
