//! Factories on MySQL and MariaDB (feature `mysql`): `create` reading back what the database
//! assigned (keys, defaults), `create_list` of 10,000 rows in multi-row INSERTs, associations,
//! a caller's transaction, constraint errors that name table and constraint, a foreign-key cycle
//! closed in one graph (rows found again by their key) and refused where a row cannot be found
//! again; `db.rows` filling a table from the schema alone.
//!
//! On MariaDB rows come back from `INSERT … RETURNING`; on MySQL they are read back by their
//! `AUTO_INCREMENT` keys.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "test code: a failed expectation is a failed test"
)]

use seedbed::factory::{ConstraintKind, Graph};
use seedbed::prelude::*;
use sqlx::types::chrono::{DateTime, Utc};
use sqlx::{MySql, MySqlPool};

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
    plan: String,
    #[factory(generated)]
    joined: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Factory)]
#[factory(table = "boards")]
struct Board {
    #[factory(generated)]
    id: i64,
    #[factory(default = "Sprint")]
    name: String,
    #[factory(belongs_to = BoardColumn)]
    default_column_id: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Factory)]
#[factory(table = "board_columns")]
struct BoardColumn {
    #[factory(generated)]
    id: i64,
    #[factory(belongs_to = Board)]
    board_id: i64,
    #[factory(default = "Todo")]
    name: String,
}

async fn count(pool: &MySqlPool, table: &str) -> i64 {
    let sql = format!(
        "SELECT COUNT(*) FROM {}",
        seedbed::sql::quote_mysql_ident(table)
    );
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(pool)
        .await
        .unwrap()
}

#[seedbed::test(strategy = "template", migrations = "tests/mysql_factory_migrations")]
async fn create_reads_back_keys_and_defaults(db: TestDb<MySql>) {
    let member = Member::factory().create(&db).await.unwrap();
    assert!(member.id > 0);
    assert!(member.org_id > 0, "its org was created first");
    assert_eq!(member.plan, "free", "the column default, read back");
    assert!(
        member.joined.timestamp() > 0,
        "CURRENT_TIMESTAMP, read back"
    );
    let org: String = sqlx::query_scalar("SELECT slug FROM orgs WHERE id = ?")
        .bind(member.org_id)
        .fetch_one(&db.pool())
        .await
        .unwrap();
    assert!(org.starts_with("org-"), "{org}");
}

#[seedbed::test(strategy = "template", migrations = "tests/mysql_factory_migrations")]
async fn create_list_of_ten_thousand_rows(db: TestDb<MySql>) {
    let org = Org::factory().create(&db).await.unwrap();
    let members = Member::factory()
        .org_id(org.id)
        .create_list(&db, 10_000)
        .await
        .unwrap();
    assert_eq!(members.len(), 10_000);
    let mut ids: Vec<i64> = members.iter().map(|m| m.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 10_000, "every row read back once");
    assert!(members.iter().all(|m| m.org_id == org.id));
    assert_eq!(count(&db.pool(), "members").await, 10_000);
    // Read back in the order written: the n-th model is the n-th row.
    let first: String = sqlx::query_scalar("SELECT email FROM members WHERE id = ?")
        .bind(members[0].id)
        .fetch_one(&db.pool())
        .await
        .unwrap();
    assert_eq!(first, members[0].email);
}

#[seedbed::test(strategy = "rollback", migrations = "tests/mysql_factory_migrations")]
async fn create_in_the_callers_transaction(pool: MySqlPool) {
    let mut tx = pool.begin().await.unwrap();
    let org = Org::factory().create(&mut *tx).await.unwrap();
    tx.rollback().await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orgs WHERE id = ?")
        .bind(org.id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 0, "rolled back with the caller's transaction");
}

