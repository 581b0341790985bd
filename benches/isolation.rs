//! Per-test overhead of the isolation strategies on the reference schema, beside raw baselines,
//! in one run (the machine is shared and noisy: compare ratios within a run).
//!
//! - `baseline/begin_rollback_open_connection`: BEGIN; SELECT 1; ROLLBACK on a connection that
//!   stays open: the floor any per-test harness could reach.
//! - `baseline/connect_begin_rollback_disconnect`: what a harness that opens a connection per test
//!   pays.
//! - `baseline/create_migrate_drop`: CREATE DATABASE, every migration, DROP DATABASE: what
//!   `#[sqlx::test]` does for each test.
//! - `strategy/rollback`: acquire, one statement, finish.
//! - `strategy/truncate_after_3_tables`: acquire and finish around a test that wrote
//!   organizations, users and projects (the writes themselves are not timed).
//! - `cleanup/*`: seedbed's cleaner against TRUNCATE of the same tables (and every table that
//!   references them, which TRUNCATE requires), after the same writes: why the cleaner deletes.
//! - `strategy/namespace_data`: Namespace's data mode, acquire + one statement + finish (no rows
//!   to remove), and `strategy/namespace_data_after_3_tables` with the journal's cleanup of a test
//!   that wrote 3 tables; `strategy/namespace_schema`: schema mode, with schemas from the pool.
//! - `namespace_cleanup/after_3_tables_{empty,1m_rows}`: what ending a Namespace test that wrote
//!   3 tables costs (`finish`, timed alone), with the shared tables otherwise empty and with
//!   1,000,000 rows in each of them (written without a token, as other tests' or fixtures' rows
//!   would be, and analyzed): the cleanup must cost the test's rows, not the tables' size.
//! - `template/warm_handover`: what a Template test waits for when a spare is ready: claiming it
//!   and the first query (the pool's first connection).
//! - `template/cold_clone`: acquiring with no spare (the clone is made for the test), beside
//!   `template/raw_create_database_template`: `CREATE DATABASE … TEMPLATE` alone, with the same
//!   copy method. What happens to a passing test's clone after it (emptied and given back as a
//!   spare, or dropped with `SEEDBED_TEMPLATE_RECYCLE=0`) runs in the background, untimed.
//!
//! Run with `cargo bench --bench isolation`; the server is the one tests use (embedded unless
//! DATABASE_URL or SEEDBED_DATABASE_URL says otherwise).

#![allow(
    clippy::expect_used,
    reason = "a bench that cannot set up has nothing to measure"
)]

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use seedbed::backend::postgres::{admin, clean};
use seedbed::isolation::{Migrations, databases};
use seedbed::server::Server;
use seedbed::{Isolation, Strategy};
use sqlx::{Connection, Executor, PgConnection, PgPool};

const MIGRATIONS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
const SINGLE_SCHEMA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/single_schema_migrations"
);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

async fn server() -> &'static Server {
    Server::resolve().await.expect("a PostgreSQL server")
}

fn isolation(strategy: Strategy) -> Isolation {
    Isolation::new(strategy)
        .migrations(MIGRATIONS)
        .test_name("bench::isolation")
}

/// The writes of a test that touched three tables (its values carry the test's token, as
/// factories' would under the strategies that share a database).
async fn write_three_tables(pool: &PgPool, i: u64, token: &str) {
    sqlx::query(
        "WITH o AS (INSERT INTO organizations (name, slug) VALUES ('Bench', $1) RETURNING id),
              u AS (INSERT INTO users (email, display_name) VALUES ($2, 'B') RETURNING id)
         INSERT INTO projects (organization_id, key, name, lead_id)
             SELECT o.id, 'BEN', 'p', u.id FROM o, u",
    )
    .bind(format!("bench-{i}-{token}"))
    .bind(format!("b{i}{token}@bench.test"))
    .execute(pool)
    .await
    .expect("writes");
}

