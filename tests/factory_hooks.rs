//! `after_create_db`: a hook with the created row and the connection, inside the call's
//! transaction: join rows and updates it writes stay with the row, its error undoes the call, and
//! a hook written for another backend's connection is named.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "test code: a failed expectation is a failed test"
)]

mod models;

use models::*;
use seedbed::prelude::*;
use sqlx::PgConnection;

type Result<T = (), E = seedbed::Error> = std::result::Result<T, E>;

async fn count(db: &TestDb, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&db.pool()).await.unwrap()
}

#[seedbed::test]
async fn a_hook_writes_with_the_row_on_its_connection(db: TestDb) -> Result {
    let orgs = Organization::factory()
        .after_create_db(|org: &Organization, conn: &mut PgConnection| {
            Box::pin(async move {
                // A factory on the hook's connection, and plain SQL.
                Team::factory()
                    .organization_ref(org)
                    .create(&mut *conn)
                    .await?;
                sqlx::query("UPDATE organizations SET name = 'Hooked ' || id WHERE id = $1")
                    .bind(org.id)
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            })
        })
        .create_list(&db, 3)
        .await?;
    assert_eq!(orgs.len(), 3);
    assert_eq!(count(&db, "SELECT count(*) FROM teams").await, 3);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM organizations WHERE name LIKE 'Hooked %'"
        )
        .await,
        3
    );
    Ok(())
}

#[seedbed::test]
async fn a_failing_hook_undoes_the_call(db: TestDb) -> Result {
    let err = Organization::factory()
        .after_create_db(|_: &Organization, conn: &mut PgConnection| {
            Box::pin(async move {
                sqlx::query("SELECT 1/0").execute(&mut *conn).await?;
                Ok(())
            })
        })
        .create(&db)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("division by zero"), "{err}");
    assert_eq!(count(&db, "SELECT count(*) FROM organizations").await, 0);
    Ok(())
}

#[cfg(feature = "sqlite")]
#[seedbed::test]
async fn a_hook_for_another_backend_is_named(db: TestDb) -> Result {
    let err = Organization::factory()
        .after_create_db(|_: &Organization, _: &mut sqlx::SqliteConnection| {
            Box::pin(async move { Ok(()) })
        })
        .create(&db)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("after_create_db hook takes a sqlx_sqlite") && err.contains("another backend"),
        "{err}"
    );
    assert_eq!(count(&db, "SELECT count(*) FROM organizations").await, 0);
    Ok(())
}
