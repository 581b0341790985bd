//! Who gets into the embedded server: its owner, through the socket or with the URL seedbed
//! prints; nobody else, over TCP or the socket. Each test starts a server of its own.
//!
//! The second-account test needs root (to create the account and run a client as it), as CI
//! runs; run as another user it fails and says so.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output};

use common::PrivateBase;
use seedbed::server::Server;
use seedbed::server::embedded::{self, EmbeddedServer};
use sqlx::{Connection, PgConnection};

/// The account the test creates to play another local user.
const INTRUDER: &str = "seedbed-intruder";

#[allow(clippy::expect_used, reason = "test helper: its failure is the test's")]
fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

fn psql(server: &EmbeddedServer) -> std::path::PathBuf {
    let own = server.bin_dir.join("psql");
    if own.is_file() { own } else { "psql".into() }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[allow(clippy::expect_used, reason = "test helper: its failure is the test's")]
/// `psql … -c 'SELECT 1'`, as `uid` when given, never prompting for a password.
fn run_psql(server: &EmbeddedServer, uid: Option<(u32, u32)>, args: &[&str]) -> Output {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(psql(server));
    cmd.args(args)
        .args(["-w", "-X", "-At", "-c", "SELECT 1"])
        .env_remove("PGPASSWORD")
        .env_remove("PGPASSFILE")
        .env("PGCONNECT_TIMEOUT", "5")
        .current_dir("/");
    if let Some((uid, gid)) = uid {
        cmd.uid(uid).gid(gid).env("HOME", "/").env("USER", INTRUDER);
    }
    cmd.output().expect("run psql")
}

#[allow(clippy::expect_used, reason = "test helper: its failure is the test's")]
/// Asserts TCP without the password, or with a wrong one, is refused, and the URL works.
async fn assert_tcp_needs_the_password(server: &EmbeddedServer) {
    let no_password = format!("postgres://postgres@127.0.0.1:{}/postgres", server.port);
    let err = PgConnection::connect(&no_password)
        .await
        .expect_err("TCP without a password must be refused");
    assert!(err.to_string().contains("password"), "{err}");
    let wrong = format!(
        "postgres://postgres:guess@127.0.0.1:{}/postgres",
        server.port
    );
    let err = PgConnection::connect(&wrong)
        .await
        .expect_err("TCP with a wrong password must be refused");
    assert!(
        err.to_string().contains("password authentication failed"),
        "{err}"
    );
    let mut conn = PgConnection::connect(&server.url("postgres"))
        .await
        .expect("the URL seedbed prints connects");
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&mut conn)
        .await
        .expect("query");
    assert_eq!(one, 1);
    let _ = conn.close().await;
}

fn user_ids(name: &str) -> Option<(u32, u32)> {
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").arg(flag).arg(name).output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().parse().ok())?
    };
    Some((id("-u")?, id("-g")?))
}

