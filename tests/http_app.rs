//! The example HTTP application (examples/http_app) tested through HTTP requests, under Rollback
//! and under Truncate: the same tests, the handlers' own transactions and all.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "test code: a failed expectation is a failed test"
)]

#[path = "../examples/http_app/app.rs"]
#[allow(dead_code, reason = "shared with the example binary")]
mod app;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use seedbed::TestDb;
use tower::ServiceExt;

async fn call(
    db: &TestDb,
    method: &str,
    uri: &str,
    body: Option<serde_json::Value>,
) -> (StatusCode, serde_json::Value) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(match body {
            Some(json) => Body::from(json.to_string()),
            None => Body::empty(),
        })
        .unwrap();
    let response = app::router(db.pool()).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

async fn creates_through_the_api(db: TestDb) {
    let (status, body) = call(
        &db,
        "POST",
        "/orgs",
        Some(serde_json::json!({"name": "Acme", "slug": "acme", "owner_email": "ada@acme.test"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // The database holds what the handler's transaction committed.
    let (role, email): (String, String) = sqlx::query_as(
        "SELECT r.name, u.email FROM memberships m \
         JOIN organizations o ON o.id = m.organization_id \
         JOIN users u ON u.id = m.user_id JOIN roles r ON r.id = m.role_id \
         WHERE o.slug = 'acme'",
    )
    .fetch_one(&db.pool())
    .await
    .unwrap();
    assert_eq!((role.as_str(), email.as_str()), ("owner", "ada@acme.test"));
    let (status, body) = call(&db, "GET", "/orgs/acme", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["members"], 1);
}

async fn rejects_invalid_input(db: TestDb) {
    let (status, body) = call(
        &db,
        "POST",
        "/orgs",
        Some(serde_json::json!({"name": "Bad", "slug": "Not A Slug", "owner_email": "x@y.test"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body["error"].as_str().unwrap().contains("slug"));
    let orgs: i64 = sqlx::query_scalar("SELECT count(*) FROM organizations")
        .fetch_one(&db.pool())
        .await
        .unwrap();
    assert_eq!(orgs, 0, "nothing written");
}

async fn a_conflict_does_not_end_the_test(db: TestDb) {
    let new = serde_json::json!({"name": "First", "slug": "taken", "owner_email": "a@t.test"});
    assert_eq!(
        call(&db, "POST", "/orgs", Some(new)).await.0,
        StatusCode::CREATED
    );
    let again = serde_json::json!({"name": "Second", "slug": "taken", "owner_email": "b@t.test"});
    let (status, body) = call(&db, "POST", "/orgs", Some(again)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    // The failed INSERT inside the handler's transaction did not poison the test.
    let other = serde_json::json!({"name": "Third", "slug": "free", "owner_email": "b@t.test"});
    assert_eq!(
        call(&db, "POST", "/orgs", Some(other)).await.0,
        StatusCode::CREATED
    );
    let slugs: Vec<String> = sqlx::query_scalar("SELECT slug FROM organizations ORDER BY slug")
        .fetch_all(&db.pool())
        .await
        .unwrap();
    assert_eq!(slugs, vec!["free", "taken"]);
    // The second request's user was rolled back with its transaction; the third created it.
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&db.pool())
        .await
        .unwrap();
    assert_eq!(users, 2);
}

macro_rules! under {
    ($strategy:literal, $module:ident) => {
        mod $module {
            use super::*;

            #[seedbed::test(strategy = $strategy)]
            async fn creates_through_the_api(db: TestDb) {
                super::creates_through_the_api(db).await;
            }

            #[seedbed::test(strategy = $strategy)]
            async fn rejects_invalid_input(db: TestDb) {
                super::rejects_invalid_input(db).await;
            }

            #[seedbed::test(strategy = $strategy)]
            async fn a_conflict_does_not_end_the_test(db: TestDb) {
                super::a_conflict_does_not_end_the_test(db).await;
            }
        }
    };
}

under!("rollback", rollback);
under!("truncate", truncate);
