//! Suite data written once against data written by every test, in one run (the machine is
//! shared and noisy: compare within a run). 10,000 users, the way a suite needs a populated
//! table to test search or pagination:
//!
//! - `seed_10000_users/seeding_per_test`: each test acquires a Rollback database and creates
//!   the 10,000 users itself (`create_list`, multi-row INSERTs), then finishes: what a suite
//!   without suite data does.
//! - `seed_10000_users/seeded_template`: each test acquires a Template clone of the database
//!   seeded once by `#[seedbed::seed]` (built before the first sample, not timed), reads the
//!   count, finishes.
//! - `seed_10000_users/seeded_template_warm`: the same, with 100 ms between tests (not timed),
//!   as a suite whose tests do work gives Template's warm pool time to make the next clone
//!   ready.
//! - `seed_10000_users/seeded_rollback`: the same seed, shared under Rollback.
//!
//! A test is timed whole: acquire, its work, finish. Each variant prints the median of its
//! iterations, and the ratios to `seeding_per_test` are printed at the end, with what 100 tests
//! cost either way (the seeded total includes building the seeded template once, measured as
//! one per-test seeding plus the first acquire).
//!
//! Run with `cargo bench --bench seed`; the server is the one tests use (embedded unless
//! DATABASE_URL or SEEDBED_DATABASE_URL says otherwise).

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "a bench that cannot set up has nothing to measure"
)]

#[path = "../tests/models/mod.rs"]
mod models;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use models::User;
use seedbed::{Isolation, Strategy, TestDb};
use sqlx::PgConnection;

const MIGRATIONS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
const USERS: usize = 10_000;
const TESTS: u32 = 100;

#[seedbed::seed]
async fn ten_thousand_users(conn: &mut PgConnection) -> Result<(), seedbed::Error> {
    User::factory().create_list(&mut *conn, USERS).await?;
    Ok(())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn isolation(strategy: Strategy, seeded: bool) -> Isolation {
    let iso = Isolation::new(strategy)
        .migrations(MIGRATIONS)
        .test_name("bench::seed")
        .seed(7);
    if seeded {
        iso.seed_data(&ten_thousand_users)
    } else {
        iso
    }
}

async fn users(db: &TestDb) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&db.pool())
        .await
        .expect("count")
}

/// One test: acquire, `work`, finish; its time.
async fn one_test(strategy: Strategy, seeded: bool) -> Duration {
    let start = Instant::now();
    let db = isolation(strategy, seeded)
        .acquire()
        .await
        .expect("a test database");
    if !seeded {
        User::factory()
            .create_list(&db, USERS)
            .await
            .expect("create_list");
    }
    assert_eq!(users(&db).await, USERS as i64);
    db.finish().await.expect("finish");
    start.elapsed()
}

fn median(times: &Mutex<Vec<Duration>>) -> Option<Duration> {
    let mut times = times.lock().unwrap().clone();
    times.sort();
    times.get(times.len() / 2).copied()
}

fn bench(c: &mut Criterion) {
    let rt = runtime();
    // The first seeded acquire builds the seeded databases (once per checksum, kept between
    // runs); its time is reported, not sampled.
    let first_template = rt.block_on(one_test(Strategy::Template, true));
    let first_rollback = rt.block_on(one_test(Strategy::Rollback, true));
    println!(
        "FIRST seeded acquire (builds the seeded database unless an earlier run did): template \
         {:.1} ms, rollback {:.1} ms",
        first_template.as_secs_f64() * 1e3,
        first_rollback.as_secs_f64() * 1e3
    );

    let mut group = c.benchmark_group("seed_10000_users");
    group.sample_size(10);
    let mut medians = Vec::new();
    for (name, strategy, seeded, pause) in [
        (
            "seeding_per_test",
            Strategy::Rollback,
            false,
            Duration::ZERO,
        ),
        ("seeded_template", Strategy::Template, true, Duration::ZERO),
        (
            "seeded_template_warm",
            Strategy::Template,
            true,
            Duration::from_millis(100),
        ),
        ("seeded_rollback", Strategy::Rollback, true, Duration::ZERO),
    ] {
        let times = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&times);
        group.bench_function(name, |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let recorded = Arc::clone(&recorded);
                async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        tokio::time::sleep(pause).await;
                        let elapsed = one_test(strategy, seeded).await;
                        recorded.lock().unwrap().push(elapsed);
                        total += elapsed;
                    }
                    total
                }
            });
        });
        if let Some(m) = median(&times) {
            println!(
                "MEDIAN {name}: {:.2} ms per test over {} tests",
                m.as_secs_f64() * 1e3,
                times.lock().unwrap().len()
            );
            medians.push((name, m));
        }
    }
    group.finish();

    let Some(&(_, per_test)) = medians.first() else {
        return;
    };
    for &(name, m) in &medians[1..] {
        let ratio = per_test.as_secs_f64() / m.as_secs_f64();
        // 100 seeded tests: the seed written once (about one per-test seeding) plus 100 tests.
        let seeded_total = per_test + m * TESTS;
        let per_test_total = per_test * TESTS;
        println!(
            "RATIO {name}: {ratio:.1}x faster per test than seeding_per_test; {TESTS} tests: \
             {:.2} s against {:.2} s ({:.1}x)",
            seeded_total.as_secs_f64(),
            per_test_total.as_secs_f64(),
            per_test_total.as_secs_f64() / seeded_total.as_secs_f64()
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