#[seedbed::test(strategy = "truncate", migrations = "tests/mysql_factory_migrations")]
async fn a_duplicate_names_table_and_constraint(db: TestDb<MySql>) {
    Org::factory().slug("taken").create(&db).await.unwrap();
    let err = Org::factory().slug("taken").create(&db).await.unwrap_err();
    let seedbed::Error::ConstraintViolation(violation) = &err else {
        panic!("not a constraint violation: {err}");
    };
    assert_eq!(violation.kind, ConstraintKind::Unique, "{err}");
    let text = err.to_string();
    assert!(text.contains("orgs"), "{text}");
    assert!(text.contains("orgs_slug_key"), "{text}");
    assert!(text.contains("taken"), "{text}");
}

#[seedbed::test(strategy = "truncate", migrations = "tests/mysql_factory_migrations")]
async fn a_failed_check_names_its_constraint(db: TestDb<MySql>) {
    let err = Org::factory().name("").create(&db).await.unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(&err, seedbed::Error::ConstraintViolation(v) if v.kind == ConstraintKind::Check),
        "{text}"
    );
    assert!(text.contains("orgs_name_present"), "{text}");
}

#[seedbed::test(strategy = "truncate", migrations = "tests/mysql_factory_migrations")]
async fn a_foreign_key_cycle_closes_in_one_graph(db: TestDb<MySql>) {
    // Without a cycle, both directions work: a column on a new board, a board with a new default
    // column.
    BoardColumn::factory().create(&db).await.unwrap();
    Board::factory()
        .default_column(BoardColumn::factory())
        .create(&db)
        .await
        .unwrap();
    // A board whose default column is one of its own columns: the board goes in with no default
    // column, found again by its AUTO_INCREMENT key once its column exists, and updated.
    let mut graph = Graph::new();
    let board = graph.add(Board::factory().name("Sprint 1"));
    let column = graph.add(BoardColumn::factory().board(board));
    graph.update(&board, |b| b.default_column(column));
    let created = graph.create(&db).await.unwrap();
    let (board, column) = (created.get(&board).unwrap(), created.get(&column).unwrap());
    assert_eq!(
        board.default_column_id,
        Some(column.id),
        "the model read back"
    );
    assert_eq!(column.board_id, board.id);
    let stored: Option<i64> =
        sqlx::query_scalar("SELECT default_column_id FROM boards WHERE name = 'Sprint 1'")
            .fetch_one(&db.pool())
            .await
            .unwrap();
    assert_eq!(stored, Some(column.id), "the row in the database");
}

/// A row keyed by columns the model writes itself: a composite primary key, no AUTO_INCREMENT.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Factory)]
#[factory(table = "tags")]
struct Tag {
    #[factory(belongs_to = Org)]
    org_id: i64,
    #[factory(sequence = "t{n}")]
    code: String,
    #[factory(default = "tag")]
    label: String,
}

#[seedbed::test(strategy = "template", migrations = "tests/mysql_factory_migrations")]
async fn rows_keyed_by_the_model_are_read_back_in_the_order_written(db: TestDb<MySql>) {
    let org = Org::factory().create(&db).await.unwrap();
    // More rows than one statement's parameters allow: two INSERTs, two reads.
    let tags = Tag::factory()
        .org_id(org.id)
        .create_list(&db, 25_000)
        .await
        .unwrap();
    assert_eq!(tags.len(), 25_000);
    // The order written, not the key's order ("t10" sorts before "t2").
    let codes: Vec<String> = tags.iter().map(|t| t.code.clone()).collect();
    let first = codes[0].trim_start_matches('t').parse::<usize>().unwrap();
    let expected: Vec<String> = (first..first + 25_000).map(|n| format!("t{n}")).collect();
    assert!(codes == expected, "{:?}", &codes[..12]);
    // The trigger's change, read back from the table.
    assert!(tags.iter().all(|t| t.label == "TAG" && t.org_id == org.id));
    let one = Tag::factory().create(&db).await.unwrap();
    assert_eq!(one.label, "TAG");
    assert!(one.org_id != org.id, "a new org for it");
    assert_eq!(count(&db.pool(), "tags").await, 25_001);
}

/// A board model that writes 0 to the AUTO_INCREMENT key it should have marked generated.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Factory)]
#[factory(table = "boards")]
struct ZeroKeyBoard {
    #[factory(default = 0)]
    id: i64,
    #[factory(default = "Zero")]
    name: String,
    default_column_id: Option<i64>,
}

