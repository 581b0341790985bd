//! The embedded server: started once, reused, recovered from stale state, and the errors a user
//! sees when it cannot be had. Each test uses a private base directory and its own server.

mod common;

use std::time::Duration;

use common::{PrivateBase, kill, wait_gone};
use seedbed::isolation::Migrations;
use seedbed::server::binaries::SearchPaths;
use seedbed::server::embedded::{self, EmbeddedConfig};
use seedbed::server::{Origin, Server};
use seedbed::{Error, Isolation, Strategy};
use sqlx::{Connection, PgConnection};

#[allow(clippy::expect_used, reason = "test helper: its failure is the test's")]
async fn query_data_dir(server: &Server) -> String {
    let mut conn = server.connect().await.expect("connect");
    let dir: String = sqlx::query_scalar("SELECT current_setting('data_directory')")
        .fetch_one(&mut conn)
        .await
        .expect("query");
    let _ = conn.close().await;
    dir
}

#[tokio::test]
async fn starts_once_then_reuses_the_running_server() {
    let base = PrivateBase::new("reuse");
    let first = embedded::ensure(&base.config()).await.expect("cold start");
    let second = embedded::ensure(&base.config()).await.expect("warm reuse");
    assert_eq!(first, second, "the second call reuses the first server");
    assert_eq!(base.postmasters(), vec![first.pid]);

    let server = Server::embedded(&base.config()).await.expect("server");
    assert!(matches!(server.origin(), Origin::Embedded(_)));
    assert!(server.major_version() >= 13);
    assert!(
        query_data_dir(&server)
            .await
            .starts_with(&*base.dir.to_string_lossy())
    );

    // Settings of a throwaway test server.
    let mut conn = server.connect().await.expect("connect");
    for (setting, expected) in [
        ("fsync", "off"),
        ("synchronous_commit", "off"),
        ("full_page_writes", "off"),
        ("listen_addresses", "127.0.0.1"),
    ] {
        let value: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SHOW {setting}")))
            .fetch_one(&mut conn)
            .await
            .expect("SHOW");
        assert_eq!(value, expected, "{setting}");
    }
    // The TCP URL printed for tools works too.
    let mut tcp = PgConnection::connect(&first.url("postgres"))
        .await
        .expect("TCP connection");
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&mut tcp)
        .await
        .expect("query");
    assert_eq!(one, 1);

    assert!(embedded::stop(&base.config()).await.expect("stop"));
    assert!(wait_gone(first.pid, Duration::from_secs(10)));
    assert_eq!(
        embedded::status(&base.config()).await.expect("status"),
        None
    );
}

#[tokio::test]
async fn recovers_from_a_killed_server() {
    let base = PrivateBase::new("killed");
    let first = embedded::ensure(&base.config()).await.expect("start");
    // The server dies without cleaning up: its state file, socket and postmaster.pid remain.
    kill(first.pid, "KILL");
    assert!(wait_gone(first.pid, Duration::from_secs(10)));
    let second = embedded::ensure(&base.config()).await.expect("restart");
    assert_ne!(first.pid, second.pid);
    assert_eq!(base.postmasters(), vec![second.pid]);
    let server = Server::embedded(&base.config()).await.expect("server");
    query_data_dir(&server).await;
}

#[tokio::test]
async fn recovers_from_a_state_file_that_points_elsewhere() {
    // Cluster A runs; cluster B's state file is overwritten with A's (a port now taken by another
    // server). B must start its own server instead of using A's.
    let a = PrivateBase::new("elsewhere-a");
    let b = PrivateBase::new("elsewhere-b");
    let running_a = embedded::ensure(&a.config()).await.expect("start A");
    let running_b = embedded::ensure(&b.config()).await.expect("start B");
    embedded::stop(&b.config()).await.expect("stop B");
    let state_a = a.cluster_dirs()[0].join("state");
    let state_b = b.cluster_dirs()[0].join("state");
    std::fs::copy(&state_a, &state_b).expect("copy state");

    let again_b = embedded::ensure(&b.config()).await.expect("restart B");
    assert_ne!(again_b.pid, running_a.pid);
    assert_ne!(again_b.port, running_a.port);
    assert_eq!(again_b.data_dir, running_b.data_dir);
    assert_eq!(b.postmasters(), vec![again_b.pid]);
    assert_eq!(a.postmasters(), vec![running_a.pid]);
}

