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

/// Runs `processes` copies of this binary at once, each running the test `child` (with
/// `CHILD_INDEX` set to its number), against a server of their own allowing `max_connections`,
/// reached as seedbed reaches its embedded server. Returns each child's output and the most
/// client connections the server had at once.
async fn run_processes(
    name: &str,
    max_connections: i64,
    processes: usize,
    child: &str,
) -> (Vec<std::process::Output>, i64) {
    let base = PrivateBase::new(name);
    let config = base
        .config()
        .setting("max_connections", max_connections.to_string());
    let server = embedded::ensure(&config)
        .await
        .expect("a server of our own");
    let url = server.socket_url("postgres");
    let check = Server::from_url(&url).await.expect("reachable");
    let mut monitor = PgConnection::connect_with(&check.maintenance_options())
        .await
        .expect("monitor");
    let allowed: String = sqlx::query_scalar("SHOW max_connections")
        .fetch_one(&mut monitor)
        .await
        .unwrap();
    assert_eq!(allowed, max_connections.to_string());

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
    let children: Vec<_> = (0..processes)
        .map(|i| {
            Command::new(&exe)
                .args([child, "--exact", "--include-ignored", "--test-threads", "1"])
                .env("SEEDBED_DATABASE_URL", &url)
                .env("CHILD_INDEX", i.to_string())
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
        let text = format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "a process failed:\n{text}");
        assert!(text.contains("1 passed"), "a process ran no test:\n{text}");
        assert!(!text.contains("too many clients"), "{text}");
    }
    (outputs, peak.load(Ordering::SeqCst))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_processes_than_connections_wait_for_the_budget() {
    let (_, peak) = run_processes(
        "budget",
        MAX_CONNECTIONS,
        PROCESSES,
        "five_connections_at_once",
    )
    .await;
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

/// One test process as `cargo nextest` runs them: a test of the strategy its number picks,
/// using a connection for a moment. Run on its own it is an ordinary test.
#[tokio::test]
#[ignore = "a child: run in a process of its own by the test that runs 16 at once"]
async fn one_typical_test() {
    let index: usize = std::env::var("CHILD_INDEX")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let strategy = [
        Strategy::Rollback,
        Strategy::Truncate,
        Strategy::Template,
        Strategy::Namespace,
    ][index % 4];
    let db = Isolation::new(strategy)
        .migrations("migrations")
        .test_name("budget::one_typical_test")
        .acquire()
        .await
        .expect("acquire");
    sqlx::query("SELECT pg_sleep(0.3)")
        .execute(&db.pool())
        .await
        .expect("query");
    db.finish().await.expect("finish");
}

/// `cargo nextest run -j 16` against a server allowing 30 connections: each process has
/// connections outside the budget (its coordination connection and its test's first), more
/// than the server allows at once; they wait for the server instead of failing with "too many
/// clients".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_processes_on_a_server_of_thirty_connections_wait_instead_of_failing() {
    let (outputs, peak) = run_processes("budget-j16", 30, 16, "one_typical_test").await;
    assert_eq!(outputs.len(), 16);
    assert!(
        peak <= 30,
        "{peak} connections at once on a server allowing 30"
    );
    eprintln!("peak: {peak} connections of 30");
}
