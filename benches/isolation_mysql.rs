//! Per-test overhead of the isolation strategies on MySQL (the reference schema in
//! migrations/mysql), beside raw baselines, in one run (the machine is shared and noisy: compare
//! ratios within a run); and factories' bulk inserts against one INSERT per row.
//!
//! - `mysql_baseline/begin_rollback_open_connection`: BEGIN, one insert, ROLLBACK on a
//!   connection that stays open: the floor of any per-test harness.
//! - `mysql_baseline/rollback_statements_same_runtime_pool`: Rollback's statements through a
//!   sqlx pool whose connection belongs to the bench's runtime (seedbed's belongs to its engine
//!   runtime, as it outlives each test's runtime, so each reply crosses between two threads).
//! - `mysql_baseline/create_migrate_drop`: CREATE DATABASE, every migration, the insert, DROP
//!   DATABASE: what `#[sqlx::test]` does for each MySQL test.
//! - `mysql_strategy/*`: acquire, the same insert, finish, for each strategy.
//! - `mysql_template/*`: the ways Template could give a test a database of its own: a copy
//!   made by replaying the template's definitions and copying its rows (`clone_by_replay`),
//!   migrating a new database (`create_and_migrate`), or a copy emptied back to the template's
//!   rows after the last test (`recycle_by_cleaning`, what the strategy does).
//! - `mysql_factory/*`: 10,000 rows by `create_list` (multi-row INSERTs, rows read back)
//!   against 10,000 single-row INSERTs in one transaction, both in a Rollback test.
//!
//! Run with `cargo bench --features mysql --bench isolation_mysql`; the server is the one MySQL
//! tests use (`SEEDBED_MYSQL_URL`, a mysql:// `DATABASE_URL`, else the embedded server).

#![allow(
    clippy::expect_used,
    reason = "a bench that cannot set up has nothing to measure"
)]

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use seedbed::backend::mysql::{MySqlServer, admin};
use seedbed::backend::{Clean, Provision};
use seedbed::prelude::*;
use seedbed::sql::quote_mysql_ident;
use sqlx::{Connection, MySql, MySqlConnection, MySqlPool};

const MIGRATIONS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/mysql");
const FACTORY_MIGRATIONS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/mysql_factory_migrations"
);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

async fn server() -> &'static MySqlServer {
    <MySql as Provision>::server()
        .await
        .expect("a MySQL server")
}

async fn connect(server: &MySqlServer, database: &str) -> MySqlConnection {
    MySqlConnection::connect_with(&server.options_for(database))
        .await
        .expect("connect")
}

async fn execute(conn: &mut MySqlConnection, sql: String) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(conn)
        .await
        .expect("statement");
}

const INSERT: &str = "INSERT INTO organizations (name, slug) VALUES ('Bench', ?)";