#[tokio::test]
async fn another_os_account_cannot_connect_and_the_owner_can() {
    let me = std::fs::metadata("/proc/self").expect("self").uid();
    assert_eq!(
        me, 0,
        "this test creates a second OS account and runs psql as it: run it as root (CI does)"
    );
    let base = PrivateBase::new("access");
    let server = embedded::ensure(&base.config()).await.expect("start");
    let cluster = base.cluster_dirs()[0].clone();

    // The files: the cluster and the socket's directory are the owner's alone, so is the secret.
    assert_eq!(mode(&cluster), 0o700, "{}", cluster.display());
    assert_eq!(mode(&server.socket_dir), 0o700);
    assert_eq!(
        mode(&server.socket_dir.join(format!(".s.PGSQL.{}", server.port))),
        0o700,
        "the socket itself"
    );
    assert_eq!(mode(&cluster.join("secret")), 0o600);
    assert_eq!(
        std::fs::read_to_string(cluster.join("secret"))
            .expect("secret")
            .trim(),
        server.password()
    );
    assert!(server.url("postgres").contains(server.password()));
    assert!(!format!("{server:?}").contains(server.password()));

    assert_tcp_needs_the_password(&server).await;

    // A second local account.
    if user_ids(INTRUDER).is_none() {
        let out = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
            ])
            .arg(INTRUDER)
            .output()
            .expect("run useradd");
        assert!(out.status.success(), "useradd: {}", text(&out));
    }
    let intruder = user_ids(INTRUDER).expect("the second account exists");
    let port = server.port.to_string();
    let socket_dir = server.socket_dir.to_string_lossy().to_string();

    let tcp = run_psql(
        &server,
        Some(intruder),
        &[
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "postgres",
            "-d",
            "postgres",
        ],
    );
    assert!(!tcp.status.success(), "TCP let the second account in");
    assert!(text(&tcp).contains("password"), "{}", text(&tcp));

    let socket = run_psql(
        &server,
        Some(intruder),
        &[
            "-h",
            &socket_dir,
            "-p",
            &port,
            "-U",
            "postgres",
            "-d",
            "postgres",
        ],
    );
    assert!(
        !socket.status.success(),
        "the socket let the second account in"
    );
    assert!(
        text(&socket).contains("Permission denied"),
        "{}",
        text(&socket)
    );

    // The owner: with the URL seedbed prints (TCP and its password), and through the socket.
    let url = server.url("postgres");
    let owner_tcp = run_psql(&server, None, &[&url]);
    assert!(owner_tcp.status.success(), "{}", text(&owner_tcp));
    assert_eq!(String::from_utf8_lossy(&owner_tcp.stdout).trim(), "1");
    let owner_socket = run_psql(
        &server,
        None,
        &[
            "-h",
            &socket_dir,
            "-p",
            &port,
            "-U",
            "postgres",
            "-d",
            "postgres",
        ],
    );
    assert!(owner_socket.status.success(), "{}", text(&owner_socket));
}

#[tokio::test]
async fn the_secret_is_kept_across_restarts() {
    let base = PrivateBase::new("secret");
    let first = embedded::ensure(&base.config()).await.expect("start");
    embedded::stop(&base.config()).await.expect("stop");
    let second = embedded::ensure(&base.config()).await.expect("restart");
    assert_ne!(first.pid, second.pid);
    assert_eq!(first.password(), second.password());
    assert_tcp_needs_the_password(&second).await;
    // seedbed's own connections (the socket) work as before.
    let server = Server::embedded(&base.config()).await.expect("server");
    let conn = server.connect().await.expect("socket connection");
    let _ = conn.close().await;
}

#[allow(clippy::expect_used, reason = "test helper: its failure is the test's")]
/// What a cluster made before it had a secret looked like: every local account trusted.
fn make_it_trusting(data_dir: &Path, cluster: &Path) {
    std::fs::write(
        data_dir.join("pg_hba.conf"),
        "local all all trust\nhost all all 127.0.0.1/32 trust\n",
    )
    .expect("write pg_hba.conf");
    std::fs::remove_file(cluster.join("secret")).expect("remove secret");
}

#[tokio::test]
async fn a_cluster_that_trusted_every_account_is_secured_stopped_or_running() {
    let base = PrivateBase::new("upgrade");
    let first = embedded::ensure(&base.config()).await.expect("start");
    let cluster = base.cluster_dirs()[0].clone();

    // Stopped: the next start rewrites its rules and sets a password.
    embedded::stop(&base.config()).await.expect("stop");
    make_it_trusting(&first.data_dir, &cluster);
    let restarted = embedded::ensure(&base.config()).await.expect("restart");
    assert_ne!(restarted.password(), first.password());
    assert_tcp_needs_the_password(&restarted).await;

    // Running under the old rules: secured in place, without a restart.
    make_it_trusting(&restarted.data_dir, &cluster);
    let mut conn = PgConnection::connect_with(&restarted.connect_options("postgres"))
        .await
        .expect("connect");
    sqlx::query("SELECT pg_reload_conf()")
        .execute(&mut conn)
        .await
        .expect("reload");
    let _ = conn.close().await;
    let open = format!("postgres://postgres@127.0.0.1:{}/postgres", restarted.port);
    PgConnection::connect(&open)
        .await
        .expect("the old rules let anyone in")
        .close()
        .await
        .expect("close");
    let secured = embedded::ensure(&base.config()).await.expect("secure");
    assert_eq!(secured.pid, restarted.pid, "secured without a restart");
    assert_ne!(secured.password(), restarted.password());
    assert_tcp_needs_the_password(&secured).await;
}
