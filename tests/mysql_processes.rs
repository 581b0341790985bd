//! MySQL isolation between processes, as `cargo nextest` runs tests: the test binary spawns
//! copies of itself, 8 at once, each running one test; a test process killed with SIGKILL
//! mid-test leaves nothing that the sweep does not remove; a process that ran one test and
//! passed notes its database clean for the next holder, and one killed mid-test leaves no such
//! note; and bad server input (a wrong
//! password, an unknown database, a user that may not create databases) is an error that says
//! what to do.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "test code: a failed expectation is a failed test"
)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use seedbed::TestDb;
use seedbed::backend::Provision;
use seedbed::backend::mysql::MySqlServer;
use seedbed::sql::quote_mysql_ident;
use sqlx::{Connection, MySql, MySqlConnection};

const PROCESSES: usize = 8;
/// Set in a child that is to be killed: where it says it is ready.
const READY_VAR: &str = "SEEDBED_TEST_KILL_READY";

/// What one test in one process does: writes a row only it knows, waits for the others to have
/// written theirs, and must see only its own (under Namespace, only its own among its rows).
async fn write_wait_and_look(db: TestDb<MySql>) {
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
async fn write_and_wait_to_be_killed(db: TestDb<MySql>) {
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

            #[seedbed::test(strategy = $strategy, migrations = "tests/mysql_migrations")]
            async fn one_process(db: TestDb<MySql>) {
                write_wait_and_look(db).await;
            }

            #[seedbed::test(strategy = $strategy, migrations = "tests/mysql_migrations")]
            async fn killed(db: TestDb<MySql>) {
                write_and_wait_to_be_killed(db).await;
            }
        }
    };
}

/// Set in a child whose test is to say which database it had and what it wrote there.
const REPORT_VAR: &str = "SEEDBED_TEST_REPORT";
/// Set in a child whose test is to leave a connection of its own open as it ends.
const LEAK_VAR: &str = "SEEDBED_TEST_LEAK_CONNECTION";

/// Finds no note of an earlier test, writes a note only it knows, says where (when asked), and,
/// when asked to be killed, waits for it.
async fn write_a_note(db: TestDb<MySql>) {
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM notes")
        .fetch_one(&db.pool())
        .await
        .unwrap();
    assert_eq!(left, 0, "a note of an earlier test is left");
    let body = format!("note-{}", db.token());
    sqlx::query("INSERT INTO notes (body) VALUES (?)")
        .bind(&body)
        .execute(&db.pool())
        .await
        .unwrap();
    if std::env::var(LEAK_VAR).is_ok() {
        // A program the test started, still connected as the test ends.
        let conn = MySqlConnection::connect(&db.url().unwrap()).await.unwrap();
        std::mem::forget(conn);
    }
    if let Ok(report) = std::env::var(REPORT_VAR) {
        std::fs::write(&report, format!("{}\n{body}", db.database())).unwrap();
    }
    if let Ok(ready) = std::env::var(READY_VAR) {
        std::fs::write(&ready, format!("{}\n{body}", db.database())).unwrap();
        tokio::time::sleep(Duration::from_secs(120)).await;
    }
}

macro_rules! note_tests {
    ($module:ident, $strategy:literal) => {
        mod $module {
            use super::*;

            #[seedbed::test(strategy = $strategy, migrations = "tests/mysql_note_migrations")]
            async fn note(db: TestDb<MySql>) {
                write_a_note(db).await;
            }
        }
    };
}

