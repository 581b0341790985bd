//! Template: a database of its own per test, cloned from a sealed template, with a warm pool of
//! spares, leases, a sweeper and kept databases of failed tests.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "test code: a failed expectation is a failed test"
)]

use std::sync::Arc;
use std::time::Duration;

use seedbed::isolation::{Outcome, registry};
use seedbed::server::Server;
use seedbed::{Isolation, Strategy, TestDb};
use sqlx::{Connection, PgPool};
use tokio::sync::Barrier;

async fn acquire(strategy: Strategy, name: &str) -> TestDb {
    Isolation::new(strategy)
        .migrations("migrations")
        .test_name(name)
        .acquire()
        .await
        .expect("acquire a test database")
}

async fn entries() -> Vec<registry::Entry> {
    let server = Server::resolve().await.expect("server");
    let mut conn = server.connect().await.expect("connect");
    let list = registry::list(&mut conn).await.expect("list");
    let _ = conn.close().await;
    list
}

async fn database_exists(name: &str) -> bool {
    let server = Server::resolve().await.expect("server");
    let mut conn = server.connect().await.expect("connect");
    let exists = seedbed::backend::postgres::admin::database_exists(&mut conn, name)
        .await
        .expect("lookup");
    let _ = conn.close().await;
    exists
}

/// The most clones of each template tests held at once.
async fn peaks() -> std::collections::HashMap<String, i64> {
    let server = Server::resolve().await.unwrap();
    let mut conn = server.connect().await.unwrap();
    let peaks = registry::peaks(&mut conn).await.unwrap();
    let _ = conn.close().await;
    peaks
}

