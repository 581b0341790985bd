//! The isolation engine through its builder API, against a real server: Rollback and Truncate
//! keep tests apart, leave nothing behind, and report what they cannot contain.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "test code: a failed expectation is a failed test"
)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use seedbed::isolation::Outcome;
use seedbed::{Error, Isolation, Strategy, TestDb};
use sqlx::{Connection, PgPool};
use tokio::sync::Barrier;

async fn acquire(strategy: Strategy, name: &str) -> TestDb {
    Isolation::new(strategy)
        .migrations("migrations")
        .test_name(name)
        .acquire()
        .await
        .expect("acquire a test database")
}

async fn count(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(pool)
        .await
        .expect("count query")
}

async fn insert_org(pool: &PgPool, slug: &str) {
    sqlx::query("INSERT INTO organizations (name, slug) VALUES ($1, $1)")
        .bind(slug)
        .execute(pool)
        .await
        .expect("insert organization");
}

async fn orgs_named(pool: &PgPool, prefix: &str) -> Vec<String> {
    sqlx::query_scalar("SELECT slug FROM organizations WHERE slug LIKE $1 || '%' ORDER BY slug")
        .bind(prefix)
        .fetch_all(pool)
        .await
        .expect("list organizations")
}

/// Two tests run at once; each writes, waits for the other to have written, and must see only its
/// own rows. Then each ends, and a third test sees nothing of either.
async fn two_tests_do_not_see_each_other(strategy: Strategy, prefix: &str) {
    let barrier = Arc::new(Barrier::new(2));
    let run = |me: &'static str, other: &'static str| {
        let barrier = Arc::clone(&barrier);
        let prefix = prefix.to_string();
        async move {
            let db = acquire(strategy, &format!("isolation::{prefix}::{me}")).await;
            let pool = db.pool();
            insert_org(&pool, &format!("{prefix}-{me}")).await;
            barrier.wait().await; // both have written
            let seen = orgs_named(&pool, &prefix).await;
            assert_eq!(
                seen,
                vec![format!("{prefix}-{me}")],
                "{me} must not see {other}"
            );
            barrier.wait().await; // both have looked
            db.finish().await.expect("finish");
        }
    };
    tokio::join!(run("a", "b"), run("b", "a"));
    let after = acquire(strategy, &format!("isolation::{prefix}::after")).await;
    assert!(orgs_named(&after.pool(), prefix).await.is_empty());
    after.finish().await.expect("finish");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_tests_are_isolated_in_parallel() {
    two_tests_do_not_see_each_other(Strategy::Rollback, "rb-par").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncate_tests_are_isolated_in_parallel() {
    two_tests_do_not_see_each_other(Strategy::Truncate, "tr-par").await;
}

#[tokio::test]
async fn rollback_contains_commits_of_the_code_under_test() {
    let db = acquire(Strategy::Rollback, "isolation::rollback_commits").await;
    let pool = db.pool();
    // Application code with its own transaction: begin/commit become savepoint/release.
    let mut tx = pool.begin().await.expect("begin");
    sqlx::query("INSERT INTO organizations (name, slug) VALUES ('x', 'rb-commit')")
        .execute(&mut *tx)
        .await
        .expect("insert");
    tx.commit().await.expect("commit");
    // A rolled-back application transaction is undone, the rest kept.
    let mut tx = pool.begin().await.expect("begin");
    sqlx::query("INSERT INTO organizations (name, slug) VALUES ('x', 'rb-undone')")
        .execute(&mut *tx)
        .await
        .expect("insert");
    tx.rollback().await.expect("rollback");
    assert_eq!(orgs_named(&pool, "rb-").await, vec!["rb-commit"]);
    db.finish().await.expect("finish");

    let other = acquire(Strategy::Rollback, "isolation::rollback_commits_after").await;
    assert!(orgs_named(&other.pool(), "rb-commit").await.is_empty());
    other.finish().await.expect("finish");
}

#[tokio::test]
async fn rollback_survives_a_failed_statement() {
    let db = acquire(Strategy::Rollback, "isolation::rollback_failed_statement").await;
    let pool = db.pool();
    insert_org(&pool, "rb-dup").await;
    let err = sqlx::query("INSERT INTO organizations (name, slug) VALUES ('x', 'rb-dup')")
        .execute(&pool)
        .await
        .expect_err("unique violation");
    assert!(err.to_string().contains("duplicate key"), "{err}");
    // The test goes on: the failed statement did not poison the transaction.
    insert_org(&pool, "rb-dup-2").await;
    assert_eq!(
        orgs_named(&pool, "rb-dup").await,
        vec!["rb-dup", "rb-dup-2"]
    );
    db.finish().await.expect("finish");
}

#[tokio::test]
async fn rollback_reports_a_raw_commit_and_cleans_the_shared_database() {
    let db = acquire(Strategy::Rollback, "isolation::rollback_raw_commit").await;
    let pool = db.pool();
    insert_org(&pool, "rb-raw-1").await;
    sqlx::raw_sql("COMMIT")
        .execute(&pool)
        .await
        .expect("raw commit");
    // Now in autocommit: this row really lands in the shared database.
    insert_org(&pool, "rb-raw-2").await;
    let err = db
        .finish()
        .await
        .expect_err("a raw COMMIT must fail the test");
    assert!(matches!(err, Error::Isolation { .. }), "{err}");
    assert!(err.to_string().contains("template"), "{err}");

    let other = acquire(Strategy::Rollback, "isolation::rollback_raw_commit_after").await;
    assert!(
        orgs_named(&other.pool(), "rb-raw").await.is_empty(),
        "what was committed is gone"
    );
    assert_eq!(count(&other.pool(), "SELECT count(*) FROM roles").await, 4);
    other.finish().await.expect("finish");
}

#[tokio::test]
async fn rollback_reports_a_connection_held_at_the_end() {
    let db = acquire(Strategy::Rollback, "isolation::rollback_held").await;
    let pool = db.pool();
    let held = pool.acquire().await.expect("acquire");
    let err = db.finish().await.expect_err("held connection");
    assert!(err.to_string().contains("still held"), "{err}");
    drop(held);
}

#[tokio::test]
async fn rollback_reports_listen() {
    let db = acquire(Strategy::Rollback, "isolation::rollback_listen").await;
    let mut listener = sqlx::postgres::PgListener::connect_with(&db.pool())
        .await
        .expect("listener");
    listener.listen("seedbed_events").await.expect("listen");
    let err = db
        .finish()
        .await
        .expect_err("LISTEN cannot work under Rollback");
    let text = err.to_string();
    assert!(
        text.contains("LISTEN") && text.contains("template"),
        "{text}"
    );
    drop(listener);
}

#[tokio::test]
async fn rollback_gives_a_second_connection_a_clear_timeout() {
    let db = Isolation::new(Strategy::Rollback)
        .migrations("migrations")
        .test_name("isolation::rollback_second_connection")
        .acquire_timeout(Duration::from_millis(300))
        .acquire()
        .await
        .expect("acquire");
    let pool = db.pool();
    let first = pool.acquire().await.expect("first");
    let started = std::time::Instant::now();
    let second = pool.acquire().await.expect_err("no second connection");
    assert!(matches!(second, sqlx::Error::PoolTimedOut), "{second}");
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(first);
    db.finish().await.expect("finish after releasing");
}

#[tokio::test]
async fn rollback_checks_deferred_constraints_before_rolling_back() {
    let db = acquire(Strategy::Rollback, "isolation::rollback_deferred").await;
    // boards.default_column_id is DEFERRABLE INITIALLY DEFERRED: pointing it at nothing is only
    // caught at commit, which Rollback turns into SET CONSTRAINTS ALL IMMEDIATE.
    sqlx::raw_sql(
        "INSERT INTO organizations (name, slug) VALUES ('o', 'rb-deferred');
         INSERT INTO projects (organization_id, key, name)
             SELECT id, 'DEF', 'p' FROM organizations WHERE slug = 'rb-deferred';
         INSERT INTO boards (project_id, name, default_column_id)
             SELECT id, 'b', -1 FROM projects WHERE key = 'DEF';",
    )
    .execute(&db.pool())
    .await
    .expect("inserts pass until commit");
    let err = db.finish().await.expect_err("deferred violation");
    assert!(err.to_string().contains("deferred constraint"), "{err}");
}

#[tokio::test]
async fn truncate_commits_then_empties_and_keeps_lookup_rows() {
    let db = acquire(Strategy::Truncate, "isolation::truncate_cleans").await;
    let pool = db.pool();
    assert!(db.url().is_some());
    // Real commits, from several connections.
    let mut a = pool.acquire().await.expect("a");
    let mut b = pool.acquire().await.expect("b");
    sqlx::query("INSERT INTO organizations (name, slug) VALUES ('o', 'tr-clean')")
        .execute(&mut *a)
        .await
        .expect("insert");
    let seen: i64 =
        sqlx::query_scalar("SELECT count(*) FROM organizations WHERE slug = 'tr-clean'")
            .fetch_one(&mut *b)
            .await
            .expect("other connection sees the commit");
    assert_eq!(seen, 1);
    drop((a, b));
    // The FK cycle, an issue that fires the audit trigger, and a changed lookup table.
    sqlx::raw_sql(
        "INSERT INTO users (email, display_name) VALUES ('tr@example.com', 'T');
         INSERT INTO projects (organization_id, key, name)
             SELECT id, 'TRC', 'p' FROM organizations WHERE slug = 'tr-clean';
         BEGIN;
         INSERT INTO boards (project_id, name)
             SELECT id, 'b' FROM projects WHERE key = 'TRC';
         INSERT INTO board_columns (board_id, name, position)
             SELECT id, 'todo', 0 FROM boards WHERE name = 'b';
         UPDATE boards SET default_column_id = (SELECT max(id) FROM board_columns);
         COMMIT;
         INSERT INTO issues (project_id, number, title, reporter_id)
             SELECT p.id, 1, 'i', u.id FROM projects p, users u WHERE p.key = 'TRC';
         UPDATE roles SET description = 'changed by a test' WHERE name = 'guest';
         DELETE FROM issue_statuses WHERE name = 'won''t do';
         INSERT INTO plans (id, code, monthly_cents) VALUES (99, 'test-plan', 1);",
    )
    .execute(&pool)
    .await
    .expect("writes");
    assert_eq!(
        count(&pool, "SELECT count(*) FROM audit.issue_events").await,
        1
    );
    let database = db.database().to_string();
    db.finish().await.expect("finish");

    // Look at the same database afterwards.
    let server = seedbed::server::Server::resolve().await.expect("server");
    let mut conn = sqlx::PgConnection::connect_with(&server.database_options(&database))
        .await
        .expect("connect");
    for table in [
        "organizations",
        "users",
        "projects",
        "boards",
        "board_columns",
        "issues",
        "audit.issue_events",
    ] {
        let n: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
                .fetch_one(&mut conn)
                .await
                .expect("count");
        assert_eq!(n, 0, "{table} must be empty");
    }
    let guest: String = sqlx::query_scalar("SELECT description FROM roles WHERE name = 'guest'")
        .fetch_one(&mut conn)
        .await
        .expect("guest role");
    assert_eq!(guest, "Reads what is shared with them");
    let statuses: i64 = sqlx::query_scalar("SELECT count(*) FROM issue_statuses")
        .fetch_one(&mut conn)
        .await
        .expect("statuses");
    assert_eq!(statuses, 5);
    let plans: Vec<String> = sqlx::query_scalar("SELECT code FROM plans ORDER BY id")
        .fetch_all(&mut conn)
        .await
        .expect("plans");
    assert_eq!(plans, vec!["free", "team", "enterprise"]);
    let _ = conn.close().await;
}

#[tokio::test]
async fn truncate_can_reset_sequences() {
    let run = || async {
        let db = Isolation::new(Strategy::Truncate)
            .migrations("migrations")
            .test_name("isolation::truncate_reset_sequences")
            .truncate(seedbed::isolation::TruncateOptions::new().reset_sequences(true))
            .acquire()
            .await
            .expect("acquire");
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO organizations (name, slug) VALUES ('o', 'tr-seq') RETURNING id",
        )
        .fetch_one(&db.pool())
        .await
        .expect("insert");
        db.finish().await.expect("finish");
        id
    };
    assert_eq!(run().await, 1);
    assert_eq!(run().await, 1);
}

#[tokio::test]
async fn truncate_refuses_a_database_it_did_not_create() {
    let server = seedbed::server::Server::resolve().await.expect("server");
    let mut conn = server.connect().await.expect("connect");
    let name = format!("seedbed_it_foreign_{}", std::process::id());
    seedbed::backend::postgres::admin::drop_database(&mut conn, &name)
        .await
        .expect("drop");
    seedbed::backend::postgres::admin::create_database(
        &mut conn,
        &name,
        None,
        seedbed::backend::postgres::admin::CloneMethod::Default,
    )
    .await
    .expect("create a database that is not seedbed's");
    let err = Isolation::new(Strategy::Truncate)
        .database(&name)
        .test_name("isolation::foreign")
        .acquire()
        .await
        .expect_err("must refuse");
    let text = err.to_string();
    assert!(
        matches!(&err, seedbed::Error::ForeignDatabase { database, .. } if *database == name),
        "{err:?}"
    );
    assert!(text.contains("refusing") && text.contains(&name), "{text}");
    assert!(text.contains("allow_unmarked_database"), "{text}");

    // With explicit consent it works, and empties that database after the test.
    let db = Isolation::new(Strategy::Truncate)
        .database(&name)
        .migration_source(seedbed::isolation::MigrationSource::None)
        .allow_unmarked_database(true)
        .test_name("isolation::foreign_allowed")
        .acquire()
        .await
        .expect("allowed");
    sqlx::raw_sql("CREATE TABLE IF NOT EXISTS notes (body text); INSERT INTO notes VALUES ('x')")
        .execute(&db.pool())
        .await
        .expect("write");
    db.finish().await.expect("finish");
    seedbed::backend::postgres::admin::drop_database(&mut conn, &name)
        .await
        .expect("drop");
}

#[tokio::test]
async fn a_panicking_test_leaves_nothing_behind() {
    for strategy in [Strategy::Rollback, Strategy::Truncate] {
        let slug = format!("panic-{strategy}");
        let name = format!("isolation::panicking::{strategy}");
        // The test panics on its own runtime, in its own thread, like a failing #[test].
        let (slug2, name2) = (slug.clone(), name.clone());
        let outcome = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let db = acquire(strategy, &name2).await;
                insert_org(&db.pool(), &slug2).await;
                panic!("the test fails midway");
            })
        })
        .join();
        assert!(outcome.is_err());
        // Every database of the strategy is free of the row, whichever the next test gets.
        for _ in 0..4 {
            let db = acquire(strategy, &format!("{name}::after")).await;
            assert!(orgs_named(&db.pool(), &slug).await.is_empty(), "{strategy}");
            db.finish_with(Outcome::Passed).await.expect("finish");
        }
    }
}

