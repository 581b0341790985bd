//! `after_create_db`: a hook with the created row and the connection, inside the call's
//! transaction: join rows and updates it writes stay with the row, its error undoes the call, and
//! a hook written for another backend's connection is named. `before_create_db`: a hook with the
//! built row (its parents' keys set) and the connection, right before the row's `INSERT`; the
//! container attributes `before_create_db = path` and `after_create_db = path` (async fns).
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

/// The row a `before_create_db` hook sees has the key of a parent created in the same call (not
/// a placeholder), and what the hook sets is what is written; every row of a `create_list` runs
/// it, and the list is still one `INSERT` per table.
#[seedbed::test]
async fn a_before_hook_sees_its_parents_key_and_sets_the_row(db: TestDb) -> Result {
    let teams = Team::factory()
        .organization(Organization::factory().name("Initech"))
        .before_create_db(|team: &mut Team, conn: &mut PgConnection| {
            Box::pin(async move {
                let name: String =
                    sqlx::query_scalar("SELECT name FROM organizations WHERE id = $1")
                        .bind(team.organization_id)
                        .fetch_one(&mut *conn)
                        .await?;
                team.name = format!("{name} {}", team.name);
                Ok(())
            })
        })
        .create_list(&db, 50)
        .await?;
    assert_eq!(teams.len(), 50);
    assert!(
        teams.iter().all(|t| t.name.starts_with("Initech Team ")),
        "{teams:?}"
    );
    let stored: i64 = count(
        &db,
        "SELECT count(*) FROM teams WHERE name LIKE 'Initech Team %'",
    )
    .await;
    assert_eq!(stored, 50);
    let stats = db.context().insert_stats();
    assert_eq!(
        (stats.table("teams").rows, stats.table("teams").statements),
        (50, 1)
    );
    Ok(())
}

/// A `before_create_db` hook may write rows the row needs (here: its parent, by hand) and point
/// the row's key at them, even over a parent the builder was given; its error undoes everything
/// the call wrote, the parents included.
#[seedbed::test]
async fn a_before_hook_writes_what_the_row_needs_and_its_error_undoes_the_call(
    db: TestDb,
) -> Result {
    let team = Team::factory()
        .organization(Organization::factory().slug("replaced"))
        .before_create_db(|team: &mut Team, conn: &mut PgConnection| {
            Box::pin(async move {
                team.organization_id = sqlx::query_scalar(
                    "INSERT INTO organizations (name, slug) VALUES ('By hand', 'by-hand') \
                     RETURNING id",
                )
                .fetch_one(&mut *conn)
                .await?;
                Ok(())
            })
        })
        .create(&db)
        .await?;
    let slug: String = sqlx::query_scalar("SELECT slug FROM organizations WHERE id = $1")
        .bind(team.organization_id)
        .fetch_one(&db.pool())
        .await?;
    assert_eq!(slug, "by-hand");

    let err = Team::factory()
        .before_create_db(|_: &mut Team, conn: &mut PgConnection| {
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
    // The organization the failed call created first is gone with it; the first call's two
    // (the builder's, and the hook's the team points at) stay.
    assert_eq!(count(&db, "SELECT count(*) FROM organizations").await, 2);
    assert_eq!(count(&db, "SELECT count(*) FROM teams").await, 1);
    Ok(())
}

/// Hooks named in the struct's attribute are plain `async fn`s, run for every builder of the
/// model, after those added to a builder.
#[derive(Debug, Clone, sqlx::FromRow, seedbed::Factory)]
#[factory(
    table = "organizations",
    before_create_db = slug_from_sequence_table,
    after_create_db = give_a_team
)]
struct HookedOrganization {
    #[factory(generated)]
    id: i64,
    #[factory(default = "Hooked")]
    name: String,
    #[factory(default = "unset")]
    slug: String,
}

async fn slug_from_sequence_table(
    org: &mut HookedOrganization,
    conn: &mut PgConnection,
) -> seedbed::Result<()> {
    let n: i64 = sqlx::query_scalar("SELECT count(*) + 1 FROM organizations")
        .fetch_one(&mut *conn)
        .await?;
    org.slug = format!("hooked-{n}");
    Ok(())
}

async fn give_a_team(org: &HookedOrganization, conn: &mut PgConnection) -> seedbed::Result<()> {
    Team::factory()
        .organization_id(org.id)
        .name(format!("{} team", org.slug))
        .create(&mut *conn)
        .await?;
    Ok(())
}

#[seedbed::test]
async fn container_hooks_are_async_fns(db: TestDb) -> Result {
    let first = HookedOrganization::factory().create(&db).await?;
    let second = HookedOrganization::factory().create(&db).await?;
    assert_eq!(
        (first.slug.as_str(), second.slug.as_str()),
        ("hooked-1", "hooked-2")
    );
    let teams: Vec<String> = sqlx::query_scalar("SELECT name FROM teams ORDER BY id")
        .fetch_all(&db.pool())
        .await?;
    assert_eq!(teams, ["hooked-1 team", "hooked-2 team"]);
    // `build()` runs no database hook.
    assert_eq!(HookedOrganization::factory().build().slug, "unset");
    Ok(())
}
