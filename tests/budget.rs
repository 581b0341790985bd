//! The connection budget: more test processes than the server has connections for, all at once,
//! against a server of our own with a low `max_connections`. Without the budget they would fail
//! with "too many connections"; with it they wait, and the server never sees more than it allows.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "test code: a failed expectation is a failed test"
)]

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use common::PrivateBase;
use seedbed::server::Server;
use seedbed::server::embedded;
use seedbed::{Isolation, Strategy};
use sqlx::{Connection, PgConnection};

const MAX_CONNECTIONS: i64 = 40;
const PROCESSES: usize = 10;

/// A test whose code holds five connections at once (its pool's maximum). Run on its own it is
/// an ordinary test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_connections_at_once() {
    for strategy in [Strategy::Template, Strategy::Truncate] {
        let db = Isolation::new(strategy)
            .migrations("migrations")
            .test_name("budget::five_connections")
            .acquire()
            .await
            .expect("acquire");
        let pool = db.pool();
        let mut held = Vec::new();
        for _ in 0..5 {
            held.push(
                pool.acquire()
                    .await
                    .expect("a connection of the test's pool"),
            );
        }
        // All five busy at once for a while.
        let busy: Vec<_> = held
            .into_iter()
            .map(|mut conn| {
                tokio::spawn(async move {
                    sqlx::query("SELECT pg_sleep(0.5)")
                        .execute(&mut *conn)
                        .await
                        .unwrap();
                })
            })
            .collect();
        for task in busy {
            task.await.unwrap();
        }
        db.finish().await.expect("finish");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_processes_than_connections_wait_for_the_budget() {
    let base = PrivateBase::new("budget");
    let config = base
        .config()
        .setting("max_connections", MAX_CONNECTIONS.to_string());
    let server = embedded::ensure(&config)
        .await
        .expect("a server of our own");
    let url = server.url("postgres");
    let check = Server::from_url(&url).await.expect("reachable");
    let mut monitor = PgConnection::connect_with(&check.maintenance_options())
        .await
        .expect("monitor");
    let allowed: String = sqlx::query_scalar("SHOW max_connections")
        .fetch_one(&mut monitor)
        .await
        .unwrap();
    assert_eq!(allowed, MAX_CONNECTIONS.to_string());

    // Watch the number of connections while the processes run.
    let peak = Arc::new(AtomicI64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (peak, done) = (Arc::clone(&peak), Arc::clone(&done));
        tokio::spawn(async move {
            while !done.load(Ordering::SeqCst) {
                let n: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'",
                )
                .fetch_one(&mut monitor)
                .await
                .unwrap();
                peak.fetch_max(n, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..PROCESSES)
        .map(|_| {
            Command::new(&exe)
                .args(["five_connections_at_once", "--exact", "--test-threads", "1"])
                .env("SEEDBED_DATABASE_URL", &url)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<_> = tokio::task::spawn_blocking(move || {
        children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .collect()
    })
    .await
    .unwrap();
    done.store(true, Ordering::SeqCst);
    watcher.await.unwrap();
    for out in &outputs {
        assert!(
            out.status.success(),
            "a process failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let peak = peak.load(Ordering::SeqCst);
    assert!(
        peak <= MAX_CONNECTIONS,
        "{peak} connections at once on a server allowing {MAX_CONNECTIONS}"
    );
    // The demand was real: 10 processes each wanting its own connections, a pool of five and a
    // Truncate lease, beyond 40 at once (without the budget this test fails with "too many
    // clients already").
    assert!(peak > 15, "the processes barely ran at once (peak {peak})");
    eprintln!("peak: {peak} connections of {MAX_CONNECTIONS}");
}
