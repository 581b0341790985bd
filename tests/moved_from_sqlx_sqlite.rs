//! A SQLite suite written for `#[sqlx::test]`, moved to seedbed by replacing `sqlx::test` with
//! `seedbed::test` and nothing else (the last test checks that this is all that differs).

use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{Row, SqlitePool};

#[seedbed::test(migrations = "migrations/sqlite")]
async fn creates_an_organization(pool: SqlitePool) -> sqlx::Result<()> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO organizations (name, slug) VALUES ('Acme', 'acme') RETURNING id",
    )
    .fetch_one(&pool)
    .await?;
    let row = sqlx::query("SELECT name, plan_id FROM organizations WHERE id = ?")
        .bind(id)
        .fetch_one(&pool)
        .await?;
    assert_eq!(row.get::<String, _>("name"), "Acme");
    assert_eq!(row.get::<i64, _>("plan_id"), 1);
    Ok(())
}

#[seedbed::test(migrations = "migrations/sqlite", fixtures("orgs", "members"))]
async fn lists_members_from_fixtures(pool: SqlitePool) -> sqlx::Result<()> {
    let emails: Vec<String> = sqlx::query_scalar(
        "SELECT u.email FROM users u JOIN memberships m ON m.user_id = u.id ORDER BY 1",
    )
    .fetch_all(&pool)
    .await?;
    assert_eq!(emails, vec!["member@fixture.test"]);
    Ok(())
}

#[seedbed::test(migrations = "migrations/sqlite")]
async fn transfers_ownership_in_a_transaction(pool: SqlitePool) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query("INSERT INTO organizations (name, slug) VALUES ('Beta', 'beta')")
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO users (email, display_name) VALUES ('o@beta.test', 'Owner')")
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO memberships (organization_id, user_id, role_id) \
         SELECT o.id, u.id, 1 FROM organizations o, users u WHERE o.slug = 'beta'",
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    let owners: i64 = sqlx::query_scalar("SELECT count(*) FROM memberships WHERE role_id = 1")
        .fetch_one(&pool)
        .await?;
    assert_eq!(owners, 1);
    Ok(())
}

#[seedbed::test(migrations = "migrations/sqlite")]
async fn rejects_a_duplicate_slug(pool: SqlitePool) {
    sqlx::query("INSERT INTO organizations (name, slug) VALUES ('A', 'dup')")
        .execute(&pool)
        .await
        .unwrap();
    let err = sqlx::query("INSERT INTO organizations (name, slug) VALUES ('B', 'dup')")
        .execute(&pool)
        .await
        .unwrap_err();
    assert!(
        err.as_database_error()
            .is_some_and(|e| e.is_unique_violation())
    );
}

#[seedbed::test(migrations = "migrations/sqlite")]
async fn builds_its_own_pool(
    opts: SqlitePoolOptions,
    connect: SqliteConnectOptions,
) -> sqlx::Result<()> {
    let pool = opts.max_connections(2).connect_with(connect).await?;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM roles")
        .fetch_one(&pool)
        .await?;
    assert_eq!(n, 4);
    Ok(())
}

#[test]
fn this_suite_is_a_sqlx_suite_with_one_word_replaced() {
    let source = std::fs::read_to_string(file!()).unwrap();
    let original = source.replace("#[seedbed::test", "#[sqlx::test");
    // Outside this check, the only mention of seedbed was the attribute itself.
    let (suite, _check) = original.split_once("#[test]\nfn this_suite_is").unwrap();
    let code: String = suite
        .lines()
        .filter(|l| !l.starts_with("//!"))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        !code.contains("seedbed"),
        "the suite uses seedbed beyond the attribute"
    );
    assert_eq!(code.matches("#[sqlx::test").count(), 5);
}
