//! The four strategies on SQLite (feature `sqlite`), through `#[seedbed::test]` in every form
//! `#[sqlx::test]` accepts for SQLite and through `Isolation::acquire_on`: what a test writes is
//! gone for the next test, lookup rows stay, and what a strategy cannot contain is an error
//! naming the one that can. SQLite needs nothing installed: the database files live under the
//! target directory.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "test code: a failed expectation is a failed test"
)]

use seedbed::prelude::*;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{Sqlite, SqlitePool};

const MIGRATIONS: &str = "tests/sqlite_migrations";

async fn count(pool: &SqlitePool, table: &str) -> i64 {
    let sql = format!("SELECT count(*) FROM {}", seedbed::sql::quote_ident(table));
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn insert_user(pool: &SqlitePool, email: &str) -> i64 {
    sqlx::query_scalar("INSERT INTO users (email) VALUES (?) RETURNING id")
        .bind(email)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// The test sees the migrated schema with its lookup rows and, unless it shares the database
/// (Namespace), nothing else; it writes, and sees what it wrote.
async fn exercise(pool: &SqlitePool, shared: bool) {
    assert_eq!(
        count(pool, "roles").await,
        2,
        "lookup rows from the migration"
    );
    if !shared {
        assert_eq!(count(pool, "users").await, 0, "no rows from another test");
    }
    let token = seedbed::context::TestContext::current().token().to_string();
    let id = insert_user(pool, &format!("{token}@example.test")).await;
    sqlx::query("INSERT INTO posts (user_id, title) VALUES (?, 'hello')")
        .bind(id)
        .execute(pool)
        .await
        .unwrap();
    let mine: i64 = sqlx::query_scalar("SELECT count(*) FROM posts WHERE user_id = ?")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(mine, 1);
}

// ---- every form, under every strategy ----

macro_rules! every_form {
    ($module:ident, $strategy:literal) => {
        mod $module {
            use super::*;

            #[seedbed::test(strategy = $strategy, migrations = "tests/sqlite_migrations")]
            async fn test_db(db: TestDb<Sqlite>) {
                assert_eq!(db.strategy().name(), $strategy);
                exercise(&db.pool(), $strategy == "namespace").await;
            }

            #[seedbed::test(strategy = $strategy, migrations = "tests/sqlite_migrations")]
            async fn pool(pool: SqlitePool) -> sqlx::Result<()> {
                exercise(&pool, $strategy == "namespace").await;
                Ok(())
            }

            #[seedbed::test(strategy = $strategy, migrations = "tests/sqlite_migrations")]
            async fn pool_connection(mut conn: PoolConnection<Sqlite>) {
                let n: i64 = sqlx::query_scalar("SELECT count(*) FROM roles")
                    .fetch_one(&mut *conn)
                    .await
                    .unwrap();
                assert_eq!(n, 2);
                sqlx::query("INSERT INTO users (email) VALUES ('conn@example.test')")
                    .execute(&mut *conn)
                    .await
                    .unwrap();
            }

            #[seedbed::test(
                                                strategy = $strategy,
                                                migrations = "tests/sqlite_migrations",
                                                fixtures(path = "fixtures/sqlite", scripts("users"))
                                            )]
            async fn fixtures(pool: SqlitePool) {
                let role: i64 = sqlx::query_scalar(
                    "SELECT role_id FROM users WHERE email = 'fixture@example.test'",
                )
                .fetch_one(&pool)
                .await
                .unwrap();
                assert_eq!(role, 1);
            }

            #[seedbed::test(strategy = $strategy, migrator = "super::MIGRATOR")]
            async fn migrator(pool: SqlitePool) {
                assert_eq!(count(&pool, "roles").await, 2);
                insert_user(&pool, "m@example.test").await;
            }

            #[seedbed::test(strategy = $strategy, migrations = false)]
            async fn no_migrations(pool: SqlitePool) {
                let tables: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM sqlite_schema WHERE type = 'table' \
                     AND name NOT LIKE 'seedbed%' AND name NOT LIKE 'sqlite%'",
                )
                .fetch_one(&pool)
                .await
                .unwrap();
                assert_eq!(tables, 0);
            }
        }
    };
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./tests/sqlite_migrations");

