//! `db.rows(table)`: rows for tables without a model struct, from the schema alone. Every table
//! of the reference schema is filled (its parents created first), `set` fixes columns, and two
//! calls on one table never collide on unique values.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "test code: a failed expectation is a failed test"
)]

use seedbed::prelude::*;

type Result<T = (), E = seedbed::Error> = std::result::Result<T, E>;

#[seedbed::test]
async fn fills_every_table_of_the_reference_schema(db: TestDb) -> Result {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT n.nspname || '.' || c.relname FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition \
           AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'seedbed') \
           AND n.nspname NOT LIKE 'pg_%' AND c.relname <> '_sqlx_migrations' \
         ORDER BY 1",
    )
    .fetch_all(&db.pool())
    .await?;
    assert_eq!(tables.len(), 33, "{tables:?}");
    for table in &tables {
        let before: i64 = count(&db, table).await;
        let rows = db.rows(table).create(3).await?;
        assert_eq!(rows.len(), 3, "{table}");
        let after: i64 = count(&db, table).await;
        assert_eq!(after - before, 3, "{table}");
    }
    Ok(())
}

async fn count(db: &TestDb, table: &str) -> i64 {
    let (schema, name) = table.split_once('.').unwrap();
    let sql = format!(
        "SELECT count(*) FROM {}.{}",
        seedbed::sql::quote_ident(schema),
        seedbed::sql::quote_ident(name)
    );
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(&db.pool())
        .await
        .unwrap()
}

#[seedbed::test]
async fn set_columns_parents_and_repeated_calls(db: TestDb) -> Result {
    let issues = db.rows("issues").set("title", "Broken").create(10).await?;
    assert_eq!(issues.len(), 10);
    assert!(issues.iter().all(|i| i["title"] == "Broken"), "{issues:?}");
    // The parents a row needs were made: every issue's project exists.
    let projects: i64 = sqlx::query_scalar("SELECT count(DISTINCT project_id) FROM issues")
        .fetch_one(&db.pool())
        .await?;
    assert!(projects >= 1);
    // Unique columns stay unique across calls (users.email is unique).
    let a = db.rows("users").create(20).await?;
    let b = db.rows("public.users").create(20).await?;
    assert_eq!(a.len() + b.len(), 40);
    // A column the generator leaves to the database can be set too.
    let org = db
        .rows("organizations")
        .set("slug", "fixed-slug")
        .set("plan_id", 2)
        .create(1)
        .await?;
    assert_eq!(
        (&org[0]["slug"], &org[0]["plan_id"]),
        (&"fixed-slug".into(), &2.into())
    );
    // Bad input is named.
    let err = db.rows("nope").create(1).await.unwrap_err().to_string();
    assert!(err.contains("no table `nope`"), "{err}");
    let err = db
        .rows("users")
        .set("email", "not an address")
        .create(1)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("users") && err.contains("email"), "{err}");
    Ok(())
}

/// The same on SQLite: every table of the SQLite reference schema.
#[cfg(feature = "sqlite")]
#[seedbed::test(migrations = "migrations/sqlite")]
async fn fills_every_table_of_the_sqlite_reference_schema(db: TestDb<sqlx::Sqlite>) -> Result {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' \
         ESCAPE '\\' AND name NOT LIKE 'seedbed\\_%' ESCAPE '\\' \
         AND name <> '_sqlx_migrations' ORDER BY name",
    )
    .fetch_all(&db.pool())
    .await?;
    assert_eq!(tables.len(), 33, "{tables:?}");
    for table in &tables {
        let sql = format!("SELECT count(*) FROM {}", seedbed::sql::quote_ident(table));
        let before: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.clone()))
            .fetch_one(&db.pool())
            .await?;
        let rows = db.rows(table).create(3).await?;
        assert_eq!(rows.len(), 3, "{table}");
        let after: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(&db.pool())
            .await?;
        assert_eq!(after - before, 3, "{table}");
    }
    let issues = db.rows("issues").set("title", "Broken").create(5).await?;
    assert!(
        issues
            .iter()
            .all(|i| i["title"] == "Broken" && i["id"].is_i64()),
        "{issues:?}"
    );
    Ok(())
}