fn baselines(c: &mut Criterion) {
    let rt = runtime();
    let server = rt.block_on(server());
    let migrator = rt.block_on(async {
        sqlx::migrate::Migrator::new(std::path::Path::new(MIGRATIONS))
            .await
            .expect("migrations/mysql")
    });
    let mut group = c.benchmark_group("mysql_baseline");
    group.sample_size(30);

    // A migrated database to BEGIN/ROLLBACK on.
    let floor = "seedbed_bench_floor";
    let mut admin_conn = rt.block_on(connect(server, ""));
    rt.block_on(execute(
        &mut admin_conn,
        format!(
            "DROP DATABASE IF EXISTS {f}; CREATE DATABASE {f}",
            f = quote_mysql_ident(floor)
        ),
    ));
    let mut conn = rt.block_on(async {
        let mut conn = connect(server, floor).await;
        migrator.run(&mut conn).await.expect("migrate the floor");
        conn
    });
    let mut i = 0u64;
    group.bench_function("begin_rollback_open_connection", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut tx = conn.begin().await.expect("begin");
                i += 1;
                sqlx::query(INSERT)
                    .bind(format!("bench-{i}"))
                    .execute(&mut *tx)
                    .await
                    .expect("insert");
                tx.rollback().await.expect("rollback");
            })
        })
    });
    rt.block_on(conn.close()).expect("close");

    // Rollback's statements (the test's insert through the pool, then one round trip that
    // checks the savepoint, rolls back and begins the next transaction) on a pool whose one
    // connection belongs to the bench's runtime: what Rollback would cost in process if the
    // connection it keeps across tests did not belong to seedbed's engine runtime.
    let pool = rt.block_on(async {
        let pool = sqlx::mysql::MySqlPoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_with(server.options_for(floor))
            .await
            .expect("pool");
        let mut conn = pool.acquire().await.expect("acquire");
        execute(&mut conn, "BEGIN; SAVEPOINT probe".to_string()).await;
        conn.return_to_pool().await;
        pool
    });
    group.bench_function("rollback_statements_same_runtime_pool", |b| {
        b.iter(|| {
            rt.block_on(async {
                i += 1;
                sqlx::query(INSERT)
                    .bind(format!("bench-{i}"))
                    .execute(&pool)
                    .await
                    .expect("insert");
                let mut conn = pool.acquire().await.expect("acquire");
                execute(
                    &mut conn,
                    "RELEASE SAVEPOINT probe; ROLLBACK; \
                     SET SESSION foreign_key_checks = 1, unique_checks = 1, autocommit = 1; \
                     BEGIN; SAVEPOINT probe"
                        .to_string(),
                )
                .await;
                conn.return_to_pool().await;
            })
        })
    });
    rt.block_on(pool.close());

    let mut n = 0u64;
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("create_migrate_drop", |b| {
        b.iter(|| {
            rt.block_on(async {
                n += 1;
                let name = format!("seedbed_bench_sqlx_{n}");
                execute(
                    &mut admin_conn,
                    format!("CREATE DATABASE {}", quote_mysql_ident(&name)),
                )
                .await;
                let mut conn = connect(server, &name).await;
                migrator.run(&mut conn).await.expect("migrate");
                i += 1;
                sqlx::query(INSERT)
                    .bind(format!("bench-{i}"))
                    .execute(&mut conn)
                    .await
                    .expect("insert");
                conn.close().await.expect("close");
                execute(
                    &mut admin_conn,
                    format!("DROP DATABASE {}", quote_mysql_ident(&name)),
                )
                .await;
            })
        })
    });
    rt.block_on(execute(
        &mut admin_conn,
        format!("DROP DATABASE IF EXISTS {}", quote_mysql_ident(floor)),
    ));
    group.finish();
}

fn strategies(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("mysql_strategy");
    group.sample_size(50);
    for strategy in [
        Strategy::Rollback,
        Strategy::Truncate,
        Strategy::Template,
        Strategy::Namespace,
    ] {
        let iso = || {
            Isolation::new(strategy)
                .migrations(MIGRATIONS)
                .test_name("bench::isolation_mysql")
        };
        // Built once, before the clock: the database every test starts from.
        rt.block_on(async {
            let db = iso().acquire_on::<MySql>().await.expect("acquire");
            db.finish().await.expect("finish");
        });
        let mut i = 0u64;
        group.bench_function(strategy.name(), |b| {
            b.iter(|| {
                rt.block_on(async {
                    let db = iso().acquire_on::<MySql>().await.expect("acquire");
                    i += 1;
                    sqlx::query(INSERT)
                        .bind(format!("bench-{strategy}-{i}-{}", db.token()))
                        .execute(&db.pool())
                        .await
                        .expect("insert");
                    db.finish().await.expect("finish");
                })
            })
        });
    }
    group.finish();
}

