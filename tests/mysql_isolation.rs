//! The four strategies on MySQL and MariaDB (feature `mysql`), through `#[seedbed::test]` in
//! every form `#[sqlx::test]` accepts for MySQL and through `Isolation::acquire_on`: what a test
//! writes is gone for the next test, lookup rows stay, and what a strategy cannot contain is an
//! error naming the one that can.
//!
//! The server: `SEEDBED_MYSQL_URL`, else a `mysql://` `DATABASE_URL`, else the embedded server.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "test code: a failed expectation is a failed test"
)]

use seedbed::prelude::*;
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::pool::PoolConnection;
use sqlx::{MySql, MySqlPool};

const MIGRATIONS: &str = "tests/mysql_migrations";

async fn count(pool: &MySqlPool, table: &str) -> i64 {
    let sql = format!(
        "SELECT COUNT(*) FROM {}",
        seedbed::sql::quote_mysql_ident(table)
    );
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn insert_user(pool: &MySqlPool, email: &str) -> u64 {
    sqlx::query("INSERT INTO users (email) VALUES (?)")
        .bind(email)
        .execute(pool)
        .await
        .unwrap()
        .last_insert_id()
}

/// The test sees the migrated schema with its lookup rows and, unless it shares the database
/// (Namespace), nothing else; it writes, and sees what it wrote (and what the trigger did).
async fn exercise(pool: &MySqlPool, shared: bool) {
    assert_eq!(
        count(pool, "roles").await,
        2,
        "lookup rows from the migration"
    );
    if !shared {
        assert_eq!(count(pool, "users").await, 0, "no rows from another test");
        assert_eq!(
            count(pool, "post_counts").await,
            0,
            "no trigger rows either"
        );
    }
    let token = seedbed::context::TestContext::current().token().to_string();
    let id = insert_user(pool, &format!("{token}@example.test")).await;
    sqlx::query("INSERT INTO posts (user_id, title) VALUES (?, 'hello')")
        .bind(id)
        .execute(pool)
        .await
        .unwrap();
    let counted: i32 = sqlx::query_scalar("SELECT posts FROM post_counts WHERE user_id = ?")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(counted, 1, "the migration's trigger ran");
    let domain: String = sqlx::query_scalar("SELECT email_domain FROM users WHERE id = ?")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(domain, "example.test");
}

// ---- every form, under every strategy ----

macro_rules! every_form {
    ($module:ident, $strategy:literal) => {
        mod $module {
            use super::*;

            #[seedbed::test(strategy = $strategy, migrations = "tests/mysql_migrations")]
            async fn test_db(db: TestDb<MySql>) {
                assert_eq!(db.strategy().name(), $strategy);
                exercise(&db.pool(), $strategy == "namespace").await;
            }

            #[seedbed::test(strategy = $strategy, migrations = "tests/mysql_migrations")]
            async fn pool(pool: MySqlPool) -> sqlx::Result<()> {
                exercise(&pool, $strategy == "namespace").await;
                Ok(())
            }

            #[seedbed::test(strategy = $strategy, migrations = "tests/mysql_migrations")]
            async fn pool_connection(mut conn: PoolConnection<MySql>) {
                let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM roles")
                    .fetch_one(&mut *conn)
                    .await
                    .unwrap();
                assert_eq!(n, 2);
                sqlx::query(
                    "INSERT INTO users (email) VALUES (CONCAT('conn-', UUID(), '@example.test'))",
                )
                .execute(&mut *conn)
                .await
                .unwrap();
            }

            #[seedbed::test(
                                                strategy = $strategy,
                                                migrations = "tests/mysql_migrations",
                                                fixtures(path = "fixtures/mysql", scripts("users"))
                                            )]
            async fn fixtures(pool: MySqlPool) {
                let role: i32 = sqlx::query_scalar(
                    "SELECT role_id FROM users WHERE email = 'fixture@example.test'",
                )
                .fetch_one(&pool)
                .await
                .unwrap();
                assert_eq!(role, 1);
            }

            #[seedbed::test(strategy = $strategy, migrator = "super::MIGRATOR")]
            async fn migrator(pool: MySqlPool) {
                assert_eq!(count(&pool, "roles").await, 2);
                let token = seedbed::context::TestContext::current().token().to_string();
                insert_user(&pool, &format!("m-{token}@example.test")).await;
            }

            #[seedbed::test(strategy = $strategy, migrations = false)]
            async fn no_migrations(pool: MySqlPool) {
                let tables: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM information_schema.TABLES \
                     WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME NOT LIKE 'seedbed%'",
                )
                .fetch_one(&pool)
                .await
                .unwrap();
                assert_eq!(tables, 0);
            }
        }
    };
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./tests/mysql_migrations");