async fn wait_until_dropped(name: &str) -> bool {
    for _ in 0..200 {
        if !database_exists(name).await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

/// The body of the equivalence test, written so it passes under every strategy, Namespace's way:
/// it writes through the pool (its own transaction included), reads back only its own rows
/// (through the token it put in them), and provokes and survives a unique violation.
async fn equivalent_body(pool: &PgPool, token: &str) {
    let slug = format!("eq-{token}");
    let mut tx = pool.begin().await.unwrap();
    let org: i64 =
        sqlx::query_scalar("INSERT INTO organizations (name, slug) VALUES ('Eq', $1) RETURNING id")
            .bind(&slug)
            .fetch_one(&mut *tx)
            .await
            .unwrap();
    sqlx::query("INSERT INTO teams (organization_id, name) VALUES ($1, 'core')")
        .bind(org)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let dup = sqlx::query("INSERT INTO teams (organization_id, name) VALUES ($1, 'core')")
        .bind(org)
        .execute(pool)
        .await;
    assert!(dup.is_err(), "the unique (organization_id, name) holds");
    let teams: Vec<String> = sqlx::query_scalar(
        "SELECT t.name FROM teams t JOIN organizations o ON o.id = t.organization_id \
         WHERE o.slug = $1",
    )
    .bind(&slug)
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(teams, vec!["core"]);
    let roles: i64 = sqlx::query_scalar("SELECT count(*) FROM roles")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(roles, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_body_passes_under_every_strategy() {
    for strategy in Strategy::ALL {
        let db = acquire(strategy, &format!("template::equivalence::{strategy}")).await;
        equivalent_body(&db.pool(), db.token()).await;
        db.finish().await.expect("finish");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_tests_commit_listen_and_stay_apart() {
    let barrier = Arc::new(Barrier::new(2));
    let run = |me: &'static str| {
        let barrier = Arc::clone(&barrier);
        async move {
            let db = acquire(Strategy::Template, &format!("template::apart::{me}")).await;
            assert!(db.url().is_some());
            let pool = db.pool();
            // LISTEN/NOTIFY works: notifications arrive at commit.
            let mut listener = sqlx::postgres::PgListener::connect_with(&pool)
                .await
                .unwrap();
            listener.listen("seedbed_events").await.unwrap();
            sqlx::query("INSERT INTO organizations (name, slug) VALUES ($1, $1)")
                .bind(format!("tpl-{me}"))
                .execute(&pool)
                .await
                .unwrap();
            sqlx::query("SELECT pg_notify('seedbed_events', $1)")
                .bind(me)
                .execute(&pool)
                .await
                .unwrap();
            let note = tokio::time::timeout(Duration::from_secs(5), listener.recv())
                .await
                .expect("a notification")
                .unwrap();
            assert_eq!(note.payload(), me);
            barrier.wait().await;
            let seen: Vec<String> = sqlx::query_scalar("SELECT slug FROM organizations")
                .fetch_all(&pool)
                .await
                .unwrap();
            assert_eq!(seen, vec![format!("tpl-{me}")]);
            barrier.wait().await;
            drop(listener);
            let name = db.database().to_string();
            db.finish().await.expect("finish");
            name
        }
    };
    let (a, b) = tokio::join!(run("a"), run("b"));
    assert_ne!(a, b);
    // Passing tests' clones are emptied and given back as spares for the next tests (or, when
    // the pool is full, dropped): none keeps a row of its test.
    let entries = entries().await;
    for name in [&a, &b] {
        match entries.iter().find(|e| &e.name == name) {
            Some(e) if e.state == "spare" => {
                assert!(!e.leased, "{name} is still leased");
                let server = Server::resolve().await.unwrap();
                let mut conn = sqlx::PgConnection::connect_with(&server.database_options(name))
                    .await
                    .unwrap();
                let rows: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM organizations WHERE slug LIKE 'tpl-%'",
                )
                .fetch_one(&mut conn)
                .await
                .unwrap();
                assert_eq!(rows, 0, "{name} kept its test's rows");
                let _ = conn.close().await;
            }
            // Given back as a spare and claimed since by another test (of this binary, running
            // beside this one, or of another process sharing the template): both tests above
            // have finished, so it was recycled, and the rows in it are that test's.
            Some(e)
                if e.state == "in_use"
                    && !e
                        .test
                        .as_deref()
                        .unwrap_or_default()
                        .starts_with("template::apart::") => {}
            // The pool was full: dropped in the background (its row still says `in_use` by
            // its test until the drop).
            other => assert!(
                wait_until_dropped(name).await,
                "{name} was neither a spare nor dropped: {other:?}"
            ),
        }
    }
}

#[tokio::test]
async fn a_failing_tests_clone_is_kept_listed_and_swept() {
    let db = acquire(Strategy::Template, "template::kept").await;
    sqlx::query("INSERT INTO organizations (name, slug) VALUES ('k', 'kept-row')")
        .execute(&db.pool())
        .await
        .unwrap();
    let name = db.database().to_string();
    let url = db.url().expect("url");
    db.finish_with(Outcome::Failed).await.expect("finish");
    let entry = entries()
        .await
        .into_iter()
        .find(|e| e.name == name)
        .expect("listed");
    assert_eq!(entry.state, "kept");
    assert_eq!(entry.test.as_deref(), Some("template::kept"));
    assert!(!entry.leased);
    // The kept database still holds what the test wrote, for the user to look at.
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let slug: String = sqlx::query_scalar("SELECT slug FROM organizations")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(slug, "kept-row");
    let _ = conn.close().await;
    // A plain sweep leaves it; --kept removes it.
    let server = Server::resolve().await.expect("server");
    let mut admin = server.connect().await.unwrap();
    // It carries seedbed's marker, naming the test.
    let mark = seedbed::backend::postgres::marker::read(&mut admin, &name)
        .await
        .unwrap()
        .expect("a kept clone is marked");
    assert_eq!(mark.get("state"), Some("kept"));
    assert_eq!(mark.get("test"), Some("template::kept"));
    let swept = registry::sweep(&mut admin, false).await.unwrap();
    assert!(!swept.abandoned.contains(&name) && !swept.kept.contains(&name));
    assert!(database_exists(&name).await);
    let swept = registry::sweep(&mut admin, true).await.unwrap();
    assert!(swept.kept.contains(&name), "{swept:?}");
    assert!(!database_exists(&name).await);
    let _ = admin.close().await;
}

#[tokio::test]
async fn the_warm_pool_refills_and_stays_bounded() {
    let size = seedbed::isolation::clones::pool_size().unwrap();
    // One test makes the template (if no earlier one did) and starts the refill.
    let first = acquire(Strategy::Template, "template::pool::first").await;
    let tpl = entries()
        .await
        .into_iter()
        .find(|e| e.name == first.database())
        .and_then(|e| e.template);
    assert!(tpl.is_some(), "the first test's clone is registered");
    first.finish().await.expect("finish");
    // Wait for the pool to fill.
    let mut spares = 0;
    for _ in 0..400 {
        let list = entries().await;
        spares = list
            .iter()
            .filter(|e| e.state == "spare" && e.template == tpl)
            .count() as i64;
        if spares >= size {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // At least its size: it also keeps as many clones as tests held at once before.
    assert!(
        spares >= size,
        "the pool fills up to its size: {spares} < {size}"
    );
    // Many tests at once: the pool never grows past its size.
    let tests: Vec<_> = (0..6)
        .map(|i| {
            tokio::spawn(async move {
                let db = acquire(Strategy::Template, &format!("template::pool::{i}")).await;
                let one: i32 = sqlx::query_scalar("SELECT 1")
                    .fetch_one(&db.pool())
                    .await
                    .unwrap();
                db.finish().await.expect("finish");
                one
            })
        })
        .collect();
    for t in tests {
        assert_eq!(t.await.unwrap(), 1);
    }
    for _ in 0..40 {
        let by_template = entries().await;
        let mut per_template = std::collections::HashMap::<Option<String>, i64>::new();
        for e in by_template.iter().filter(|e| {
            e.kind == "spare"
                && e.template == tpl
                && matches!(e.state.as_str(), "spare" | "building")
        }) {
            *per_template.entry(e.template.clone()).or_default() += 1;
        }
        let peaks = peaks().await;
        assert!(
            per_template.iter().all(|(tpl, n)| {
                let peak = tpl.as_ref().and_then(|t| peaks.get(t)).copied();
                *n <= size.max(peak.unwrap_or(0))
            }),
            "spares beyond the pool size ({size}) and the most tests at once ({peaks:?}): \
             {per_template:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The template records how to clone it, measured when it was built among the methods its server
/// offers, and the measurement itself times each method and leaves nothing behind.
#[tokio::test]
async fn the_template_records_its_measured_clone_method() {
    use seedbed::backend::postgres::admin::{self, CloneMethod};
    use seedbed::isolation::databases;
    let db = acquire(Strategy::Template, "template::clone_method").await;
    let name = db.database().to_string();
    let template = entries()
        .await
        .into_iter()
        .find(|e| e.name == name)
        .and_then(|e| e.template)
        .expect("the clone names its template");
    db.finish().await.expect("finish");
    let server = Server::resolve().await.expect("server");
    let candidates = CloneMethod::candidates(server.major_version());
    let mut admin = server.connect().await.unwrap();
    let mark = seedbed::backend::postgres::marker::read(&mut admin, &template)
        .await
        .unwrap()
        .expect("the template is marked");
    let recorded = mark
        .get(databases::CLONE_KEY)
        .and_then(CloneMethod::parse)
        .expect("the template's marker names its clone method");
    assert!(candidates.contains(&recorded), "{recorded:?}");
    assert_eq!(admin::clone_method(server, &template).unwrap(), recorded);

    let (best, medians) =
        admin::measure_clone_methods(&mut admin, server.major_version(), &template)
            .await
            .unwrap();
    if candidates.len() > 1 {
        let methods: Vec<CloneMethod> = medians.iter().map(|(m, _)| *m).collect();
        assert_eq!(methods, candidates);
        let fastest = medians.iter().min_by_key(|(_, t)| *t).unwrap();
        assert_eq!(best, fastest.0);
    } else {
        assert_eq!(best, candidates[0]);
    }
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname LIKE $1")
        .bind(format!("{template}%probe"))
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(left, 0, "the measurement left its probe database");
    let _ = admin.close().await;
}

/// A passing test's clone goes back to the pool emptied, its sequences where migrations left
/// them: every test starts as on a fresh clone, whichever it gets.
#[tokio::test]
async fn recycled_clones_start_as_fresh_ones() {
    for i in 0..4 {
        let db = acquire(Strategy::Template, &format!("template::fresh::{i}")).await;
        let pool = db.pool();
        let before: i64 = sqlx::query_scalar("SELECT count(*) FROM organizations")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(before, 0, "test {i} found rows of an earlier test");
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO organizations (name, slug) VALUES ('f', 'fresh') RETURNING id",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(id, 1, "test {i} got a clone whose sequence had moved");
        db.finish().await.expect("finish");
    }
}

/// A process that runs many tests opens, while a passing test's clone is emptied, the connection
/// the next test to claim it starts with: that test opens none, its session carries its own
/// settings, and it sees none of the last test's rows.
#[tokio::test]
async fn the_next_test_starts_on_a_connection_opened_ahead() {
    // A template of this test's own (its fixture makes it so): no other test claims its spares.
    let iso = |name: &str| {
        Isolation::new(Strategy::Template)
            .migrations("migrations")
            .fixture(
                "-- the template of the_next_test_starts_on_a_connection_opened_ahead\nSELECT 1",
            )
            .template(seedbed::isolation::TemplateOptions::new().spares(2))
            .test_name(name)
    };
    let server = Server::resolve().await.unwrap();
    let mut watch = server.connect().await.unwrap();
    let mut kept = 0;
    let mut started_ahead = 0;
    let mut missed = Vec::new();
    let mut last: Option<String> = None;
    for round in 0..5 {
        let before: chrono::DateTime<chrono::Utc> = sqlx::query_scalar("SELECT clock_timestamp()")
            .fetch_one(&mut watch)
            .await
            .unwrap();
        let name = format!("template::ahead::{round}");
        let db = iso(&name).acquire().await.expect("acquire");
        let (opened, app, rows): (chrono::DateTime<chrono::Utc>, String, i64) = sqlx::query_as(
            "SELECT (SELECT backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()), \
                    current_setting('application_name'), \
                    (SELECT count(*) FROM organizations)",
        )
        .fetch_one(&db.pool())
        .await
        .unwrap();
        assert_eq!(app, name, "the session carries the test's settings");
        assert_eq!(rows, 0, "a test saw the rows of the test before it");
        if let Some(last) = &last {
            // The last test's clone went back as a spare: this test started on the connection
            // opened to it (or to another spare made ahead), before it asked for one, unless a
            // test running beside it found the connection budget spent meanwhile, which closes
            // the connections opened ahead (they are the first to give way).
            if opened < before {
                started_ahead += 1;
            } else {
                missed.push(format!(
                    "round {round}: the test opened its connection at {opened}, after it \
                     started at {before} (the last test gave back {last}; this one got {})",
                    db.database()
                ));
            }
        }
        sqlx::query("INSERT INTO organizations (name, slug) VALUES ($1, $2)")
            .bind(&name)
            .bind(format!("ahead-{round}"))
            .execute(&db.pool())
            .await
            .unwrap();
        let database = db.database().to_string();
        db.finish().await.expect("finish");
        // Given back (a connection of this process waits on it), or dropped if the pool was
        // full of spares made ahead meanwhile.
        let ahead: Option<bool> = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity \
                            WHERE datname = $1 AND application_name LIKE 'seedbed ahead %') \
             FROM seedbed.databases WHERE name = $1 AND state = 'spare'",
        )
        .bind(&database)
        .fetch_optional(&mut watch)
        .await
        .unwrap();
        match ahead {
            Some(true) => {
                kept += 1;
                last = Some(database);
            }
            Some(false) => panic!("{database} went back as a spare with no connection open to it"),
            None => last = None,
        }
    }
    assert!(kept > 0, "no clone of five went back as a spare");
    assert!(
        started_ahead > 0 && missed.len() <= 1,
        "the tests did not start on connections opened ahead:\n{}",
        missed.join("\n")
    );
}

/// A claim takes one spare and one lease: the spare asked for first, else this process's, else
/// the oldest; it passes over spares whose lease someone holds; with none left it registers a
/// new name, in use, with its lease.
#[tokio::test]
async fn a_claim_takes_one_spare_and_one_lease() {
    let server = Server::resolve().await.unwrap();
    let mut conn = server.connect().await.unwrap();
    let mut other = server.connect().await.unwrap();
    registry::list(&mut conn).await.unwrap();
    let template = format!("seedbed_tpl_claimtest_{}", std::process::id());
    // Rows an earlier run of this test left when it failed (they name no database).
    sqlx::query(
        "DELETE FROM seedbed.databases WHERE template LIKE 'seedbed\\_tpl\\_claimtest\\_%'",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let spares: Vec<String> = (0..4).map(|i| format!("{template}_s{i}")).collect();
    for (i, name) in spares.iter().enumerate() {
        sqlx::query(
            "INSERT INTO seedbed.databases (name, kind, state, template, run_id, host, pid, \
                                            created_at) \
             VALUES ($1, 'spare', 'spare', $2, 'r', 'elsewhere', 1, now() - make_interval(secs => $3))",
        )
        .bind(name)
        .bind(&template)
        .bind(f64::from(10 - i32::try_from(i).unwrap()))
        .execute(&mut conn)
        .await
        .unwrap();
    }
    // The newest spare, made by this process: claimed first.
    let owner = registry::Owner::current();
    let own = format!("{template}_own");
    sqlx::query(
        "INSERT INTO seedbed.databases (name, kind, state, template, run_id, host, pid) \
         VALUES ($1, 'spare', 'spare', $2, 'r', $3, $4)",
    )
    .bind(&own)
    .bind(&template)
    .bind(&owner.host)
    .bind(i32::try_from(owner.pid).unwrap())
    .execute(&mut conn)
    .await
    .unwrap();
    let leases_held = |names: Vec<String>| async move {
        let server = Server::resolve().await.unwrap();
        let mut c = server.connect().await.unwrap();
        let held: Vec<String> = sqlx::query_scalar(
            "SELECT n FROM unnest($1::text[]) n WHERE EXISTS (SELECT 1 FROM pg_locks l \
             WHERE l.locktype = 'advisory' AND l.granted \
               AND ((l.classid::int8 << 32) | l.objid::int8) = \
                   hashtextextended('seedbed:lease:' || n, 0))",
        )
        .bind(&names)
        .fetch_all(&mut c)
        .await
        .unwrap();
        held
    };
    // Another session holds the lease of the oldest spare: its maker has not let go of it.
    let lease = "SELECT pg_advisory_lock(hashtextextended('seedbed:lease:' || $1, 0))";
    sqlx::query(lease)
        .bind(&spares[0])
        .execute(&mut other)
        .await
        .unwrap();
    let mut all = spares.clone();
    all.push(own.clone());
    let first = registry::claim(&mut conn, &template, "claim::first")
        .await
        .unwrap();
    assert_eq!(
        first,
        registry::Claim {
            name: own.clone(),
            warm: true
        }
    );
    assert_eq!(
        leases_held(all.clone()).await,
        vec![spares[0].clone(), own.clone()],
        "the claim took one lease"
    );
    let second = registry::claim(&mut conn, &template, "claim::second")
        .await
        .unwrap();
    assert_eq!(second.name, spares[1]);
    assert_eq!(
        leases_held(all.clone()).await,
        vec![spares[0].clone(), spares[1].clone(), own.clone()],
        "the claim took one lease"
    );
    let third = registry::claim(&mut conn, &template, "claim::third")
        .await
        .unwrap();
    assert_eq!(third.name, spares[2]);
    let _ = registry::claim(&mut conn, &template, "claim::fourth")
        .await
        .unwrap();
    // None left but the one whose lease is held elsewhere: a new name, in use, leased.
    let fourth = registry::claim(&mut conn, &template, "claim::fifth")
        .await
        .unwrap();
    assert!(!fourth.warm && !spares.contains(&fourth.name), "{fourth:?}");
    let states: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT name, state, test FROM seedbed.databases WHERE template = $1 ORDER BY name",
    )
    .bind(&template)
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert!(
        states.contains(&(spares[0].clone(), "spare".into(), None)),
        "{states:?}"
    );
    assert!(
        states.contains(&(
            fourth.name.clone(),
            "in_use".into(),
            Some("claim::fifth".into())
        )),
        "{states:?}"
    );
    assert_eq!(
        leases_held(vec![fourth.name.clone()]).await,
        vec![fourth.name.clone()]
    );
    for name in all.iter().skip(1).chain([&fourth.name]) {
        registry::release(&mut conn, name).await.unwrap();
    }
    sqlx::query("DELETE FROM seedbed.databases WHERE template = $1")
        .bind(&template)
        .execute(&mut conn)
        .await
        .unwrap();
    let _ = other.close().await;
}
