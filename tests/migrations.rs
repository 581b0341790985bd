//! Migrations as users have them: a schema dumped with `pg_dump` (which empties `search_path`
//! and sets a dozen settings for the rest of its session), migrations written after it with
//! unqualified names, a `-- no-transaction` migration, and a failing migration named by file,
//! line and column.

use seedbed::isolation::Migrations;
use seedbed::{Isolation, Strategy, TestDb};
use sqlx::PgPool;

const DUMPED: &str = "tests/pg_dump_migrations";

/// Writes through every table of the dumped schema and checks what the migrations left.
#[allow(clippy::unwrap_used, reason = "test helper: its failure is the test's")]
async fn use_the_dumped_schema(pool: &PgPool) {
    let author: i64 =
        sqlx::query_scalar("INSERT INTO authors (name) VALUES ('Ursula') RETURNING id")
            .fetch_one(pool)
            .await
            .unwrap();
    let book: i64 = sqlx::query_scalar(
        "INSERT INTO books (author_id, title) VALUES ($1, 'The Dispossessed') RETURNING id",
    )
    .bind(author)
    .fetch_one(pool)
    .await
    .unwrap();
    sqlx::query("INSERT INTO reviews (book_id, stars) VALUES ($1, 5)")
        .bind(book)
        .execute(pool)
        .await
        .unwrap();
    // The `-- no-transaction` migration built its index concurrently.
    let index: Option<String> =
        sqlx::query_scalar("SELECT to_regclass('public.books_title_idx')::text")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(index.as_deref(), Some("books_title_idx"));
    // The test's session has the server's defaults, not the dump's.
    let search_path: String = sqlx::query_scalar("SHOW search_path")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(search_path, "\"$user\", public");
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM public._sqlx_migrations")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(applied, 3);
}

#[seedbed::test(migrations = "tests/pg_dump_migrations")]
async fn a_dumped_schema_migrates_under_rollback(pool: PgPool) {
    use_the_dumped_schema(&pool).await;
}

#[seedbed::test(migrations = "tests/pg_dump_migrations", strategy = "truncate")]
async fn a_dumped_schema_migrates_under_truncate(pool: PgPool) {
    use_the_dumped_schema(&pool).await;
}

#[seedbed::test(migrations = "tests/pg_dump_migrations", strategy = "template")]
async fn a_dumped_schema_migrates_under_template(db: TestDb) {
    use_the_dumped_schema(&db.pool()).await;
    // Applying the same migrations again finds them applied, and leaves the session as it was.
    let mut conn = db.pool().acquire().await.unwrap();
    let migrations = Migrations::from_dir(DUMPED).await.unwrap();
    migrations.apply(&mut *conn).await.unwrap();
    let search_path: String = sqlx::query_scalar("SHOW search_path")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(search_path, "\"$user\", public");
}

#[seedbed::test(migrations = "tests/pg_dump_migrations", strategy = "namespace")]
async fn a_dumped_schema_migrates_under_namespace(pool: PgPool) {
    use_the_dumped_schema(&pool).await;
}

#[tokio::test]
async fn a_failing_migration_is_named_by_file_line_and_column() {
    for strategy in [Strategy::Template, Strategy::Rollback] {
        let err = Isolation::new(strategy)
            .migrations("tests/broken_migrations")
            .test_name("migrations::a_failing_migration")
            .acquire()
            .await
            .expect_err("the migration has a typo");
        let text = err.to_string();
        for needle in [
            "tests/broken_migrations/2_books.sql (version 2), line 5, column 11",
            "type \"txet\" does not exist",
            "5 |     title txet NOT NULL",
        ] {
            assert!(
                text.contains(needle),
                "{strategy:?}: missing `{needle}` in:\n{text}"
            );
        }
    }
}

/// Applied by hand to an empty database (the cached databases above were built once, by
/// whichever seedbed built them first): the whole run, every time.
#[seedbed::test(migrations = false, strategy = "template")]
async fn a_dumped_schema_migrates_on_an_empty_database(db: TestDb) {
    let mut conn = db.pool().acquire().await.unwrap();
    let migrations = Migrations::from_dir(DUMPED).await.unwrap();
    migrations.apply(&mut *conn).await.unwrap();
    drop(conn);
    use_the_dumped_schema(&db.pool()).await;
}
