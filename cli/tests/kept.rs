//! A failed test's state under Truncate (its database, renamed out of the strategy's set) and
//! Namespace (its rows, under its token) is kept, listed by `seedbed list`, left by a plain
//! `seedbed sweep` and removed by `seedbed sweep --kept`; the next tests are not disturbed.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "test code: a failed expectation is a failed test"
)]

mod common;

use common::seedbed;
use seedbed::isolation::{Kept, Outcome};
use seedbed::{Isolation, Strategy};
use sqlx::{Connection, PgConnection};

async fn count(url: &str, sql: &str) -> i64 {
    let mut conn = PgConnection::connect(url).await.unwrap();
    let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let _ = conn.close().await;
    n
}

#[tokio::test]
async fn failed_truncate_and_namespace_tests_keep_their_state_until_sweep_kept() {
    // A server of this test's own, so sweeping kept state touches no other test's.
    let home = std::env::temp_dir().join(format!("seedbed-cli-kept-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    let config = seedbed::server::EmbeddedConfig::with_base_dir(&home);
    let server = seedbed::server::Server::embedded(&config).await.unwrap();
    let url = server.url_for("postgres");
    let server = seedbed::server::Server::install(server).unwrap();
    let migrations = concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations");
    let iso = |strategy, test: &str| {
        Isolation::new(strategy)
            .migrations(migrations)
            .test_name(test)
    };

    // Truncate: the failed test's database is kept under a new name, with its rows.
    let db = iso(Strategy::Truncate, "kept::truncate")
        .acquire()
        .await
        .unwrap();
    sqlx::query("INSERT INTO organizations (name, slug) VALUES ('k', 'kept-truncate')")
        .execute(&db.pool())
        .await
        .unwrap();
    let slot = db.database().to_string();
    let truncate = db.clone_handle();
    db.finish_with(Outcome::Failed).await.unwrap();
    let Some(Kept::Database(kept_db)) = truncate.kept_state() else {
        panic!("kept: {:?}", truncate.kept_state());
    };
    assert_ne!(kept_db, slot, "renamed out of the Truncate set");
    let kept_url = truncate.url().expect("the kept database's URL");
    assert!(kept_url.contains(&kept_db), "{kept_url}");
    assert_eq!(
        count(
            &kept_url,
            "SELECT count(*) FROM organizations WHERE slug = 'kept-truncate'"
        )
        .await,
        1
    );
    // The next Truncate test gets a clean database.
    let next = iso(Strategy::Truncate, "kept::truncate_next")
        .acquire()
        .await
        .unwrap();
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM organizations")
        .fetch_one(&next.pool())
        .await
        .unwrap();
    assert_eq!(rows, 0);
    next.finish().await.unwrap();

    // Namespace: the failed test's rows stay under its token.
    let db = iso(Strategy::Namespace, "kept::namespace")
        .acquire()
        .await
        .unwrap();
    let token = db.token().to_string();
    sqlx::query("INSERT INTO organizations (name, slug) VALUES ('n', $1)")
        .bind(format!("kept-{token}"))
        .execute(&db.pool())
        .await
        .unwrap();
    let shared = db.database().to_string();
    let namespace = db.clone_handle();
    db.finish_with(Outcome::Failed).await.unwrap();
    assert_eq!(
        namespace.kept_state(),
        Some(Kept::Rows {
            database: shared.clone(),
            token: token.clone()
        })
    );
    let shared_url = server.url_for(&shared);
    let kept_rows = format!("SELECT count(*) FROM organizations WHERE slug = 'kept-{token}'");
    assert_eq!(count(&shared_url, &kept_rows).await, 1);
    // The same test again (same seed) cannot take the kept token: it gets another.
    let again = iso(Strategy::Namespace, "kept::namespace")
        .acquire()
        .await
        .unwrap();
    assert_ne!(again.token(), token);
    again.finish().await.unwrap();
    assert_eq!(count(&shared_url, &kept_rows).await, 1);

    // Listed.
    let (ok, listed) = seedbed(&url, &["list"]);
    assert!(ok, "{listed}");
    let line = listed
        .lines()
        .find(|l| l.starts_with(&kept_db))
        .unwrap_or_else(|| panic!("{kept_db} not listed:\n{listed}"));
    assert!(
        line.contains("kept") && line.contains("kept::truncate"),
        "{line}"
    );
    assert!(
        listed.contains(&format!(
            "kept::namespace: 1 row(s) in {shared}, token {token}"
        )),
        "{listed}"
    );

    // A plain sweep leaves both; --kept removes both.
    let (ok, plain) = seedbed(&url, &["sweep"]);
    assert!(ok, "{plain}");
    assert!(
        !plain.contains(&kept_db) && !plain.contains(&token),
        "{plain}"
    );
    assert_eq!(count(&shared_url, &kept_rows).await, 1);
    let (ok, swept) = seedbed(&url, &["sweep", "--kept"]);
    assert!(ok, "{swept}");
    assert!(
        swept.contains(&kept_db) && swept.contains(&token),
        "{swept}"
    );
    assert_eq!(count(&shared_url, &kept_rows).await, 0);
    let (_, after) = seedbed(&url, &["list"]);
    assert!(
        !after.contains(&kept_db) && !after.contains(&token),
        "{after}"
    );
    seedbed::server::embedded::stop(&config).await.unwrap();
    let _ = std::fs::remove_dir_all(&home);
}
