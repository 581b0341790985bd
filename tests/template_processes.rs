//! Template across processes: many test processes at once (as `cargo nextest` runs them), and a
//! process killed mid-test whose database the next run sweeps.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "test code: a failed expectation is a failed test"
)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use seedbed::isolation::registry;
use seedbed::server::Server;
use seedbed::{Isolation, Strategy};

const PROCESSES: usize = 8;
const TESTS_PER_PROCESS: usize = 20;

async fn one_template_test(name: String) {
    let db = Isolation::new(Strategy::Template)
        .migrations("migrations")
        .test_name(&name)
        .acquire()
        .await
        .expect("acquire");
    let pool = db.pool();
    let me = format!("p{}-{}", std::process::id(), db.database()).replace('_', "-");
    sqlx::query("INSERT INTO organizations (name, slug) VALUES ($1, $1)")
        .bind(&me)
        .execute(&pool)
        .await
        .unwrap();
    let seen: Vec<String> = sqlx::query_scalar("SELECT slug FROM organizations")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(seen, vec![me], "a test saw another test's rows");
    db.finish().await.expect("finish");
}

/// Twenty Template tests one after another, as one test process of a suite runs them.
#[tokio::test]
async fn twenty_template_tests_in_one_process() {
    for i in 0..TESTS_PER_PROCESS {
        one_template_test(format!("template_processes::twenty::{i}")).await;
    }
}

/// Holds a Template database; killed in the middle by the test below (`SEEDBED_TEST_HOLD=1`),
/// an ordinary short test otherwise.
#[tokio::test]
async fn holds_a_template_database() {
    let db = Isolation::new(Strategy::Template)
        .migrations("migrations")
        .test_name("template_processes::holds")
        .acquire()
        .await
        .expect("acquire");
    if std::env::var("SEEDBED_TEST_HOLD").is_ok() {
        println!("\nDATABASE={}", db.database());
        tokio::time::sleep(Duration::from_secs(120)).await;
    }
    db.finish().await.expect("finish");
}

/// A short Template test, as the first test process of a run starts under `cargo nextest` (see
/// the test below, which starts it so).
#[seedbed::test(strategy = "template", migrations = "migrations")]
async fn a_test_of_the_next_run(db: seedbed::TestDb) {
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&db.pool())
        .await
        .unwrap();
    assert_eq!(one, 1);
}

fn spawn_test(name: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([name, "--exact", "--test-threads", "1", "--nocapture"]);
    cmd
}

async fn registry_entries() -> Vec<registry::Entry> {
    let server = Server::resolve().await.unwrap();
    let mut conn = server.connect().await.unwrap();
    registry::list(&mut conn).await.unwrap()
}

