//! Namespace: parallel tests on one shared database, each seeing only its own rows, which are
//! removed when it ends, whoever wrote them.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "test code: a failed expectation is a failed test"
)]

mod models;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use models::*;
use seedbed::backend::postgres::journal;
use seedbed::prelude::*;
use seedbed::server::Server;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::Barrier;

const PROCESSES: usize = 8;
const TESTS_PER_PROCESS: usize = 20;
const ROWS_PER_TEST: usize = 500;

fn namespace(name: &str) -> Isolation {
    Isolation::new(Strategy::Namespace)
        .migrations("migrations")
        .test_name(name)
}

/// A connection to the shared database without any token: what another observer sees.
async fn observer(db: &TestDb) -> PgConnection {
    let server = Server::resolve().await.unwrap();
    PgConnection::connect_with(&server.database_options(db.database()))
        .await
        .unwrap()
}

async fn count(conn: &mut PgConnection, sql: &str, bind: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
        .bind(bind)
        .fetch_one(conn)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tests_share_a_database_and_see_only_their_own_rows() {
    let barrier = Arc::new(Barrier::new(2));
    let run = |me: &'static str| {
        let barrier = Arc::clone(&barrier);
        async move {
            let db = namespace(&format!("namespace::apart::{me}"))
                .acquire()
                .await
                .unwrap();
            let pool = db.pool();
            // Factories, raw SQL and a second connection all commit.
            let org = Organization::factory().create(&db).await.unwrap();
            assert!(org.slug.contains(db.token()), "{}", org.slug);
            User::factory().create_list(&db, 30).await.unwrap();
            let mut other = pool.acquire().await.unwrap();
            sqlx::query("INSERT INTO teams (organization_id, name) VALUES ($1, $2)")
                .bind(org.id)
                .bind(format!("team-{}", db.token()))
                .execute(&mut *other)
                .await
                .unwrap();
            drop(other);
            barrier.wait().await;
            // Each test looks at its own rows, through its token.
            let mine: i64 =
                sqlx::query_scalar("SELECT count(*) FROM users WHERE email LIKE '%' || $1 || '%'")
                    .bind(db.token())
                    .fetch_one(&pool)
                    .await
                    .unwrap();
            assert_eq!(mine, 30);
            barrier.wait().await;
            let token = db.token().to_string();
            let mut look = observer(&db).await;
            db.finish().await.unwrap();
            // Everything it inserted is gone, and its journal with it.
            assert_eq!(
                count(
                    &mut look,
                    "SELECT count(*) FROM users WHERE email LIKE '%' || $1 || '%'",
                    &token
                )
                .await,
                0
            );
            assert_eq!(
                count(
                    &mut look,
                    "SELECT count(*) FROM organizations WHERE slug LIKE '%' || $1",
                    &token
                )
                .await,
                0
            );
            assert_eq!(
                count(
                    &mut look,
                    "SELECT count(*) FROM seedbed.journal WHERE token = $1",
                    &token
                )
                .await,
                0
            );
            let _ = look.close().await;
            token
        }
    };
    let (a, b) = tokio::join!(run("a"), run("b"));
    assert_ne!(a, b);
}

#[tokio::test]
async fn connections_carry_the_token() {
    let db = namespace("namespace::token").acquire().await.unwrap();
    let pool = db.pool();
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(pool.acquire().await.unwrap());
    }
    for conn in held.iter_mut() {
        let token: String = sqlx::query_scalar("SELECT current_setting('seedbed.token')")
            .fetch_one(&mut **conn)
            .await
            .unwrap();
        assert_eq!(token, db.token());
    }
    drop(held);
    // The URL gives the application's own pool the token too: its rows are the test's.
    let app = PgPool::connect(&db.url().unwrap()).await.unwrap();
    let token: String = sqlx::query_scalar("SELECT current_setting('seedbed.token')")
        .fetch_one(&app)
        .await
        .unwrap();
    assert_eq!(token, db.token());
    sqlx::query("INSERT INTO organizations (name, slug) VALUES ('app', $1)")
        .bind(format!("app-{}", db.token()))
        .execute(&app)
        .await
        .unwrap();
    app.close().await;
    let token = db.token().to_string();
    let mut look = observer(&db).await;
    db.finish().await.unwrap();
    assert_eq!(
        count(
            &mut look,
            "SELECT count(*) FROM organizations WHERE slug = 'app-' || $1",
            &token
        )
        .await,
        0
    );
}

