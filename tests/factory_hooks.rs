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

/// Many-to-many in one call: the join model's `has_many`, each link given a builder (or a row)
/// for the other side. One issue, three new admin users and three links; then links to rows
/// that exist.
#[seedbed::test]
async fn many_to_many_through_the_join_model_in_one_call(db: TestDb) -> Result {
    let issue = Issue::factory()
        .with_watchers_each(3, |_, link| link.user(User::factory().admin()))
        .create(&db)
        .await?;
    let watchers: Vec<(i64, bool)> = sqlx::query_as(
        "SELECT u.id, u.is_admin FROM issue_watchers w JOIN users u ON u.id = w.user_id \
         WHERE w.issue_id = $1",
    )
    .bind(issue.id)
    .fetch_all(&db.pool())
    .await?;
    assert_eq!(watchers.len(), 3);
    assert!(watchers.iter().all(|(_, admin)| *admin));

    let people = User::factory().create_list(&db, 2).await?;
    let ids_of_people: Vec<i64> = people.iter().map(|u| u.id).collect();
    let issue = Issue::factory()
        .with_watchers_each(2, move |i, link| link.user_id(ids_of_people[i]))
        .create(&db)
        .await?;
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT user_id FROM issue_watchers WHERE issue_id = $1 ORDER BY user_id",
    )
    .bind(issue.id)
    .fetch_all(&db.pool())
    .await?;
    assert_eq!(ids, people.iter().map(|u| u.id).collect::<Vec<_>>());
    Ok(())
}