/// Run by [`a_second_test_in_a_one_test_process_takes_the_note_back`] in a child: two tests one
/// after the other in a process that says it runs one; the second takes the first's slot back
/// from the process, and with it the note the first left.
#[tokio::test]
async fn note_then_reuse() {
    if std::env::var(REPORT_VAR).is_err() {
        return;
    }
    let iso = || {
        seedbed::Isolation::new(seedbed::Strategy::Truncate)
            .migrations(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/mysql_note_migrations"
            ))
            .test_name("note_then_reuse")
    };
    let first = iso().acquire_on::<MySql>().await.unwrap();
    let database = first.database().to_string();
    first.finish().await.unwrap();
    assert!(
        noted_clean(&database).await,
        "noted as the first test ended"
    );
    let second = iso().acquire_on::<MySql>().await.unwrap();
    assert_eq!(second.database(), database, "the process's own slot again");
    assert!(!noted_clean(&database).await, "the note is taken back");
    second.finish().await.unwrap();
    assert!(noted_clean(&database).await, "noted again");
}

note_tests!(note_rollback, "rollback");
note_tests!(note_truncate, "truncate");
note_tests!(note_template, "template");

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

#[test]
fn processes_at_once_under_namespace_see_their_own_rows() {
    spawn_many("namespace::one_process");
}

// ---- kill -9 ----

/// A connection as the server's administrator, in no database: on a new server seedbed's own
/// database does not exist until a first test has run.
async fn admin() -> MySqlConnection {
    let server = <MySql as Provision>::server().await.unwrap();
    MySqlConnection::connect_with(&<MySql as Provision>::connect_options(server, ""))
        .await
        .unwrap()
}

async fn rows(database: &str, email: &str) -> i64 {
    let mut conn = admin().await;
    let sql = format!(
        "SELECT COUNT(*) FROM {}.users WHERE email = ?",
        quote_mysql_ident(database)
    );
    let n = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(email)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let _ = conn.close().await;
    n
}