#[tokio::test]
async fn rows_written_by_triggers_and_the_fk_cycle_are_removed() {
    let db = namespace("namespace::triggers").acquire().await.unwrap();
    let issue = Issue::factory().create(&db).await.unwrap();
    let mut graph = Graph::new();
    let board = graph.add(Board::factory());
    let column = graph.add(BoardColumn::factory().board(board));
    graph.update(&board, |b| b.default_column(column));
    graph.create(&db).await.unwrap();
    let mut look = observer(&db).await;
    let audit: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit.issue_events WHERE issue_id = $1")
            .bind(issue.id)
            .fetch_one(&mut look)
            .await
            .unwrap();
    assert_eq!(audit, 1, "the audit trigger wrote a row");
    let token = db.token().to_string();
    db.finish().await.unwrap();
    let audit: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit.issue_events WHERE issue_id = $1")
            .bind(issue.id)
            .fetch_one(&mut look)
            .await
            .unwrap();
    assert_eq!(audit, 0, "the trigger's row went with the test's");
    let issues: i64 = sqlx::query_scalar("SELECT count(*) FROM issues WHERE id = $1")
        .bind(issue.id)
        .fetch_one(&mut look)
        .await
        .unwrap();
    assert_eq!(issues, 0);
    assert_eq!(
        count(
            &mut look,
            "SELECT count(*) FROM seedbed.journal WHERE token = $1",
            &token
        )
        .await,
        0
    );
}

#[tokio::test]
async fn keep_rows_leaves_the_data_and_forgets_it() {
    let db = namespace("namespace::keep")
        .namespace(seedbed::isolation::NamespaceOptions::data().keep_rows(true))
        .acquire()
        .await
        .unwrap();
    let org = Organization::factory().create(&db).await.unwrap();
    let token = db.token().to_string();
    let mut look = observer(&db).await;
    db.finish().await.unwrap();
    let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM organizations WHERE id = $1")
        .bind(org.id)
        .fetch_one(&mut look)
        .await
        .unwrap();
    assert_eq!(kept, 1);
    assert_eq!(
        count(
            &mut look,
            "SELECT count(*) FROM seedbed.journal WHERE token = $1",
            &token
        )
        .await,
        0
    );
    sqlx::query("DELETE FROM organizations WHERE id = $1")
        .bind(org.id)
        .execute(&mut look)
        .await
        .unwrap();
}

