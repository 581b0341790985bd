//! How many connections one test process opens to the server, per strategy, run the way
//! `cargo nextest` runs tests: one process per test.
//!
//! The parent test starts a [`CountingProxy`] in front of the real server (resolved as seedbed
//! resolves it: `SEEDBED_DATABASE_URL`, `DATABASE_URL`, else the embedded server, reached over
//! TCP) and runs this binary's own `child_*` tests as child processes with
//! `SEEDBED_DATABASE_URL` pointing at the proxy and the environment `cargo nextest` gives a test
//! process (`NEXTEST_EXECUTION_MODE=process-per-test`, one `NEXTEST_RUN_ID` for all), each one
//! twice in a row. Only the second run is
//! counted: the first may build what is built once per server and migrations checksum (the
//! migrated databases, the template), which is a one-off per run, not a cost of each process.
//!
//! Each strategy's child is an ordinary `#[seedbed::test]` whose body commits two rows through
//! `pool.begin()` … `commit()` on one connection of `db.pool()`. The **floor** child does the
//! same work on one plain `PgConnection`, without seedbed: in the maintenance database, on a
//! `CREATE TEMP TABLE organizations` made inside its transaction and rolled back with it (the
//! floor measures connections, not the schema, and needs no database seedbed made). It must count
//! exactly 1.
//!
//! The targets: Rollback at most 2 connections per test process; Truncate, Template and Namespace
//! at most 1 plus what the test body uses (1 here). Every count is printed in a table before
//! anything is asserted.
//!
//! The children pass when run directly too (`cargo test --test connections`): each writes rows
//! with a slug of its own process, which its strategy removes (the floor rolls back).
//!
//! ```sh
//! cargo test --test connections -- --nocapture connections_per_test_process
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo test --test connections
//! ```

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "test code: a failed expectation is a failed test"
)]

mod common;

use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::proxy::{ConnectionRecord, CountingProxy};
use seedbed::TestDb;
use seedbed::server::{Origin, Server};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};

/// Connections the children's test body uses at once: one, for its transaction.
const BODY_CONNECTIONS: usize = 1;
/// How long one child process may run.
const CHILD_TIMEOUT: Duration = Duration::from_secs(180);
/// How long the connections of an exited child may take to close.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

const INSERT: &str = "INSERT INTO organizations (name, slug) VALUES ($1, $1)";

/// The children's body: two rows committed through one connection of the test's pool. The slugs
/// carry the process id, so processes running at once never collide.
async fn commit_two_rows(db: &TestDb) {
    let pool = db.pool();
    let mut tx = pool
        .begin()
        .await
        .expect("a transaction on the test's pool");
    for n in 1..=2 {
        let slug = format!("conn-{}-{}-{n}", std::process::id(), db.strategy());
        let done = sqlx::query(INSERT)
            .bind(&slug)
            .execute(&mut *tx)
            .await
            .unwrap();
        assert_eq!(done.rows_affected(), 1);
    }
    tx.commit().await.expect("commit");
}

#[seedbed::test(strategy = "rollback", migrations = "migrations")]
#[ignore = "a child: run in a process of its own by the test that counts its connections"]
async fn child_commits_two_rows_under_rollback(db: TestDb) {
    commit_two_rows(&db).await;
}

#[seedbed::test(strategy = "truncate", migrations = "migrations")]
#[ignore = "a child: run in a process of its own by the test that counts its connections"]
async fn child_commits_two_rows_under_truncate(db: TestDb) {
    commit_two_rows(&db).await;
}

#[seedbed::test(strategy = "template", migrations = "migrations")]
#[ignore = "a child: run in a process of its own by the test that counts its connections"]
async fn child_commits_two_rows_under_template(db: TestDb) {
    commit_two_rows(&db).await;
}

#[seedbed::test(strategy = "namespace", migrations = "migrations")]
#[ignore = "a child: run in a process of its own by the test that counts its connections"]
async fn child_commits_two_rows_under_namespace(db: TestDb) {
    commit_two_rows(&db).await;
}