every_form!(rollback, "rollback");
every_form!(truncate, "truncate");
every_form!(template, "template");
every_form!(namespace, "namespace");

/// The forms that build their own pool: Truncate and Template (Rollback and Namespace refuse
/// them, below).
macro_rules! own_pool_forms {
    ($module:ident, $strategy:literal) => {
        mod $module {
            use super::*;

            #[seedbed::test(strategy = $strategy, migrations = "tests/mysql_migrations")]
            async fn pool_and_connect_options(
                opts: MySqlPoolOptions,
                connect: MySqlConnectOptions,
            ) {
                let pool = opts.max_connections(2).connect_with(connect).await.unwrap();
                exercise(&pool, false).await;
                pool.close().await;
            }

            #[seedbed::test(strategy = $strategy, migrations = "tests/mysql_migrations")]
            async fn connect_options(connect: MySqlConnectOptions) {
                let pool = MySqlPool::connect_with(connect).await.unwrap();
                exercise(&pool, false).await;
                pool.close().await;
            }
        }
    };
}

own_pool_forms!(own_truncate, "truncate");
own_pool_forms!(own_template, "template");

/// Without a strategy, a test that builds its own pool gets one that can isolate it.
#[seedbed::test(migrations = "tests/mysql_migrations")]
async fn own_pool_without_a_strategy(opts: MySqlPoolOptions, connect: MySqlConnectOptions) {
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

/// A connection of the test's own to the server, outside any strategy.
async fn admin() -> sqlx::MySqlConnection {
    use sqlx::Connection;
    let server = <MySql as seedbed::backend::Provision>::server()
        .await
        .unwrap();
    sqlx::MySqlConnection::connect_with(&<MySql as seedbed::backend::Provision>::connect_options(
        server, "seedbed",
    ))
    .await
    .unwrap()
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
                .acquire_on::<MySql>()
                .await
                .unwrap();
            let pool = db.pool();
            assert_eq!(count(&pool, "roles").await, 2, "{strategy} round {round}");
            let role: String = sqlx::query_scalar("SELECT name FROM roles WHERE id = 1")
                .fetch_one(&pool)
                .await
                .unwrap();
            assert_eq!(
                role, "admin",
                "{strategy} round {round}: the lookup row as migrated"
            );
            let prefix = format!("{strategy}-%");
            let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE email LIKE ?")
                .bind(&prefix)
                .fetch_one(&pool)
                .await
                .unwrap();
            assert_eq!(left, 0, "{strategy} round {round}");
            if strategy != Strategy::Namespace {
                assert_eq!(count(&pool, "users").await, 0, "{strategy} round {round}");
                assert_eq!(count(&pool, "boards").await, 0, "{strategy} round {round}");
            }
            let id = insert_user(&pool, &format!("{strategy}-{round}@example.test")).await;
            // A cycle, closed in one transaction.
            let mut tx = pool.begin().await.unwrap();
            let board = id as i64 + 1_000_000 * (round + 1);
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "INSERT INTO boards (id, default_column_id) VALUES ({board}, NULL); \
                 INSERT INTO board_columns (id, board_id) VALUES ({board}, {board}); \
                 UPDATE boards SET default_column_id = {board} WHERE id = {board};"
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

/// A connection of the test's own, opened from the database's URL (as a program the test
/// starts would), writes rows the pool never sees: Truncate and Template empty them all the
/// same.
#[tokio::test]
async fn rows_written_outside_the_pool_are_emptied() {
    use sqlx::Connection;
    for strategy in [Strategy::Truncate, Strategy::Template] {
        // Settings no other test uses: no other test takes these databases.
        let mine = || iso(strategy).max_connections(6);
        let mut seen = None;
        for round in 0..2 {
            let db = mine().acquire_on::<MySql>().await.unwrap();
            assert_eq!(
                count(&db.pool(), "users").await,
                0,
                "{strategy} round {round}"
            );
            assert_eq!(
                count(&db.pool(), "posts").await,
                0,
                "{strategy} round {round}"
            );
            let mut own = sqlx::MySqlConnection::connect(&db.url().unwrap())
                .await
                .unwrap();
            sqlx::raw_sql(
                "INSERT INTO users (email) VALUES ('outside@example.test'); \
                 INSERT INTO posts (user_id, title) VALUES (LAST_INSERT_ID(), 'outside')",
            )
            .execute(&mut own)
            .await
            .unwrap();
            own.close().await.unwrap();
            if let Some(name) = &seen {
                assert_eq!(db.database(), name, "{strategy}: the database is reused");
            }
            seen = Some(db.database().to_string());
            db.finish().await.unwrap();
        }
    }
}

/// Session settings a test changes on its connection (the time zone, the SQL mode, the
/// character sets, the lock timeout, foreign-key checks) are put back before the connection
/// serves the process's next test.
#[tokio::test]
async fn session_settings_a_test_changes_are_put_back() {
    const READ: &str = "SELECT CAST(CONNECTION_ID() AS SIGNED), CAST(@@session.time_zone AS CHAR), \
        CAST(@@session.sql_mode AS CHAR), CAST(@@session.character_set_client AS CHAR), \
        CAST(@@session.innodb_lock_wait_timeout AS SIGNED), \
        CAST(@@session.foreign_key_checks AS SIGNED)";
    type Settings = (i64, String, String, String, i64, i64);
    for strategy in [
        Strategy::Rollback,
        Strategy::Truncate,
        Strategy::Template,
        Strategy::Namespace,
    ] {
        // Settings no other test uses: no other test takes these databases.
        let mine = || iso(strategy).max_connections(7);
        let db = mine().acquire_on::<MySql>().await.unwrap();
        let mut conn = db.pool().acquire().await.unwrap();
        let before: Settings = sqlx::query_as(READ).fetch_one(&mut *conn).await.unwrap();
        sqlx::raw_sql(
            "SET SESSION time_zone = '+05:00', sql_mode = 'ANSI_QUOTES', \
             innodb_lock_wait_timeout = 1234, foreign_key_checks = 0; SET NAMES latin1",
        )
        .execute(&mut *conn)
        .await
        .unwrap();
        let changed: Settings = sqlx::query_as(READ).fetch_one(&mut *conn).await.unwrap();
        assert_eq!(changed.1, "+05:00", "{strategy}: the change took");
        drop(conn);
        db.finish().await.unwrap();

        let db = mine().acquire_on::<MySql>().await.unwrap();
        let mut conn = db.pool().acquire().await.unwrap();
        let after: Settings = sqlx::query_as(READ).fetch_one(&mut *conn).await.unwrap();
        assert_eq!(after.0, before.0, "{strategy}: the same connection serves");
        assert_eq!(after, before, "{strategy}: the settings are as they were");
        drop(conn);
        db.finish().await.unwrap();
    }
}

/// A TEMPORARY table a test makes (no catalog shows it, and no rollback removes it) does not
/// reach the process's next test on the same database: its connection is closed, not kept.
#[tokio::test]
async fn temporary_tables_do_not_reach_the_next_test() {
    for strategy in [Strategy::Truncate, Strategy::Template, Strategy::Namespace] {
        // Settings no other test uses: no other test takes these databases.
        let mine = || iso(strategy).max_connections(9);
        let db = mine().acquire_on::<MySql>().await.unwrap();
        let first = db.database().to_string();
        sqlx::raw_sql(
            "CREATE TEMPORARY TABLE seedbed_scratch (id INT); \
             INSERT INTO seedbed_scratch VALUES (1)",
        )
        .execute(&db.pool())
        .await
        .unwrap();
        db.finish().await.unwrap();

        let db = mine().acquire_on::<MySql>().await.unwrap();
        assert_eq!(db.database(), first, "{strategy}: the same database serves");
        let err = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM seedbed_scratch")
            .fetch_one(&db.pool())
            .await
            .expect_err("the last test's temporary table is gone");
        let number = err
            .as_database_error()
            .and_then(|e| e.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>())
            .map(sqlx::mysql::MySqlDatabaseError::number);
        assert_eq!(number, Some(1146), "{strategy}: {err}");
        db.finish().await.unwrap();
    }
}

/// Under Truncate and Template, runs `sql` on one connection of a test (after a committed row
/// on another), ends it, and checks that the next test gets the same database with no users.
/// `max_connections`: settings no other test uses, so that no other test takes these databases.
async fn the_next_test_sees_no_users_after(sql: &str, max_connections: u32) {
    for strategy in [Strategy::Truncate, Strategy::Template] {
        let mine = || iso(strategy).max_connections(max_connections);
        let db = mine().acquire_on::<MySql>().await.unwrap();
        let first = db.database().to_string();
        insert_user(&db.pool(), "committed@example.test").await;
        let mut conn = db.pool().acquire().await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut *conn)
            .await
            .unwrap();
        drop(conn);
        db.finish().await.unwrap();

        let db = mine().acquire_on::<MySql>().await.unwrap();
        assert_eq!(db.database(), first, "{strategy}: the same database serves");
        assert_eq!(count(&db.pool(), "users").await, 0, "{strategy}");
        db.finish().await.unwrap();
    }
}

/// A TEMPORARY table named like a real one hides it from the connection that made it: the rows
/// the test wrote to the real table before are emptied all the same.
#[tokio::test]
async fn a_temporary_table_hiding_a_real_one_hides_nothing_from_the_cleaner() {
    the_next_test_sees_no_users_after(
        "INSERT INTO users (email) VALUES ('hidden@example.test'); \
         CREATE TEMPORARY TABLE users (id INT); \
         INSERT INTO users VALUES (1)",
        11,
    )
    .await;
}

/// A transaction the test began with a raw `BEGIN` and left open neither keeps its rows nor
/// holds up the test's end with its locks (a cleaner that waited for them would fail the end
/// with the server's lock wait timeout).
#[tokio::test]
async fn a_transaction_left_open_is_ended_and_emptied() {
    the_next_test_sees_no_users_after(
        "BEGIN; INSERT INTO users (email) VALUES ('open@example.test'); \
         DELETE FROM users WHERE email = 'committed@example.test'",
        12,
    )
    .await;
}

#[tokio::test]
async fn truncate_restarts_auto_increment_on_request() {
    let mut ids = Vec::new();
    for _ in 0..3 {
        let db = iso(Strategy::Truncate)
            .reset_sequences(true)
            .max_connections(4)
            .acquire_on::<MySql>()
            .await
            .unwrap();
        ids.push(insert_user(&db.pool(), "seq@example.test").await);
        db.finish().await.unwrap();
    }
    assert_eq!(ids, vec![1, 1, 1]);
}

#[tokio::test]
async fn rollback_turns_the_codes_transactions_into_savepoints() {
    let db = iso(Strategy::Rollback).acquire_on::<MySql>().await.unwrap();
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

/// What a Rollback test ran, and the strategy the error must name.
async fn rollback_breach(sql: &'static str, names: &str) {
    let db = iso(Strategy::Rollback).acquire_on::<MySql>().await.unwrap();
    let pool = db.pool();
    let database = db.database().to_string();
    sqlx::raw_sql(sql).execute(&pool).await.unwrap();
    drop(pool);
    let err = db.finish().await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, seedbed::Error::Isolation { .. }), "{text}");
    assert!(text.contains(names), "{sql}: {text}");
    // The slot, which held what was committed, is gone: a slot of that name now (another test,
    // or another process on the same server, may have made one since) is a new one, without
    // the committed row.
    let mut admin = admin().await;
    let left: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
    )
    .bind(&database)
    .fetch_one(&mut admin)
    .await
    .unwrap();
    if left > 0 {
        // The email this test's statement wrote (each breach test writes its own).
        let email = sql.split('\'').nth(1).unwrap();
        let committed: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM {}.users WHERE email = ?",
            seedbed::sql::quote_mysql_ident(&database)
        )))
        .bind(email)
        .fetch_one(&mut admin)
        .await
        .unwrap_or(0);
        assert_eq!(committed, 0, "{sql}: the slot was dropped");
    }
}

