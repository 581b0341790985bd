//! `seedbed bench` on SQLite: the reference schema adapted to SQLite with no argument but
//! `--sqlite`, a user's schema beside a `sqlite:` URL, and the errors bad input gets. Every run
//! uses a directory of its own (`SEEDBED_SQLITE_DIR`, or beside the URL's file), which the test
//! lists afterwards: the run leaves nothing of its own there.
#![allow(
    clippy::expect_used,
    reason = "test helpers: their failure is the test's"
)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::TempDir;

/// `seedbed <args>`, with SQLite's databases in `sqlite_dir` when given.
fn seedbed(args: &[&str], sqlite_dir: Option<&Path>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_seedbed"));
    command.args(args);
    if let Some(dir) = sqlite_dir {
        command.env("SEEDBED_SQLITE_DIR", dir);
    }
    command.output().expect("run seedbed")
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

/// The database files in `dir`.
fn databases(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".db"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
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

#[test]
fn benches_the_sqlite_reference_schema_with_no_server_and_leaves_nothing_behind() {
    let tmp = TempDir::new("bench-sqlite-reference");
    let dir = tmp.0.join("databases");
    let out_dir = tmp.0.join("out");
    let out = seedbed(
        &[
            "bench",
            "--sqlite",
            "--tests",
            "3",
            "--process-tests",
            "2",
            "--jobs",
            "2",
            "--out",
            path(&out_dir),
        ],
        Some(&dir),
    );
    let printed = text(&out);
    assert!(out.status.success(), "{printed}");
    assert!(
        printed.contains(&format!("sqlite:  {} (SQLite 3.", dir.display())),
        "{printed}"
    );
    // Every table of the reference schema is filled: CHECKs as SQLite keeps them (IN lists,
    // GLOBs, json_valid, a date ordering), the rowid keys, the FK cycle.
    assert!(
        printed.contains("bundled reference schema, SQLite (4 migrations"),
        "{printed}"
    );
    assert!(printed.contains("33 tables, 33 filled"), "{printed}");
    assert!(
        printed.contains("recommendation (cargo test, one process): "),
        "{printed}"
    );
    assert!(
        printed.contains("recommendation (cargo nextest, one process per test): "),
        "{printed}"
    );
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out_dir.join("bench.json")).expect("bench.json"),
    )
    .expect("bench.json is JSON");
    assert_eq!(json["environment"]["backend"], "SQLite", "{json}");
    assert_eq!(json["schema"]["tables"], 33, "{json}");
    assert_all_measured(&json, 3, 2);
    let svg = std::fs::read_to_string(out_dir.join("bench.svg")).expect("bench.svg");
    assert!(svg.contains("SQLite"), "the chart names the backend");

    // What stays is the engine's, for the next run: the migrated images and the slots made from
    // them, and the Template copies the bench process kept for its next test, which the sweep
    // removes now that the process has exited. Nothing of the bench's own (its planning
    // database, the floor's copies, the baseline's databases) stays.
    let left = databases(&dir);
    assert!(
        !left.iter().any(|n| n.starts_with("seedbed_bench_")),
        "{left:?}"
    );
    let swept = seedbed(&["sweep", "--sqlite"], Some(&dir));
    assert!(swept.status.success(), "{}", text(&swept));
    let left = databases(&dir);
    assert!(
        left.iter().all(|n| {
            ["seedbed_tpl", "seedbed_slot_", "seedbed_rb_", "seedbed_ns_"]
                .iter()
                .any(|p| n.starts_with(p))
        }),
        "{left:?}"
    );
}

/// A user's SQLite schema: an enum as a CHECK, a GLOB, a BETWEEN, a nullable self-reference, a
/// composite key of two parents, a date ordering, a lookup table filled by the migration.
const SHOP: &str = "
CREATE TABLE sizes (code TEXT PRIMARY KEY, label TEXT NOT NULL);
INSERT INTO sizes VALUES ('s', 'small'), ('m', 'medium'), ('l', 'large');
CREATE TABLE customers (
    id INTEGER PRIMARY KEY,
    handle TEXT NOT NULL UNIQUE CHECK (handle GLOB '[a-z]*' AND handle NOT GLOB '*[^a-z0-9_]*'),
    tier TEXT NOT NULL CHECK (tier IN ('free', 'pro')),
    referred_by INTEGER REFERENCES customers (id),
    joined_on TEXT NOT NULL DEFAULT CURRENT_DATE,
    renews_on TEXT,
    CHECK (renews_on IS NULL OR renews_on > joined_on)
);
CREATE TABLE products (
    sku TEXT PRIMARY KEY,
    size TEXT NOT NULL REFERENCES sizes (code),
    stock INTEGER NOT NULL CHECK (stock BETWEEN 0 AND 500)
);
CREATE TABLE wishes (
    customer_id INTEGER NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    sku TEXT NOT NULL REFERENCES products (sku) ON DELETE CASCADE,
    PRIMARY KEY (customer_id, sku)
);
";

#[test]
fn benches_a_users_schema_beside_a_sqlite_url() {
    let tmp = TempDir::new("bench-sqlite-url");
    let migrations = tmp.migrations(&[SHOP]);
    let url = format!("sqlite://{}", tmp.0.join("app.db").display());
    let out_dir = tmp.0.join("out");
    let out = seedbed(
        &[
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
        ],
        None,
    );
    let printed = text(&out);
    assert!(out.status.success(), "{printed}");
    let dir = tmp.0.join("seedbed-sqlite");
    assert!(
        printed.contains(&format!("sqlite:  {} (SQLite", dir.display())),
        "{printed}"
    );
    assert!(printed.contains("4 tables, 4 filled"), "{printed}");
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out_dir.join("bench.json")).expect("bench.json"),
    )
    .expect("bench.json is JSON");
    assert_all_measured(&json, 4, 2);
    assert!(
        !databases(&dir)
            .iter()
            .any(|n| n.starts_with("seedbed_bench_")),
        "{:?}",
        databases(&dir)
    );
}

#[test]
fn a_sqlite_url_in_a_missing_directory_is_named() {
    let tmp = TempDir::new("bench-sqlite-missing");
    let url = format!("sqlite://{}", tmp.0.join("nowhere/app.db").display());
    let out = seedbed(&["bench", "--database-url", &url, "--tests", "1"], None);
    let printed = text(&out);
    assert!(!out.status.success(), "{printed}");
    assert!(
        printed.contains(&format!(
            "names a SQLite file in {}, which does not exist",
            tmp.0.join("nowhere").display()
        )),
        "{printed}"
    );
    assert!(!tmp.0.join("nowhere").exists());
}

#[test]
fn a_failing_migration_is_named_by_its_file_and_leaves_no_database() {
    let tmp = TempDir::new("bench-sqlite-broken");
    let migrations = tmp.migrations(&[
        "CREATE TABLE a (id INTEGER PRIMARY KEY);",
        "CREATE TABLE b (id INTEGER PRIMARY KEY, a_id INTEGER REFERENCES a (id));\n\
         INSERT INTO nowhere VALUES (1);",
    ]);
    let dir = tmp.0.join("databases");
    let out = seedbed(
        &[
            "bench",
            "--sqlite",
            "--migrations",
            path(&migrations),
            "--tests",
            "1",
        ],
        Some(&dir),
    );
    let printed = text(&out);
    assert!(!out.status.success(), "{printed}");
    assert!(printed.contains("20240101000001_schema.sql"), "{printed}");
    assert!(printed.contains("no such table: nowhere"), "{printed}");
    assert_eq!(databases(&dir), Vec::<String>::new());
}
