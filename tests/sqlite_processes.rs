//! SQLite isolation between processes, as `cargo nextest` runs tests: the test binary spawns
//! copies of itself, 8 at once, each running one test; and a test process killed with SIGKILL
//! mid-test leaves nothing that the sweep does not remove.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "test code: a failed expectation is a failed test"
)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use seedbed::TestDb;
use seedbed::backend::Provision;
use seedbed::backend::sqlite::Directory;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Sqlite, SqlitePool};

const PROCESSES: usize = 8;
/// Set in a child that is to be killed: where it says it is ready.
const READY_VAR: &str = "SEEDBED_TEST_KILL_READY";

/// What one test in one process does: writes a row only it knows, waits for the others to have
/// written theirs, and must see only its own (under Namespace, only its own among its rows).
async fn write_wait_and_look(db: TestDb<Sqlite>) {
    let me = format!("proc-{}@example.test", std::process::id());
    let pool = db.pool();
    sqlx::query("INSERT INTO users (email) VALUES (?)")
        .bind(&me)
        .execute(&pool)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let seen: Vec<String> =
        sqlx::query_scalar("SELECT email FROM users WHERE email LIKE 'proc-%' ORDER BY 1")
            .fetch_all(&pool)
            .await
            .unwrap();
    if db.strategy() == seedbed::Strategy::Namespace {
        assert!(seen.contains(&me), "its own row: {seen:?}");
    } else {
        assert_eq!(seen, vec![me], "a process saw another process's rows");
    }
}

/// What a test to be killed does: writes, says where, and waits to be killed (on its own, with
/// no one to kill it, it returns at once: an ordinary test).
async fn write_and_wait_to_be_killed(db: TestDb<Sqlite>) {
    let Ok(ready) = std::env::var(READY_VAR) else {
        return;
    };
    let email = format!("killed-{}@example.test", db.token());
    sqlx::query("INSERT INTO users (email) VALUES (?)")
        .bind(&email)
        .execute(&db.pool())
        .await
        .unwrap();
    std::fs::write(&ready, format!("{}\n{email}", db.database())).unwrap();
    tokio::time::sleep(Duration::from_secs(120)).await;
}

macro_rules! child_tests {
    ($module:ident, $strategy:literal) => {
        mod $module {
            use super::*;

            #[seedbed::test(strategy = $strategy, migrations = "tests/sqlite_migrations")]
            async fn one_process(db: TestDb<Sqlite>) {
                write_wait_and_look(db).await;
            }

            #[seedbed::test(strategy = $strategy, migrations = "tests/sqlite_migrations")]
            async fn killed(db: TestDb<Sqlite>) {
                write_and_wait_to_be_killed(db).await;
            }
        }
    };
}

child_tests!(rollback, "rollback");
child_tests!(truncate, "truncate");
child_tests!(template, "template");
child_tests!(namespace, "namespace");

fn spawn(test: &str, ready: Option<&Path>) -> Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([test, "--exact", "--test-threads", "1"])
        .env_remove("NEXTEST_RUN_ID")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(ready) = ready {
        cmd.env(READY_VAR, ready);
    }
    cmd.spawn().unwrap()
}

fn spawn_many(test: &str) {
    let children: Vec<_> = (0..PROCESSES).map(|_| spawn(test, None)).collect();
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

/// Under Namespace, every process names the same fixture, whose row has a fixed key (a unique
/// email): it is part of the shared database, loaded once, seen once by each test.
#[seedbed::test(
    strategy = "namespace",
    migrations = "tests/sqlite_migrations",
    fixtures("fixtures/sqlite/users.sql")
)]
async fn one_process_with_a_shared_fixture(db: TestDb<Sqlite>) {
    let fixture = "SELECT count(*) FROM users WHERE email = 'fixture@example.test'";
    let count = |pool: sqlx::SqlitePool| async move {
        sqlx::query_scalar::<_, i64>(fixture)
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    assert_eq!(count(db.pool()).await, 1);
    sqlx::query("INSERT INTO users (email, role_id) VALUES (?, 1)")
        .bind(format!("fx-{}@example.test", db.token()))
        .execute(&db.pool())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(count(db.pool()).await, 1, "the fixture was loaded again");
}

#[test]
fn processes_at_once_under_namespace_share_their_fixtures() {
    spawn_many("one_process_with_a_shared_fixture");
}

#[test]
fn processes_at_once_under_rollback_do_not_see_each_other() {
    spawn_many("rollback::one_process");
}

#[test]
fn processes_at_once_under_truncate_do_not_see_each_other() {
    spawn_many("truncate::one_process");
}

#[test]
fn processes_at_once_under_template_do_not_see_each_other() {
    spawn_many("template::one_process");
}

#[tokio::test]
async fn processes_at_once_under_namespace_leave_no_rows() {
    spawn_many("namespace::one_process");
    let dir = <Sqlite as Provision>::server().await.unwrap();
    for shared in shared_databases(dir) {
        let pool = open(&shared).await;
        let has_users: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE name = 'users')")
                .fetch_one(&pool)
                .await
                .unwrap();
        if !has_users {
            // Another test's migrations.
            continue;
        }
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE email LIKE 'proc-%'")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(left, 0, "rows left in {}", shared.display());
        pool.close().await;
    }
}