#[tokio::test]
async fn rollback_detects_ddl_and_names_template() {
    rollback_breach(
        "INSERT INTO users (email) VALUES ('ddl@example.test'); CREATE TABLE scratch (x INT)",
        "template",
    )
    .await;
}

#[tokio::test]
async fn rollback_detects_a_raw_commit_and_names_truncate() {
    rollback_breach(
        "INSERT INTO users (email) VALUES ('commit@example.test'); COMMIT",
        "truncate",
    )
    .await;
}

#[tokio::test]
async fn rollback_detects_a_raw_rollback() {
    rollback_breach(
        "ROLLBACK; INSERT INTO users (email) VALUES ('after@example.test')",
        "ROLLBACK",
    )
    .await;
}

#[tokio::test]
async fn template_recycles_a_passing_tests_copy_and_drops_a_changed_one() {
    // Settings no other test uses: no other test takes this test's copies.
    let mine = || iso(Strategy::Template).max_connections(3);
    let db = mine().acquire_on::<MySql>().await.unwrap();
    let name = db.database().to_string();
    assert!(db.url().unwrap().ends_with(&name));
    insert_user(&db.pool(), "recycled@example.test").await;
    sqlx::query("UPDATE roles SET name = 'changed' WHERE id = 1")
        .execute(&db.pool())
        .await
        .unwrap();
    db.finish().await.unwrap();
    let next = mine().acquire_on::<MySql>().await.unwrap();
    assert_eq!(
        next.database(),
        name,
        "the copy, emptied, serves the next test"
    );
    assert_eq!(count(&next.pool(), "users").await, 0);
    let role: String = sqlx::query_scalar("SELECT name FROM roles WHERE id = 1")
        .fetch_one(&next.pool())
        .await
        .unwrap();
    assert_eq!(role, "admin", "lookup rows as the template has them");
    // A test that changes the schema: its copy goes.
    sqlx::query("ALTER TABLE users ADD COLUMN nickname VARCHAR(20)")
        .execute(&next.pool())
        .await
        .unwrap();
    next.finish().await.unwrap();
    let mut admin = admin().await;
    let left: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
    )
    .bind(&name)
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert_eq!(left, 0, "a copy whose schema changed is dropped");
    let fresh = mine().acquire_on::<MySql>().await.unwrap();
    let columns: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'users' AND COLUMN_NAME = 'nickname'",
    )
    .fetch_one(&fresh.pool())
    .await
    .unwrap();
    assert_eq!(columns, 0, "the next copy has the template's schema");
    fresh.finish().await.unwrap();
}

