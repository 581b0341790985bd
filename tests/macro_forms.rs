//! Every form `#[seedbed::test]` accepts, run for real.

use seedbed::{Strategy, TestDb};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres};

static REFERENCE: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[seedbed::test]
async fn takes_a_test_db(db: TestDb) {
    assert_eq!(db.strategy(), Strategy::Rollback);
    assert_eq!(db.token().len(), 6);
    let roles: i64 = sqlx::query_scalar("SELECT count(*) FROM roles")
        .fetch_one(&db.pool())
        .await
        .unwrap();
    assert_eq!(roles, 4, "migrations ran (inferred ./migrations)");
    // The test context is installed for the test.
    let ctx = seedbed::context::TestContext::current();
    assert_eq!(ctx.name(), "macro_forms::takes_a_test_db");
    assert_eq!(ctx.token(), db.token());
}

#[seedbed::test]
async fn takes_a_pool_and_returns_a_result(pool: PgPool) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO organizations (name, slug) VALUES ('a', 'form-pool')")
        .execute(&pool)
        .await?;
    // application_name is the test's path.
    let app: String = sqlx::query_scalar("SELECT current_setting('application_name')")
        .fetch_one(&pool)
        .await?;
    assert_eq!(app, "macro_forms::takes_a_pool_and_returns_a_result");
    let timeout: String = sqlx::query_scalar("SHOW statement_timeout")
        .fetch_one(&pool)
        .await?;
    assert_eq!(timeout, "1min");
    Ok(())
}

#[seedbed::test]
async fn takes_a_pool_connection(mut conn: PoolConnection<Postgres>) {
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(one, 1);
}

#[seedbed::test]
async fn takes_pool_options(opts: PgPoolOptions, connect: PgConnectOptions) {
    // The test builds its own pool: Rollback cannot hold it, so the default is Truncate.
    let pool = opts.connect_with(connect).await.unwrap();
    let db: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(db.starts_with("seedbed_truncate_"), "{db}");
    pool.close().await;
}

#[seedbed::test]
async fn takes_connect_options_alone(connect: PgConnectOptions) {
    // As with pool options: a pool of its own, so Truncate by default.
    let pool = PgPoolOptions::new().connect_with(connect).await.unwrap();
    let db: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(db.starts_with("seedbed_truncate_"), "{db}");
    pool.close().await;
}

#[seedbed::test]
async fn takes_nothing() {
    let ctx = seedbed::context::TestContext::current();
    assert_eq!(ctx.name(), "macro_forms::takes_nothing");
}

#[seedbed::test(
    strategy = "truncate",
    statement_timeout = "5s",
    lock_timeout = "500ms"
)]
async fn strategy_and_timeouts(db: TestDb) {
    assert_eq!(db.strategy(), Strategy::Truncate);
    let pool = db.pool();
    let st: String = sqlx::query_scalar("SHOW statement_timeout")
        .fetch_one(&pool)
        .await
        .unwrap();
    let lt: String = sqlx::query_scalar("SHOW lock_timeout")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!((st.as_str(), lt.as_str()), ("5s", "500ms"));
}

#[seedbed::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_thread_flavor(pool: PgPool) {
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let pool = pool.clone();
            tokio::spawn(async move {
                sqlx::query_scalar::<_, i32>("SELECT $1")
                    .bind(i)
                    .fetch_one(&pool)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut sum = 0;
    for h in handles {
        sum += h.await.unwrap();
    }
    assert_eq!(sum, 6);
}

#[seedbed::test(fixtures("orgs", "members"))]
async fn fixtures_by_name(pool: PgPool) {
    let members: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM memberships m JOIN organizations o ON o.id = m.organization_id \
         WHERE o.slug = 'fixture-org'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(members, 1);
}

#[seedbed::test(strategy = "truncate", fixtures(path = "fixtures", scripts("orgs")))]
async fn fixtures_by_path_under_truncate(pool: PgPool) {
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM organizations")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 1);
}

#[seedbed::test(fixtures("fixtures/orgs.sql"))]
async fn fixtures_by_explicit_path(pool: PgPool) {
    let n: i64 =
        sqlx::query_scalar("SELECT count(*) FROM organizations WHERE slug = 'fixture-org'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(n, 1);
}

#[seedbed::test(migrations = false)]
async fn without_migrations(pool: PgPool) {
    let tables: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(tables, 0);
}

#[seedbed::test(migrations = "migrations")]
async fn migrations_by_path(pool: PgPool) {
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM issue_statuses")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 5);
}

#[seedbed::test(migrator = "REFERENCE")]
async fn migrations_by_migrator(pool: PgPool) {
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM plans")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 3);
}

#[seedbed::test(strategy = "truncate", reset_sequences)]
async fn reset_sequences_flag(pool: PgPool) {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO organizations (name, slug) VALUES ('o', 'reset') RETURNING id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(id, 1);
}

#[seedbed::test]
#[should_panic(expected = "the test's own assertion")]
async fn a_failing_test_still_fails(pool: PgPool) {
    sqlx::query("INSERT INTO organizations (name, slug) VALUES ('o', 'will-fail')")
        .execute(&pool)
        .await
        .unwrap();
    panic!("the test's own assertion");
}

#[seedbed::test]
#[should_panic(expected = "could not isolate")]
async fn an_isolation_violation_fails_a_passing_test(pool: PgPool) {
    sqlx::raw_sql("COMMIT").execute(&pool).await.unwrap();
}

#[test]
fn a_failing_test_prints_what_reproduces_it() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["a_failing_test_still_fails", "--exact", "--nocapture"])
        .env("SEEDBED_SEED", "4242")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("seedbed: test failed"), "{stderr}");
    assert!(
        stderr.contains("test:     macro_forms::a_failing_test_still_fails"),
        "{stderr}"
    );
    assert!(stderr.contains("strategy: rollback"), "{stderr}");
    assert!(
        stderr.contains("SEEDBED_SEED=4242 cargo test a_failing_test_still_fails"),
        "{stderr}"
    );
}