#[tokio::test]
async fn recovers_from_garbage_and_from_a_wiped_directory() {
    let base = PrivateBase::new("wiped");
    let first = embedded::ensure(&base.config()).await.expect("start");
    embedded::stop(&base.config()).await.expect("stop");
    let cluster = base.cluster_dirs()[0].clone();
    std::fs::write(cluster.join("state"), "pid=not a number\nport=\n").expect("garbage");
    let second = embedded::ensure(&base.config())
        .await
        .expect("start over garbage");
    assert_ne!(first.pid, second.pid);

    // A reboot wipes tmpfs: the next use starts from nothing (initdb again).
    embedded::stop(&base.config()).await.expect("stop");
    std::fs::remove_dir_all(&base.dir).expect("wipe");
    let third = embedded::ensure(&base.config())
        .await
        .expect("start after wipe");
    assert!(third.data_dir.join("PG_VERSION").is_file());
    assert_eq!(base.postmasters(), vec![third.pid]);
}

#[tokio::test]
async fn runs_the_server_as_an_unprivileged_account_when_root() {
    use std::os::unix::fs::MetadataExt;
    let base = PrivateBase::new("owner");
    let running = embedded::ensure(&base.config()).await.expect("start");
    let owner = std::fs::metadata(&running.data_dir)
        .expect("data dir")
        .uid();
    let status = std::fs::read_to_string(format!("/proc/{}/status", running.pid)).expect("status");
    let server_uid: u32 = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("uid");
    let me = std::fs::metadata("/proc/self").expect("self").uid();
    if me == 0 {
        assert_ne!(server_uid, 0, "the server must not run as root");
        assert_ne!(owner, 0, "the cluster must not belong to root");
    } else {
        assert_eq!(server_uid, me);
        assert_eq!(owner, me);
    }
    assert_eq!(owner, server_uid);
}

#[test]
fn missing_binaries_say_what_to_install() {
    let search = SearchPaths {
        path: Some("/nonexistent/bin".into()),
        pg_config: false,
        versioned_roots: vec![],
    };
    let err = seedbed::server::binaries::discover(&search).expect_err("nothing to find");
    assert!(matches!(err, Error::NoServer { .. }));
    let text = err.to_string();
    for needle in [
        "DATABASE_URL",
        "apt-get install postgresql",
        "brew install postgresql@17",
        "initdb",
    ] {
        assert!(text.contains(needle), "missing `{needle}` in:\n{text}");
    }
}

#[tokio::test]
async fn no_binaries_means_no_embedded_server() {
    let base = PrivateBase::new("nobin");
    let config = EmbeddedConfig {
        base_dir: Some(base.dir.clone()),
        search: SearchPaths {
            path: Some("/nonexistent/bin".into()),
            pg_config: false,
            versioned_roots: vec![],
        },
        settings: vec![],
    };
    let err = Server::embedded(&config).await.expect_err("no server");
    assert!(
        err.to_string().contains("apt-get install postgresql"),
        "{err}"
    );
    assert!(
        !base.dir.exists(),
        "nothing is created when there is nothing to run"
    );
}

#[tokio::test]
async fn an_unreachable_url_names_host_and_port_after_a_bounded_wait() {
    // Port 1 on loopback: nothing listens there.
    let started = std::time::Instant::now();
    let err = Server::from_url_with(
        "postgres://postgres@127.0.0.1:1/postgres",
        "DATABASE_URL",
        Duration::from_millis(800),
    )
    .await
    .expect_err("unreachable");
    assert!(started.elapsed() < Duration::from_secs(30), "bounded wait");
    let text = err.to_string();
    assert!(matches!(err, Error::Unreachable { port: 1, .. }), "{text}");
    assert!(text.contains("127.0.0.1:1"), "{text}");
    assert!(text.contains("DATABASE_URL"), "{text}");

    let bad = Server::from_url_with("mysql://nope", "DATABASE_URL", Duration::from_millis(100))
        .await
        .expect_err("not a postgres url");
    assert!(matches!(bad, Error::Config(_)), "{bad}");
}