/// On MySQL the server's key cannot be read back (no RETURNING): refused before the INSERT,
/// saying what to mark. MariaDB returns the row with the key it assigned.
#[seedbed::test(strategy = "truncate", migrations = "tests/mysql_factory_migrations")]
async fn a_key_the_server_assigns_must_be_marked_generated(db: TestDb<MySql>) {
    use seedbed::backend::Provision;
    let server = <MySql as Provision>::server().await.unwrap();
    let created = ZeroKeyBoard::factory().create(&db).await;
    match server.flavor().unwrap() {
        seedbed::backend::mysql::Flavor::MariaDb => {
            assert!(created.unwrap().id > 0, "the key the server assigned");
        }
        seedbed::backend::mysql::Flavor::MySql => {
            let text = created.unwrap_err().to_string();
            assert!(
                text.contains("AUTO_INCREMENT") && text.contains("#[factory(generated)]"),
                "{text}"
            );
            assert_eq!(count(&db.pool(), "boards").await, 0, "nothing written");
        }
    }
}

/// A board model whose key the factory sets itself: nothing marks a column by which the row
/// could be found again after its INSERT.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Factory)]
#[factory(table = "boards")]
struct KeyedBoard {
    #[factory(sequence = |n| 1_000_000 + n as i64)]
    id: i64,
    #[factory(default = "Keyed")]
    name: String,
    #[factory(belongs_to = KeyedColumn)]
    default_column_id: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Factory)]
#[factory(table = "board_columns")]
struct KeyedColumn {
    #[factory(generated)]
    id: i64,
    #[factory(belongs_to = KeyedBoard)]
    board_id: i64,
    #[factory(default = "Todo")]
    name: String,
}

#[seedbed::test(strategy = "truncate", migrations = "tests/mysql_factory_migrations")]
async fn a_cycle_through_a_row_that_cannot_be_found_again_is_refused(db: TestDb<MySql>) {
    // Without a cycle the model works: its rows need not be found again.
    let board = KeyedBoard::factory().create(&db).await.unwrap();
    assert_eq!(board.default_column_id, None);
    let mut graph = Graph::new();
    let board = graph.add(KeyedBoard::factory().name("Refused"));
    let column = graph.add(KeyedColumn::factory().board(board));
    graph.update(&board, |b| b.default_column(column));
    let err = graph.create(&db).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, seedbed::Error::Factory { .. }), "{text}");
    assert!(text.contains("boards"), "names the table: {text}");
    assert!(
        text.contains("#[factory(generated)]") && text.contains("#[factory(unique)]"),
        "says what to mark: {text}"
    );
    // Refused before anything was written.
    let refused: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM boards WHERE name = 'Refused'")
        .fetch_one(&db.pool())
        .await
        .unwrap();
    assert_eq!(refused, 0);
    assert_eq!(count(&db.pool(), "board_columns").await, 0);
}

/// `db.rows` on MySQL: rows for a table without a model struct, from the schema alone (its
/// ENUM labels, unique keys, defaults), with the parents they need created first.
#[seedbed::test(strategy = "template", migrations = "tests/mysql_factory_migrations")]
async fn rows_from_the_schema_alone(db: TestDb<MySql>) {
    let members = db
        .rows("members")
        .set("plan", "pro")
        .create(12)
        .await
        .unwrap();
    assert_eq!(members.len(), 12);
    for m in &members {
        assert_eq!(m["plan"], "pro", "{m}");
        assert!(m["id"].as_i64().is_some_and(|id| id > 0), "{m}");
        assert!(m["email"].as_str().is_some_and(|e| !e.is_empty()), "{m}");
    }
    let pool = db.pool();
    assert_eq!(count(&pool, "members").await, 12);
    assert!(
        count(&pool, "orgs").await >= 1,
        "the parents were created first"
    );
    let pro: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM members WHERE plan = 'pro'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(pro, 12);
    let err = db.rows("no_such_table").create(1).await.unwrap_err();
    assert!(err.to_string().contains("no_such_table"), "{err}");
}