every_form!(rollback, "rollback");
every_form!(truncate, "truncate");
every_form!(template, "template");
every_form!(namespace, "namespace");

/// The forms that build their own pool: every strategy but Rollback (a compile error) and
/// Namespace (a run-time error, below).
macro_rules! own_pool_forms {
    ($module:ident, $strategy:literal) => {
        mod $module {
            use super::*;

            #[seedbed::test(strategy = $strategy, migrations = "tests/sqlite_migrations")]
            async fn pool_and_connect_options(
                opts: SqlitePoolOptions,
                connect: SqliteConnectOptions,
            ) {
                let pool = opts.max_connections(2).connect_with(connect).await.unwrap();
                exercise(&pool, false).await;
                pool.close().await;
            }

            #[seedbed::test(strategy = $strategy, migrations = "tests/sqlite_migrations")]
            async fn connect_options(connect: SqliteConnectOptions) {
                let pool = SqlitePool::connect_with(connect).await.unwrap();
                exercise(&pool, false).await;
                pool.close().await;
            }
        }
    };
}

own_pool_forms!(own_truncate, "truncate");
own_pool_forms!(own_template, "template");

/// Without a strategy, a test that builds its own pool gets one that can isolate it.
#[seedbed::test(migrations = "tests/sqlite_migrations")]
async fn own_pool_without_a_strategy(opts: SqlitePoolOptions, connect: SqliteConnectOptions) {
    let pool = opts.connect_with(connect).await.unwrap();
    exercise(&pool, false).await;
    pool.close().await;
}

// ---- what each strategy leaves for the next test ----

fn iso(strategy: Strategy) -> Isolation {
    Isolation::new(strategy)
        .migrations(MIGRATIONS)
        .crate_root(env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test]
async fn each_strategy_leaves_the_next_test_an_empty_database() {
    for strategy in [
        Strategy::Rollback,
        Strategy::Truncate,
        Strategy::Template,
        Strategy::Namespace,
    ] {
        for round in 0..3 {
            let db = iso(strategy)
                .test_name(format!("leaves_nothing::{strategy}"))
                .acquire_on::<Sqlite>()
                .await
                .unwrap();
            let pool = db.pool();
            assert_eq!(count(&pool, "roles").await, 2, "{strategy} round {round}");
            let prefix = format!("{strategy}-%");
            let left: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE email LIKE ?")
                .bind(&prefix)
                .fetch_one(&pool)
                .await
                .unwrap();
            assert_eq!(left, 0, "{strategy} round {round}");
            if strategy != Strategy::Namespace {
                assert_eq!(count(&pool, "users").await, 0, "{strategy} round {round}");
            }
            let id = insert_user(&pool, &format!("{strategy}-{round}@example.test")).await;
            // A cycle, closed in one transaction (the deferred key is checked at commit).
            let mut tx = pool.begin().await.unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "INSERT INTO boards (id, default_column_id) VALUES ({id}, {id}); \
                 INSERT INTO columns (id, board_id) VALUES ({id}, {id});"
            )))
            .execute(&mut *tx)
            .await
            .unwrap();
            tx.commit().await.unwrap();
            // A lookup row changed: restored by Truncate, rolled back by Rollback, a copy's
            // under Template.
            if strategy != Strategy::Namespace {
                sqlx::query("UPDATE roles SET name = 'changed' WHERE id = 1")
                    .execute(&pool)
                    .await
                    .unwrap();
            }
            drop(pool);
            db.finish().await.unwrap();
        }
    }
}

#[tokio::test]
async fn truncate_restarts_autoincrement_on_request() {
    let mut ids = Vec::new();
    for _ in 0..3 {
        let db = iso(Strategy::Truncate)
            .reset_sequences(true)
            .acquire_on::<Sqlite>()
            .await
            .unwrap();
        ids.push(insert_user(&db.pool(), "seq@example.test").await);
        db.finish().await.unwrap();
    }
    assert_eq!(ids, vec![1, 1, 1]);
}