/// The floor: the same two inserts on one plain connection, no seedbed. As a child it connects
/// to `SEEDBED_DATABASE_URL` (the proxy) and nothing else; run directly, to the server seedbed
/// resolves.
#[tokio::test]
#[ignore = "a child: run in a process of its own by the test that counts its connections"]
async fn child_floor_one_plain_connection() {
    let options: PgConnectOptions = match std::env::var("SEEDBED_DATABASE_URL") {
        Ok(url) if url.starts_with("postgres") => url.parse().expect("SEEDBED_DATABASE_URL"),
        _ => Server::resolve()
            .await
            .unwrap_or_else(|e| panic!("no database server for the floor: {e}"))
            .maintenance_options(),
    };
    let mut conn = PgConnection::connect_with(&options)
        .await
        .unwrap_or_else(|e| panic!("connecting to the maintenance database: {e}"));
    let mut tx = conn.begin().await.unwrap();
    sqlx::query(
        "CREATE TEMP TABLE organizations (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, \
         name text NOT NULL, slug text NOT NULL UNIQUE) ON COMMIT DROP",
    )
    .execute(&mut *tx)
    .await
    .unwrap();
    for n in 1..=2 {
        let slug = format!("conn-{}-floor-{n}", std::process::id());
        let done = sqlx::query(INSERT)
            .bind(&slug)
            .execute(&mut *tx)
            .await
            .unwrap();
        assert_eq!(done.rows_affected(), 1);
    }
    tx.rollback().await.unwrap();
    conn.close().await.unwrap();
}

/// What a child may open, at most or exactly.
#[derive(Clone, Copy)]
enum Target {
    AtMost(usize),
    Exactly(usize),
}

impl Target {
    fn met_by(self, count: usize) -> bool {
        match self {
            Target::AtMost(n) => count <= n,
            Target::Exactly(n) => count == n,
        }
    }

    fn describe(self) -> String {
        match self {
            Target::AtMost(n) => format!("<= {n}"),
            Target::Exactly(n) => format!("== {n}"),
        }
    }
}

/// One child process's run.
struct Run {
    connections: Vec<ConnectionRecord>,
    elapsed: Duration,
}

struct Row {
    label: &'static str,
    why: &'static str,
    target: Target,
    first: Run,
    second: Run,
}

#[test]
fn connections_per_test_process_stay_within_the_targets() {
    let (proxy, url, host, port) = proxy_to_the_server();

    let body = 1 + BODY_CONNECTIONS;
    let cases = [
        (
            "rollback",
            "child_commits_two_rows_under_rollback",
            Target::AtMost(2),
            "seedbed 1 + the test's transaction on it 1",
        ),
        (
            "truncate",
            "child_commits_two_rows_under_truncate",
            Target::AtMost(body),
            "seedbed 1 + body 1",
        ),
        (
            "template",
            "child_commits_two_rows_under_template",
            Target::AtMost(body),
            "seedbed 1 + body 1",
        ),
        (
            "namespace",
            "child_commits_two_rows_under_namespace",
            Target::AtMost(body),
            "seedbed 1 + body 1",
        ),
        (
            "floor",
            "child_floor_one_plain_connection",
            Target::Exactly(1),
            "one PgConnection, no seedbed",
        ),
    ];
    let rows: Vec<Row> = cases
        .into_iter()
        .map(|(label, test, target, why)| Row {
            label,
            why,
            target,
            first: run_child(&proxy, test, &url),
            second: run_child(&proxy, test, &url),
        })
        .collect();

    eprintln!(
        "\nconnections one test process opened (one process per test, as cargo nextest runs \
         them), through a counting proxy to {host}:{port}; the second of two runs counts:\n"
    );
    eprintln!(
        "{:<10} {:>8} {:>8} {:>7} {:>9}  {:<6}  target from",
        "process", "1st run", "2nd run", "target", "2nd time", "verdict"
    );
    for row in &rows {
        let count = row.second.connections.len();
        eprintln!(
            "{:<10} {:>8} {:>8} {:>7} {:>7}ms  {:<6}  {}",
            row.label,
            row.first.connections.len(),
            count,
            row.target.describe(),
            row.second.elapsed.as_millis(),
            if row.target.met_by(count) {
                "ok"
            } else {
                "OVER"
            },
            row.why,
        );
    }
    eprintln!("\nthe second run's connections, in the order opened:");
    for row in &rows {
        eprintln!("  {}:", row.label);
        for record in &row.second.connections {
            eprintln!("    {}", record.describe());
        }
    }
    eprintln!();

    let missed: Vec<String> = rows
        .iter()
        .filter(|row| !row.target.met_by(row.second.connections.len()))
        .map(|row| {
            format!(
                "{}: one test process opened {} connections to the server; the target is {} ({})",
                row.label,
                row.second.connections.len(),
                row.target.describe(),
                row.why
            )
        })
        .collect();
    assert!(missed.is_empty(), "{}", missed.join("\n"));
}