#[tokio::test]
async fn a_missing_extension_is_named_with_its_package() {
    let dir = std::env::temp_dir().join(format!("seedbed-it-ext-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(
        dir.join("20240101000000_needs_extension.sql"),
        "CREATE EXTENSION seedbed_no_such_extension;\n",
    )
    .expect("write migration");
    let migrations = Migrations::from_dir(&dir).await.expect("read");
    let server = Server::resolve().await.expect("server");
    let err = seedbed::isolation::databases::ensure(server, &migrations, "ext")
        .await
        .expect_err("missing extension");
    let _ = std::fs::remove_dir_all(&dir);
    let text = err.to_string();
    assert!(matches!(err, Error::MissingExtension { .. }), "{text}");
    assert!(text.contains("seedbed_no_such_extension"), "{text}");
    assert!(
        text.contains("20240101000000_needs_extension.sql"),
        "{text}"
    );
    assert!(text.contains("postgresql-contrib"), "{text}");

    // Nothing half-built is left behind.
    let mut conn = server.connect().await.expect("connect");
    let name = seedbed::isolation::databases::database_name("ext", migrations.checksum());
    assert!(
        !seedbed::backend::postgres::admin::database_exists(&mut conn, &name)
            .await
            .expect("lookup")
    );
}

#[tokio::test]
async fn a_missing_migrations_directory_is_named() {
    let err = Migrations::from_dir("no/such/migrations")
        .await
        .expect_err("missing dir");
    let text = err.to_string();
    assert!(text.contains("no/such/migrations"), "{text}");
    assert!(text.contains("no such directory"), "{text}");
}

#[allow(clippy::expect_used, reason = "test helper: its failure is the test's")]
async fn show(conn: &mut PgConnection, setting: &str) -> String {
    sqlx::query_scalar("SELECT current_setting($1)")
        .bind(setting)
        .fetch_one(conn)
        .await
        .expect("show")
}

/// seedbed's own connections hold leases, budget slots and locks while tests run: a server that
/// ends idle sessions (here, through the URL's options) must not end them, while the connections
/// the code under test gets keep the server's settings.
#[tokio::test]
#[allow(
    clippy::expect_used,
    reason = "test code: a failed expectation is a failed test"
)]
async fn idle_timeouts_do_not_end_seedbeds_own_sessions() {
    use seedbed::backend::postgres::coord::{DbLock, LockMode};
    let resolved = Server::resolve().await.expect("server");
    let url = resolved.url_for(resolved.maintenance_database());
    let sep = if url.contains('?') { '&' } else { '?' };
    let url = format!(
        "{url}{sep}options=-c%20idle_session_timeout%3D150ms%20-c%20idle_in_transaction_session_timeout%3D150ms"
    );
    let server = Server::from_url(&url)
        .await
        .expect("server with idle timeouts");
    let mut own = server.connect().await.expect("connect");
    server.hold_session(&mut own).await.expect("hold");
    let mut lock = DbLock::acquire(
        &server,
        "test:idle-timeouts",
        LockMode::Exclusive,
        Duration::from_secs(10),
    )
    .await
    .expect("lock");
    let mut app =
        PgConnection::connect_with(&server.database_options(server.maintenance_database()))
            .await
            .expect("connect");
    let setting = if server.major_version() >= 14 {
        "idle_session_timeout"
    } else {
        "idle_in_transaction_session_timeout"
    };
    assert_eq!(show(&mut app, setting).await, "150ms");
    assert_eq!(show(&mut own, setting).await, "0");
    assert_eq!(show(lock.connection(), setting).await, "0");
    tokio::time::sleep(Duration::from_millis(600)).await;
    // The server ended the application's idle session, not seedbed's.
    assert_eq!(show(&mut own, setting).await, "0");
    assert_eq!(show(lock.connection(), setting).await, "0");
    if server.major_version() >= 14 {
        assert!(
            sqlx::query("SELECT 1").execute(&mut app).await.is_err(),
            "the application's connection outlived idle_session_timeout"
        );
    }
    lock.release().await.expect("release");
    let _ = own.close().await;
}