#[tokio::test]
async fn rollback_turns_the_codes_transactions_into_savepoints() {
    let db = iso(Strategy::Rollback)
        .acquire_on::<Sqlite>()
        .await
        .unwrap();
    let pool = db.pool();
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("INSERT INTO users (email) VALUES ('kept@example.test')")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("INSERT INTO users (email) VALUES ('undone@example.test')")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    let emails: Vec<String> = sqlx::query_scalar("SELECT email FROM users")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(emails, vec!["kept@example.test".to_string()]);
    drop(pool);
    db.finish().await.unwrap();
}

#[tokio::test]
async fn rollback_refuses_a_raw_commit_and_names_template() {
    let db = iso(Strategy::Rollback)
        .acquire_on::<Sqlite>()
        .await
        .unwrap();
    let pool = db.pool();
    let database = db.database().to_string();
    let mut conn = pool.acquire().await.unwrap();
    sqlx::raw_sql("INSERT INTO users (email) VALUES ('escaped@example.test'); COMMIT")
        .execute(&mut *conn)
        .await
        .unwrap_err();
    drop(conn);
    drop(pool);
    let err = db.finish().await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, seedbed::Error::Isolation { .. }), "{text}");
    assert!(text.contains("template"), "{text}");
    // Nothing reached the slot: the next Rollback test there sees no user.
    let dir = <Sqlite as seedbed::backend::Provision>::server()
        .await
        .unwrap();
    let file = dir.file(&database).unwrap();
    let conn = SqlitePool::connect_with(SqliteConnectOptions::new().filename(&file))
        .await
        .unwrap();
    assert_eq!(count(&conn, "users").await, 0);
    conn.close().await;
}

#[tokio::test]
async fn template_empties_a_passing_tests_copy_for_the_next_test() {
    let dir = <Sqlite as seedbed::backend::Provision>::server()
        .await
        .unwrap();
    // Settings no other test uses: no other test takes this test's copies.
    let mine = || iso(Strategy::Template).max_connections(3);
    let db = mine().acquire_on::<Sqlite>().await.unwrap();
    let name = db.database().to_string();
    let file = dir.file(&name).unwrap();
    assert!(db.url().unwrap().starts_with("sqlite://"));
    let first_id = insert_user(&db.pool(), "recycled@example.test").await;
    sqlx::query("UPDATE roles SET name = 'changed' WHERE id = 1")
        .execute(&db.pool())
        .await
        .unwrap();
    db.finish().await.unwrap();
    let next = mine().acquire_on::<Sqlite>().await.unwrap();
    // A process that runs one test (nextest) keeps nothing for a next test: the copy goes.
    let one_test_per_process =
        std::env::var("NEXTEST_EXECUTION_MODE").is_ok_and(|m| m == "process-per-test");
    if one_test_per_process {
        assert!(!file.exists(), "a copy no later test will use is removed");
        assert_ne!(next.database(), name);
        next.finish().await.unwrap();
        return;
    }
    assert_eq!(
        next.database(),
        name,
        "the copy, emptied, serves the next test"
    );
    assert_eq!(count(&next.pool(), "users").await, 0);
    let id = insert_user(&next.pool(), "again@example.test").await;
    assert_eq!(id, first_id, "AUTOINCREMENT counters as the image has them");
    sqlx::query("DELETE FROM users")
        .execute(&next.pool())
        .await
        .unwrap();
    let role: String = sqlx::query_scalar("SELECT name FROM roles WHERE id = 1")
        .fetch_one(&next.pool())
        .await
        .unwrap();
    assert_eq!(role, "admin", "lookup rows as the image has them");
    // A test that changes the schema: its copy goes.
    sqlx::query("CREATE TABLE scratch (x INTEGER)")
        .execute(&next.pool())
        .await
        .unwrap();
    next.finish().await.unwrap();
    assert!(!file.exists(), "a copy whose schema changed is removed");
    let fresh = mine().acquire_on::<Sqlite>().await.unwrap();
    assert_ne!(fresh.database(), name);
    fresh.finish().await.unwrap();
}