/// A counting proxy in front of the server seedbed resolves, and the URL that reaches the server
/// through it (with the server's host and port).
fn proxy_to_the_server() -> (CountingProxy, String, String, u16) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = runtime
        .block_on(Server::resolve())
        .unwrap_or_else(|e| panic!("no PostgreSQL server to count connections against: {e}"));
    let options = server.maintenance_options();
    // The embedded server's options name its Unix socket too; the proxy speaks TCP, and
    // 127.0.0.1:<port> is where the embedded server listens.
    let (host, port) = (options.get_host().to_string(), options.get_port());
    assert!(
        !host.starts_with('/'),
        "the server is reached through the Unix socket {host}; the counting proxy needs a TCP \
         host and port (set DATABASE_URL to a postgres://host:port/ URL)"
    );
    let proxy = CountingProxy::start((host.as_str(), port))
        .unwrap_or_else(|e| panic!("cannot start the counting proxy to {host}:{port}: {e}"));
    // The embedded server's TCP URL (with its password), not the socket URL seedbed hands out.
    let server_url = match server.origin() {
        Origin::Embedded(running) => running.url(server.maintenance_database()),
        Origin::Url { .. } => server.url_for(server.maintenance_database()),
    };
    let url = proxied_url(&server_url, proxy.port());
    (proxy, url, host, port)
}

/// Tests run one after another in one process (as `cargo test` runs them), each running two
/// statements back to back through its pool (the second asks for a connection while the first
/// is still going back, in a task of its own).
const IN_PROCESS_TESTS: usize = 20;

/// The child of [`tests_in_one_process_reuse_their_connections`]: [`IN_PROCESS_TESTS`] tests of
/// Truncate, then as many of Namespace, each on a runtime of its own as `#[tokio::test]` gives.
#[test]
#[ignore = "a child: run in a process of its own by the test that counts its connections"]
fn child_in_process_tests_back_to_back_statements() {
    for strategy in [seedbed::Strategy::Truncate, seedbed::Strategy::Namespace] {
        for n in 0..IN_PROCESS_TESTS {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let db = seedbed::Isolation::new(strategy)
                    .migrations("migrations")
                    .test_name("connections::in_process")
                    .acquire()
                    .await
                    .expect("acquire");
                let pool = db.pool();
                sqlx::query("SELECT 1").execute(&pool).await.unwrap();
                let slug = format!("in-process-{}-{n}", std::process::id());
                sqlx::query(INSERT)
                    .bind(&slug)
                    .execute(&pool)
                    .await
                    .unwrap();
                db.finish().await.expect("finish");
            });
        }
    }
}

/// Tests of one process reuse their connections: the pools a test leaves are kept for the next
/// one, with as many connections as a test used, so a run of tests does not connect per test.
#[test]
fn tests_in_one_process_reuse_their_connections() {
    let (proxy, url, _, _) = proxy_to_the_server();
    let child = || {
        run_command(
            &proxy,
            "child_in_process_tests_back_to_back_statements",
            &url,
            Command::new(std::env::current_exe().unwrap()),
        )
    };
    // The first run may build the migrated databases; the second counts.
    let warm = child();
    let run = child();
    let tests = 2 * IN_PROCESS_TESTS;
    eprintln!(
        "{tests} tests in one process opened {} connections (first run {}):",
        run.connections.len(),
        warm.connections.len()
    );
    for record in &run.connections {
        eprintln!("    {}", record.describe());
    }
    // Per strategy: the first test's pool (one connection, and the second its back-to-back
    // statements opened), the next pool with two, kept from then on; and the process's
    // coordination connections.
    assert!(
        run.connections.len() <= 12,
        "{tests} tests in one process opened {} connections: tests do not reuse the connections \
         of the tests before them",
        run.connections.len()
    );
}