#[tokio::test]
async fn eight_processes_of_twenty_tests_at_once_leave_only_spares() {
    let children: Vec<_> = (0..PROCESSES)
        .map(|_| {
            spawn_test("twenty_template_tests_in_one_process")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut pids = Vec::new();
    for child in children {
        pids.push(i32::try_from(child.id()).unwrap());
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "a process failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Clones of passing tests are dropped in the background by their process before it exits,
    // or swept once the process is gone: give the last drops a moment.
    let size = seedbed::isolation::clones::pool_size().unwrap();
    let mut left = Vec::new();
    for _ in 0..100 {
        let entries = registry_entries().await;
        left = entries
            .iter()
            .filter(|e| pids.contains(&e.pid) && e.state != "spare")
            .map(|e| format!("{} {} {}", e.name, e.state, e.leased))
            .collect();
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if !left.is_empty() {
        // What exited without dropping is abandoned: the sweeper must take it once the server
        // has noticed the process's connections closed (which frees its leases), bounded.
        let server = Server::resolve().await.unwrap();
        let mut conn = server.connect().await.unwrap();
        for _ in 0..300 {
            registry::sweep(&mut conn, false).await.unwrap();
            left = registry_entries()
                .await
                .iter()
                .filter(|e| pids.contains(&e.pid) && e.state != "spare")
                .map(|e| format!("{} {}", e.name, e.state))
                .collect();
            if left.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if !left.is_empty() {
            // Say who holds the leases that kept them.
            let holders: Vec<String> = sqlx::query_scalar(
                "SELECT d.name || ' leased by backend ' || a.pid || ' (' || \
                 coalesce(a.application_name, '') || ', ' || coalesce(a.state, '') || \
                 ', since ' || a.backend_start || '): ' || left(coalesce(a.query, ''), 200) \
                 FROM seedbed.databases d JOIN pg_locks l ON l.locktype = 'advisory' \
                 AND ((l.classid::int8 << 32) | l.objid::int8) = \
                     hashtextextended('seedbed:lease:' || d.name, 0) \
                 JOIN pg_stat_activity a ON a.pid = l.pid WHERE d.state <> 'spare'",
            )
            .fetch_all(&mut conn)
            .await
            .unwrap();
            left.extend(holders);
        }
    }
    assert!(left.is_empty(), "databases left behind: {left:?}");
    let mut spares = std::collections::HashMap::<Option<String>, i64>::new();
    let all = registry_entries().await;
    // The templates these processes cloned.
    let used: std::collections::HashSet<Option<String>> = all
        .iter()
        .filter(|e| pids.contains(&e.pid))
        .map(|e| e.template.clone())
        .collect();
    for e in all
        .iter()
        .filter(|e| e.state == "spare" && used.contains(&e.template))
    {
        *spares.entry(e.template.clone()).or_default() += 1;
    }
    // At most the pool's size, or as many as tests held at once (the pool grows to that).
    let peaks = {
        let server = Server::resolve().await.unwrap();
        let mut conn = server.connect().await.unwrap();
        registry::peaks(&mut conn).await.unwrap()
    };
    assert!(
        spares.iter().all(|(tpl, n)| {
            let peak = tpl.as_ref().and_then(|t| peaks.get(t)).copied();
            *n <= size.max(peak.unwrap_or(0))
        }),
        "{spares:?} (peaks {peaks:?}, pool size {size})"
    );
    // Nothing of seedbed's clones exists outside the registry.
    let server = Server::resolve().await.unwrap();
    let mut conn = server.connect().await.unwrap();
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT datname::text FROM pg_database WHERE datname LIKE 'seedbed\\_c\\_%' \
         AND datname NOT IN (SELECT name FROM seedbed.databases)",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert!(names.is_empty(), "unregistered clones: {names:?}");
}

#[tokio::test]
async fn a_killed_process_is_swept_by_the_next_run() {
    let mut child = spawn_test("holds_a_template_database")
        .env("SEEDBED_TEST_HOLD", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let name = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|l| {
            l.split("DATABASE=")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .map(str::to_string)
        })
        .expect("the child reports its database");
    // The database is in use and leased: a sweep must not touch it.
    let server = Server::resolve().await.unwrap();
    let mut conn = server.connect().await.unwrap();
    let swept = registry::sweep(&mut conn, false).await.unwrap();
    assert!(
        !swept.abandoned.contains(&name),
        "a live test's database was swept"
    );
    // kill -9 in the middle of the test.
    let _ = Command::new("kill")
        .args(["-9", &child.id().to_string()])
        .status();
    child.wait().unwrap();
    // Its death frees the lease, without heartbeats, once the server has noticed its connections
    // closed (on a loaded machine that takes the server a moment).
    let mut leased = true;
    for _ in 0..300 {
        leased = registry_entries()
            .await
            .iter()
            .any(|e| e.name == name && e.leased);
        if !leased {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !leased,
        "the killed process's lease on {name} was not freed"
    );
    // The next run sweeps it: its first test process, as cargo nextest starts it (a run of its
    // own), waits for the sweep before it exits.
    let out = spawn_test("a_test_of_the_next_run")
        .env("NEXTEST_EXECUTION_MODE", "process-per-test")
        .env(
            "NEXTEST_RUN_ID",
            format!("next-run-{}-{}", std::process::id(), name),
        )
        .env_remove("SEEDBED_RUN_ID")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Another run's sweeper (the processes of the test above sweep as they start) may hold the
    // lease while it drops the database, and the next run then leaves it to that one: give such a
    // drop a moment to finish.
    let gone = |name: String| async move {
        let server = Server::resolve().await.unwrap();
        let mut conn = server.connect().await.unwrap();
        let exists = seedbed::backend::postgres::admin::database_exists(&mut conn, &name)
            .await
            .unwrap();
        let entry = registry::list(&mut conn)
            .await
            .unwrap()
            .into_iter()
            .find(|e| e.name == name);
        (exists, entry)
    };
    let mut state = gone(name.clone()).await;
    for _ in 0..100 {
        if !state.0 && state.1.is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        state = gone(name.clone()).await;
    }
    assert!(
        !state.0 && state.1.is_none(),
        "{name} was not swept (exists: {}, registered as {:?}); the next run said:\n{}",
        state.0,
        state.1,
        String::from_utf8_lossy(&out.stderr)
    );
}