#[tokio::test]
async fn a_failed_tests_database_is_kept_and_skipped() {
    for strategy in [Strategy::Truncate, Strategy::Template] {
        let db = iso(strategy)
            .max_connections(2)
            .acquire_on::<MySql>()
            .await
            .unwrap();
        let name = db.database().to_string();
        insert_user(&db.pool(), "kept@example.test").await;
        let handle = db.clone_handle();
        db.finish_with(seedbed::isolation::Outcome::Failed)
            .await
            .unwrap();
        assert_eq!(
            handle.kept_state(),
            Some(seedbed::isolation::Kept::Database(name.clone()))
        );
        let next = iso(strategy)
            .max_connections(2)
            .acquire_on::<MySql>()
            .await
            .unwrap();
        assert_ne!(
            next.database(),
            name,
            "{strategy}: a kept database is not leased"
        );
        assert_eq!(count(&next.pool(), "users").await, 0);
        // `seedbed list --mysql` shows the kept one, free, and the one a test holds, leased.
        let server = <MySql as seedbed::backend::Provision>::server()
            .await
            .unwrap();
        let listed = seedbed::isolation::maintenance::list_mysql(server)
            .await
            .unwrap();
        let entry = |n: &str| listed.iter().find(|e| e.name == n).cloned();
        let kept = entry(&name).expect("the kept database is listed");
        assert_eq!((kept.kind.as_str(), kept.state.as_str()), ("slot", "kept"));
        assert!(!kept.leased, "{kept:?}");
        let held = entry(next.database()).expect("the leased database is listed");
        assert!(held.leased && held.state == "ready", "{held:?}");
        next.finish().await.unwrap();
        // Still there, with the failed test's row; removed here as `seedbed sweep --kept` would.
        let mut admin = admin().await;
        let sql = format!(
            "SELECT COUNT(*) FROM {}.users",
            seedbed::sql::quote_mysql_ident(&name)
        );
        let rows: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(&mut admin)
            .await
            .unwrap();
        assert_eq!(rows, 1, "{strategy}");
        let drop = format!("DROP DATABASE {}", seedbed::sql::quote_mysql_ident(&name));
        sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
            .execute(&mut admin)
            .await
            .unwrap();
    }
}