/// The run id the children share, as the processes of one `cargo nextest run` do.
fn run_id() -> &'static str {
    static RUN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    RUN.get_or_init(|| format!("connections-{}", std::process::id()))
}

/// Runs `test` of this binary in a process of its own against `url`, and returns the
/// connections the proxy accepted while it ran. A child that fails or runs no test fails the
/// caller, with its output.
fn run_child(proxy: &CountingProxy, test: &str, url: &str) -> Run {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        // As `cargo nextest run` starts a test process: one test, one run for all of them,
        // and the test's slot among those running at once.
        .env("NEXTEST_EXECUTION_MODE", "process-per-test")
        .env("NEXTEST_RUN_ID", run_id())
        // A slot of its own: this process's own run of the children holds Truncate's first
        // databases for as long as it lives, as any `cargo test` process would.
        .env("NEXTEST_TEST_GLOBAL_SLOT", "5")
        .env("SEEDBED_TRUNCATE_DATABASES", "8");
    run_command(proxy, test, url, command)
}

/// [`run_child`] with `command` set up by the caller (its environment); the test's name and
/// `SEEDBED_DATABASE_URL` are added here.
fn run_command(proxy: &CountingProxy, test: &str, url: &str, mut command: Command) -> Run {
    assert!(
        proxy.wait_idle(CLOSE_TIMEOUT),
        "{} connections through the proxy still open before {test} started",
        proxy.open()
    );
    let before = proxy.accepted();
    let started = Instant::now();
    let (status, stdout, stderr) = run_with_timeout(
        command
            .args([test, "--exact", "--include-ignored", "--test-threads", "1"])
            .env("SEEDBED_DATABASE_URL", url)
            .env_remove("SEEDBED_RUN_ID"),
        CHILD_TIMEOUT,
    )
    .unwrap_or_else(|e| panic!("{test}: {e}"));
    let elapsed = started.elapsed();
    assert!(
        status.is_some_and(|s| s.success()) && stdout.contains("1 passed"),
        "the child process running {test} failed ({}):\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        status.map_or_else(
            || format!("killed after {CHILD_TIMEOUT:?}"),
            |s| s.to_string()
        ),
    );
    assert!(
        proxy.wait_idle(CLOSE_TIMEOUT),
        "{} connections of {test}'s process still open {CLOSE_TIMEOUT:?} after it exited",
        proxy.open()
    );
    Run {
        connections: proxy.records()[before..].to_vec(),
        elapsed,
    }
}

/// Runs `command` with its output captured; kills it after `timeout` (status `None`).
fn run_with_timeout(
    command: &mut Command,
    timeout: Duration,
) -> std::io::Result<(Option<ExitStatus>, String, String)> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if started.elapsed() > timeout {
            child.kill()?;
            child.wait()?;
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok((
        status,
        stdout.join().unwrap_or_default(),
        stderr.join().unwrap_or_default(),
    ))
}

/// `url` with its host and port replaced by 127.0.0.1:`port`, keeping the user, password,
/// database and query.
fn proxied_url(url: &str, port: u16) -> String {
    let (scheme, rest) = url.split_once("://").expect("a postgres:// URL");
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let query = tail.split_once('?').map_or("", |(_, q)| q);
    assert!(
        !query
            .split('&')
            .any(|p| p.starts_with("host=") || p.starts_with("port=")),
        "the server URL names its host or port in the query ({query}); the counting proxy \
         cannot stand in for it"
    );
    let userinfo = authority
        .rsplit_once('@')
        .map_or(String::new(), |(u, _)| format!("{u}@"));
    format!("{scheme}://{userinfo}127.0.0.1:{port}{tail}")
}

#[test]
fn proxied_url_keeps_credentials_database_and_query() {
    assert_eq!(
        proxied_url("postgres://u:p%40ss@db.example:5433/app?sslmode=prefer", 7),
        "postgres://u:p%40ss@127.0.0.1:7/app?sslmode=prefer"
    );
    assert_eq!(
        proxied_url("postgresql://db/app", 7),
        "postgresql://127.0.0.1:7/app"
    );
    assert_eq!(
        proxied_url("postgres://postgres@127.0.0.1:5432", 7),
        "postgres://postgres@127.0.0.1:7"
    );
}