mod under_template {
    use super::*;

    #[allow(clippy::unwrap_used, reason = "test helper: its failure is the test's")]
    async fn own_clone(pool: &PgPool) -> String {
        let db: String = sqlx::query_scalar("SELECT current_database()")
            .fetch_one(pool)
            .await
            .unwrap();
        assert!(db.starts_with("seedbed_c_"), "{db}");
        db
    }

    #[seedbed::test(strategy = "template")]
    async fn takes_a_test_db(db: TestDb) {
        assert_eq!(db.strategy(), Strategy::Template);
        assert_eq!(own_clone(&db.pool()).await, db.database());
    }

    #[seedbed::test(strategy = "template", statement_timeout = "7s")]
    async fn takes_a_pool(pool: PgPool) {
        own_clone(&pool).await;
        let (app, timeout): (String, String) = sqlx::query_as(
            "SELECT current_setting('application_name'), current_setting('statement_timeout')",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(app, "macro_forms::under_template::takes_a_pool");
        assert_eq!(timeout, "7s");
        // Every connection of the pool carries them, not only the first.
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(pool.acquire().await.unwrap());
        }
        for conn in held.iter_mut() {
            let app: String = sqlx::query_scalar("SELECT current_setting('application_name')")
                .fetch_one(&mut **conn)
                .await
                .unwrap();
            assert_eq!(app, "macro_forms::under_template::takes_a_pool");
        }
    }

    #[seedbed::test(strategy = "template")]
    async fn takes_a_pool_connection(mut conn: PoolConnection<Postgres>) {
        let db: String = sqlx::query_scalar("SELECT current_database()")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert!(db.starts_with("seedbed_c_"), "{db}");
    }

    #[seedbed::test(strategy = "template")]
    async fn takes_pool_options(opts: PgPoolOptions, connect: PgConnectOptions) {
        let pool = opts.connect_with(connect).await.unwrap();
        own_clone(&pool).await;
        pool.close().await;
    }
}

mod under_namespace {
    use super::*;

    #[seedbed::test(strategy = "namespace")]
    async fn data_mode(db: TestDb) {
        assert_eq!(db.strategy(), Strategy::Namespace);
        let token: String = sqlx::query_scalar("SELECT current_setting('seedbed.token')")
            .fetch_one(&db.pool())
            .await
            .unwrap();
        assert_eq!(token, db.token());
    }

    #[seedbed::test(namespace = "schema", migrations = "tests/single_schema_migrations")]
    async fn schema_mode(pool: PgPool) {
        let schema: String = sqlx::query_scalar("SELECT current_schema()")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert!(schema.starts_with("sb_"), "{schema}");
        sqlx::query("INSERT INTO accounts (email) VALUES ('x@example.com')")
            .execute(&pool)
            .await
            .unwrap();
    }

    #[seedbed::test(strategy = "namespace", cleanup = "none")]
    async fn keeps_rows(db: TestDb) {
        // The rows stay after the test; this one removes them itself, being a test of the
        // attribute only.
        let slug = format!("kept-{}", db.token());
        sqlx::query("INSERT INTO organizations (name, slug) VALUES ('k', $1)")
            .bind(&slug)
            .execute(&db.pool())
            .await
            .unwrap();
        sqlx::query("DELETE FROM organizations WHERE slug = $1")
            .bind(&slug)
            .execute(&db.pool())
            .await
            .unwrap();
    }
}

// Arguments passed through `macro_rules!`: a metavariable wraps what it passes on in an
// invisible group, which the attribute reads as the literal it holds.
macro_rules! test_through_a_macro {
    ($name:ident, $migrations:literal, $strategy:literal, $timeout:literal, $fixture:literal) => {
        #[seedbed::test(
                                                                    migrations = $migrations,
                                                                    strategy = $strategy,
                                                                    statement_timeout = $timeout,
                                                                    fixtures($fixture)
                                                                )]
        async fn $name(db: TestDb) {
            assert_eq!(db.strategy(), Strategy::Truncate);
            let slug: String = sqlx::query_scalar("SELECT slug FROM organizations")
                .fetch_one(&db.pool())
                .await
                .unwrap();
            assert_eq!(
                slug, "fixture-org",
                "the fixture named through the macro ran"
            );
            let timeout: String = sqlx::query_scalar("SHOW statement_timeout")
                .fetch_one(&db.pool())
                .await
                .unwrap();
            assert_eq!(timeout, "7s");
        }
    };
}

test_through_a_macro!(
    literals_from_a_macro_are_literals,
    "migrations",
    "truncate",
    "7s",
    "orgs"
);

macro_rules! test_with_expressions {
    ($name:ident, $migrations:expr, $reset:expr, $threads:expr) => {
        #[seedbed::test(
                                                                    migrations = $migrations,
                                                                    reset_sequences = $reset,
                                                                    flavor = "multi_thread",
                                                                    worker_threads = $threads
                                                                )]
        async fn $name(pool: PgPool) {
            let tables: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' \
                 AND tablename <> '_sqlx_migrations'",
            )
            .fetch_one(&pool)
            .await
            .unwrap();
            assert_eq!(tables, 0, "`migrations = false` through a macro: no schema");
        }
    };
}

test_with_expressions!(expressions_from_a_macro_are_literals, false, true, 2);