/// A failed Truncate test's database is kept (moved out of the slots) and the next test gets
/// an empty one; an ordinary sweep leaves it. Returns its file.
#[allow(clippy::unwrap_used, reason = "test helper: its failure is the test's")]
async fn truncate_keeps_a_failing_tests_database() -> std::path::PathBuf {
    let dir = <Sqlite as seedbed::backend::Provision>::server()
        .await
        .unwrap();
    let db = iso(Strategy::Truncate)
        .test_name("sqlite::truncate_kept")
        .acquire_on::<Sqlite>()
        .await
        .unwrap();
    let slot = db.database().to_string();
    insert_user(&db.pool(), "truncate-kept@example.test").await;
    let handle = db.clone_handle();
    db.finish_with(seedbed::isolation::Outcome::Failed)
        .await
        .unwrap();
    let Some(seedbed::isolation::Kept::Database(kept)) = handle.kept_state() else {
        panic!("kept: {:?}", handle.kept_state());
    };
    assert_ne!(kept, slot, "moved out of the Truncate slots");
    let file = dir.file(&kept).unwrap();
    let url = handle.url().expect("the kept database's URL");
    assert!(url.contains(&kept), "{url}");
    let pool = SqlitePool::connect_with(SqliteConnectOptions::new().filename(&file))
        .await
        .unwrap();
    assert_eq!(count(&pool, "users").await, 1, "with what the test wrote");
    pool.close().await;
    // The next Truncate test starts empty, on a slot made again from the image.
    let next = iso(Strategy::Truncate)
        .test_name("sqlite::truncate_kept_next")
        .acquire_on::<Sqlite>()
        .await
        .unwrap();
    assert_eq!(count(&next.pool(), "users").await, 0);
    next.finish().await.unwrap();
    let marker = std::fs::read_to_string(dir.path().join(format!("{kept}.marker"))).unwrap();
    assert!(marker.contains("kind=kept"), "{marker}");
    seedbed::isolation::maintenance::sweep_sqlite(dir, false)
        .await
        .unwrap();
    assert!(file.is_file(), "kept past an ordinary sweep");
    file
}

/// A failed Namespace test's rows stay under a token no test claims; an ordinary sweep leaves
/// them. Returns the shared database's file and the row's email.
#[allow(clippy::unwrap_used, reason = "test helper: its failure is the test's")]
async fn namespace_keeps_a_failing_tests_rows() -> (std::path::PathBuf, String) {
    let dir = <Sqlite as seedbed::backend::Provision>::server()
        .await
        .unwrap();
    let db = iso(Strategy::Namespace)
        .test_name("sqlite::namespace_kept")
        .acquire_on::<Sqlite>()
        .await
        .unwrap();
    let token = db.token().to_string();
    let email = format!("ns-kept-{token}@example.test");
    insert_user(&db.pool(), &email).await;
    let shared = db.database().to_string();
    let handle = db.clone_handle();
    db.finish_with(seedbed::isolation::Outcome::Failed)
        .await
        .unwrap();
    assert_eq!(
        handle.kept_state(),
        Some(seedbed::isolation::Kept::Rows {
            database: shared.clone(),
            token: format!("kept:{token}")
        })
    );
    let file = dir.file(&shared).unwrap();
    assert_eq!(users_with(&file, &email).await, 1, "the row stays");
    // The same test again takes another token; an ordinary sweep leaves the kept rows.
    let again = iso(Strategy::Namespace)
        .test_name("sqlite::namespace_kept")
        .acquire_on::<Sqlite>()
        .await
        .unwrap();
    assert_ne!(again.token(), token);
    again.finish().await.unwrap();
    seedbed::isolation::maintenance::sweep_sqlite(dir, false)
        .await
        .unwrap();
    assert_eq!(users_with(&file, &email).await, 1, "kept past a sweep");
    (file, email)
}

