//! Factories on SQLite (feature `sqlite`): `create`, `create_list` chunked under SQLite's
//! bind-parameter limit, associations, a graph that closes a foreign-key cycle, a caller's
//! transaction, and constraint errors that name table and constraint. Each test has an in-memory
//! database of its own: SQLite needs no server.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "test code: a failed expectation is a failed test"
)]

use std::str::FromStr;
use std::sync::Arc;

use seedbed::context::TestContext;
use seedbed::factory::{ConstraintKind, Graph};
use seedbed::prelude::*;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Factory)]
#[factory(table = "orgs")]
struct Org {
    #[factory(generated)]
    id: i64,
    #[factory(sequence = "org-{n}")]
    slug: String,
    #[factory(default = "Acme")]
    name: String,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Factory)]
#[factory(table = "members")]
struct Member {
    #[factory(generated)]
    id: i64,
    #[factory(belongs_to = Org)]
    org_id: i64,
    #[factory(sequence = "member{n}@example.com")]
    email: String,
    #[factory(default = false)]
    admin: bool,
    #[factory(generated)]
    joined: String,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Factory)]
#[factory(table = "boards")]
struct Board {
    #[factory(generated)]
    id: i64,
    #[factory(default = "Sprint")]
    name: String,
    #[factory(belongs_to = Column)]
    default_column_id: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Factory)]
#[factory(table = "columns")]
struct Column {
    #[factory(generated)]
    id: i64,
    #[factory(belongs_to = Board)]
    board_id: i64,
    #[factory(default = "Todo")]
    name: String,
}

/// A model whose struct has a field the table lacks.
#[allow(dead_code, reason = "never read back: the insert fails")]
#[derive(Debug, Clone, sqlx::FromRow, Factory)]
#[factory(table = "orgs")]
struct DriftedOrg {
    #[factory(generated)]
    id: i64,
    #[factory(sequence = "drift-{n}")]
    slug: String,
    #[factory(default = "x")]
    motto: String,
}

const SCHEMA: &str = "
    CREATE TABLE orgs (
        id INTEGER PRIMARY KEY,
        slug TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL CHECK (length(name) > 0)
    );
    CREATE TABLE members (
        id INTEGER PRIMARY KEY,
        org_id INTEGER NOT NULL REFERENCES orgs (id),
        email TEXT NOT NULL UNIQUE,
        admin BOOLEAN NOT NULL DEFAULT 0,
        joined TEXT NOT NULL DEFAULT (datetime('now'))
    );
    CREATE TABLE boards (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        default_column_id INTEGER REFERENCES columns (id)
    );
    CREATE TABLE columns (
        id INTEGER PRIMARY KEY,
        board_id INTEGER NOT NULL REFERENCES boards (id),
        name TEXT NOT NULL
    );
";

