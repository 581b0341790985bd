//! Factory throughput against the database, beside raw baselines, in one run (the machine is
//! shared and noisy: compare within a run).
//!
//! - `create_10000_users/factory_create_list`: `User::factory().create_list(&db, 10_000)`: build
//!   10,000 users (a sequence, a faker) and insert them with multi-row `INSERT … RETURNING`,
//!   decoding every row back.
//! - `create_10000_users/insert_per_row_in_transaction`: the same 10,000 built users, one
//!   `INSERT … RETURNING` per row inside one transaction (the test's, under Rollback).
//! - `create_10000_users/insert_per_row_autocommit`: the same, each row its own transaction
//!   (Truncate's committed database).
//! - `create_10000_users/copy_without_returning`: the same rows through `COPY … FROM STDIN`,
//!   nothing read back: what COPY would give where no row must come back.
//! - `graph_1000_nodes/issues_with_their_parents`: 250 issues, each creating its project, its
//!   organization and its reporter: 1,000 rows in four tables. Statements per table are printed.
//!
//! Every variant builds its users inside the timed part (the baselines with `build_list`), so
//! the ratios compare the writing. Each iteration gets a fresh test database state (not timed).
//! Besides criterion's estimates, each variant prints the median of its iterations and rows/s.
//!
//! Run with `cargo bench --bench factory`; the server is the one tests use (embedded unless
//! DATABASE_URL or SEEDBED_DATABASE_URL says otherwise).

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "a bench that cannot set up has nothing to measure"
)]

#[path = "../tests/models/mod.rs"]
mod models;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use models::{Issue, User};
use seedbed::{Isolation, Strategy, TestDb};
use sqlx::PgConnection;

const MIGRATIONS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
const USERS: usize = 10_000;
const ISSUES: usize = 250;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

async fn test_db(strategy: Strategy) -> TestDb {
    Isolation::new(strategy)
        .migrations(MIGRATIONS)
        .test_name("bench::factory")
        .seed(7)
        .acquire()
        .await
        .expect("a test database")
}

/// The median of the recorded iterations, and the rate of `rows` per iteration.
fn report(name: &str, rows: usize, times: &Mutex<Vec<Duration>>) {
    let mut times = times.lock().unwrap().clone();
    if times.is_empty() {
        return;
    }
    times.sort();
    let median = times[times.len() / 2];
    let rate = rows as f64 / median.as_secs_f64();
    println!(
        "MEDIAN {name}: {:.2} ms over {} iterations, {rate:.0} rows/s",
        median.as_secs_f64() * 1e3,
        times.len()
    );
}

/// Times `op` on a fresh test database per iteration; setup and cleanup are not timed.
fn bench_on<F>(
    c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &tokio::runtime::Runtime,
    name: &str,
    rows: usize,
    strategy: Strategy,
    op: F,
) where
    F: for<'a> Fn(&'a TestDb) -> Pin<Box<dyn Future<Output = ()> + 'a>>,
{
    let times = Arc::new(Mutex::new(Vec::new()));
    let recorded = Arc::clone(&times);
    let op = &op;
    c.bench_function(name, |b| {
        b.to_async(rt).iter_custom(|iters| {
            let recorded = Arc::clone(&recorded);
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let db = test_db(strategy).await;
                    let start = Instant::now();
                    op(&db).await;
                    let elapsed = start.elapsed();
                    total += elapsed;
                    recorded.lock().unwrap().push(elapsed);
                    db.finish().await.expect("finish");
                }
                total
            }
        });
    });
    report(name, rows, &times);
}

/// The users of a test database's context, built as the factory builds them.
fn build_users(db: &TestDb) -> Vec<User> {
    Arc::clone(db.context()).sync_scope(|| User::factory().build_list(USERS))
}

const INSERT_USER: &str = "INSERT INTO users (email, display_name, is_admin, invited_by_id) \
                           VALUES ($1, $2, $3, $4) RETURNING id, email, display_name, is_admin, \
                           invited_by_id, created_at";