#[allow(clippy::unwrap_used, reason = "test helper: its failure is the test's")]
async fn users_with(file: &std::path::Path, email: &str) -> i64 {
    let pool = SqlitePool::connect_with(SqliteConnectOptions::new().filename(file))
        .await
        .unwrap();
    let n = sqlx::query_scalar("SELECT count(*) FROM users WHERE email = ?")
        .bind(email)
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    n
}

/// Failed tests keep their state under Template, Truncate and Namespace; `sweep --kept` removes
/// all of it. One test, so no other test sweeps what it looks at.
#[tokio::test]
async fn failed_tests_keep_their_state_until_sweep_kept() {
    let truncate_file = truncate_keeps_a_failing_tests_database().await;
    let (shared, email) = namespace_keeps_a_failing_tests_rows().await;
    template_keeps_a_failing_tests_copy().await;
    assert!(!truncate_file.exists(), "swept with the kept copies");
    assert_eq!(
        users_with(&shared, &email).await,
        0,
        "the kept rows went with `sweep --kept`"
    );
}

#[allow(clippy::unwrap_used, reason = "test helper: its failure is the test's")]
async fn template_keeps_a_failing_tests_copy() {
    let dir = <Sqlite as seedbed::backend::Provision>::server()
        .await
        .unwrap();
    let db = iso(Strategy::Template)
        .acquire_on::<Sqlite>()
        .await
        .unwrap();
    let file = dir.file(db.database()).unwrap();
    let name = db.database().to_string();
    insert_user(&db.pool(), "look@example.test").await;
    let handle = db;
    handle
        .finish_with(seedbed::isolation::Outcome::Failed)
        .await
        .unwrap();
    assert!(file.is_file(), "a failing test's copy is kept");
    let kept = SqlitePool::connect_with(SqliteConnectOptions::new().filename(&file))
        .await
        .unwrap();
    assert_eq!(count(&kept, "users").await, 1, "with what the test wrote");
    kept.close().await;
    // A sweep leaves it; a sweep of kept copies removes it.
    seedbed::isolation::maintenance::sweep_sqlite(dir, false)
        .await
        .unwrap();
    assert!(file.is_file(), "kept past an ordinary sweep");
    let swept = seedbed::isolation::maintenance::sweep_sqlite(dir, true)
        .await
        .unwrap();
    assert!(swept.clones.contains(&name), "{swept:?}");
    assert!(!file.exists());
    assert!(!dir.path().join(format!("{name}.marker")).exists());
}

#[tokio::test]
async fn namespace_removes_only_the_tests_own_rows() {
    let a = iso(Strategy::Namespace)
        .test_name("ns::a")
        .acquire_on::<Sqlite>()
        .await
        .unwrap();
    let b = iso(Strategy::Namespace)
        .test_name("ns::b")
        .acquire_on::<Sqlite>()
        .await
        .unwrap();
    assert_eq!(a.database(), b.database(), "one shared database");
    assert_ne!(a.token(), b.token());
    let a_email = format!("{}@example.test", a.token());
    let b_email = format!("{}@example.test", b.token());
    insert_user(&a.pool(), &a_email).await;
    insert_user(&b.pool(), &b_email).await;
    a.finish().await.unwrap();
    let emails: Vec<String> = sqlx::query_scalar("SELECT email FROM users WHERE email IN (?, ?)")
        .bind(&a_email)
        .bind(&b_email)
        .fetch_all(&b.pool())
        .await
        .unwrap();
    assert_eq!(emails, vec![b_email.clone()], "a's row went, b's stayed");
    b.finish().await.unwrap();
}

#[tokio::test]
async fn namespace_refuses_a_test_that_builds_its_own_pool() {
    let err = iso(Strategy::Namespace)
        .own_connections(true)
        .acquire_on::<Sqlite>()
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("template"), "{text}");
}

