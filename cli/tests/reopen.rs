//! A Truncate database closed to keep a failed test's state, whose keeper died before renaming
//! it, is opened again when its set next needs a database: the set is not one short for good.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "test code: a failed expectation is a failed test"
)]

use std::process::Command;

use seedbed::backend::Marker;
use seedbed::{Isolation, Strategy};
use sqlx::{Connection, PgConnection};

const MIGRATIONS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/pg_dump_migrations");

/// Run in a process of its own by the test below: one Truncate test.
#[tokio::test]
#[ignore = "a child: run in a process of its own by the test that closes its databases"]
async fn child_one_truncate_test() {
    let db = Isolation::new(Strategy::Truncate)
        .migrations(MIGRATIONS)
        .test_name("reopen::child")
        .acquire()
        .await
        .expect("acquire");
    sqlx::query("INSERT INTO authors (name) VALUES ('child')")
        .execute(&db.pool())
        .await
        .expect("insert");
    db.finish().await.expect("finish");
}

fn run_child(url: &str) -> (bool, String) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "child_one_truncate_test",
            "--exact",
            "--include-ignored",
            "--test-threads",
            "1",
        ])
        .env("SEEDBED_DATABASE_URL", url)
        // One database per set: the closed one must be opened again, not passed over for a
        // new one.
        .env("SEEDBED_TRUNCATE_DATABASES", "1")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success() && text.contains("1 passed"), text)
}

#[tokio::test]
async fn a_slot_left_closed_by_a_dead_keeper_is_opened_again() {
    let home = std::env::temp_dir().join(format!("seedbed-cli-reopen-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    let config = seedbed::server::EmbeddedConfig::with_base_dir(&home);
    let server = seedbed::server::Server::embedded(&config).await.unwrap();
    let url = server.url_for("postgres");

    // A test process makes the Truncate databases of these migrations, and exits.
    let (ok, text) = run_child(&url);
    assert!(ok, "{text}");

    // Every slot is left as a keeper that died between closing and renaming it leaves it:
    // closed to connections, its marker saying since when (long ago).
    let mut admin = PgConnection::connect(&url).await.unwrap();
    let slots: Vec<(String, String)> = sqlx::query_as(
        "SELECT datname::text, shobj_description(oid, 'pg_database') FROM pg_database \
         WHERE shobj_description(oid, 'pg_database') LIKE '%kind=truncate-slot%'",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert!(!slots.is_empty(), "the child made no Truncate database");
    for (name, comment) in &slots {
        let base = Marker::parse(comment)
            .and_then(|m| m.get("base").map(str::to_string))
            .expect("a slot's marker names its base");
        let stale = Marker::new("truncate-slot")
            .with("base", base.as_str())
            .with("closed_at", "1");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "COMMENT ON DATABASE {} IS {}; ALTER DATABASE {} ALLOW_CONNECTIONS false",
            seedbed::sql::quote_ident(name),
            seedbed::sql::quote_literal(&stale.to_comment()),
            seedbed::sql::quote_ident(name),
        )))
        .execute(&mut admin)
        .await
        .unwrap();
    }

    // The next test process finds every slot closed, and its set opens one again.
    let (ok, text) = run_child(&url);
    assert!(ok, "{text}");
    for (name, _) in &slots {
        let (open, comment): (bool, String) = sqlx::query_as(
            "SELECT datallowconn, shobj_description(oid, 'pg_database') FROM pg_database \
             WHERE datname = $1",
        )
        .bind(name)
        .fetch_one(&mut admin)
        .await
        .unwrap();
        assert!(open && !comment.contains("closed_at"), "{name}: {comment}");
    }
    let _ = admin.close().await;
    seedbed::server::embedded::stop(&config).await.unwrap();
    let _ = std::fs::remove_dir_all(&home);
}
