//! Isolation between processes: the test binary spawns copies of itself, each running one of the
//! tests below, all at once, as `cargo nextest` would. Each child writes rows only it knows,
//! waits for the others to have written, and must see only its own.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::process::{Command, Stdio};
use std::time::Duration;

use seedbed::TestDb;

const PROCESSES: usize = 6;

/// What one test in one process does. Run on its own it is an ordinary test too.
async fn write_wait_and_look(db: TestDb) {
    let me = format!("proc-{}-{}", std::process::id(), db.strategy());
    let pool = db.pool();
    sqlx::query("INSERT INTO organizations (name, slug) VALUES ($1, $1)")
        .bind(&me)
        .execute(&pool)
        .await
        .unwrap();
    // Give the other processes time to write theirs (committed, under Truncate).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let seen: Vec<String> =
        sqlx::query_scalar("SELECT slug FROM organizations WHERE slug LIKE 'proc-%'")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(seen, vec![me], "a process saw another process's rows");
}

#[seedbed::test(strategy = "rollback")]
async fn one_process_under_rollback(db: TestDb) {
    write_wait_and_look(db).await;
}

#[seedbed::test(strategy = "truncate")]
async fn one_process_under_truncate(db: TestDb) {
    write_wait_and_look(db).await;
}

fn spawn_many(test: &str) {
    spawn(test, PROCESSES);
}

fn spawn(test: &str, processes: usize) {
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..processes)
        .map(|_| {
            Command::new(&exe)
                .args([test, "--exact", "--test-threads", "1"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "a child process failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("1 passed"),
            "the child ran no test:\n{stdout}"
        );
    }
}

#[test]
fn processes_at_once_under_rollback_do_not_see_each_other() {
    spawn_many("one_process_under_rollback");
}

#[test]
fn processes_at_once_under_truncate_do_not_see_each_other() {
    spawn_many("one_process_under_truncate");
}

/// Under Namespace, every process names the same fixture, whose row has a fixed key (the slug
/// `fixture-org`): it is part of the shared database, loaded once, and each test sees it
/// (once) beside its own rows, while the others write theirs.
#[seedbed::test(strategy = "namespace", fixtures("orgs"))]
async fn one_process_with_a_shared_fixture(db: TestDb) {
    let pool = db.pool();
    let fixture = "SELECT count(*) FROM organizations WHERE slug = 'fixture-org'";
    let count = |sql: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    assert_eq!(count(fixture).await, 1);
    sqlx::query("INSERT INTO organizations (name, slug) VALUES ('mine', $1)")
        .bind(format!("proc-{}", db.token()))
        .execute(&pool)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(count(fixture).await, 1, "the fixture was loaded again");
}

#[test]
fn processes_at_once_under_namespace_share_their_fixtures() {
    spawn("one_process_with_a_shared_fixture", 8);
}