fn baselines(c: &mut Criterion) {
    let rt = runtime();
    let (server, db) = rt.block_on(async {
        let server = server().await;
        let migrations = Migrations::from_dir(MIGRATIONS).await.expect("migrations");
        let db = databases::ensure(server, &migrations, "bench")
            .await
            .expect("db");
        (server, db.name)
    });
    let options = server.database_options(&db);
    let mut group = c.benchmark_group("baseline");

    let mut open = rt
        .block_on(PgConnection::connect_with(&options))
        .expect("connect");
    group.bench_function("begin_rollback_open_connection", |b| {
        b.iter(|| {
            rt.block_on(async {
                open.execute("BEGIN").await.expect("begin");
                open.execute("SELECT 1").await.expect("select");
                open.execute("ROLLBACK").await.expect("rollback");
            })
        })
    });

    group.bench_function("connect_begin_rollback_disconnect", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut conn = PgConnection::connect_with(&options).await.expect("connect");
                conn.execute("BEGIN").await.expect("begin");
                conn.execute("SELECT 1").await.expect("select");
                conn.execute("ROLLBACK").await.expect("rollback");
                conn.close().await.expect("close");
            })
        })
    });

    group.sample_size(10);
    group.measurement_time(Duration::from_secs(15));
    group.bench_function("create_migrate_drop", |b| {
        b.iter(|| {
            rt.block_on(async {
                let migrations = Migrations::from_dir(MIGRATIONS).await.expect("migrations");
                let mut admin = server.connect().await.expect("connect");
                let name = format!("seedbed_bench_sqlx_{}", std::process::id());
                admin::drop_database(&mut admin, &name).await.expect("drop");
                admin::create_database(&mut admin, &name, None, admin::CloneMethod::Default)
                    .await
                    .expect("create");
                let mut conn = PgConnection::connect_with(&server.database_options(&name))
                    .await
                    .expect("connect");
                migrations.apply(&mut conn).await.expect("migrate");
                conn.close().await.expect("close");
                admin::drop_database(&mut admin, &name).await.expect("drop");
                admin.close().await.expect("close");
            })
        })
    });
    group.finish();
}

fn strategies(c: &mut Criterion) {
    let rt = runtime();
    // Build the strategies' databases once, outside the measurement.
    rt.block_on(async {
        for strategy in [Strategy::Rollback, Strategy::Truncate, Strategy::Namespace] {
            let db = isolation(strategy).acquire().await.expect("warm up");
            sqlx::query("SELECT 1")
                .execute(&db.pool())
                .await
                .expect("select");
            db.finish().await.expect("finish");
        }
    });
    let mut group = c.benchmark_group("strategy");

    group.bench_function("rollback", |b| {
        b.iter(|| {
            rt.block_on(async {
                let db = isolation(Strategy::Rollback)
                    .acquire()
                    .await
                    .expect("acquire");
                sqlx::query("SELECT 1")
                    .execute(&db.pool())
                    .await
                    .expect("select");
                db.finish().await.expect("finish");
            })
        })
    });

    group.bench_function("namespace_data", |b| {
        b.iter(|| {
            rt.block_on(async {
                let db = isolation(Strategy::Namespace)
                    .acquire()
                    .await
                    .expect("acquire");
                sqlx::query("SELECT 1")
                    .execute(&db.pool())
                    .await
                    .expect("select");
                db.finish().await.expect("finish");
            })
        })
    });

    group.bench_function("namespace_data_after_3_tables", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut overhead = Duration::ZERO;
                for i in 0..iters {
                    let started = Instant::now();
                    let db = isolation(Strategy::Namespace)
                        .acquire()
                        .await
                        .expect("acquire");
                    let pool = db.pool();
                    sqlx::query("SELECT 1")
                        .execute(&pool)
                        .await
                        .expect("connect");
                    overhead += started.elapsed();
                    write_three_tables(&pool, i, db.token()).await;
                    let started = Instant::now();
                    db.finish().await.expect("finish");
                    overhead += started.elapsed();
                }
                overhead
            })
        })
    });

    group.bench_function("namespace_schema", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut overhead = Duration::ZERO;
                for _ in 0..iters {
                    // Let the background refill of schemas catch up, as between a suite's
                    // tests; the timed part is a test taking a schema from the pool.
                    wait_for_spare_schemas().await;
                    let started = Instant::now();
                    let db = Isolation::new(Strategy::Namespace)
                        .namespace_mode(seedbed::isolation::NamespaceMode::Schema)
                        .migrations(SINGLE_SCHEMA)
                        .test_name("bench::isolation")
                        .acquire()
                        .await
                        .expect("acquire");
                    sqlx::query("SELECT 1")
                        .execute(&db.pool())
                        .await
                        .expect("select");
                    db.finish().await.expect("finish");
                    overhead += started.elapsed();
                }
                overhead
            })
        })
    });

    group.bench_function("truncate_after_3_tables", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut overhead = Duration::ZERO;
                for i in 0..iters {
                    let started = Instant::now();
                    let db = isolation(Strategy::Truncate)
                        .acquire()
                        .await
                        .expect("acquire");
                    let pool = db.pool();
                    sqlx::query("SELECT 1")
                        .execute(&pool)
                        .await
                        .expect("connect");
                    overhead += started.elapsed();
                    write_three_tables(&pool, i, db.token()).await;
                    let started = Instant::now();
                    db.finish().await.expect("finish");
                    overhead += started.elapsed();
                }
                overhead
            })
        })
    });
    group.finish();
}

