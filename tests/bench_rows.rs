//! The row generator of `seedbed bench` against a real server: it fills every table of the
//! reference schema from introspection alone, and says which tables of other schemas it cannot
//! fill, and why.
#![allow(
    clippy::expect_used,
    reason = "test helpers: their failure is the test's"
)]

use std::collections::HashMap;

use seedbed::backend::postgres::admin;
use seedbed::bench::RowPlan;
use seedbed::isolation::{Migrations, databases};
use seedbed::server::Server;
use seedbed::sql::QualifiedName;
use sqlx::{Connection, PgConnection};

async fn reference() -> PgConnection {
    let server = Server::resolve().await.expect("a PostgreSQL server");
    let migrations = Migrations::from_dir("migrations")
        .await
        .expect("migrations/");
    let db = databases::ensure(server, &migrations, "inspect")
        .await
        .expect("migrated reference schema");
    PgConnection::connect_with(&server.database_options(&db.name))
        .await
        .expect("connect to the migrated database")
}

/// A database of its own with `sql` applied, dropped by [`Scratch::drop_it`].
struct Scratch {
    name: String,
    conn: PgConnection,
}

impl Scratch {
    async fn new(tag: &str, sql: &str) -> Scratch {
        let server = Server::resolve().await.expect("a PostgreSQL server");
        let name = format!("seedbed_test_rows_{tag}_{}", std::process::id());
        let mut admin = server.connect().await.expect("connect");
        admin::drop_database(&mut admin, &name).await.expect("drop");
        admin::create_database(&mut admin, &name, None, admin::CloneMethod::Default)
            .await
            .expect("create");
        admin.close().await.expect("close");
        let mut conn = PgConnection::connect_with(&server.database_options(&name))
            .await
            .expect("connect");
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(&mut conn)
            .await
            .expect("schema");
        Scratch { name, conn }
    }

    async fn drop_it(self) {
        let server = Server::resolve().await.expect("a PostgreSQL server");
        self.conn.close().await.expect("close");
        let mut admin = server.connect().await.expect("connect");
        admin::drop_database(&mut admin, &self.name)
            .await
            .expect("drop");
    }
}

async fn counts(conn: &mut PgConnection, tables: &[QualifiedName]) -> HashMap<String, i64> {
    let mut out = HashMap::new();
    for t in tables {
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {t}")))
            .fetch_one(&mut *conn)
            .await
            .expect("count");
        out.insert(t.unquoted(), n);
    }
    out
}

#[tokio::test]
async fn fills_every_table_of_the_reference_schema() {
    let mut conn = reference().await;
    let plan = RowPlan::analyze(&mut conn, 25).await.expect("a plan");
    assert!(plan.skipped().is_empty(), "skipped: {:#?}", plan.skipped());
    assert_eq!(plan.schema_tables(), 33);
    let tables: Vec<QualifiedName> = plan.tables().cloned().collect();
    assert_eq!(tables.len(), 33, "{tables:?}");

    let mut tx = conn.begin().await.expect("begin");
    sqlx::raw_sql("SET CONSTRAINTS ALL IMMEDIATE")
        .execute(&mut *tx)
        .await
        .expect("immediate");
    let before = counts(&mut tx, &tables).await;
    let stats = plan.fill(&mut *tx, &tables, 25, 7).await.expect("fill");
    let after = counts(&mut tx, &tables).await;
    for t in &tables {
        let name = t.unquoted();
        assert!(
            after[&name] > before[&name],
            "{name}: {} rows before, {} after",
            before[&name],
            after[&name]
        );
    }
    assert!(stats.rows >= 33 * 10, "{stats:?}");

    // The shapes the reference schema is made of.
    let one = |sql: &'static str| sqlx::query_scalar::<_, i64>(sql);
    // A nullable self-reference: half the comments answer another.
    assert!(
        one("SELECT count(*) FROM comments WHERE parent_id IS NOT NULL")
            .fetch_one(&mut *tx)
            .await
            .expect("comments")
            > 0
    );
    // The partitioned table's rows went to its partitions.
    assert!(
        one("SELECT count(*) FROM ONLY time_entries_default")
            .fetch_one(&mut *tx)
            .await
            .expect("partitions")
            + one("SELECT count(*) FROM ONLY time_entries_2025")
                .fetch_one(&mut *tx)
                .await
                .expect("partitions")
            + one("SELECT count(*) FROM ONLY time_entries_2026")
                .fetch_one(&mut *tx)
                .await
                .expect("partitions")
            >= 25
    );
    // Checks with regular expressions, the email domain, an enum, a two-column check.
    assert_eq!(
        one("SELECT count(*) FROM projects WHERE key !~ '^[A-Z][A-Z0-9]{1,9}$'")
            .fetch_one(&mut *tx)
            .await
            .expect("keys"),
        0
    );
    assert_eq!(
        one("SELECT count(*) FROM invoices WHERE due_on < issued_on")
            .fetch_one(&mut *tx)
            .await
            .expect("invoices"),
        0
    );
    tx.rollback().await.expect("rollback");
    conn.close().await.expect("close");
}

