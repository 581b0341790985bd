//! Tests that act as a restricted role (`role = "…"`): row-level security, grants and
//! `SECURITY DEFINER` apply to the test's connections under every strategy, while seedbed's own
//! work (migrations, fixtures, cleaning) runs as the user it connects as.

use seedbed::{Isolation, Strategy, TestDb};
use sqlx::PgPool;

const MIGRATIONS: &str = "tests/role_migrations";

/// What the role may and may not do; run twice per strategy, so the second run also shows the
/// first one's rows were removed. Each test writes notes with a body of its own (`body`): under
/// Namespace's data mode the tests share one database, and a test running beside this one in
/// another process sees its notes (same owner) until it ends.
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helper: its failure is the test's"
)]
async fn act_as_the_app(pool: &PgPool, body: &str) {
    let (user, superuser): (String, String) =
        sqlx::query_as("SELECT current_user::text, current_setting('is_superuser')")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(user, "seedbed_app");
    assert_eq!(superuser, "off");
    // Row-level security: somebody else's note is invisible, and so is no note of an earlier
    // test (cleaned).
    let hidden: i64 = sqlx::query_scalar("SELECT count(*) FROM notes WHERE body = 'not yours'")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(hidden, 0);
    let visible: i64 = sqlx::query_scalar("SELECT count(*) FROM notes WHERE body = $1")
        .bind(body)
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(visible, 0, "a note of an earlier test is left");
    sqlx::query("INSERT INTO notes (body) VALUES ($1)")
        .bind(body)
        .execute(pool)
        .await
        .unwrap();
    let err = sqlx::query("INSERT INTO notes (owner, body) VALUES ('someone_else', 'forged')")
        .execute(pool)
        .await
        .expect_err("the policy refuses a note for somebody else");
    assert!(err.to_string().contains("row-level security"), "{err}");
    // Grants: no access to secrets, except through the SECURITY DEFINER function.
    let err = sqlx::query("SELECT * FROM secrets")
        .execute(pool)
        .await
        .expect_err("not granted");
    assert!(err.to_string().contains("permission denied"), "{err}");
    let secrets: i64 = sqlx::query_scalar("SELECT count_secrets()")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(secrets, 1);
}

#[seedbed::test(migrations = "tests/role_migrations", role = "seedbed_app")]
async fn rollback_acts_as_the_role(pool: PgPool) {
    act_as_the_app(&pool, "rollback").await;
}

#[seedbed::test(
    migrations = "tests/role_migrations",
    role = "seedbed_app",
    strategy = "truncate"
)]
async fn truncate_acts_as_the_role(pool: PgPool) {
    act_as_the_app(&pool, "truncate").await;
}

#[seedbed::test(
    migrations = "tests/role_migrations",
    role = "seedbed_app",
    strategy = "template"
)]
async fn template_acts_as_the_role(pool: PgPool) {
    act_as_the_app(&pool, "template").await;
}

#[seedbed::test(
    migrations = "tests/role_migrations",
    role = "seedbed_app",
    strategy = "namespace"
)]
async fn namespace_acts_as_the_role(db: TestDb) {
    act_as_the_app(&db.pool(), "namespace").await;
}

/// Every strategy, twice in a row in one process (the second test finds the first one's rows
/// gone, and kept pools and spare clones reused), plus a second connection of the test's pool.
#[tokio::test]
async fn each_strategy_twice_and_with_a_second_connection() {
    for strategy in [
        Strategy::Rollback,
        Strategy::Truncate,
        Strategy::Template,
        Strategy::Namespace,
    ] {
        for _ in 0..2 {
            let db = Isolation::new(strategy)
                .migrations(MIGRATIONS)
                .role("seedbed_app")
                .test_name("role::twice")
                .acquire()
                .await
                .expect("acquire");
            act_as_the_app(&db.pool(), "twice").await;
            if strategy != Strategy::Rollback {
                // A connection the pool opens during the test acts as the role too.
                let mut a = db.pool().acquire().await.expect("first");
                let mut b = db.pool().acquire().await.expect("second");
                for conn in [&mut a, &mut b] {
                    let user: String = sqlx::query_scalar("SELECT current_user::text")
                        .fetch_one(&mut **conn)
                        .await
                        .expect("query");
                    assert_eq!(user, "seedbed_app", "{strategy:?}");
                }
            }
            db.finish().await.expect("finish");
        }
    }
}

#[tokio::test]
async fn a_superuser_role_is_refused() {
    let err = Isolation::new(Strategy::Rollback)
        .migrations(MIGRATIONS)
        .role("postgres")
        .test_name("role::superuser")
        .acquire()
        .await
        .expect_err("a superuser restricts nothing");
    assert!(err.to_string().contains("is a superuser"), "{err}");
}
