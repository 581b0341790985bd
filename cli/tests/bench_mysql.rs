//! `seedbed bench` on MySQL and MariaDB: the reference schema adapted to MySQL with no argument
//! but `--mysql`, a user's schema on a server named by `--database-url`, and the errors bad input
//! gets. The server is the one `SEEDBED_MYSQL_URL` names, else the embedded server (started with
//! `seedbed server start --mysql`, whose URL the URL tests use). Each run leaves none of its own
//! databases (`seedbed_bench_…`) behind, which the tests check on the server.
#![allow(
    clippy::expect_used,
    reason = "test helpers: their failure is the test's"
)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::TempDir;
use sqlx::Connection;

fn seedbed(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_seedbed"))
        .args(args)
        .output()
        .expect("run seedbed")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

/// A TCP URL of the server the tests run against: `SEEDBED_MYSQL_URL`, else the embedded
/// server's, which `seedbed server start --mysql` starts (or finds) and prints.
fn server_url() -> String {
    if let Ok(url) = std::env::var("SEEDBED_MYSQL_URL")
        && !url.trim().is_empty()
        && url.trim() != "embedded"
    {
        return url.trim().to_string();
    }
    let out = seedbed(&["server", "start", "--mysql"]);
    let printed = text(&out);
    assert!(out.status.success(), "the embedded MySQL server: {printed}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    stderr
        .lines()
        .find_map(|l| l.split_once("over TCP (from a container, say): "))
        .map(|(_, url)| url.trim().to_string())
        .unwrap_or_else(|| panic!("no TCP URL in: {printed}"))
}

/// `url` with `password` as its password.
fn with_password(url: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let (userinfo, host) = rest.split_once('@').expect("a URL with a user");
    let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
    format!("{scheme}://{user}:{password}@{host}")
}

/// The password of `url`, if it has one.
fn password(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let userinfo = rest.split_once('@')?.0;
    userinfo
        .split_once(':')
        .map(|(_, p)| p)
        .filter(|p| !p.is_empty())
}

/// The databases on the server whose names start with `prefix`.
async fn databases(url: &str, prefix: &str) -> Vec<String> {
    let mut conn = sqlx::MySqlConnection::connect(url)
        .await
        .expect("connect to the MySQL server");
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT CAST(SCHEMA_NAME AS CHAR) FROM information_schema.SCHEMATA \
         WHERE SCHEMA_NAME LIKE CONCAT(?, '%')",
    )
    .bind(prefix)
    .fetch_all(&mut conn)
    .await
    .expect("list databases");
    let _ = conn.close().await;
    names
}

/// The bench's own databases (its planning database, the baseline's) on the server: none may
/// outlive a run.
async fn bench_databases(url: &str) -> Vec<String> {
    databases(url, "seedbed\\_bench\\_").await
}

/// Holds the server for one test's runs: the tests of this file (processes of their own under
/// nextest) look for what a run left, which another run going on would have made.
async fn exclusive(url: &str) -> sqlx::MySqlConnection {
    let mut conn = sqlx::MySqlConnection::connect(url)
        .await
        .expect("connect to the MySQL server");
    let taken: Option<i64> = sqlx::query_scalar("SELECT GET_LOCK('seedbed_cli_bench_mysql', 600)")
        .fetch_one(&mut conn)
        .await
        .expect("take the tests' lock");
    assert_eq!(taken, Some(1), "the tests' lock");
    conn
}

/// Every target of a run's bench.json measured, with no failure and a clean isolation check,
/// in process and in test processes.
fn assert_all_measured(json: &serde_json::Value, tests: u64, processes: u64) {
    let results = json["results"].as_array().expect("results");
    assert_eq!(results.len(), 5, "{json}");
    for r in results {
        assert_eq!(r["available"], true, "{r}");
        assert_eq!(r["isolation"]["clean"], true, "{r}");
        assert_eq!(r["serial"]["failures"], 0, "{r}");
        assert_eq!(r["parallel"]["failures"], 0, "{r}");
        assert_eq!(r["serial"]["overhead"]["samples"], tests, "{r}");
        let p = &r["processes"];
        assert_eq!(p["available"], true, "{r}");
        assert_eq!(p["failures"], 0, "{r}");
        assert_eq!(p["process"]["samples"], processes, "{r}");
        assert_eq!(p["isolation"]["clean"], true, "{r}");
    }
    assert_eq!(json["floor"]["failures"], 0, "{json}");
}

fn report(out_dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(out_dir.join("bench.json")).expect("bench.json"))
        .expect("bench.json is JSON")
}