fn cleanup(c: &mut Criterion) {
    let rt = runtime();
    let (server, db) = rt.block_on(async {
        let server = server().await;
        let migrations = Migrations::from_dir(MIGRATIONS).await.expect("migrations");
        let db = databases::ensure_with(server, &migrations, "benchclean", true)
            .await
            .expect("db");
        (server, db.name)
    });
    let options = server.database_options(&db);
    let pool = rt.block_on(async {
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .expect("pool")
    });
    // TRUNCATE must name every table that references the ones it empties.
    let truncate_sql = rt.block_on(async {
        let mut conn = pool.acquire().await.expect("conn");
        let schema = clean::read_schema(&mut conn).await.expect("schema");
        let mut set: Vec<seedbed::sql::QualifiedName> = ["organizations", "users", "projects"]
            .iter()
            .map(|t| seedbed::sql::QualifiedName::new("public", *t))
            .collect();
        let mut i = 0;
        while i < set.len() {
            let parent = set[i].clone();
            for fk in schema
                .foreign_keys
                .iter()
                .filter(|fk| fk.references == parent)
            {
                if !set.contains(&fk.table) {
                    set.push(fk.table.clone());
                }
            }
            i += 1;
        }
        let names: Vec<String> = set.iter().map(|t| t.to_string()).collect();
        eprintln!("TRUNCATE of the 3 tables must name {} tables", names.len());
        format!("TRUNCATE {}", names.join(", "))
    });
    let plan = rt.block_on(async {
        let mut conn = pool.acquire().await.expect("conn");
        clean::CleaningPlan::load(&mut conn).await.expect("plan")
    });
    let mut group = c.benchmark_group("cleanup");
    group.bench_function("seedbed_cleaner_after_3_tables", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut timed = Duration::ZERO;
                for i in 0..iters {
                    write_three_tables(&pool, i, "").await;
                    let mut conn = pool.acquire().await.expect("conn");
                    let started = Instant::now();
                    clean::clean(&mut conn, &plan, false).await.expect("clean");
                    timed += started.elapsed();
                }
                timed
            })
        })
    });
    group.bench_function("truncate_after_3_tables", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut timed = Duration::ZERO;
                for i in 0..iters {
                    write_three_tables(&pool, i, "").await;
                    let started = Instant::now();
                    sqlx::raw_sql(sqlx::AssertSqlSafe(truncate_sql.clone()))
                        .execute(&pool)
                        .await
                        .expect("truncate");
                    timed += started.elapsed();
                }
                timed
            })
        })
    });
    group.finish();
}