// ---- kill -9 ----

/// What the killed test left, looked at before the sweep.
struct Left {
    file: PathBuf,
    email: String,
    file_existed: bool,
    inuse_existed: bool,
}

/// Runs `test` in a child, kills it (SIGKILL) once it has written, looks at what it left,
/// sweeps, and returns that.
async fn kill_mid_test(test: &str) -> Left {
    let dir = <Sqlite as Provision>::server().await.unwrap();
    let ready = std::env::temp_dir().join(format!(
        "seedbed-kill-{}-{}",
        std::process::id(),
        test.replace("::", "-")
    ));
    let _ = std::fs::remove_file(&ready);
    let mut child = spawn(test, Some(&ready));
    let start = Instant::now();
    while !ready.exists() || std::fs::read_to_string(&ready).unwrap().lines().count() < 2 {
        if let Ok(Some(status)) = child.try_wait() {
            let out = child.wait_with_output().unwrap();
            panic!(
                "the child ended ({status}) before it was killed:\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the child never got ready"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let said = std::fs::read_to_string(&ready).unwrap();
    std::fs::remove_file(&ready).unwrap();
    let mut lines = said.lines();
    let database = lines.next().unwrap().to_string();
    let email = lines.next().unwrap().to_string();
    let file = dir.file(&database).unwrap();
    // Looked at while the child is alive: sweeps of tests running beside this one may remove
    // what it leaves as soon as it is dead.
    let left = Left {
        file_existed: file.exists(),
        inuse_existed: inuse(&file).exists(),
        file,
        email,
    };
    child.kill().unwrap();
    child.wait().unwrap();
    seedbed::isolation::maintenance::sweep_sqlite(dir, false)
        .await
        .unwrap();
    left
}

async fn open(file: &Path) -> SqlitePool {
    SqlitePool::connect_with(SqliteConnectOptions::new().filename(file))
        .await
        .unwrap()
}

async fn has_row(file: &Path, email: &str) -> bool {
    let pool = open(file).await;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE email = ?")
        .bind(email)
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    n > 0
}

fn inuse(file: &Path) -> PathBuf {
    file.with_extension("inuse")
}

fn shared_databases(dir: &Directory) -> Vec<PathBuf> {
    std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("seedbed_ns_") && n.ends_with(".db"))
        })
        .collect()
}

#[tokio::test]
async fn a_killed_template_test_leaves_no_copy() {
    let left = kill_mid_test("template::killed").await;
    assert!(
        left.file_existed,
        "the copy was there when the process died"
    );
    assert!(!left.file.exists(), "{} is left", left.file.display());
}

#[tokio::test]
async fn a_killed_truncate_test_leaves_its_slot_empty() {
    let Left {
        file,
        email,
        inuse_existed,
        ..
    } = kill_mid_test("truncate::killed").await;
    assert!(inuse_existed, "the slot was in use as the process died");
    assert!(file.exists(), "the slot stays, for the next test");
    assert!(!has_row(&file, &email).await, "the committed row is gone");
    assert!(
        !inuse(&file).exists(),
        "the slot is no longer marked in use"
    );
}

#[tokio::test]
async fn a_killed_rollback_test_leaves_its_slot_empty() {
    let Left { file, email, .. } = kill_mid_test("rollback::killed").await;
    // Its transaction was never committed: SQLite discards it, and the slot needs no cleaning.
    assert!(file.exists(), "the slot stays, for the next test");
    assert!(
        !has_row(&file, &email).await,
        "the uncommitted row never landed"
    );
}

#[tokio::test]
async fn a_killed_namespace_test_leaves_no_rows() {
    let Left { file, email, .. } = kill_mid_test("namespace::killed").await;
    assert!(
        !has_row(&file, &email).await,
        "the dead token's row is gone"
    );
    let pool = open(&file).await;
    let journal: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM seedbed_journal j WHERE tbl = 'users' \
         AND NOT EXISTS (SELECT 1 FROM users u WHERE u.rowid = j.rid)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(journal, 0, "and its journal entries");
    pool.close().await;
}