async fn insert_per_row(conn: &mut PgConnection, users: &[User]) {
    for u in users {
        let _: User = sqlx::query_as(INSERT_USER)
            .bind(&u.email)
            .bind(&u.display_name)
            .bind(u.is_admin)
            .bind(u.invited_by_id)
            .fetch_one(&mut *conn)
            .await
            .expect("insert");
    }
}

/// Builds the users and inserts them one statement per row on one connection: in the test's
/// transaction under Rollback, each in its own under Truncate.
fn insert_built_users_per_row(db: &TestDb) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async move {
        let users = build_users(db);
        let mut conn = db.pool().acquire().await.expect("connection");
        insert_per_row(&mut conn, &users).await;
    })
}

/// COPY's text format: tabs between columns, `\N` for NULL, backslash escapes.
fn copy_text(users: &[User]) -> Vec<u8> {
    fn escape(out: &mut String, s: &str) {
        for ch in s.chars() {
            match ch {
                '\\' => out.push_str("\\\\"),
                '\t' => out.push_str("\\t"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                c => out.push(c),
            }
        }
    }
    let mut out = String::with_capacity(users.len() * 64);
    for u in users {
        escape(&mut out, &u.email);
        out.push('\t');
        escape(&mut out, &u.display_name);
        out.push('\t');
        out.push_str(if u.is_admin { "t" } else { "f" });
        out.push('\t');
        match u.invited_by_id {
            Some(id) => out.push_str(&id.to_string()),
            None => out.push_str("\\N"),
        }
        out.push('\n');
    }
    out.into_bytes()
}

fn create_users(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("create_10000_users");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8));

    bench_on(
        &mut group,
        &rt,
        "factory_create_list",
        USERS,
        Strategy::Rollback,
        |db| {
            Box::pin(async move {
                let users = User::factory()
                    .create_list(db, USERS)
                    .await
                    .expect("create");
                assert_eq!(users.len(), USERS);
            })
        },
    );
    bench_on(
        &mut group,
        &rt,
        "insert_per_row_in_transaction",
        USERS,
        Strategy::Rollback,
        insert_built_users_per_row,
    );
    bench_on(
        &mut group,
        &rt,
        "insert_per_row_autocommit",
        USERS,
        Strategy::Truncate,
        insert_built_users_per_row,
    );
    bench_on(
        &mut group,
        &rt,
        "copy_without_returning",
        USERS,
        Strategy::Rollback,
        |db| {
            Box::pin(async move {
                let users = build_users(db);
                let mut conn = db.pool().acquire().await.expect("connection");
                let mut copy = conn
                    .copy_in_raw(
                        "COPY users (email, display_name, is_admin, invited_by_id) FROM STDIN",
                    )
                    .await
                    .expect("copy");
                copy.send(copy_text(&users)).await.expect("send");
                let rows = copy.finish().await.expect("finish");
                assert_eq!(rows, USERS as u64);
            })
        },
    );
    group.finish();
}

fn create_graph(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("graph_1000_nodes");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    bench_on(
        &mut group,
        &rt,
        "issues_with_their_parents",
        4 * ISSUES,
        Strategy::Rollback,
        |db| {
            Box::pin(async move {
                Issue::factory()
                    .create_list(db, ISSUES)
                    .await
                    .expect("create");
            })
        },
    );
    group.finish();

    // Statements per table for one graph.
    rt.block_on(async {
        let db = test_db(Strategy::Rollback).await;
        Issue::factory()
            .create_list(&db, ISSUES)
            .await
            .expect("create");
        println!("STATEMENTS graph of {} rows:\n{}", 4 * ISSUES, db.stats());
        db.finish().await.expect("finish");
    });
}

criterion_group!(benches, create_users, create_graph);
criterion_main!(benches);
