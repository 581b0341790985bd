//! Isolation inside an existing database (`database = "…"`), as a role that may not create
//! databases: Rollback, Namespace and Truncate work with no CREATE DATABASE; Namespace and
//! Truncate refuse a database seedbed did not create unless `allow_unmarked_database` says so;
//! nothing is left behind in it.
//!
//! The parent test makes the role (no CREATEDB) and its database on the tests' server, then runs
//! the `#[ignore]`d children in processes of their own whose `SEEDBED_DATABASE_URL` is the
//! role's.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "test code: a failed expectation is a failed test"
)]

use std::process::Command;

use seedbed::prelude::*;
use seedbed::sql::{quote_ident, quote_literal};
use sqlx::{Connection, PgConnection};

type Result<T = (), E = seedbed::Error> = std::result::Result<T, E>;

const ROLE: &str = "seedbed_nocreatedb";
const PASSWORD: &str = "nocreatedb";
const DATABASE: &str = "seedbed_nocreatedb_app";

/// What each child does: the role may not create databases, yet its test writes in isolation.
async fn writes_in_isolation(db: &TestDb) -> Result {
    assert_eq!(db.database(), DATABASE);
    let may_create: bool =
        sqlx::query_scalar("SELECT rolcreatedb FROM pg_roles WHERE rolname = current_user")
            .fetch_one(&db.pool())
            .await?;
    assert!(!may_create, "the test runs as a role without CREATEDB");
    sqlx::query("INSERT INTO accounts (email) VALUES ('mine@example.com')")
        .execute(&db.pool())
        .await?;
    let mine: i64 = sqlx::query_scalar("SELECT count(*) FROM accounts")
        .fetch_one(&db.pool())
        .await?;
    assert_eq!(mine, 1, "the test sees its own row and no other test's");
    Ok(())
}

#[seedbed::test(
    strategy = "rollback",
    database = "seedbed_nocreatedb_app",
    migrations = false
)]
#[ignore = "a child of a_role_without_createdb_isolates_in_an_existing_database, run with the role's URL"]
async fn child_rollback(db: TestDb) -> Result {
    writes_in_isolation(&db).await
}

#[seedbed::test(
    strategy = "namespace",
    database = "seedbed_nocreatedb_app",
    allow_unmarked_database,
    migrations = false
)]
#[ignore = "a child of a_role_without_createdb_isolates_in_an_existing_database, run with the role's URL"]
async fn child_namespace(db: TestDb) -> Result {
    writes_in_isolation(&db).await
}

#[seedbed::test(
    strategy = "truncate",
    database = "seedbed_nocreatedb_app",
    allow_unmarked_database,
    migrations = false
)]
#[ignore = "a child of a_role_without_createdb_isolates_in_an_existing_database, run with the role's URL"]
async fn child_truncate(db: TestDb) -> Result {
    writes_in_isolation(&db).await
}

#[seedbed::test(
    strategy = "namespace",
    database = "seedbed_nocreatedb_app",
    migrations = false
)]
#[ignore = "a child of a_role_without_createdb_isolates_in_an_existing_database, run with the role's URL"]
async fn child_namespace_without_consent(db: TestDb) -> Result {
    writes_in_isolation(&db).await
}

/// Runs the child test `name` with the role's URL; whether it passed, and its output.
fn child(name: &str, url: &str) -> (bool, String) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--include-ignored", "--test-threads", "1"])
        .env("SEEDBED_DATABASE_URL", url)
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test]
async fn a_role_without_createdb_isolates_in_an_existing_database() -> Result {
    let server = seedbed::server::Server::resolve().await?;
    let mut admin = server.connect().await?;
    let (role, database) = (quote_ident(ROLE), quote_ident(DATABASE));
    for sql in [
        format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"),
        format!("DROP ROLE IF EXISTS {role}"),
        format!(
            "CREATE ROLE {role} LOGIN NOCREATEDB NOCREATEROLE PASSWORD {}",
            quote_literal(PASSWORD)
        ),
        format!("CREATE DATABASE {database} OWNER {role}"),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut admin)
            .await?;
    }
    let options = server.database_options(DATABASE);
    let host = match options.get_host() {
        h if h.starts_with('/') => "127.0.0.1",
        h => h,
    };
    let url = format!(
        "postgres://{ROLE}:{PASSWORD}@{host}:{}/{DATABASE}",
        options.get_port()
    );
    // The application's schema, made by the role as its own migrations would.
    let mut app = PgConnection::connect(&url).await?;
    sqlx::raw_sql(
        "CREATE TABLE accounts (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, \
         email text NOT NULL UNIQUE)",
    )
    .execute(&mut app)
    .await?;

    for name in ["child_rollback", "child_namespace", "child_truncate"] {
        let (passed, output) = child(name, &url);
        assert!(passed, "{name}:\n{output}");
    }
    let (passed, output) = child("child_namespace_without_consent", &url);
    assert!(
        !passed,
        "Namespace must refuse a database seedbed did not create:\n{output}"
    );
    assert!(
        output.contains("refusing to use it for Namespace")
            && output.contains("allow_unmarked_database"),
        "{output}"
    );

    // Nothing left: no row of any test, no lease.
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM accounts")
        .fetch_one(&mut app)
        .await?;
    assert_eq!(rows, 0);
    app.close().await?;
    for sql in [
        format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"),
        format!("DROP ROLE IF EXISTS {role}"),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut admin)
            .await?;
    }
    Ok(())
}