/// Connections to a server named by URL commit without waiting for the disk, unless the URL
/// says otherwise; the URL's own choice is kept.
#[tokio::test]
#[allow(
    clippy::expect_used,
    reason = "test code: a failed expectation is a failed test"
)]
async fn url_servers_commit_without_waiting_for_the_disk_unless_the_url_says() {
    let resolved = Server::resolve().await.expect("server");
    let url = resolved.url_for(resolved.maintenance_database());
    let server = Server::from_url(&url).await.expect("server");
    let mut conn = server.connect().await.expect("connect");
    assert_eq!(show(&mut conn, "synchronous_commit").await, "off");
    let db = Isolation::new(Strategy::Truncate)
        .migrations("migrations")
        .test_name("embedded::synchronous_commit")
        .acquire()
        .await
        .expect("acquire");
    let mut test_conn = db.pool().acquire().await.expect("test connection");
    let test_setting = show(&mut test_conn, "synchronous_commit").await;
    drop(test_conn);
    db.finish().await.expect("finish");
    if matches!(resolved.origin(), Origin::Url { .. }) {
        assert_eq!(test_setting, "off", "a test's own connection");
    }

    let sep = if url.contains('?') { '&' } else { '?' };
    let kept = format!("{url}{sep}options=-c%20synchronous_commit%3Dlocal");
    let server = Server::from_url(&kept).await.expect("server");
    let mut conn = server.connect().await.expect("connect");
    assert_eq!(show(&mut conn, "synchronous_commit").await, "local");
}

/// A child for [`a_killed_server_fails_its_tests_with_a_note_and_the_next_run_restarts_it`]:
/// says it runs (a file beside the cluster), then waits for the server to be killed under it.
#[seedbed::test(migrations = false)]
#[ignore = "a child: run in a process of its own by the test that kills its server"]
async fn child_outlives_its_server(pool: sqlx::PgPool) {
    let ready = std::path::PathBuf::from(std::env::var("SEEDBED_HOME").expect("SEEDBED_HOME"))
        .join("child-ready");
    std::fs::write(&ready, "").expect("write the ready file");
    for _ in 0..100 {
        sqlx::query("SELECT 1").execute(&pool).await.expect("query");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_killed_server_fails_its_tests_with_a_note_and_the_next_run_restarts_it() {
    let base = PrivateBase::new("killed-under-tests");
    let first = embedded::ensure(&base.config()).await.expect("start");
    let child = std::process::Command::new(std::env::current_exe().expect("exe"))
        .args([
            "child_outlives_its_server",
            "--exact",
            "--include-ignored",
            "--test-threads",
            "1",
        ])
        .env("SEEDBED_HOME", &base.dir)
        .env_remove("DATABASE_URL")
        .env_remove("SEEDBED_DATABASE_URL")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn the child");
    let ready = base.dir.join("child-ready");
    let waited = std::time::Instant::now();
    while !ready.exists() {
        assert!(
            waited.elapsed() < Duration::from_secs(60),
            "the child never ran"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    kill(first.pid, "KILL");
    assert!(wait_gone(first.pid, Duration::from_secs(10)));
    let out = child.wait_with_output().expect("wait for the child");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "the child passed:\n{text}");
    assert!(
        text.contains(&format!(
            "the embedded PostgreSQL server (pid {}) is gone",
            first.pid
        )),
        "{text}"
    );
    // The next run starts it again.
    let second = embedded::ensure(&base.config()).await.expect("restart");
    assert_ne!(second.pid, first.pid);
    assert_eq!(base.postmasters(), vec![second.pid]);
}

#[tokio::test]
async fn a_full_disk_names_the_directory_and_seedbed_home() {
    // A 2 MiB tmpfs: too small for a cluster.
    let base = PrivateBase::new("full-disk");
    std::fs::create_dir_all(&base.dir).expect("mount point");
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(&base.dir)
        .output()
        .expect("run mount");
    assert!(
        mounted.status.success(),
        "this test mounts a small tmpfs (as root, which CI is): {}",
        String::from_utf8_lossy(&mounted.stderr)
    );
    let result = embedded::ensure(&base.config()).await;
    let _ = std::process::Command::new("umount").arg(&base.dir).status();
    let err = result.expect_err("a cluster does not fit in 2 MiB");
    let text = err.to_string();
    assert!(
        text.contains("is full") && text.contains("SEEDBED_HOME"),
        "{text}"
    );
    assert!(text.contains(&*base.dir.to_string_lossy()), "{text}");
}