/// The tests that lease after a failed one scan past its kept database without taking its lease,
/// not even for the moment it takes to read its marker: `seedbed list` never shows it held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lease_scan_never_takes_a_kept_databases_lease() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    // A template of this test's own: no other test leases its copies, so every lease below
    // scans from its first copy, the kept one.
    let own = || {
        iso(Strategy::Template)
            .max_connections(2)
            .fixture("DELETE FROM users WHERE email = 'lease-scan@example.test'")
    };
    let db = own().acquire_on::<MySql>().await.unwrap();
    let name = db.database().to_string();
    db.finish_with(seedbed::isolation::Outcome::Failed)
        .await
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = tokio::spawn({
        let stop = Arc::clone(&stop);
        // The lease's lock, as seedbed names it.
        let key = format!("seedbed:lease:{name}");
        async move {
            let mut conn = admin().await;
            let (mut polls, mut held) = (0u32, 0u32);
            while !stop.load(Ordering::SeqCst) {
                let holder: Option<i64> =
                    sqlx::query_scalar("SELECT CAST(IS_USED_LOCK(?) AS SIGNED)")
                        .bind(&key)
                        .fetch_one(&mut conn)
                        .await
                        .unwrap();
                polls += 1;
                held += u32::from(holder.is_some());
            }
            (polls, held)
        }
    });
    // Held at once: each lease scans past the kept database to a copy of its own.
    let mut leased = Vec::new();
    for _ in 0..6 {
        let next = own().acquire_on::<MySql>().await.unwrap();
        assert_ne!(next.database(), name, "a kept database is not leased");
        leased.push(next);
    }
    stop.store(true, Ordering::SeqCst);
    let (polls, held) = watcher.await.unwrap();
    for next in leased {
        next.finish().await.unwrap();
    }
    let mut admin = admin().await;
    let drop = format!("DROP DATABASE {}", seedbed::sql::quote_mysql_ident(&name));
    sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
        .execute(&mut admin)
        .await
        .unwrap();
    assert!(polls > 0, "the watcher looked");
    assert_eq!(
        held, 0,
        "the kept database's lease was seen held in {held} of {polls} looks"
    );
}