#[tokio::test]
async fn chosen_tables_bring_the_parents_their_rows_need() {
    let mut conn = reference().await;
    let plan = RowPlan::analyze(&mut conn, 5).await.expect("a plan");
    for seed in 0..25u64 {
        let tables = plan.choose_tables(4, seed);
        assert!(!tables.is_empty());
        let mut tx = conn.begin().await.expect("begin");
        let stats = plan
            .fill(&mut *tx, &tables, 5, seed)
            .await
            .unwrap_or_else(|e| panic!("seed {seed}, tables {tables:?}: {e}"));
        assert!(stats.rows >= tables.len(), "{tables:?}: {stats:?}");
        tx.rollback().await.expect("rollback");
    }
    conn.close().await.expect("close");
}

/// What a test process of `seedbed bench` does: it reads the plan the bench saved, and takes its
/// own part of the run-unique values. Copies that did not would write the same unique values.
#[tokio::test]
async fn saved_plans_write_the_same_tables_and_their_parts_never_collide() {
    let mut conn = reference().await;
    let plan = RowPlan::analyze(&mut conn, 10).await.expect("a plan");
    let path = std::env::temp_dir().join(format!("seedbed-test-plan-{}.json", std::process::id()));
    plan.save(&path).expect("save");
    let load = |part: Option<u64>| {
        let mut copy = RowPlan::load(&path).expect("load");
        if let Some(part) = part {
            copy.interleave(part, 2).expect("interleave");
        }
        copy
    };
    let copy = load(None);
    assert!(copy.tables().eq(plan.tables()));
    assert_eq!(copy.schema_tables(), plan.schema_tables());
    let tables: Vec<QualifiedName> = copy.tables().cloned().collect();
    let seed = 11;
    assert_eq!(copy.choose_tables(6, seed), plan.choose_tables(6, seed));

    // Two parts (two tests: two seeds) write every table in one transaction: no unique value
    // repeats.
    let mut tx = conn.begin().await.expect("begin");
    for part in 0..2 {
        load(Some(part))
            .fill(&mut *tx, &tables, 10, seed + part)
            .await
            .unwrap_or_else(|e| panic!("part {part}: {e}"));
    }
    tx.rollback().await.expect("rollback");

    // Two copies that did not take their parts write the same unique values.
    let mut tx = conn.begin().await.expect("begin");
    load(None)
        .fill(&mut *tx, &tables, 10, seed)
        .await
        .expect("the first copy");
    let err = load(None)
        .fill(&mut *tx, &tables, 10, seed + 1)
        .await
        .expect_err("the same unique values twice");
    assert!(matches!(err, seedbed::Error::BenchRows { .. }), "{err}");
    tx.rollback().await.expect("rollback");
    conn.close().await.expect("close");
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn tables_it_cannot_fill_are_skipped_with_the_reason() {
    let scratch = Scratch::new(
        "skips",
        "CREATE TABLE plain (id serial PRIMARY KEY, name text NOT NULL);
         -- A check the generator cannot read: the probe finds that it fails.
         CREATE TABLE picky (id int PRIMARY KEY, code text NOT NULL
             CONSTRAINT picky_code_reversed CHECK (reverse(code) = 'cba'));
         CREATE TABLE child_of_picky (id int PRIMARY KEY, picky_id int NOT NULL REFERENCES picky);
         -- A cycle of NOT NULL, non-deferrable keys.
         CREATE TABLE hen (id int PRIMARY KEY, egg_id int NOT NULL);
         CREATE TABLE egg (id int PRIMARY KEY, hen_id int NOT NULL REFERENCES hen);
         ALTER TABLE hen ADD CONSTRAINT hen_egg_fkey FOREIGN KEY (egg_id) REFERENCES egg;
         -- A type it has no generator for.
         CREATE TABLE shapes (id int PRIMARY KEY, outline polygon NOT NULL);",
    )
    .await;
    let mut conn = scratch.conn;
    let plan = RowPlan::analyze(&mut conn, 5).await.expect("a plan");
    let tables: Vec<String> = plan.tables().map(|t| t.unquoted()).collect();
    assert_eq!(tables, ["public.plain"]);
    let skipped: HashMap<String, String> = plan
        .skipped()
        .iter()
        .map(|s| (s.table.unquoted(), s.to_string()))
        .collect();
    let why = |t: &str| skipped.get(t).cloned().unwrap_or_default();
    assert!(
        why("public.picky").contains("constraint picky_code_reversed"),
        "{}",
        why("public.picky")
    );
    assert!(
        why("public.child_of_picky").contains("need rows of public.picky"),
        "{}",
        why("public.child_of_picky")
    );
    assert!(why("public.hen").contains("cycle"), "{}", why("public.hen"));
    assert!(why("public.egg").contains("cycle"), "{}", why("public.egg"));
    assert!(
        why("public.shapes").contains("column outline") && why("public.shapes").contains("polygon"),
        "{}",
        why("public.shapes")
    );
    Scratch {
        name: scratch.name,
        conn,
    }
    .drop_it()
    .await;
}

#[tokio::test]
async fn a_schema_it_cannot_fill_at_all_is_an_error_naming_table_and_column() {
    let scratch = Scratch::new(
        "nothing",
        "CREATE TYPE pair AS (a int, b int);
         CREATE TABLE pairs (id int PRIMARY KEY, p pair NOT NULL);",
    )
    .await;
    let mut conn = scratch.conn;
    let err = RowPlan::analyze(&mut conn, 5)
        .await
        .expect_err("nothing to fill")
        .to_string();
    assert!(
        err.contains("public.pairs, column p") && err.contains("pair"),
        "{err}"
    );
    Scratch {
        name: scratch.name,
        conn,
    }
    .drop_it()
    .await;
}

/// On SQLite, the same application (migrations/sqlite): every table filled, twice, by two
/// tests' values, with every foreign key holding (deferred ones included) at the commit.
#[cfg(feature = "sqlite")]
#[tokio::test]
async fn fills_every_table_of_the_sqlite_reference_schema() {
    use sqlx::sqlite::SqliteConnectOptions;
    let file = std::env::temp_dir().join(format!("seedbed-bench-rows-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&file);
    let options = SqliteConnectOptions::new()
        .filename(&file)
        .create_if_missing(true)
        .foreign_keys(true);
    let mut conn = sqlx::SqliteConnection::connect_with(&options)
        .await
        .expect("a SQLite file");
    Migrations::from_dir("migrations/sqlite")
        .await
        .expect("migrations/sqlite")
        .apply(&mut conn)
        .await
        .expect("migrated");
    let plan = RowPlan::analyze_sqlite(&mut conn, 25)
        .await
        .expect("a plan");
    assert!(plan.skipped().is_empty(), "skipped: {:#?}", plan.skipped());
    assert_eq!(plan.schema_tables(), 33);
    let tables: Vec<QualifiedName> = plan.tables().cloned().collect();
    let mut tx = conn.begin().await.expect("begin");
    let first = plan.fill(&mut *tx, &tables, 25, 7).await.expect("fill");
    let second = plan
        .fill(&mut *tx, &tables, 25, 8)
        .await
        .expect("fill again");
    assert!(
        first.rows >= 33 * 20 && second.rows >= 33 * 20,
        "{first:?} {second:?}"
    );
    for t in &tables {
        let sql = format!("SELECT count(*) FROM {t}");
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(&mut *tx)
            .await
            .expect("count");
        assert!(n >= 2, "{}: {n} rows", t.unquoted());
    }
    tx.commit().await.expect("every key holds at the commit");
    let broken: i64 = sqlx::query_scalar("SELECT count(*) FROM pragma_foreign_key_check")
        .fetch_one(&mut conn)
        .await
        .expect("foreign_key_check");
    assert_eq!(broken, 0);
    conn.close().await.expect("close");
    let _ = std::fs::remove_file(&file);
}

/// The probe inside a caller's transaction is a savepoint: what the caller wrote before stays,
/// and its commit keeps it.
#[tokio::test]
async fn analyzing_inside_a_transaction_keeps_the_callers_writes() {
    let scratch = Scratch::new(
        "probe_tx",
        "CREATE TABLE kinds (id int PRIMARY KEY, name text NOT NULL);",
    )
    .await;
    let mut scratch = scratch;
    let mut tx = scratch.conn.begin().await.expect("begin");
    sqlx::raw_sql("INSERT INTO kinds VALUES (1, 'kept')")
        .execute(&mut *tx)
        .await
        .expect("insert");
    let plan = RowPlan::analyze(&mut tx, 3).await.expect("a plan");
    assert_eq!(plan.tables().count(), 1);
    tx.commit().await.expect("commit");
    let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM kinds WHERE name = 'kept'")
        .fetch_one(&mut scratch.conn)
        .await
        .expect("count");
    assert_eq!(kept, 1);
    scratch.drop_it().await;
}