/// Runs `test` in a child, kills it (SIGKILL) once it has written, and returns its database,
/// the row it wrote, and whether the row was there (committed) as it died.
async fn kill_mid_test(test: &str) -> (String, String, i64) {
    let ready = std::env::temp_dir().join(format!(
        "seedbed-mysql-kill-{}-{}",
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
            start.elapsed() < Duration::from_secs(120),
            "the child never got ready"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let said = std::fs::read_to_string(&ready).unwrap();
    std::fs::remove_file(&ready).unwrap();
    let mut lines = said.lines();
    let database = lines.next().unwrap().to_string();
    let email = lines.next().unwrap().to_string();
    let before = rows(&database, &email).await;
    child.kill().unwrap();
    child.wait().unwrap();
    (database, email, before)
}

/// A named lock of these tests on the server, held until the connection closes: the sweep
/// leases every free database for a moment, which the clean-note test must not see (it expects
/// the first free database to be the one it frees), in this process or another (`cargo nextest`).
async fn sweep_lock() -> MySqlConnection {
    let mut conn = admin().await;
    let taken: Option<i64> = sqlx::query_scalar("SELECT GET_LOCK('seedbed_test_mysql_sweep', 600)")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(taken, Some(1), "the tests' sweep lock");
    conn
}

/// Sweeps until `done` holds (the server notices a killed process's connections closing a
/// moment after it dies, and frees its locks then).
async fn sweep_until(mut done: impl AsyncFnMut() -> bool) {
    let server = <MySql as Provision>::server().await.unwrap();
    let start = Instant::now();
    loop {
        let lock = sweep_lock().await;
        seedbed::isolation::maintenance::sweep_mysql(server, false)
            .await
            .unwrap();
        let _ = lock.close().await;
        if done().await {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the sweep never removed what the killed process left"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_killed_rollback_test_leaves_nothing() {
    let (database, email, before) = kill_mid_test("rollback::killed").await;
    assert_eq!(before, 0, "the row was never committed");
    // The server rolls the dead session's transaction back: nothing to sweep.
    assert_eq!(rows(&database, &email).await, 0);
}

#[tokio::test]
async fn a_killed_truncate_test_leaves_its_slot_empty() {
    let (database, email, before) = kill_mid_test("truncate::killed").await;
    assert_eq!(before, 1, "the row was committed as the process died");
    sweep_until(async || rows(&database, &email).await == 0).await;
}

#[tokio::test]
async fn a_killed_template_test_leaves_its_copy_empty() {
    let (database, email, before) = kill_mid_test("template::killed").await;
    assert_eq!(before, 1, "the row was committed as the process died");
    sweep_until(async || rows(&database, &email).await == 0).await;
}

#[tokio::test]
async fn a_killed_namespace_test_leaves_no_rows() {
    let (database, email, before) = kill_mid_test("namespace::killed").await;
    assert_eq!(before, 1, "the row was committed as the process died");
    sweep_until(async || rows(&database, &email).await == 0).await;
}

// ---- the clean note ----

/// Whether `database` is noted clean for its next holder.
async fn noted_clean(database: &str) -> bool {
    let mut conn = admin().await;
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM seedbed.clean WHERE name = ?")
        .bind(database)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let _ = conn.close().await;
    n == 1
}

/// How many notes `body` names in `database`.
async fn notes(database: &str, body: &str) -> i64 {
    let mut conn = admin().await;
    let sql = format!(
        "SELECT COUNT(*) FROM {}.notes WHERE body = ?",
        quote_mysql_ident(database)
    );
    let n = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(body)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let _ = conn.close().await;
    n
}

/// Waits until no session holds the lease of `database` (the server frees a dead process's locks
/// a moment after its connections close).
async fn wait_lease_free(database: &str) {
    let mut conn = admin().await;
    let start = Instant::now();
    loop {
        let free: Option<i64> = sqlx::query_scalar("SELECT IS_FREE_LOCK(?)")
            .bind(format!("seedbed:lease:{database}"))
            .fetch_one(&mut conn)
            .await
            .unwrap();
        if free == Some(1) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{database} stays leased"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = conn.close().await;
}

/// A child process that runs one test as `cargo nextest` runs it (one test, then the process
/// ends).
fn spawn_one_test(test: &str, var: &str, path: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--test-threads", "1"])
        .env_remove("NEXTEST_RUN_ID")
        .env("NEXTEST_EXECUTION_MODE", "process-per-test")
        .env(var, path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Where a child says which database it had and what it wrote: the two lines of `path`, once
/// both are there.
fn read_report(path: &Path) -> Option<(String, String)> {
    let said = std::fs::read_to_string(path).ok()?;
    let mut lines = said.lines();
    Some((lines.next()?.to_string(), lines.next()?.to_string()))
}

/// A passing one-test process notes its database clean, and it is: the next holder takes it
/// without looking. Then a process killed mid-test on that database: the note went when it
/// leased the database, and the next holder empties it before its test.
#[tokio::test]
async fn a_clean_note_is_left_by_a_passing_process_and_never_by_a_killed_one() {
    let _no_sweep = sweep_lock().await;
    for strategy in ["rollback", "truncate", "template"] {
        let test = format!("note_{strategy}::note");
        let report = std::env::temp_dir().join(format!(
            "seedbed-mysql-note-{}-{strategy}",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&report);
        let out = spawn_one_test(&test, REPORT_VAR, &report)
            .wait_with_output()
            .unwrap();
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains("1 passed"),
            "{test}:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let (database, body) = read_report(&report).unwrap();
        std::fs::remove_file(&report).unwrap();
        assert!(noted_clean(&database).await, "{strategy}: no note");
        assert_eq!(
            notes(&database, &body).await,
            0,
            "{strategy}: noted but not clean"
        );

        // Killed mid-test on the same database (the first of this schema, free again).
        wait_lease_free(&database).await;
        let ready = report.with_extension("ready");
        let _ = std::fs::remove_file(&ready);
        let mut child = spawn_one_test(&test, READY_VAR, &ready);
        let start = Instant::now();
        let (killed_on, killed_body) = loop {
            if let Some(said) = read_report(&ready) {
                break said;
            }
            assert!(
                child.try_wait().unwrap().is_none(),
                "{strategy}: the child ended before it was killed"
            );
            assert!(start.elapsed() < Duration::from_secs(120), "never ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        std::fs::remove_file(&ready).unwrap();
        assert_eq!(
            killed_on, database,
            "{strategy}: the noted database is taken first"
        );
        assert!(!noted_clean(&database).await, "{strategy}: the note stayed");
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(
            !noted_clean(&database).await,
            "{strategy}: a killed process noted"
        );
        let committed = i64::from(strategy != "rollback");
        assert_eq!(
            notes(&database, &killed_body).await,
            committed,
            "{strategy}"
        );

        // The next holder finds no note and empties the database before its test.
        wait_lease_free(&database).await;
        let _ = std::fs::remove_file(&report);
        let out = spawn_one_test(&test, REPORT_VAR, &report)
            .wait_with_output()
            .unwrap();
        assert!(
            out.status.success(),
            "{test} after the kill:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let (next_on, _) = read_report(&report).unwrap();
        std::fs::remove_file(&report).unwrap();
        assert_eq!(
            next_on, database,
            "{strategy}: the free database is taken first"
        );
        assert_eq!(
            notes(&database, &killed_body).await,
            0,
            "{strategy}: not emptied"
        );
        // Free again before the next strategy's first process (Rollback and Truncate lease
        // the same databases, the first free one first).
        wait_lease_free(&database).await;
    }
    // A test whose program is still connected to its database as it ends: the database is
    // emptied, but not noted clean (the program could write after).
    let report =
        std::env::temp_dir().join(format!("seedbed-mysql-note-{}-leak", std::process::id()));
    let _ = std::fs::remove_file(&report);
    let mut child = Command::new(std::env::current_exe().unwrap());
    child
        .args(["note_truncate::note", "--exact", "--test-threads", "1"])
        .env_remove("NEXTEST_RUN_ID")
        .env("NEXTEST_EXECUTION_MODE", "process-per-test")
        .env(REPORT_VAR, &report)
        .env(LEAK_VAR, "1");
    let out = child.output().unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let (database, _) = read_report(&report).unwrap();
    std::fs::remove_file(&report).unwrap();
    assert!(
        !noted_clean(&database).await,
        "noted clean while another session was connected"
    );
}

#[tokio::test]
async fn a_second_test_in_a_one_test_process_takes_the_note_back() {
    let _no_sweep = sweep_lock().await;
    let report =
        std::env::temp_dir().join(format!("seedbed-mysql-note-{}-reuse", std::process::id()));
    let out = spawn_one_test("note_then_reuse", REPORT_VAR, &report)
        .wait_with_output()
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("1 passed"),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---- bad input ----

/// `host:port` of the server the tests use, and root's password there (the embedded server's
/// is random; the service's is empty).
async fn address() -> (String, String) {
    let server = <MySql as Provision>::server().await.unwrap();
    let url = server.url_for("");
    let after_at = url.rsplit_once('@').unwrap().1;
    let address = after_at.split('/').next().unwrap().to_string();
    let credentials = url.split("://").nth(1).unwrap().split('@').next().unwrap();
    let password = credentials
        .split_once(':')
        .map(|(_, p)| p.to_string())
        .unwrap_or_default();
    (address, password)
}

async fn error_for(url: &str) -> String {
    MySqlServer::from_url(url)
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_else(|| panic!("{url} was accepted"))
}

#[tokio::test]
async fn a_wrong_password_is_named_with_what_to_do() {
    let (address, _) = address().await;
    let err = error_for(&format!("mysql://root:not-the-password@{address}")).await;
    assert!(err.contains("wrong user name or password"), "{err}");
}

#[tokio::test]
async fn an_unknown_database_is_named_with_what_to_do() {
    let (address, password) = address().await;
    let err = error_for(&format!(
        "mysql://root:{password}@{address}/seedbed_no_such_database"
    ))
    .await;
    assert!(err.contains("does not exist"), "{err}");
    assert!(err.contains("remove it from the URL"), "{err}");
}

#[tokio::test]
async fn a_user_that_may_not_create_databases_is_told_what_to_grant() {
    let (address, _) = address().await;
    let mut admin = admin().await;
    sqlx::raw_sql(
        "CREATE USER IF NOT EXISTS 'seedbed_no_create'@'127.0.0.1' IDENTIFIED BY 'pw'; \
         CREATE USER IF NOT EXISTS 'seedbed_no_create'@'localhost' IDENTIFIED BY 'pw'",
    )
    .execute(&mut admin)
    .await
    .unwrap();
    let err = MySqlServer::from_url(&format!("mysql://seedbed_no_create:pw@{address}"))
        .await
        .expect_err("a user without CREATE is refused");
    assert!(
        matches!(err, seedbed::Error::CreateDatabase { .. }),
        "{err}"
    );
    let text = err.to_string();
    sqlx::raw_sql(
        "DROP USER IF EXISTS 'seedbed_no_create'@'127.0.0.1'; \
         DROP USER IF EXISTS 'seedbed_no_create'@'localhost'",
    )
    .execute(&mut admin)
    .await
    .unwrap();
    assert!(
        text.contains("GRANT ALL PRIVILEGES ON `seedbed%`"),
        "{text}"
    );
}

/// Set in the child of [`a_user_that_may_not_name_another_account_copies_views_as_itself`]: where
/// it says which database it had.
const DEFINER_VAR: &str = "SEEDBED_TEST_DEFINER_REPORT";

const DEFINER_MIGRATIONS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/mysql_definer_migrations"
);

fn definer_iso() -> seedbed::Isolation {
    seedbed::Isolation::new(seedbed::Strategy::Template)
        .migrations(DEFINER_MIGRATIONS)
        .test_name("definer")
}

/// Run by [`a_user_that_may_not_name_another_account_copies_views_as_itself`] in a child, as a
/// user without SUPER: copies the template, reads its view, says which database it had.
#[tokio::test]
async fn copy_as_another_user() {
    let Ok(report) = std::env::var(DEFINER_VAR) else {
        return;
    };
    let db = definer_iso().acquire_on::<MySql>().await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM item_names")
        .fetch_one(&db.pool())
        .await
        .unwrap();
    assert_eq!(n, 0);
    std::fs::write(&report, db.database()).unwrap();
    db.finish().await.unwrap();
}

/// The template's view is defined by the account that migrated it; a user that may not name
/// another account as a definer (no SUPER, no SET USER: error 1227) copies it as its own.
#[tokio::test]
async fn a_user_that_may_not_name_another_account_copies_views_as_itself() {
    // No sweep leases a copy while this test drops it.
    let _sweep = sweep_lock().await;
    let (address, _) = address().await;
    let mut admin = admin().await;
    let user = "seedbed_definer";
    for host in ["127.0.0.1", "localhost"] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP USER IF EXISTS '{user}'@'{host}'; \
             CREATE USER '{user}'@'{host}' IDENTIFIED BY 'pw'; \
             GRANT ALL PRIVILEGES ON `seedbed%`.* TO '{user}'@'{host}'"
        )))
        .execute(&mut admin)
        .await
        .unwrap();
    }
    // The template made (by the tests' own account) and its first copy held, so that the child
    // needs a copy of its own; copies earlier runs left go (no other test uses this schema).
    let held = definer_iso().acquire_on::<MySql>().await.unwrap();
    let mine = held.database().to_string();
    let image = mine.rsplit_once('_').unwrap().0.to_string();
    let others: Vec<String> = sqlx::query_scalar(
        "SELECT CAST(SCHEMA_NAME AS CHAR) FROM information_schema.SCHEMATA \
         WHERE SCHEMA_NAME LIKE CONCAT(?, '\\_%') AND SCHEMA_NAME <> ?",
    )
    .bind(&image)
    .bind(&mine)
    .fetch_all(&mut admin)
    .await
    .unwrap();
    for other in others {
        seedbed::backend::mysql::admin::drop_database(&mut admin, &other)
            .await
            .unwrap();
    }
    let report = std::env::temp_dir().join(format!("seedbed-definer-{}", std::process::id()));
    let _ = std::fs::remove_file(&report);
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["copy_as_another_user", "--exact", "--test-threads", "1"])
        .env("SEEDBED_MYSQL_URL", format!("mysql://{user}:pw@{address}"))
        .env(DEFINER_VAR, &report)
        .output()
        .unwrap();
    let copied = std::fs::read_to_string(&report).unwrap_or_default();
    let _ = std::fs::remove_file(&report);
    let definer: Option<String> = sqlx::query_scalar(
        "SELECT CAST(DEFINER AS CHAR) FROM information_schema.VIEWS \
         WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'item_names'",
    )
    .bind(&copied)
    .fetch_optional(&mut admin)
    .await
    .unwrap();
    // The child's copy names an account that goes with this test: it goes first.
    if !copied.is_empty() {
        seedbed::backend::mysql::admin::drop_database(&mut admin, &copied)
            .await
            .unwrap();
    }
    for host in ["127.0.0.1", "localhost"] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP USER IF EXISTS '{user}'@'{host}'"
        )))
        .execute(&mut admin)
        .await
        .unwrap();
    }
    held.finish().await.unwrap();
    assert!(
        out.status.success(),
        "the child failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ne!(copied, mine, "the child made a copy of its own");
    let definer = definer.expect("the copy's view");
    assert!(
        definer.starts_with(&format!("{user}@")),
        "the copy's view is defined by the user that made it: {definer}"
    );
}

/// A server with no connection to spare (here the user's limit, error 1226; `max_connections`
/// is error 1040) is waited for, not failed on: seedbed connects once a connection is freed.
#[tokio::test]
async fn a_server_out_of_connections_is_waited_for() {
    let (address, _) = address().await;
    let mut admin = admin().await;
    sqlx::raw_sql(
        "CREATE USER IF NOT EXISTS 'seedbed_limited'@'127.0.0.1' IDENTIFIED BY 'pw' \
           WITH MAX_USER_CONNECTIONS 2; \
         CREATE USER IF NOT EXISTS 'seedbed_limited'@'localhost' IDENTIFIED BY 'pw' \
           WITH MAX_USER_CONNECTIONS 2; \
         GRANT ALL PRIVILEGES ON `seedbed%`.* TO 'seedbed_limited'@'127.0.0.1'; \
         GRANT ALL PRIVILEGES ON `seedbed%`.* TO 'seedbed_limited'@'localhost'",
    )
    .execute(&mut admin)
    .await
    .unwrap();
    let url = format!("mysql://seedbed_limited:pw@{address}");
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(MySqlConnection::connect(&url).await.unwrap());
    }
    let refused = MySqlConnection::connect(&url).await.unwrap_err();
    assert!(
        refused.to_string().contains("max_user_connections"),
        "{refused}"
    );
    let freed = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        for conn in held {
            conn.close().await.unwrap();
        }
    });
    let started = std::time::Instant::now();
    let reached = MySqlServer::from_url(&url).await;
    let waited = started.elapsed();
    freed.await.unwrap();
    sqlx::raw_sql(
        "DROP USER IF EXISTS 'seedbed_limited'@'127.0.0.1'; \
         DROP USER IF EXISTS 'seedbed_limited'@'localhost'",
    )
    .execute(&mut admin)
    .await
    .unwrap();
    reached.expect("seedbed waits for a connection to be freed");
    assert!(
        waited >= Duration::from_secs(1),
        "it connected only once one was freed ({waited:?})"
    );
}
