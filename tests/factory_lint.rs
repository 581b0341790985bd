//! `seedbed::lint!`: every factory and trait created once in a transaction rolled back. The
//! reference schema's models pass; a struct with a column the table lacks and a trait that breaks
//! a CHECK are named, with the table and what the database refused; nothing stays behind.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "test code: a failed expectation is a failed test"
)]

mod models;

use models::*;
use seedbed::prelude::*;

type Result<T = (), E = seedbed::Error> = std::result::Result<T, E>;

/// A struct that drifted from the migrations: `nickname` is no column of `organizations`.
#[allow(dead_code, reason = "never read back: the insert fails")]
#[derive(Debug, Clone, sqlx::FromRow, Factory)]
#[factory(table = "organizations")]
struct DriftedOrganization {
    #[factory(generated)]
    id: i64,
    #[factory(default = "Acme")]
    name: String,
    #[factory(sequence = "drifted-{n}")]
    slug: String,
    #[factory(default = "acme")]
    nickname: String,
}

/// A factory whose default passes and whose trait `shouty` breaks the slug's CHECK
/// (`slug ~ '^[a-z0-9][a-z0-9-]*$'`).
#[allow(dead_code, reason = "read back only when the insert passes")]
#[derive(Debug, Clone, sqlx::FromRow, Factory)]
#[factory(table = "organizations", traits(shouty(slug = "ACME!")))]
struct CheckedOrganization {
    #[factory(generated)]
    id: i64,
    #[factory(default = "Acme")]
    name: String,
    #[factory(sequence = "checked-{n}")]
    slug: String,
}

#[seedbed::test]
async fn the_reference_models_pass(db: TestDb) -> Result {
    let report = seedbed::lint!(
        &db,
        Role,
        Plan,
        Organization,
        User,
        UserPreferences,
        Membership,
        Team,
        Project,
        Issue,
        Comment,
        Subscription,
        Order,
        Invoice,
        Payment,
    )
    .await?;
    assert!(report.is_clean(), "{report}");
    // Every factory as it is, and its traits: enterprise, admin, owner, urgent.
    assert_eq!(report.checked, 14 + 4, "{report}");
    // Nothing was left: the lint rolled everything back.
    let orgs: i64 = sqlx::query_scalar("SELECT count(*) FROM organizations")
        .fetch_one(&db.pool())
        .await?;
    assert_eq!(orgs, 0);
    report.into_result()?;
    Ok(())
}

#[seedbed::test]
async fn drift_and_broken_checks_are_named(db: TestDb) -> Result {
    let report = seedbed::lint!(&db, User, DriftedOrganization, CheckedOrganization).await?;
    assert_eq!(report.checked, 5, "{report}");
    let lines: Vec<String> = report.failures.iter().map(ToString::to_string).collect();
    assert_eq!(lines.len(), 2, "{report}");
    assert!(
        lines[0].starts_with("DriftedOrganization (table organizations): ")
            && lines[0].contains("nickname"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].starts_with("CheckedOrganization with trait shouty (table organizations): ")
            && lines[1].contains("organizations_slug_check"),
        "{}",
        lines[1]
    );
    assert!(matches!(
        report.failures[0].error,
        seedbed::Error::SchemaMismatch { .. }
    ));
    assert!(matches!(
        report.failures[1].error,
        seedbed::Error::ConstraintViolation(_)
    ));
    // The checks after a failure still ran, and nothing stayed.
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&db.pool())
        .await?;
    assert_eq!(users, 0);
    let err = report.into_result().unwrap_err().to_string();
    assert!(err.contains("2 of 5 factory variants"), "{err}");
    Ok(())
}

/// Inside Rollback's single transaction, the lint's own transaction is a savepoint: the test's
/// rows written before it stay.
#[seedbed::test(strategy = "rollback")]
async fn under_rollback_the_tests_rows_stay(db: TestDb) -> Result {
    let org = Organization::factory().create(&db).await?;
    let report = seedbed::lint!(&db, CheckedOrganization).await?;
    assert_eq!((report.checked, report.failures.len()), (2, 1), "{report}");
    let orgs: Vec<i64> = sqlx::query_scalar("SELECT id FROM organizations")
        .fetch_all(&db.pool())
        .await?;
    assert_eq!(orgs, [org.id]);
    Ok(())
}