fn template(c: &mut Criterion) {
    let rt = runtime();
    // Build the template and fill the warm pool before measuring.
    let template = rt.block_on(async {
        let db = isolation(Strategy::Template)
            .acquire()
            .await
            .expect("warm up");
        db.finish().await.expect("finish");
        // The template Isolation builds for these migrations (no fixtures).
        let migrations = Migrations::from_dir(MIGRATIONS).await.expect("migrations");
        databases::Build::template(&[]).database_name(&migrations)
    });
    let spares = seedbed::isolation::clones::pool_size().expect("pool size");
    let mut group = c.benchmark_group("template");
    group.bench_function("warm_handover", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut watch = server().await.connect().await.expect("connect");
                let mut waited = Duration::ZERO;
                for _ in 0..iters {
                    // Let the background refill catch up, as between the tests of a suite.
                    wait_for_spares(&template, spares).await;
                    let started = Instant::now();
                    let db = isolation(Strategy::Template)
                        .acquire()
                        .await
                        .expect("acquire");
                    sqlx::query("SELECT 1")
                        .execute(&db.pool())
                        .await
                        .expect("select");
                    waited += started.elapsed();
                    let name = db.database().to_string();
                    db.finish().await.expect("finish");
                    wait_given_back(&mut watch, &name).await;
                }
                watch.close().await.expect("close");
                waited
            })
        })
    });
    group.sample_size(20);
    // No spare left and no refill running: every acquire below clones, with nothing else
    // copying beside it (as for the raw baseline).
    rt.block_on(async {
        wait_for_spares(&template, spares).await;
        let mut watch = server().await.connect().await.expect("connect");
        for _ in 0..spares {
            let db = isolation(Strategy::Template)
                .template_spares(0)
                .acquire()
                .await
                .expect("claim a spare");
            let name = db.database().to_string();
            db.finish().await.expect("finish");
            wait_dropped(&mut watch, &name).await;
        }
        watch.close().await.expect("close");
    });
    group.bench_function("cold_clone", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut watch = server().await.connect().await.expect("connect");
                let mut waited = Duration::ZERO;
                for _ in 0..iters {
                    let started = Instant::now();
                    let db = isolation(Strategy::Template)
                        .template_spares(0)
                        .acquire()
                        .await
                        .expect("acquire");
                    waited += started.elapsed();
                    let name = db.database().to_string();
                    db.finish().await.expect("finish");
                    wait_dropped(&mut watch, &name).await;
                }
                watch.close().await.expect("close");
                waited
            })
        })
    });
    let server = rt.block_on(server());
    // The method Template measured when it built the template, so the baseline copies alike.
    let method = admin::clone_method(server, &template).expect("clone method");
    eprintln!("clone method: {}", method.name());
    group.bench_function("raw_create_database_template", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut admin = server.connect().await.expect("connect");
                let mut timed = Duration::ZERO;
                for i in 0..iters {
                    let name = format!("seedbed_bench_raw_{}_{i}", std::process::id());
                    let started = Instant::now();
                    admin::create_database(&mut admin, &name, Some(&template), method)
                        .await
                        .expect("create");
                    timed += started.elapsed();
                    admin::drop_database(&mut admin, &name).await.expect("drop");
                }
                admin.close().await.expect("close");
                timed
            })
        })
    });
    group.finish();
}

/// Waits (untimed) until a passing test's clone is back in the pool as a spare, emptied, or
/// dropped (`SEEDBED_TEMPLATE_RECYCLE=0`, or the pool was full), and its lease is gone.
async fn wait_given_back(conn: &mut PgConnection, name: &str) {
    poll_clone(
        conn,
        name,
        "NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) \
         OR EXISTS (SELECT 1 FROM seedbed.databases WHERE name = $1 AND state = 'spare')",
        "given back or dropped",
    )
    .await;
}

/// Waits (untimed) until a passing test's clone, dropped in the background, is gone with its
/// registry row and its lease, so none of that work runs during the next measurement (the raw
/// baseline drops outside its timing too). `conn` is kept open by the caller, so no connection
/// opens or closes beside the next measurement either.
async fn wait_dropped(conn: &mut PgConnection, name: &str) {
    poll_clone(
        conn,
        name,
        "NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) \
         AND NOT EXISTS (SELECT 1 FROM seedbed.databases WHERE name = $1)",
        "dropped",
    )
    .await;
}