#[tokio::test]
async fn benches_the_mysql_reference_schema_and_leaves_nothing_behind() {
    let url = server_url();
    let _held = exclusive(&url).await;
    let tmp = TempDir::new("bench-mysql-reference");
    let out_dir = tmp.0.join("out");
    let out = seedbed(&[
        "bench",
        "--mysql",
        "--tests",
        "3",
        "--process-tests",
        "2",
        "--jobs",
        "2",
        "--out",
        path(&out_dir),
    ]);
    let printed = text(&out);
    assert!(out.status.success(), "{printed}");
    assert!(
        printed.contains("(MariaDB ") || printed.contains("(MySQL "),
        "the server line names the flavor: {printed}"
    );
    assert!(
        printed.contains(", seedbed's connection budget "),
        "the server line gives the connection budget: {printed}"
    );
    // Every table of the reference schema is filled: ENUM and SET labels, CHECKs as the server
    // prints them, unsigned and bit columns, the audit trigger, the FK cycle, composite keys.
    assert!(
        printed.contains("bundled reference schema, MySQL (4 migrations"),
        "{printed}"
    );
    assert!(printed.contains("33 tables, 33 filled"), "{printed}");
    for line in [
        "recommendation (cargo test, one process): ",
        "recommendation (cargo nextest, one process per test): ",
    ] {
        assert!(printed.contains(line), "{printed}");
    }
    let json = report(&out_dir);
    assert!(
        matches!(
            json["environment"]["backend"].as_str(),
            Some("MariaDB" | "MySQL")
        ),
        "{json}"
    );
    assert_eq!(json["schema"]["tables"], 33, "{json}");
    assert_all_measured(&json, 3, 2);
    assert_eq!(bench_databases(&url).await, Vec::<String>::new());

    // What the strategies built stays for the next run, and `seedbed list --mysql` shows it:
    // the migrated databases, Namespace's shared one, the slots, none leased any more.
    let listed = seedbed(&["list", "--mysql"]);
    let printed = text(&listed);
    assert!(listed.status.success(), "{printed}");
    for kind in [" base ", " tpl ", " ns ", " slot "] {
        assert!(printed.contains(kind), "{kind}: {printed}");
    }
}

/// A user's MySQL schema: a lookup table its migration fills, an ENUM, a SET, a CHECK with a
/// range, a nullable self-reference, a composite key of two parents, unsigned keys.
const SHOP: &str = "
CREATE TABLE sizes (code VARCHAR(8) PRIMARY KEY, label VARCHAR(20) NOT NULL);
INSERT INTO sizes VALUES ('s', 'small'), ('m', 'medium'), ('l', 'large');
CREATE TABLE customers (
    id INT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
    handle VARCHAR(40) NOT NULL UNIQUE,
    tier ENUM('free', 'pro') NOT NULL DEFAULT 'free',
    tags SET('new', 'vip', 'late') NOT NULL DEFAULT '',
    referred_by INT UNSIGNED NULL,
    CONSTRAINT customers_referrer FOREIGN KEY (referred_by) REFERENCES customers (id)
);
CREATE TABLE products (
    sku VARCHAR(16) PRIMARY KEY,
    size VARCHAR(8) NOT NULL,
    stock SMALLINT NOT NULL,
    CONSTRAINT products_size FOREIGN KEY (size) REFERENCES sizes (code),
    CONSTRAINT products_stock CHECK (stock BETWEEN 0 AND 500)
);
CREATE TABLE wishes (
    customer_id INT UNSIGNED NOT NULL,
    sku VARCHAR(16) NOT NULL,
    PRIMARY KEY (customer_id, sku),
    CONSTRAINT wishes_customer FOREIGN KEY (customer_id) REFERENCES customers (id) ON DELETE CASCADE,
    CONSTRAINT wishes_product FOREIGN KEY (sku) REFERENCES products (sku) ON DELETE CASCADE
);
";

#[tokio::test]
async fn benches_a_users_schema_on_a_server_named_by_url() {
    let url = server_url();
    let _held = exclusive(&url).await;
    let tmp = TempDir::new("bench-mysql-url");
    let migrations = tmp.migrations(&[SHOP]);
    let out_dir = tmp.0.join("out");
    let out = seedbed(&[
        "bench",
        "--database-url",
        &url,
        "--migrations",
        path(&migrations),
        "--tests",
        "4",
        "--process-tests",
        "2",
        "--jobs",
        "2",
        "--out",
        path(&out_dir),
    ]);
    let printed = text(&out);
    assert!(out.status.success(), "{printed}");
    assert!(printed.contains("4 tables, 4 filled"), "{printed}");
    if let Some(password) = password(&url) {
        assert!(
            !printed.contains(password),
            "the password is hidden: {printed}"
        );
    }
    let json = report(&out_dir);
    assert_all_measured(&json, 4, 2);
    assert_eq!(bench_databases(&url).await, Vec::<String>::new());
}

#[test]
fn a_wrong_password_is_named_with_what_to_do() {
    let url = with_password(&server_url(), "not-the-password");
    let out = seedbed(&["bench", "--database-url", &url, "--tests", "1"]);
    let printed = text(&out);
    assert!(!out.status.success(), "{printed}");
    assert!(printed.contains("wrong user name or password"), "{printed}");
    assert!(
        !printed.contains("not-the-password"),
        "the password stays out of messages: {printed}"
    );
}

#[tokio::test]
async fn a_failing_migration_is_named_by_its_file_and_leaves_no_database() {
    let url = server_url();
    let _held = exclusive(&url).await;
    let tmp = TempDir::new("bench-mysql-broken");
    let migrations = tmp.migrations(&[
        "CREATE TABLE a (id INT PRIMARY KEY);",
        "CREATE TABLE b (id INT PRIMARY KEY, a_id INT REFERENCES a (id));\n\
         INSERT INTO nowhere VALUES (1);",
    ]);
    let out = seedbed(&[
        "bench",
        "--database-url",
        &url,
        "--migrations",
        path(&migrations),
        "--tests",
        "1",
    ]);
    let printed = text(&out);
    assert!(!out.status.success(), "{printed}");
    assert!(printed.contains("20240101000001_schema.sql"), "{printed}");
    assert!(printed.contains("nowhere"), "{printed}");
    assert_eq!(bench_databases(&url).await, Vec::<String>::new());
}