#[tokio::test]
async fn unknown_and_unavailable_strategies_are_clear_errors() {
    let err = "rollbak".parse::<Strategy>().expect_err("unknown");
    assert!(
        err.to_string()
            .contains("rollback, truncate, template, namespace")
    );
    let err = Isolation::new(Strategy::Rollback)
        .own_connections(true)
        .acquire()
        .await
        .expect_err("rollback cannot hold a pool the test builds");
    assert!(err.to_string().contains("truncate or template"), "{err}");
    let (strategy, _) = Isolation::configured()
        .own_connections(true)
        .crate_root(std::env::temp_dir())
        .resolve_strategy()
        .expect("resolve");
    assert_ne!(strategy, Strategy::Rollback);
}

#[tokio::test]
async fn the_cleaner_works_without_superuser_rights() {
    // As a plain role, foreign keys and triggers fire while the cleaner deletes: deleting issues
    // makes the audit trigger write rows, which the cleaner's next pass removes.
    let server = seedbed::server::Server::resolve().await.expect("server");
    let migrations = seedbed::isolation::Migrations::from_dir("migrations")
        .await
        .expect("migrations");
    let db = seedbed::isolation::databases::ensure_with(server, &migrations, "plainrole", true)
        .await
        .expect("prepared database");
    let mut admin = sqlx::PgConnection::connect_with(&server.database_options(&db.name))
        .await
        .expect("connect");
    sqlx::raw_sql(
        "DO $$ BEGIN
             IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'seedbed_plain') THEN
                 CREATE ROLE seedbed_plain LOGIN;
             END IF;
         END $$;
         GRANT USAGE ON SCHEMA public, audit, seedbed TO seedbed_plain;
         GRANT ALL ON ALL TABLES IN SCHEMA public, audit, seedbed TO seedbed_plain;
         GRANT ALL ON ALL SEQUENCES IN SCHEMA public, audit, seedbed TO seedbed_plain;",
    )
    .execute(&mut admin)
    .await
    .expect("a plain role");
    let mut plain = sqlx::PgConnection::connect_with(
        &server
            .database_options(&db.name)
            .username("seedbed_plain")
            .password(""),
    )
    .await
    .expect("connect as the plain role");
    let plan = seedbed::backend::postgres::clean::CleaningPlan::load(&mut plain)
        .await
        .expect("plan");
    sqlx::raw_sql(
        "INSERT INTO organizations (name, slug) VALUES ('o', 'plain');
         INSERT INTO users (email, display_name) VALUES ('p@plain.test', 'P');
         INSERT INTO projects (organization_id, key, name)
             SELECT id, 'PLN', 'p' FROM organizations;
         INSERT INTO issues (project_id, number, title, reporter_id)
             SELECT p.id, 1, 'i', u.id FROM projects p, users u;
         UPDATE roles SET description = 'changed' WHERE id = 4;",
    )
    .execute(&mut plain)
    .await
    .expect("writes");
    let cleaned = seedbed::backend::postgres::clean::clean(&mut plain, &plan, false)
        .await
        .expect("clean");
    assert!(cleaned >= 5, "{cleaned} tables cleaned");
    for table in [
        "organizations",
        "users",
        "projects",
        "issues",
        "audit.issue_events",
    ] {
        let n: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
                .fetch_one(&mut plain)
                .await
                .expect("count");
        assert_eq!(n, 0, "{table}");
    }
    let guest: String = sqlx::query_scalar("SELECT description FROM roles WHERE id = 4")
        .fetch_one(&mut plain)
        .await
        .expect("guest");
    assert_eq!(guest, "Reads what is shared with them");
    let _ = plain.close().await;
    let _ = admin.close().await;
}