/// Polls, for at most 2 s, until `state` (SQL about the clone `$1`) holds and the clone's lease
/// is gone.
async fn poll_clone(conn: &mut PgConnection, name: &str, state: &str, what: &str) {
    let sql = format!(
        "SELECT ({state}) \
         AND NOT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' \
             AND ((classid::int8 << 32) | objid::int8) = \
                 hashtextextended('seedbed:lease:' || $1, 0))"
    );
    for _ in 0..1000 {
        let done: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(name)
            .fetch_one(&mut *conn)
            .await
            .expect("lookup");
        if done {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("{name} was not {what} within 2 s");
}

/// Waits (untimed) until the schema pool of the single-schema migrations has spares again.
async fn wait_for_spare_schemas() {
    let server = server().await;
    let mut admin = server.connect().await.expect("connect");
    let database: Option<String> = sqlx::query_scalar(
        "SELECT datname::text FROM pg_database WHERE datname LIKE 'seedbed\\_nsschema%' \
         ORDER BY oid DESC LIMIT 1",
    )
    .fetch_optional(&mut admin)
    .await
    .expect("schema database");
    admin.close().await.expect("close");
    let Some(database) = database else {
        return;
    };
    let mut conn = PgConnection::connect_with(&server.database_options(&database))
        .await
        .expect("connect");
    for _ in 0..400 {
        let n: i64 =
            sqlx::query_scalar("SELECT count(*) FROM seedbed.schemas WHERE state = 'spare'")
                .fetch_one(&mut conn)
                .await
                .unwrap_or(0);
        if n >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    conn.close().await.expect("close");
}

/// Waits (untimed) until the warm pool of `template` is full again.
async fn wait_for_spares(template: &str, size: i64) {
    let server = server().await;
    let mut conn = server.connect().await.expect("connect");
    for _ in 0..400 {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM seedbed.databases WHERE template = $1 AND state = 'spare'",
        )
        .bind(template)
        .fetch_one(&mut conn)
        .await
        .expect("count spares");
        if n >= size {
            conn.close().await.expect("close");
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("the spare databases of {template} did not reach {size} within 2 s");
}

/// Ends Namespace tests that wrote 3 tables; only `finish` is timed.
async fn namespace_finish_after_3_tables(iters: u64, salt: &str) -> Duration {
    let mut timed = Duration::ZERO;
    for i in 0..iters {
        let db = isolation(Strategy::Namespace)
            .acquire()
            .await
            .expect("acquire");
        let token = format!("{}{salt}", db.token());
        write_three_tables(&db.pool(), i, &token).await;
        let started = Instant::now();
        db.finish().await.expect("finish");
        timed += started.elapsed();
    }
    timed
}

fn namespace_cleanup(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("namespace_cleanup");
    group.bench_function("after_3_tables_empty", |b| {
        b.iter_custom(|iters| rt.block_on(namespace_finish_after_3_tables(iters, "e")))
    });
    // The shared database, filled (once, untimed) when the benchmark runs.
    let mut filled: Option<String> = None;
    group.bench_function("after_3_tables_1m_rows", |b| {
        if filled.is_none() {
            filled = Some(rt.block_on(fill_namespace_tables(1_000_000)));
        }
        b.iter_custom(|iters| rt.block_on(namespace_finish_after_3_tables(iters, "m")))
    });
    group.finish();
    if let Some(database) = filled {
        rt.block_on(empty_namespace_tables(&database));
    }
}

/// Writes `rows` rows into each of organizations, users and projects of the shared Namespace
/// database, without a token (so no test owns them), and analyzes them. Returns the database.
async fn fill_namespace_tables(rows: i64) -> String {
    let db = isolation(Strategy::Namespace)
        .acquire()
        .await
        .expect("acquire");
    let database = db.database().to_string();
    db.finish().await.expect("finish");
    let server = server().await;
    let mut conn = PgConnection::connect_with(&server.database_options(&database))
        .await
        .expect("connect");
    let started = Instant::now();
    sqlx::query(
        "INSERT INTO organizations (name, slug) \
         SELECT 'Filler', 'filler-' || g FROM generate_series(1, $1) g",
    )
    .bind(rows)
    .execute(&mut conn)
    .await
    .expect("fill organizations");
    sqlx::query(
        "INSERT INTO users (email, display_name) \
         SELECT 'filler' || g || '@filler.test', 'F' FROM generate_series(1, $1) g",
    )
    .bind(rows)
    .execute(&mut conn)
    .await
    .expect("fill users");
    sqlx::query(
        "INSERT INTO projects (organization_id, key, name) \
         SELECT id, 'FIL', 'f' FROM organizations WHERE starts_with(slug, 'filler-')",
    )
    .execute(&mut conn)
    .await
    .expect("fill projects");
    conn.execute("VACUUM ANALYZE organizations, users, projects")
        .await
        .expect("analyze");
    eprintln!(
        "filled organizations, users and projects of {database} with {rows} rows each in {:.1?}",
        started.elapsed()
    );
    conn.close().await.expect("close");
    database
}

/// Removes what [`fill_namespace_tables`] wrote.
async fn empty_namespace_tables(database: &str) {
    let server = server().await;
    let mut conn = PgConnection::connect_with(&server.database_options(database))
        .await
        .expect("connect");
    conn.execute(
        "SET session_replication_role = replica; \
         DELETE FROM projects WHERE key = 'FIL'; \
         DELETE FROM users WHERE starts_with(email::text, 'filler'); \
         DELETE FROM organizations WHERE starts_with(slug, 'filler-'); \
         RESET session_replication_role",
    )
    .await
    .expect("empty the filled tables");
    conn.execute("VACUUM ANALYZE organizations, users, projects")
        .await
        .expect("vacuum");
    conn.close().await.expect("close");
}

criterion_group!(
    benches,
    baselines,
    strategies,
    cleanup,
    namespace_cleanup,
    template
);
criterion_main!(benches);