#[tokio::test]
async fn namespace_removes_the_tests_rows_and_keeps_a_failed_tests() {
    let db = iso(Strategy::Namespace)
        .test_name("mysql::namespace_rows")
        .acquire_on::<MySql>()
        .await
        .unwrap();
    let pool = db.pool();
    let id = insert_user(&pool, "ns-passed@example.test").await;
    sqlx::query("INSERT INTO posts (user_id, title) VALUES (?, 'p')")
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    let database = db.database().to_string();
    drop(pool);
    db.finish().await.unwrap();
    let mut admin = admin().await;
    let q = |table: &str| {
        format!(
            "SELECT COUNT(*) FROM {}.{} WHERE {}",
            seedbed::sql::quote_mysql_ident(&database),
            seedbed::sql::quote_mysql_ident(table),
            if table == "users" {
                "email LIKE 'ns-%'"
            } else {
                "user_id = ?"
            }
        )
    };
    let users: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(q("users")))
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(users, 0, "the passed test's rows are gone");
    let counts: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(q("post_counts")))
        .bind(id)
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(counts, 0, "rows its trigger wrote too");
    // Removing the post fired the audit trigger: the audit row is the test's too, and goes.
    let logged: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM {}.post_log",
        seedbed::sql::quote_mysql_ident(&database)
    )))
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert_eq!(logged, 0, "the audit rows removing the test's rows wrote");

    let db = iso(Strategy::Namespace)
        .test_name("mysql::namespace_rows_failed")
        .acquire_on::<MySql>()
        .await
        .unwrap();
    insert_user(&db.pool(), "ns-failed@example.test").await;
    let handle = db.clone_handle();
    db.finish_with(seedbed::isolation::Outcome::Failed)
        .await
        .unwrap();
    assert!(matches!(
        handle.kept_state(),
        Some(seedbed::isolation::Kept::Rows { .. })
    ));
    let users: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(q("users")))
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(users, 1, "the failed test's row is kept");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DELETE FROM {}.users WHERE email = 'ns-failed@example.test'",
        seedbed::sql::quote_mysql_ident(&database)
    )))
    .execute(&mut admin)
    .await
    .unwrap();
}

