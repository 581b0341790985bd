//! The connection budget on MySQL: more test processes than the server has connections for, all
//! at once, as a user the server allows few connections (`MAX_USER_CONNECTIONS`, which MySQL
//! enforces as it does `max_connections`, with error 1226 instead of 1040). Without the budget
//! they would fail with "too many connections"; with it they wait, and the server never sees more
//! than it allows.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "test code: a failed expectation is a failed test"
)]

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use seedbed::backend::Provision;
use seedbed::{Isolation, Strategy};
use sqlx::{Connection, MySql, MySqlConnection};

const MIGRATIONS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mysql_budget_migrations");

/// A test whose code holds five connections at once (its pool's maximum), under Template and
/// then Truncate: the first one's database, kept idle for the process's next test with its five
/// connections open, gives way when the second finds the budget spent. Run on its own it is an
/// ordinary test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_connections_at_once() {
    for strategy in [Strategy::Template, Strategy::Truncate] {
        let db = Isolation::new(strategy)
            .migrations(MIGRATIONS)
            .test_name("mysql_budget::five_connections")
            .acquire_on::<MySql>()
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
                    sqlx::query("DO SLEEP(0.5)")
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

/// One test process as `cargo nextest` runs them: a test of the strategy its number picks,
/// using a connection for a moment. Run on its own it is an ordinary test.
#[tokio::test]
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
        .migrations(MIGRATIONS)
        .test_name("mysql_budget::one_typical_test")
        .acquire_on::<MySql>()
        .await
        .expect("acquire");
    // The template's view works in the copy, whoever made it.
    let _: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM item_names")
        .fetch_one(&db.pool())
        .await
        .expect("the view");
    sqlx::query("DO SLEEP(0.3)")
        .execute(&db.pool())
        .await
        .expect("query");
    db.finish().await.expect("finish");
}

/// A connection as the server's administrator (the URL the tests run with), in no database: on
/// a new server seedbed's own database does not exist until a first test has run.
async fn admin() -> MySqlConnection {
    let server = <MySql as Provision>::server().await.unwrap();
    MySqlConnection::connect_with(&<MySql as Provision>::connect_options(server, ""))
        .await
        .unwrap()
}

/// `host:port` of the server the tests use.
async fn address() -> String {
    let server = <MySql as Provision>::server().await.unwrap();
    let url = server.url_for("");
    let after_at = url.rsplit_once('@').unwrap().1;
    after_at.split('/').next().unwrap().to_string()
}

/// Makes `user` (password `pw`), allowed `limit` connections at once and what seedbed needs.
async fn limited_user(admin: &mut MySqlConnection, user: &str, limit: i64) {
    for host in ["127.0.0.1", "localhost"] {
        let sql = format!(
            "DROP USER IF EXISTS '{user}'@'{host}'; \
             CREATE USER '{user}'@'{host}' IDENTIFIED BY 'pw' \
               WITH MAX_USER_CONNECTIONS {limit}; \
             GRANT ALL PRIVILEGES ON `seedbed%`.* TO '{user}'@'{host}'"
        );
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut *admin)
            .await
            .unwrap();
    }
}

async fn drop_user(admin: &mut MySqlConnection, user: &str) {
    for host in ["127.0.0.1", "localhost"] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP USER IF EXISTS '{user}'@'{host}'"
        )))
        .execute(&mut *admin)
        .await
        .unwrap();
    }
}

/// The user the processes run as. One name for every test of this file: the views and triggers
/// of the copies a user makes are defined by that user, and work only while it exists.
const USER: &str = "seedbed_budget";

/// Runs `processes` copies of this binary at once, each running the test `child` (with
/// `CHILD_INDEX` set to its number) as [`USER`], whom the server allows `limit` connections.
/// Returns the most connections the user had at once.
async fn run_processes(limit: i64, processes: usize, child: &str) -> i64 {
    let user = USER;
    let mut admin = admin().await;
    // One test at a time (in this process or another) has the user.
    let taken: Option<i64> =
        sqlx::query_scalar("SELECT GET_LOCK('seedbed_test_mysql_budget', 600)")
            .fetch_one(&mut admin)
            .await
            .unwrap();
    assert_eq!(taken, Some(1), "the budget tests' lock");
    limited_user(&mut admin, user, limit).await;
    let url = format!("mysql://{user}:pw@{}", address().await);
    // With binary logging on (MySQL's default), a user without SUPER may create triggers
    // (Namespace's, the copies') only while the server trusts function creators: trusted for
    // this test, as its administrator would, and put back after.
    let (binlog, trusted): (i64, i64) = sqlx::query_as(
        "SELECT CAST(@@log_bin AS SIGNED), CAST(@@log_bin_trust_function_creators AS SIGNED)",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap();
    let trust = binlog == 1 && trusted == 0;
    if trust {
        sqlx::raw_sql("SET GLOBAL log_bin_trust_function_creators = 1")
            .execute(&mut admin)
            .await
            .unwrap();
    }

    // Watch the user's connections while the processes run.
    let peak = Arc::new(AtomicI64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (peak, done, user) = (Arc::clone(&peak), Arc::clone(&done), user.to_string());
        let mut monitor = crate::admin().await;
        tokio::spawn(async move {
            while !done.load(Ordering::SeqCst) {
                let n: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = ?",
                )
                .bind(&user)
                .fetch_one(&mut monitor)
                .await
                .unwrap();
                peak.fetch_max(n, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..processes)
        .map(|i| {
            Command::new(&exe)
                .args([child, "--exact", "--test-threads", "1"])
                .env("SEEDBED_MYSQL_URL", &url)
                .env("NEXTEST_EXECUTION_MODE", "process-per-test")
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
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    done.store(true, Ordering::SeqCst);
    if trust {
        sqlx::raw_sql("SET GLOBAL log_bin_trust_function_creators = 0")
            .execute(&mut admin)
            .await
            .unwrap();
    }
    watcher.await.unwrap();
    drop_user(&mut admin, user).await;
    for out in &outputs {
        let text = format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "a process failed:\n{text}");
        assert!(text.contains("1 passed"), "a process ran no test:\n{text}");
    }
    peak.load(Ordering::SeqCst)
}

/// Eight processes whose tests want twelve connections each at most (two leases, five
/// connections of each pool), as a user allowed sixty: 96 without the budget. With it (40% of
/// sixty: 24 connections of test pools) they wait for each other and all pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_processes_than_connections_wait_for_the_budget() {
    const LIMIT: i64 = 60;
    let peak = run_processes(LIMIT, 8, "five_connections_at_once").await;
    // The demand was real: the processes ran at once, well beyond what the budget allows pools.
    assert!(peak > 24, "the processes barely ran at once (peak {peak})");
    eprintln!("peak: {peak} connections of {LIMIT}");
}

/// `cargo nextest run -j 12` as a user allowed 45 connections: each process has two connections
/// outside the budget (its lease's and its test's first), 24 in all, and the budget (40%: 18)
/// covers the rest, among them the second connection a pool opens when the test's next statement
/// comes while its first connection is still on its way back to the pool. sqlx does not retry a
/// MySQL connection refused for want of connections (errors 1040, 1226), so only what the
/// budget counts keeps those from failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twelve_processes_as_a_user_of_45_connections_all_pass() {
    const LIMIT: i64 = 45;
    let peak = run_processes(LIMIT, 12, "one_typical_test").await;
    eprintln!("peak: {peak} connections of {LIMIT}");
}