fn template_methods(c: &mut Criterion) {
    let rt = runtime();
    let server = rt.block_on(server());
    let migrator = rt.block_on(async {
        sqlx::migrate::Migrator::new(std::path::Path::new(MIGRATIONS))
            .await
            .expect("migrations/mysql")
    });
    let template = "seedbed_bench_template";
    let copy = "seedbed_bench_copy";
    let mut conn = rt.block_on(connect(server, ""));
    rt.block_on(async {
        execute(
            &mut conn,
            format!(
                "DROP DATABASE IF EXISTS {t}; DROP DATABASE IF EXISTS {c}; CREATE DATABASE {t}",
                t = quote_mysql_ident(template),
                c = quote_mysql_ident(copy)
            ),
        )
        .await;
        let mut tpl = connect(server, template).await;
        migrator.run(&mut tpl).await.expect("migrate the template");
        let schema = <MySql as seedbed::backend::Introspect>::introspect(&mut tpl, &[template])
            .await
            .expect("introspect");
        <MySql as Clean>::prepare(&mut tpl, &schema, false)
            .await
            .expect("prepare");
        tpl.close().await.expect("close");
    });
    let mut group = c.benchmark_group("mysql_template");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(15));
    group.bench_function("clone_by_replay", |b| {
        b.iter(|| {
            rt.block_on(async {
                admin::clone(&mut conn, copy, template)
                    .await
                    .expect("clone");
                admin::drop_database(&mut conn, copy).await.expect("drop");
            })
        })
    });
    group.bench_function("create_and_migrate", |b| {
        b.iter(|| {
            rt.block_on(async {
                admin::create(&mut conn, copy).await.expect("create");
                let mut db = connect(server, copy).await;
                migrator.run(&mut db).await.expect("migrate");
                db.close().await.expect("close");
                admin::drop_database(&mut conn, copy).await.expect("drop");
            })
        })
    });
    // A copy a test wrote three rows to, emptied back.
    rt.block_on(admin::clone(&mut conn, copy, template))
        .expect("clone");
    let mut db = rt.block_on(connect(server, copy));
    let plan = rt
        .block_on(<MySql as Clean>::plan(&mut db))
        .expect("the cleaner's plan");
    let mut i = 0u64;
    group.sample_size(50);
    group.bench_function("recycle_by_cleaning", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    i += 1;
                    sqlx::query(INSERT)
                        .bind(format!("recycle-{i}"))
                        .execute(&mut db)
                        .await
                        .expect("insert");
                    let started = std::time::Instant::now();
                    <MySql as Clean>::clean(&mut db, &plan, false)
                        .await
                        .expect("clean");
                    total += started.elapsed();
                }
                total
            })
        })
    });
    rt.block_on(async {
        db.close().await.expect("close");
        execute(
            &mut conn,
            format!(
                "DROP DATABASE IF EXISTS {t}; DROP DATABASE IF EXISTS {c}",
                t = quote_mysql_ident(template),
                c = quote_mysql_ident(copy)
            ),
        )
        .await;
    });
    group.finish();
}

#[derive(Debug, Clone, sqlx::FromRow, Factory)]
#[factory(table = "orgs")]
struct Org {
    #[factory(generated)]
    id: i64,
    #[factory(sequence = "org-{n}")]
    slug: String,
    #[factory(default = "Acme")]
    name: String,
}

const ROWS: usize = 10_000;

fn factories(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("mysql_factory");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    // Rollback: both variants write in the test's transaction, and nothing they write is
    // deleted and written again by the next iteration (InnoDB re-inserting unique keys a
    // cleanup just deleted is another cost, measured apart).
    let iso = || {
        Isolation::new(Strategy::Rollback)
            .migrations(FACTORY_MIGRATIONS)
            .test_name("bench::isolation_mysql::factory")
    };
    group.bench_function("create_list_10000", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let db = iso().acquire_on::<MySql>().await.expect("acquire");
                    let started = std::time::Instant::now();
                    let rows = Org::factory()
                        .create_list(&db, ROWS)
                        .await
                        .expect("create_list");
                    total += started.elapsed();
                    assert_eq!(rows.len(), ROWS);
                    assert!(rows.iter().all(|org| org.id > 0), "keys read back");
                    db.finish().await.expect("finish");
                }
                total
            })
        })
    });
    group.bench_function("per_row_10000_in_one_transaction", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let db = iso().acquire_on::<MySql>().await.expect("acquire");
                    let pool: MySqlPool = db.pool();
                    let started = std::time::Instant::now();
                    let mut tx = pool.begin().await.expect("begin");
                    // The slugs create_list writes (its sequence starts again with each test's
                    // context).
                    for i in 1..=ROWS {
                        sqlx::query("INSERT INTO orgs (slug, name) VALUES (?, 'Acme')")
                            .bind(format!("org-{i}"))
                            .execute(&mut *tx)
                            .await
                            .expect("insert");
                    }
                    tx.commit().await.expect("commit");
                    total += started.elapsed();
                    db.finish().await.expect("finish");
                }
                total
            })
        })
    });
    group.finish();
}

criterion_group!(benches, baselines, strategies, template_methods, factories);
criterion_main!(benches);