#[tokio::test]
async fn strategies_refuse_what_they_cannot_do_on_mysql() {
    let err = iso(Strategy::Namespace)
        .namespace(seedbed::isolation::NamespaceOptions::schema())
        .acquire_on::<MySql>()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("data mode"), "{err}");
}

#[tokio::test]
async fn namespace_removes_rows_by_binary_and_large_keys_exactly() {
    let db = iso(Strategy::Namespace)
        .test_name("mysql::namespace_keys")
        .acquire_on::<MySql>()
        .await
        .unwrap();
    let database = db.database().to_string();
    let pool = db.pool();
    // Neighbours no test owns, written around the journal (on a connection without a token).
    let mut admin = admin().await;
    let table = |t: &str| {
        format!(
            "{}.{}",
            seedbed::sql::quote_mysql_ident(&database),
            seedbed::sql::quote_mysql_ident(t)
        )
    };
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {s} (id, label) VALUES (9007199254740992, 'neighbour') \
         ON DUPLICATE KEY UPDATE label = 'neighbour'; \
         INSERT INTO {k} (id, label) VALUES (UNHEX('00000000000000000000000000000001'), 'neighbour') \
         ON DUPLICATE KEY UPDATE label = 'neighbour'",
        s = table("snowflakes"),
        k = table("api_keys"),
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    sqlx::raw_sql(
        "INSERT INTO snowflakes (id, label) VALUES (9007199254740993, 'mine'); \
         INSERT INTO api_keys (id, label) VALUES (UNHEX(REPLACE(UUID(), '-', '')), 'mine')",
    )
    .execute(&pool)
    .await
    .unwrap();
    drop(pool);
    db.finish().await.unwrap();
    let left: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT label FROM {} UNION ALL SELECT label FROM {}",
        table("snowflakes"),
        table("api_keys")
    )))
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert!(
        left.iter().all(|(label,)| label == "neighbour"),
        "the test's rows are gone: {left:?}"
    );
    assert_eq!(left.len(), 2, "the neighbours stay: {left:?}");
}

#[tokio::test]
async fn template_puts_back_baseline_rows_that_triggers_wrote() {
    // The fixtures' post fires the counting trigger: both tables have baseline rows, and
    // putting the post back fires it again.
    let mine = || {
        iso(Strategy::Template)
            .max_connections(4)
            .fixture("INSERT INTO users (email, role_id) VALUES ('fixture@example.test', 1)")
            .fixture(
                "INSERT INTO posts (user_id, title) SELECT id, 'fixture post' FROM users \
                 WHERE email = 'fixture@example.test'",
            )
    };
    for round in 0..3 {
        let db = mine().acquire_on::<MySql>().await.unwrap();
        let counted: i32 = sqlx::query_scalar(
            "SELECT c.posts FROM post_counts c JOIN users u ON u.id = c.user_id \
             WHERE u.email = 'fixture@example.test'",
        )
        .fetch_one(&db.pool())
        .await
        .unwrap();
        assert_eq!(counted, 1, "round {round}");
        sqlx::query("DELETE FROM posts")
            .execute(&db.pool())
            .await
            .unwrap();
        db.finish().await.unwrap();
    }
}

/// A MySQL database beside a PostgreSQL test's own (`databases(…)`), isolated by the test's
/// strategy and ended with it.
#[seedbed::test(
    strategy = "template",
    databases(main = "migrations", shop = mysql("tests/mysql_migrations"))
)]
async fn a_mysql_database_beside_a_postgres_tests_own(db: TestDb) {
    let shop = db.named_on::<MySql>("shop").unwrap();
    let id = insert_user(&shop.pool(), "beside@example.test").await;
    assert!(id > 0);
    assert_eq!(count(&shop.pool(), "users").await, 1);
    let pg: i64 = sqlx::query_scalar("SELECT count(*) FROM organizations")
        .fetch_one(&db.pool())
        .await
        .unwrap();
    assert_eq!(pg, 0);
    assert!(db.named_on::<sqlx::Postgres>("shop").is_err());
}
