//! Several databases in one test (`databases(…)` in `#[seedbed::test]`, `Isolation::also`):
//! each has its own migrations, is isolated by the test's strategy and ended with it; one may be
//! on another backend.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "test code: a failed expectation is a failed test"
)]

mod models;

use models::Organization;
use seedbed::isolation::{Isolation, Strategy};
use seedbed::prelude::*;

type Result<T = (), E = seedbed::Error> = std::result::Result<T, E>;

/// Writes in both databases and reads back what it wrote; where the strategy gives the test
/// the database to itself (all but Namespace's shared one), it sees nothing else.
async fn writes_in_both(db: &TestDb, alone: bool) -> Result {
    let audit = db.named("audit")?;
    assert_ne!(audit.database(), db.database());
    assert_eq!(audit.strategy(), db.strategy());
    assert_eq!(db.named("main")?.database(), db.database());

    Organization::factory().create(db).await?;
    let email = format!("{}@example.com", db.token());
    sqlx::query("INSERT INTO accounts (email) VALUES ($1)")
        .bind(&email)
        .execute(&audit.pool())
        .await?;
    // Each schema has its own tables: the reference schema has no `accounts`, the audit one no
    // `organizations`.
    let missing = sqlx::query("SELECT 1 FROM accounts")
        .execute(&db.pool())
        .await
        .unwrap_err()
        .to_string();
    assert!(missing.contains("accounts"), "{missing}");
    let mine: i64 = sqlx::query_scalar("SELECT count(*) FROM accounts WHERE email = $1")
        .bind(&email)
        .fetch_one(&audit.pool())
        .await?;
    assert_eq!(mine, 1);
    if alone {
        let (orgs, accounts): (i64, i64) = (
            sqlx::query_scalar("SELECT count(*) FROM organizations")
                .fetch_one(&db.pool())
                .await?,
            sqlx::query_scalar("SELECT count(*) FROM accounts")
                .fetch_one(&audit.pool())
                .await?,
        );
        assert_eq!((orgs, accounts), (1, 1), "only this test's rows");
    }
    Ok(())
}

macro_rules! under_every_strategy {
    ($($name:ident: $strategy:literal, $alone:expr;)*) => {
        $(
            #[seedbed::test(
                strategy = $strategy,
                databases(main = "migrations", audit = "tests/single_schema_migrations")
            )]
            async fn $name(db: TestDb) -> Result {
                writes_in_both(&db, $alone).await
            }
        )*
    };
}

under_every_strategy! {
    two_databases_under_rollback: "rollback", true;
    two_databases_under_rollback_again: "rollback", true;
    two_databases_under_truncate: "truncate", true;
    two_databases_under_truncate_again: "truncate", true;
    two_databases_under_template: "template", true;
    two_databases_under_template_again: "template", true;
    two_databases_under_namespace: "namespace", false;
    two_databases_under_namespace_again: "namespace", false;
}

/// Ending the test ends every database: what Truncate's audit database received is gone once
/// the test finished, seen through a connection of its own.
#[tokio::test]
async fn finishing_the_test_cleans_every_database() -> Result {
    let db: TestDb = Isolation::new(Strategy::Truncate)
        .migrations("migrations")
        .own_name("main")
        .also(
            "audit",
            Isolation::new(Strategy::Truncate).migrations("tests/single_schema_migrations"),
        )
        .acquire()
        .await?;
    let audit = db.named("audit")?;
    let url = audit.url().expect("a Truncate database has a URL");
    sqlx::query("INSERT INTO accounts (email) VALUES ('gone@example.com')")
        .execute(&audit.pool())
        .await?;
    db.finish().await?;

    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&url).await?;
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM accounts")
        .fetch_one(&mut conn)
        .await?;
    assert_eq!(left, 0, "finishing the test emptied its audit database");
    sqlx::Connection::close(conn).await?;
    Ok(())
}

/// A name the test does not have, and a backend it is not on, are errors that say what there is.
#[seedbed::test(databases(main = "migrations", audit = "tests/single_schema_migrations"))]
async fn unknown_names_are_named(db: TestDb) -> Result {
    let err = db.named("archive").unwrap_err().to_string();
    assert!(
        err.contains("`archive`") && err.contains("`main`, `audit`"),
        "{err}"
    );
    #[cfg(feature = "sqlite")]
    {
        let err = db
            .named_on::<sqlx::Sqlite>("audit")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not on") && err.contains("named_on"), "{err}");
    }
    Ok(())
}

/// A PostgreSQL database and a SQLite one in one test.
#[cfg(feature = "sqlite")]
#[seedbed::test(
    strategy = "template",
    databases(main = "migrations", cache = sqlite("migrations/sqlite"))
)]
async fn postgres_and_sqlite_in_one_test(db: TestDb) -> Result {
    let cache = db.named_on::<sqlx::Sqlite>("cache")?;
    Organization::factory().create(&db).await?;
    sqlx::query("INSERT INTO organizations (name, slug) VALUES ('Cached', 'cached')")
        .execute(&cache.pool())
        .await?;
    let (pg, lite): (i64, i64) = (
        sqlx::query_scalar("SELECT count(*) FROM organizations")
            .fetch_one(&db.pool())
            .await?,
        sqlx::query_scalar("SELECT count(*) FROM organizations")
            .fetch_one(&cache.pool())
            .await?,
    );
    assert_eq!((pg, lite), (1, 1));
    Ok(())
}