/// A fresh in-memory database with the schema, foreign keys enforced, on one connection (an
/// in-memory database lives as long as its connection).
async fn database() -> SqlitePool {
    let options = SqliteConnectOptions::from_str("sqlite::memory:")
        .unwrap()
        .foreign_keys(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_with(options)
        .await
        .unwrap();
    sqlx::raw_sql(SCHEMA).execute(&pool).await.unwrap();
    pool
}

async fn count(pool: &SqlitePool, table: &str) -> i64 {
    let sql = format!("SELECT count(*) FROM {}", seedbed::sql::quote_ident(table));
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn create_reads_back_what_the_database_assigned_and_creates_the_parent() {
    let pool = database().await;
    let member = Member::factory().admin(true).create(&pool).await.unwrap();
    assert!(member.id > 0, "rowid read back: {member:?}");
    assert!(
        !member.joined.is_empty(),
        "the DEFAULT read back: {member:?}"
    );
    assert!(member.admin);
    let org: Org = sqlx::query_as("SELECT * FROM orgs WHERE id = ?")
        .bind(member.org_id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(org.name, "Acme", "the belongs_to parent was created");
}

#[tokio::test]
async fn create_list_of_20000_rows_is_chunked_under_the_bind_limit() {
    let pool = database().await;
    // A context of the test's own counts its statements.
    let ctx = Arc::new(TestContext::builder("sqlite_factories::chunked").build());
    let (org, members) = Arc::clone(&ctx)
        .scope(async {
            let org = Org::factory().create(&pool).await.unwrap();
            // Three columns a row: 10,922 rows fit in SQLite's 32,766 parameters, so 20,000
            // rows take two statements.
            let members = Member::factory()
                .org_ref(&org)
                .create_list(&pool, 20_000)
                .await
                .unwrap();
            (org, members)
        })
        .await;
    let stats = ctx.insert_stats();
    assert_eq!(stats.table("members").statements, 2, "{stats}");
    assert_eq!(stats.table("members").rows, 20_000, "{stats}");
    assert_eq!(members.len(), 20_000);
    assert_eq!(count(&pool, "members").await, 20_000);
    let mut ids: Vec<i64> = members.iter().map(|m| m.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 20_000, "each row read back with its own id");
    assert!(members.iter().all(|m| m.org_id == org.id));
}

#[tokio::test]
async fn a_graph_closes_a_foreign_key_cycle_with_an_update_by_rowid() {
    let pool = database().await;
    let mut graph = Graph::new();
    let board = graph.add(Board::factory().name("Sprint 1"));
    let columns: Vec<_> = ["Todo", "Doing", "Done"]
        .into_iter()
        .map(|name| graph.add(Column::factory().board(board).name(name)))
        .collect();
    graph.update(&board, |b| b.default_column(columns[0]));
    let created = graph.create(&pool).await.unwrap();
    let board = created.get(&board).unwrap();
    let todo = created.get(&columns[0]).unwrap();
    assert_eq!(
        board.default_column_id,
        Some(todo.id),
        "the returned row shows the update"
    );
    let stored: Option<i64> =
        sqlx::query_scalar("SELECT default_column_id FROM boards WHERE id = ?")
            .bind(board.id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(stored, Some(todo.id));
    for column in &columns {
        assert_eq!(created.get(column).unwrap().board_id, board.id);
    }
}

#[tokio::test]
async fn rows_created_in_the_callers_transaction_roll_back_with_it() {
    let pool = database().await;
    let mut tx = pool.begin().await.unwrap();
    Member::factory().create_list(&mut *tx, 3).await.unwrap();
    let inside: i64 = sqlx::query_scalar("SELECT count(*) FROM members")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(inside, 3);
    tx.rollback().await.unwrap();
    assert_eq!(count(&pool, "members").await, 0);
    assert_eq!(count(&pool, "orgs").await, 0);
}

#[tokio::test]
async fn constraint_errors_name_the_table_and_the_constraint() {
    let pool = database().await;
    Org::factory().slug("acme").create(&pool).await.unwrap();
    let err = Org::factory().slug("acme").create(&pool).await.unwrap_err();
    let Error::ConstraintViolation(v) = &err else {
        panic!("expected a constraint violation, got {err:?}");
    };
    assert_eq!(v.kind, ConstraintKind::Unique);
    assert_eq!(v.table, "orgs");
    assert_eq!(v.column.as_deref(), Some("slug"));
    assert!(v.constraint.contains("orgs.slug"), "{}", v.constraint);
    let message = err.to_string();
    assert!(
        message.contains("orgs") && message.contains("slug"),
        "{message}"
    );

    let err = Org::factory().name("").create(&pool).await.unwrap_err();
    let Error::ConstraintViolation(v) = &err else {
        panic!("expected a constraint violation, got {err:?}");
    };
    assert_eq!(v.kind, ConstraintKind::Check);

    let err = Member::factory()
        .org_id(999_999)
        .create(&pool)
        .await
        .unwrap_err();
    let Error::ConstraintViolation(v) = &err else {
        panic!("expected a constraint violation, got {err:?}");
    };
    assert_eq!(v.kind, ConstraintKind::ForeignKey);
    assert_eq!(count(&pool, "members").await, 0, "nothing half-written");
}

#[tokio::test]
async fn a_struct_that_drifted_from_its_table_is_a_schema_mismatch() {
    let pool = database().await;
    let err = DriftedOrg::factory().create(&pool).await.unwrap_err();
    let Error::SchemaMismatch { what, .. } = &err else {
        panic!("expected a schema mismatch, got {err:?}");
    };
    assert!(what.contains("motto") && what.contains("orgs"), "{what}");
}

/// A factory whose trait `blank` breaks the name's CHECK.
#[allow(dead_code, reason = "read back only when the insert passes")]
#[derive(Debug, Clone, sqlx::FromRow, Factory)]
#[factory(table = "orgs", traits(blank(name = "")))]
struct CheckedOrg {
    #[factory(generated)]
    id: i64,
    #[factory(sequence = "checked-{n}")]
    slug: String,
    #[factory(default = "Acme")]
    name: String,
}

#[tokio::test]
async fn lint_names_drift_and_broken_checks_and_leaves_nothing() {
    let pool = database().await;
    let report = seedbed::lint!(&pool, Org, Member, DriftedOrg, CheckedOrg)
        .await
        .unwrap();
    assert_eq!(report.checked, 5, "{report}");
    let lines: Vec<String> = report.failures.iter().map(ToString::to_string).collect();
    assert_eq!(lines.len(), 2, "{report}");
    assert!(
        lines[0].starts_with("DriftedOrg (table orgs): ") && lines[0].contains("motto"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].starts_with("CheckedOrg with trait blank (table orgs): ")
            && lines[1].contains("CHECK"),
        "{}",
        lines[1]
    );
    assert_eq!(
        (count(&pool, "orgs").await, count(&pool, "members").await),
        (0, 0)
    );
}

#[tokio::test]
async fn after_create_db_writes_on_the_sqlite_connection() {
    let pool = database().await;
    let orgs = Org::factory()
        .after_create_db(|org: &Org, conn: &mut sqlx::SqliteConnection| {
            Box::pin(async move {
                Member::factory().org_ref(org).create(&mut *conn).await?;
                sqlx::query("UPDATE orgs SET name = 'Hooked' WHERE id = ?")
                    .bind(org.id)
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            })
        })
        .create_list(&pool, 2)
        .await
        .unwrap();
    assert_eq!(orgs.len(), 2);
    assert_eq!(count(&pool, "members").await, 2);
    let hooked: i64 = sqlx::query_scalar("SELECT count(*) FROM orgs WHERE name = 'Hooked'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(hooked, 2);
}

#[tokio::test]
async fn before_create_db_sets_the_row_on_the_sqlite_connection() {
    let pool = database().await;
    let members = Member::factory()
        .org(Org::factory().name("Globex"))
        .before_create_db(|member: &mut Member, conn: &mut sqlx::SqliteConnection| {
            Box::pin(async move {
                let name: String = sqlx::query_scalar("SELECT name FROM orgs WHERE id = ?")
                    .bind(member.org_id)
                    .fetch_one(&mut *conn)
                    .await?;
                let local = member
                    .email
                    .split('@')
                    .next()
                    .unwrap_or_default()
                    .to_string();
                member.email = format!("{local}@{}.example", name.to_lowercase());
                Ok(())
            })
        })
        .create_list(&pool, 2)
        .await
        .unwrap();
    assert!(
        members.iter().all(|m| m.email.ends_with("@globex.example")),
        "{members:?}"
    );
    // The builder of the parent is cloned with the list: one Globex per member.
    assert_eq!(count(&pool, "orgs").await, 2);
}