/// Twenty tests, each creating 500 rows with the same factories, their unique columns included.
/// (The test below watches, while eight processes run this, that no backend waits on another
/// test's rows or uncommitted keys.)
#[tokio::test]
async fn twenty_tests_of_five_hundred_rows() {
    let marker = std::env::var("SEEDBED_TEST_MARKER").unwrap_or_else(|_| "standalone".into());
    for i in 0..TESTS_PER_PROCESS {
        let db = namespace(&format!("namespace::twenty::{i}"))
            .acquire()
            .await
            .unwrap();
        let org = Organization::factory()
            .name(marker.clone())
            .create(&db)
            .await
            .unwrap();
        db.reuse(&org);
        let users = User::factory()
            .display_name(marker.clone())
            .create_list(&db, ROWS_PER_TEST - 1)
            .await
            .unwrap();
        assert_eq!(users.len(), ROWS_PER_TEST - 1);
        let mine: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM users WHERE display_name = $1 AND email LIKE '%' || $2 || '%'",
        )
        .bind(&marker)
        .bind(db.token())
        .fetch_one(&db.pool())
        .await
        .unwrap();
        assert_eq!(mine as usize, ROWS_PER_TEST - 1, "exactly its own rows");
        db.finish().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_processes_at_once_collide_nowhere_and_leave_nothing() {
    let marker = format!("ns-run-{}", std::process::id());
    // The shared database, and a watcher of lock waits on rows and transactions in it (what a
    // wait on another test's uncommitted unique key looks like).
    let first = namespace("namespace::before").acquire().await.unwrap();
    let database = first.database().to_string();
    first.finish().await.unwrap();
    let server = Server::resolve().await.unwrap();
    let mut watcher_conn = server.connect().await.unwrap();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (done, database) = (Arc::clone(&done), database.clone());
        tokio::spawn(async move {
            let mut waits = Vec::new();
            let mut samples = 0;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                // The waiting statement and what the backends it waits for are running.
                let waiting: Vec<String> = sqlx::query_scalar(
                    "SELECT a.wait_event || ': ' || left(a.query, 300) || ' <- waits for: ' || \
                     coalesce((SELECT string_agg(left(b.query, 300), ' | ') \
                     FROM pg_stat_activity b WHERE b.pid = ANY(pg_blocking_pids(a.pid))), '?') \
                     FROM pg_stat_activity a WHERE a.datname = $1 \
                     AND a.wait_event_type = 'Lock' AND a.wait_event IN ('transactionid', 'tuple')",
                )
                .bind(&database)
                .fetch_all(&mut watcher_conn)
                .await
                .unwrap();
                waits.extend(waiting);
                samples += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            (waits, samples)
        })
    };
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..PROCESSES)
        .map(|_| {
            Command::new(&exe)
                .args([
                    "twenty_tests_of_five_hundred_rows",
                    "--exact",
                    "--test-threads",
                    "1",
                ])
                .env("SEEDBED_TEST_MARKER", &marker)
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
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let (waits, samples) = watcher.await.unwrap();
    for out in &outputs {
        assert!(
            out.status.success(),
            "a process failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(samples > 10, "the watcher barely ran ({samples} samples)");
    assert!(
        waits.is_empty(),
        "backends waited on other tests' rows ({samples} samples):\n{}",
        waits.join("\n")
    );
    // Nothing of theirs remains.
    let db = namespace("namespace::after").acquire().await.unwrap();
    let mut look = observer(&db).await;
    let left: Vec<(i64, String)> =
        sqlx::query_as("SELECT id, email::text FROM users WHERE display_name = $1 ORDER BY id")
            .bind(&marker)
            .fetch_all(&mut look)
            .await
            .unwrap();
    assert!(left.is_empty(), "users left behind: {left:?}");
    assert_eq!(
        count(
            &mut look,
            "SELECT count(*) FROM organizations WHERE name = $1",
            &marker
        )
        .await,
        0
    );
    db.finish().await.unwrap();
}

/// A connection the pool opens while the test runs (the server ended the pool's sessions) carries
/// the test's token too: rows written through it are journaled and removed with the others.
#[tokio::test]
async fn connections_opened_during_the_test_carry_the_token() {
    let db = namespace("namespace::reopened").acquire().await.unwrap();
    let pool = db.pool();
    let mut look = observer(&db).await;
    let ended: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND application_name = 'namespace::reopened'",
    )
    .fetch_all(&mut look)
    .await
    .unwrap();
    assert!(!ended.is_empty(), "the pool's sessions were found");
    // Each dead session fails once and is dropped; the pool then opens new ones.
    let mut token = None;
    for _ in 0..20 {
        if let Ok(t) = sqlx::query_scalar::<_, String>("SELECT current_setting('seedbed.token')")
            .fetch_one(&pool)
            .await
        {
            token = Some(t);
            break;
        }
    }
    assert_eq!(token.as_deref(), Some(db.token()));
    let org = Organization::factory()
        .name("reopened")
        .create(&db)
        .await
        .unwrap();
    db.finish().await.unwrap();
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM organizations WHERE id = $1")
        .bind(org.id)
        .fetch_one(&mut look)
        .await
        .unwrap();
    assert_eq!(
        left, 0,
        "the row written through a new connection was removed"
    );
}

#[tokio::test]
async fn rows_written_on_connections_held_at_once_are_removed() {
    // The test's token is held by one of its connections; its cleanup runs on every connection
    // at once and must act on that one alone, whichever connection wrote the rows.
    let db = namespace("namespace::held_at_once")
        .acquire()
        .await
        .unwrap();
    let pool = db.pool();
    let mut first = pool.acquire().await.unwrap();
    let mut second = pool.acquire().await.unwrap();
    let mut third = pool.acquire().await.unwrap();
    let mut ids = Vec::new();
    for (i, conn) in [&mut first, &mut second, &mut third]
        .into_iter()
        .enumerate()
    {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO organizations (name, slug) VALUES ('held', $1) RETURNING id",
        )
        .bind(format!("held-at-once-{i}-{}", db.token()))
        .fetch_one(&mut **conn)
        .await
        .unwrap();
        ids.push(id);
    }
    drop((first, second, third));
    let mut look = observer(&db).await;
    db.finish().await.unwrap();
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM organizations WHERE id = ANY($1)")
        .bind(&ids)
        .fetch_one(&mut look)
        .await
        .unwrap();
    assert_eq!(left, 0, "the rows of all three connections were removed");
    let journal: i64 =
        sqlx::query_scalar("SELECT count(*) FROM seedbed.journal WHERE pk[1] = ANY($1::text[])")
            .bind(ids.iter().map(i64::to_string).collect::<Vec<_>>())
            .fetch_one(&mut look)
            .await
            .unwrap();
    assert_eq!(journal, 0, "their journal went with them");
}

/// Holds rows until killed by the test below (`SEEDBED_TEST_HOLD=1`); an ordinary test otherwise.
#[tokio::test]
async fn holds_rows() {
    let db = namespace("namespace::holds").acquire().await.unwrap();
    let org = Organization::factory()
        .name("held-rows")
        .create(&db)
        .await
        .unwrap();
    if std::env::var("SEEDBED_TEST_HOLD").is_ok() {
        println!(
            "\nTOKEN={} ORG={} DATABASE={}",
            db.token(),
            org.id,
            db.database()
        );
        tokio::time::sleep(Duration::from_secs(120)).await;
    }
    db.finish().await.unwrap();
}

#[tokio::test]
async fn a_killed_process_rows_are_swept_by_token() {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "holds_rows",
            "--exact",
            "--test-threads",
            "1",
            "--nocapture",
        ])
        .env("SEEDBED_TEST_HOLD", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let line = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .find(|l| l.contains("TOKEN="))
        .expect("the child reports its token");
    let field = |name: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .unwrap()
            .to_string()
    };
    let (token, org, database) = (field("TOKEN="), field("ORG="), field("DATABASE="));
    let server = Server::resolve().await.unwrap();
    // Alive: its rows stay.
    let swept = journal::sweep_database(server, &database, false)
        .await
        .unwrap();
    assert!(!swept.contains(&token));
    let _ = Command::new("kill")
        .args(["-9", &child.id().to_string()])
        .status();
    child.wait().unwrap();
    // The server frees the dead process's lease when it notices the closed connection, a moment
    // after the process is gone; and another process's first Namespace test (the 8-process test
    // may be running) may sweep the token before this test does. Either way its rows go.
    let mut look = PgConnection::connect_with(&server.database_options(&database))
        .await
        .unwrap();
    let mut swept_here = Vec::new();
    let (mut rows, mut journaled) = (-1i64, -1i64);
    for _ in 0..100 {
        swept_here = journal::sweep_database(server, &database, false)
            .await
            .unwrap();
        rows = sqlx::query_scalar("SELECT count(*) FROM organizations WHERE id = $1")
            .bind(org.parse::<i64>().unwrap())
            .fetch_one(&mut look)
            .await
            .unwrap();
        journaled = sqlx::query_scalar("SELECT count(*) FROM seedbed.journal WHERE token = $1")
            .bind(&token)
            .fetch_one(&mut look)
            .await
            .unwrap();
        if rows == 0 && journaled == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        (rows, journaled),
        (0, 0),
        "the killed process's row and journal remain (last sweep: {swept_here:?})"
    );
}