#[test]
fn tests_on_short_lived_runtimes_reuse_connections_safely() {
    // Every #[seedbed::test] has its own runtime, shut down as soon as the test ends; the
    // connection kept for the next test must survive that (one backend serves them all), and
    // nothing may leak. A statement timeout of its own keeps this test's pool apart from the
    // pools of tests running beside it.
    let acquire_own = |i: usize| {
        Isolation::new(Strategy::Rollback)
            .migrations("migrations")
            .test_name(format!("isolation::short_runtime::{i}"))
            .statement_timeout(Duration::from_secs(61))
            .acquire()
    };
    let mut backends = std::collections::BTreeSet::new();
    for i in 0..30 {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let pid = rt.block_on(async {
            let db = acquire_own(i).await.expect("acquire");
            let pool = db.pool();
            insert_org(&pool, "short-runtime").await;
            let dup =
                sqlx::query("INSERT INTO organizations (name, slug) VALUES ('x', 'short-runtime')")
                    .execute(&pool)
                    .await;
            assert!(dup.is_err(), "the first row is visible to the test");
            let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
                .fetch_one(&pool)
                .await
                .expect("pid");
            db.finish().await.expect("finish");
            pid
        });
        drop(rt);
        backends.insert(pid);
    }
    assert_eq!(
        backends.len(),
        1,
        "one kept connection serves every test: {backends:?}"
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let db = acquire(Strategy::Rollback, "isolation::short_runtime::after").await;
        assert!(orgs_named(&db.pool(), "short-runtime").await.is_empty());
        db.finish().await.expect("finish");
    });
}