#[tokio::test]
async fn namespace_schema_mode_is_refused_naming_what_works() {
    let err = iso(Strategy::Namespace)
        .namespace(seedbed::isolation::NamespaceOptions::schema())
        .acquire_on::<Sqlite>()
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("SQLite has no schemas"), "{text}");
    assert!(text.contains("template"), "{text}");
}

#[tokio::test]
async fn a_failing_migration_is_named_by_file() {
    let migrations = tempdir("failing-migration");
    std::fs::write(
        migrations.join("20240101000001_ok.sql"),
        "CREATE TABLE t (id INTEGER PRIMARY KEY);",
    )
    .unwrap();
    std::fs::write(
        migrations.join("20240101000002_broken.sql"),
        "CREATE TABLE u (id INTEGER PRIMARY KEY REFERENCES);",
    )
    .unwrap();
    for strategy in [Strategy::Template, Strategy::Truncate, Strategy::Namespace] {
        let err = Isolation::new(strategy)
            .migrations(&migrations)
            .acquire_on::<Sqlite>()
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("20240101000002_broken.sql"), "{text}");
        assert!(text.contains("syntax error"), "{text}");
    }
    std::fs::remove_dir_all(&migrations).unwrap();
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("seedbed-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn rollback_checks_deferred_foreign_keys_as_a_commit_would() {
    let db = iso(Strategy::Rollback)
        .acquire_on::<Sqlite>()
        .await
        .unwrap();
    // The board's default column never comes: legal until commit.
    sqlx::query("INSERT INTO boards (id, default_column_id) VALUES (9001, 9001)")
        .execute(&db.pool())
        .await
        .unwrap();
    let err = db.finish().await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("deferred foreign key of table boards"),
        "{text}"
    );
}

#[tokio::test]
async fn namespace_keeps_rows_with_cleanup_none() {
    let db = iso(Strategy::Namespace)
        .namespace(seedbed::isolation::NamespaceOptions::data().keep_rows(true))
        .acquire_on::<Sqlite>()
        .await
        .unwrap();
    let email = format!("kept-{}@example.test", db.token());
    insert_user(&db.pool(), &email).await;
    // A pool of its own: under nextest the test's pool closes as the test ends.
    let pool = SqlitePool::connect(&db.url().unwrap()).await.unwrap();
    db.finish().await.unwrap();
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE email = ?")
        .bind(&email)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 1, "the row stays");
    // And no later cleaning takes it: a sweep leaves detached rows alone.
    let dir = <Sqlite as seedbed::backend::Provision>::server()
        .await
        .unwrap();
    seedbed::isolation::maintenance::sweep_sqlite(dir, false)
        .await
        .unwrap();
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE email = ?")
        .bind(&email)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 1, "the sweep leaves it");
    sqlx::query("DELETE FROM users WHERE email = ?")
        .bind(&email)
        .execute(&pool)
        .await
        .unwrap();
}

#[tokio::test]
async fn namespace_removes_children_first_and_what_delete_triggers_wrote() {
    let db = iso(Strategy::Namespace)
        .acquire_on::<Sqlite>()
        .await
        .unwrap();
    let pool = db.pool();
    let label: i64 = sqlx::query_scalar("INSERT INTO labels (name) VALUES ('l') RETURNING id")
        .fetch_one(&pool)
        .await
        .unwrap();
    let note: i64 = sqlx::query_scalar("INSERT INTO notes (label_id) VALUES (?) RETURNING id")
        .bind(label)
        .fetch_one(&pool)
        .await
        .unwrap();
    let url = db.url().unwrap();
    db.finish().await.unwrap();
    let check = SqlitePool::connect(&url).await.unwrap();
    for (sql, id) in [
        ("SELECT count(*) FROM labels WHERE id = ?", label),
        ("SELECT count(*) FROM notes WHERE id = ?", note),
        ("SELECT count(*) FROM note_events WHERE note_id = ?", note),
    ] {
        let n: i64 = sqlx::query_scalar(sql)
            .bind(id)
            .fetch_one(&check)
            .await
            .unwrap();
        assert_eq!(n, 0, "{sql}");
    }
    check.close().await;
}
