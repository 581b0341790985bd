//! Per-test overhead of the isolation strategies on SQLite (the reference schema in
//! migrations/sqlite), beside raw baselines, in one run (the machine is shared and noisy: compare
//! ratios within a run).
//!
//! - `sqlite_baseline/begin_rollback_open_connection`: BEGIN, one insert, ROLLBACK on a
//!   connection that stays open, to a file opened as seedbed opens its slots (WAL,
//!   `synchronous = OFF`): the floor of any per-test harness.
//! - `sqlite_baseline/create_migrate_delete`: a new database file, every migration, the insert,
//!   the file deleted, with sqlx's default options: what `#[sqlx::test]` does for each SQLite
//!   test.
//! - `sqlite_strategy/*`: acquire, the same insert, finish, for each strategy.
//! - `sqlite_clone/*`: how Template could copy its image: a file copy (what it does) against
//!   `VACUUM INTO`.
//!
//! Run with `cargo bench --features sqlite --bench isolation_sqlite`; the files live under the
//! target directory.

#![allow(
    clippy::expect_used,
    reason = "a bench that cannot set up has nothing to measure"
)]

use criterion::{Criterion, criterion_group, criterion_main};
use seedbed::backend::Provision;
use seedbed::backend::sqlite::Directory;
use seedbed::{Isolation, Strategy};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{Connection, Sqlite, SqliteConnection, SqlitePool};

const MIGRATIONS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite");

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

async fn insert(pool: &SqlitePool, i: u64) {
    sqlx::query("INSERT INTO organizations (name, slug) VALUES ('Bench', ?)")
        .bind(format!("bench-{i}"))
        .execute(pool)
        .await
        .expect("insert");
}

async fn directory() -> &'static Directory {
    <Sqlite as Provision>::server()
        .await
        .expect("the SQLite directory")
}

/// The options seedbed's slots are opened with (WAL, `synchronous = OFF`), for the floor.
fn options(file: &std::path::Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(file)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Off)
}

/// The options `#[sqlx::test]` opens its per-test database with: sqlx's defaults.
fn sqlx_test_options(file: &std::path::Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(file)
        .create_if_missing(true)
}

fn baselines(c: &mut Criterion) {
    let rt = runtime();
    let dir = rt.block_on(directory());
    let migrator = rt.block_on(async {
        sqlx::migrate::Migrator::new(std::path::Path::new(MIGRATIONS))
            .await
            .expect("migrations/sqlite")
    });
    let mut group = c.benchmark_group("sqlite_baseline");

    // A migrated file to BEGIN/ROLLBACK on.
    let floor = dir.path().join("bench_floor.db");
    let _ = std::fs::remove_file(&floor);
    let mut conn = rt.block_on(async {
        let mut conn = SqliteConnection::connect_with(&options(&floor))
            .await
            .expect("floor database");
        migrator.run(&mut conn).await.expect("migrate the floor");
        conn
    });
    let mut i = 0u64;
    group.bench_function("begin_rollback_open_connection", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut tx = conn.begin().await.expect("begin");
                i += 1;
                sqlx::query("INSERT INTO organizations (name, slug) VALUES ('Bench', ?)")
                    .bind(format!("bench-{i}"))
                    .execute(&mut *tx)
                    .await
                    .expect("insert");
                tx.rollback().await.expect("rollback");
            })
        })
    });
    rt.block_on(conn.close()).expect("close");
    let _ = std::fs::remove_file(&floor);

    let mut n = 0u64;
    group.bench_function("create_migrate_delete", |b| {
        b.iter(|| {
            rt.block_on(async {
                n += 1;
                let file = dir.path().join(format!("bench_sqlx_{n}.db"));
                let mut conn = SqliteConnection::connect_with(&sqlx_test_options(&file))
                    .await
                    .expect("create");
                migrator.run(&mut conn).await.expect("migrate");
                i += 1;
                sqlx::query("INSERT INTO organizations (name, slug) VALUES ('Bench', ?)")
                    .bind(format!("bench-{i}"))
                    .execute(&mut conn)
                    .await
                    .expect("insert");
                conn.close().await.expect("close");
                std::fs::remove_file(&file).expect("delete");
            })
        })
    });
    group.finish();
}

fn strategies(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("sqlite_strategy");
    for strategy in [
        Strategy::Rollback,
        Strategy::Truncate,
        Strategy::Template,
        Strategy::Namespace,
    ] {
        let iso = || {
            Isolation::new(strategy)
                .migrations(MIGRATIONS)
                .test_name("bench::isolation_sqlite")
        };
        // Built once, before the clock: the image every test starts from.
        rt.block_on(async {
            let db = iso().acquire_on::<Sqlite>().await.expect("acquire");
            db.finish().await.expect("finish");
        });
        let mut i = 0u64;
        group.bench_function(strategy.name(), |b| {
            b.iter(|| {
                rt.block_on(async {
                    let db = iso().acquire_on::<Sqlite>().await.expect("acquire");
                    i += 1;
                    insert(&db.pool(), i).await;
                    db.finish().await.expect("finish");
                })
            })
        });
    }
    group.finish();
}

fn clone_methods(c: &mut Criterion) {
    let rt = runtime();
    let dir = rt.block_on(directory());
    let image = dir.path().join("bench_image.db");
    let _ = std::fs::remove_file(&image);
    rt.block_on(async {
        let mut conn = SqliteConnection::connect_with(&options(&image))
            .await
            .expect("image");
        sqlx::migrate::Migrator::new(std::path::Path::new(MIGRATIONS))
            .await
            .expect("migrations/sqlite")
            .run(&mut conn)
            .await
            .expect("migrate the image");
        conn.close().await.expect("close");
    });
    let copy = dir.path().join("bench_copy.db");
    let mut group = c.benchmark_group("sqlite_clone");
    group.bench_function("file_copy", |b| {
        b.iter(|| {
            std::fs::copy(&image, &copy).expect("copy");
            std::fs::remove_file(&copy).expect("remove");
        })
    });
    let pool = rt.block_on(async {
        SqlitePool::connect_with(options(&image))
            .await
            .expect("open the image")
    });
    group.bench_function("vacuum_into", |b| {
        b.iter(|| {
            rt.block_on(async {
                let sql = format!(
                    "VACUUM INTO {}",
                    seedbed::sql::quote_literal(&copy.display().to_string())
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(&pool)
                    .await
                    .expect("vacuum into");
            });
            std::fs::remove_file(&copy).expect("remove");
        })
    });
    rt.block_on(pool.close());
    let _ = std::fs::remove_file(&image);
    group.finish();
}

criterion_group!(benches, baselines, strategies, clone_methods);
criterion_main!(benches);
