//! Factory throughput on SQLite (feature `sqlite`), beside hand-written baselines, in one run:
//!
//! - `sqlite_create_10000_users/factory_create_list`: `User::factory().create_list(&pool,
//!   10_000)`: build 10,000 users and insert them with multi-row `INSERT … RETURNING`, decoding
//!   every row back.
//! - `sqlite_create_10000_users/prepared_insert_loop_in_transaction`: the same built users, one
//!   prepared `INSERT … RETURNING` per row (sqlx caches the statement) in one transaction.
//! - `sqlite_create_10000_users/insert_per_row_autocommit`: the same, each row its own
//!   transaction.
//!
//! The database is a file (in the target directory) with sqlx's defaults (WAL journal), as a
//! test suite on SQLite has it; each iteration starts from an empty table (not timed). Besides
//! criterion's estimates, each variant prints the median of its iterations and rows/s.
//!
//! Run with `cargo bench --bench factory_sqlite --features sqlite`.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "a bench that cannot set up has nothing to measure"
)]

use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use seedbed::context::TestContext;
use seedbed::prelude::*;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

const USERS: usize = 10_000;

#[allow(dead_code, reason = "read back from the database, never looked at")]
#[derive(Debug, Clone, sqlx::FromRow, Factory)]
#[factory(table = "users")]
struct User {
    #[factory(generated)]
    id: i64,
    #[factory(sequence = "user{n}@example.com")]
    email: String,
    #[factory(faker = seedbed::factory::fake::faker::name::en::Name())]
    name: String,
    #[factory(default = false)]
    is_admin: bool,
}

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    is_admin BOOLEAN NOT NULL DEFAULT 0
)";

const INSERT_USER: &str = "INSERT INTO users (email, name, is_admin) VALUES (?, ?, ?) RETURNING id, email, name, is_admin";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

async fn pool() -> SqlitePool {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-sqlite");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("factory.db");
    let _ = std::fs::remove_file(&path);
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
        .unwrap()
        .create_if_missing(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .unwrap();
    sqlx::raw_sql(SCHEMA).execute(&pool).await.unwrap();
    pool
}

/// The median of the recorded iterations, and the rate of `rows` per iteration.
fn report(name: &str, times: &Mutex<Vec<Duration>>) {
    let mut times = times.lock().unwrap().clone();
    if times.is_empty() {
        return;
    }
    times.sort();
    let median = times[times.len() / 2];
    let rate = USERS as f64 / median.as_secs_f64();
    println!(
        "MEDIAN {name}: {:.2} ms over {} iterations, {rate:.0} rows/s",
        median.as_secs_f64() * 1e3,
        times.len()
    );
}

type Op = fn(SqlitePool, Arc<TestContext>) -> Pin<Box<dyn Future<Output = ()>>>;

/// Times `op` on an empty table per iteration; emptying it is not timed.
fn bench(
    c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &tokio::runtime::Runtime,
    pool: &SqlitePool,
    name: &str,
    op: Op,
) {
    let times = Arc::new(Mutex::new(Vec::new()));
    let recorded = Arc::clone(&times);
    c.bench_function(name, |b| {
        b.to_async(rt).iter_custom(|iters| {
            let recorded = Arc::clone(&recorded);
            let pool = pool.clone();
            async move {
                let mut total = Duration::ZERO;
                for i in 0..iters {
                    sqlx::raw_sql("DELETE FROM users")
                        .execute(&pool)
                        .await
                        .unwrap();
                    let ctx = Arc::new(TestContext::builder(format!("bench::{i}")).seed(7).build());
                    let start = Instant::now();
                    op(pool.clone(), ctx).await;
                    let elapsed = start.elapsed();
                    total += elapsed;
                    recorded.lock().unwrap().push(elapsed);
                }
                total
            }
        });
    });
    report(name, &times);
}

fn factory_create_list(
    pool: SqlitePool,
    ctx: Arc<TestContext>,
) -> Pin<Box<dyn Future<Output = ()>>> {
    Box::pin(async move {
        let users = ctx
            .scope(User::factory().create_list(&pool, USERS))
            .await
            .unwrap();
        assert_eq!(users.len(), USERS);
    })
}

/// The users built as the factory builds them, then written one statement per row.
fn per_row(
    pool: SqlitePool,
    ctx: Arc<TestContext>,
    in_transaction: bool,
) -> Pin<Box<dyn Future<Output = ()>>> {
    Box::pin(async move {
        let users = ctx.sync_scope(|| User::factory().build_list(USERS));
        let mut conn = pool.acquire().await.unwrap();
        if in_transaction {
            sqlx::raw_sql("BEGIN").execute(&mut *conn).await.unwrap();
        }
        for u in &users {
            let _: User = sqlx::query_as(INSERT_USER)
                .bind(&u.email)
                .bind(&u.name)
                .bind(u.is_admin)
                .fetch_one(&mut *conn)
                .await
                .unwrap();
        }
        if in_transaction {
            sqlx::raw_sql("COMMIT").execute(&mut *conn).await.unwrap();
        }
    })
}

fn prepared_insert_loop_in_transaction(
    pool: SqlitePool,
    ctx: Arc<TestContext>,
) -> Pin<Box<dyn Future<Output = ()>>> {
    per_row(pool, ctx, true)
}

fn insert_per_row_autocommit(
    pool: SqlitePool,
    ctx: Arc<TestContext>,
) -> Pin<Box<dyn Future<Output = ()>>> {
    per_row(pool, ctx, false)
}

fn benches(c: &mut Criterion) {
    let rt = runtime();
    let pool = rt.block_on(pool());
    let mut group = c.benchmark_group("sqlite_create_10000_users");
    group.sample_size(10);
    bench(
        &mut group,
        &rt,
        &pool,
        "factory_create_list",
        factory_create_list,
    );
    bench(
        &mut group,
        &rt,
        &pool,
        "prepared_insert_loop_in_transaction",
        prepared_insert_loop_in_transaction,
    );
    bench(
        &mut group,
        &rt,
        &pool,
        "insert_per_row_autocommit",
        insert_per_row_autocommit,
    );
    group.finish();
}

criterion_group!(sqlite, benches);
criterion_main!(sqlite);
