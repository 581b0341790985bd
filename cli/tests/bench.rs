//! `seedbed bench` as a user runs it: a small suite on a schema of its own, the files it writes,
//! and the error each bad input gets.
#![allow(
    clippy::expect_used,
    reason = "test helpers: their failure is the test's"
)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::TempDir;

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_seedbed"))
        .arg("bench")
        .args(args)
        .output()
        .expect("run seedbed bench")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

/// A schema of this test file's own (its checksum differs from every other test's): an enum, a
/// regex check, a composite key of two parents, a nullable self-reference.
const SHOP: &str = "
CREATE TYPE bench_cli_size AS ENUM ('s', 'm', 'l');
CREATE TABLE bench_cli_customers (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email text NOT NULL UNIQUE CHECK (email ~ '^[a-z0-9]+@[a-z]+\\.test$'),
    referred_by bigint REFERENCES bench_cli_customers
);
CREATE TABLE bench_cli_products (
    sku text PRIMARY KEY CHECK (sku ~ '^[A-Z]{3}-[0-9]{4}$'),
    size bench_cli_size NOT NULL,
    price_cents integer NOT NULL CHECK (price_cents > 0)
);
CREATE TABLE bench_cli_wishes (
    customer_id bigint NOT NULL REFERENCES bench_cli_customers ON DELETE CASCADE,
    sku text NOT NULL REFERENCES bench_cli_products ON DELETE CASCADE,
    PRIMARY KEY (customer_id, sku)
);
";

#[test]
fn writes_a_table_a_recommendation_a_json_report_and_a_chart() {
    let tmp = TempDir::new("bench-report");
    let migrations = tmp.migrations(&[SHOP]);
    let out_dir = tmp.0.join("out");
    let out = bench(&[
        "--migrations",
        path(&migrations),
        "--tests",
        "3",
        "--rows",
        "4",
        "--tables",
        "3",
        "--jobs",
        "2",
        "--out",
        path(&out_dir),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    for name in ["rollback", "truncate", "template", "namespace", "baseline"] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
    assert!(
        text.contains("recommendation (cargo test, one process): "),
        "{text}"
    );
    assert!(text.contains("3 tables, 3 filled"), "{text}");
    // The second block: every test in a process of its own, beside the floor.
    assert!(
        text.contains(
            "one process per test (as cargo nextest runs): 3 test processes per target, 2 at a time"
        ),
        "{text}"
    );
    assert!(text.contains("\nfloor "), "{text}");
    assert!(
        text.contains("recommendation (cargo nextest, one process per test): "),
        "{text}"
    );

    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out_dir.join("bench.json")).expect("bench.json"),
    )
    .expect("bench.json is JSON");
    assert_eq!(json["config"]["tests"], 3);
    assert_eq!(json["config"]["model"], "both");
    assert_eq!(json["config"]["process_tests"], 3);
    assert_eq!(json["schema"]["tables"], 3);
    let floor = &json["floor"];
    assert_eq!(floor["failures"], 0, "{floor}");
    assert_eq!(floor["process"]["samples"], 3, "{floor}");
    assert!(floor["process"]["p50_ms"].as_f64().expect("floor p50") > 0.0);
    let results = json["results"].as_array().expect("results");
    assert_eq!(results.len(), 5);
    for r in results {
        if r["available"] == true {
            assert_eq!(r["isolation"]["clean"], true, "{r}");
            assert_eq!(r["serial"]["failures"], 0, "{r}");
            assert_eq!(r["parallel"]["failures"], 0, "{r}");
            assert_eq!(r["serial"]["overhead"]["samples"], 3, "{r}");
            assert!(r["serial"]["overhead"]["p50_ms"].as_f64().expect("p50") > 0.0);
        } else {
            // Only a strategy this build does not have may be unavailable.
            assert_eq!(r["target"], "namespace", "{r}");
        }
        let p = &r["processes"];
        if p["available"] != true {
            assert_eq!(r["target"], "namespace", "{r}");
            continue;
        }
        assert_eq!(p["failures"], 0, "{r}");
        assert_eq!((&p["tests"], &p["jobs"]), (&3.into(), &2.into()), "{p}");
        for part in ["process", "startup", "overhead", "writes"] {
            assert_eq!(p[part]["samples"], 3, "{part}: {p}");
        }
        let process = p["process"]["p50_ms"].as_f64().expect("process p50");
        let floor_p50 = floor["process"]["p50_ms"].as_f64().expect("floor p50");
        let over = p["over_floor_ms"].as_f64().expect("over_floor_ms");
        assert!((process - floor_p50 - over).abs() < 0.01, "{p}");
        let ratio = p["ratio_to_floor"].as_f64().expect("ratio_to_floor");
        assert!((ratio - process / floor_p50).abs() < 0.01, "{p}");
        assert!(p["ratio_to_baseline"].as_f64().expect("ratio_to_baseline") > 0.0);
        // Every test process leaves its database as migrations left it (Template's clones go
        // back to the pool emptied, or are dropped before the process exits).
        assert_eq!(p["isolation"]["clean"], true, "{r}");
    }
    let baseline = results
        .iter()
        .find(|r| r["target"] == "baseline")
        .expect("baseline");
    assert_eq!(baseline["overhead_ratio_to_baseline"], 1.0);
    assert_eq!(baseline["processes"]["ratio_to_baseline"], 1.0);
    assert!(json["recommendation"]["strategy"].is_string(), "{json}");
    assert!(
        json["recommendation_processes"]["strategy"].is_string(),
        "{json}"
    );

    let svg = std::fs::read_to_string(out_dir.join("bench.svg")).expect("bench.svg");
    assert!(svg.starts_with("<svg"), "{svg}");
    assert!(svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("rollback") && svg.contains("baseline"));
}

/// A small run on `SHOP` with `args`; its stdout and bench.json.
fn small_run(name: &str, args: &[&str]) -> (String, serde_json::Value) {
    let tmp = TempDir::new(&format!("bench-{name}"));
    let migrations = tmp.migrations(&[SHOP]);
    let out_dir = tmp.0.join("out");
    let mut all = vec![
        "--migrations",
        path(&migrations),
        "--rows",
        "4",
        "--tables",
        "2",
        "--jobs",
        "2",
        "--out",
        path(&out_dir),
    ];
    all.extend_from_slice(args);
    let out = bench(&all);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    let json = serde_json::from_str(
        &std::fs::read_to_string(out_dir.join("bench.json")).expect("bench.json"),
    )
    .expect("bench.json is JSON");
    (text, json)
}

#[test]
fn processes_alone_measure_no_in_process_suite() {
    let (text, json) = small_run(
        "processes",
        &[
            "--model",
            "processes",
            "--strategies",
            "rollback,baseline",
            "--tests",
            "2",
        ],
    );
    assert!(!text.contains("per-test overhead (serial)"), "{text}");
    assert!(!text.contains("recommendation (cargo test"), "{text}");
    assert!(text.contains("2 test processes per strategy"), "{text}");
    assert!(
        text.contains("recommendation (cargo nextest, one process per test): Rollback: "),
        "{text}"
    );
    assert_eq!(json["config"]["model"], "processes");
    assert!(json["recommendation"].is_null(), "{json}");
    for r in json["results"].as_array().expect("results") {
        assert!(r["in_process"].is_null(), "{r}");
        assert_eq!(r["processes"]["correct"], true, "{r}");
        assert_eq!(r["processes"]["process"]["samples"], 2, "{r}");
    }
}

#[test]
fn in_process_alone_starts_no_test_process() {
    let (text, json) = small_run(
        "in-process",
        &[
            "--model",
            "in-process",
            "--strategies",
            "rollback",
            "--tests",
            "2",
        ],
    );
    assert!(!text.contains("one process per test"), "{text}");
    assert!(!text.contains("cargo nextest"), "{text}");
    assert_eq!(json["config"]["process_tests"], 0);
    assert!(json["floor"].is_null(), "{json}");
    assert!(json["recommendation_processes"].is_null(), "{json}");
    assert!(json["results"][0]["processes"].is_null(), "{json}");
    assert_eq!(json["results"][0]["available"], true, "{json}");
}

#[test]
fn a_test_process_names_what_it_was_not_given() {
    let child = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_seedbed"))
            .arg("__bench-child")
            .args(args)
            .output()
            .expect("run seedbed __bench-child")
    };
    let out = child(&["--target", "rollback", "--test", "0", "--tests", "1"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--plan is missing"),
        "{}",
        stderr(&out)
    );

    let missing = std::env::temp_dir().join("seedbed-cli-bench-no-such-plan.json");
    let out = child(&[
        "--target",
        "rollback",
        "--test",
        "0",
        "--tests",
        "1",
        "--plan",
        path(&missing),
        "--tables",
        "2",
        "--rows",
        "2",
        "--seed",
        "1",
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("cannot read the row plan from") && err.contains("no-such-plan.json"),
        "{err}"
    );
}

#[test]
fn an_unknown_strategy_is_named() {
    let out = bench(&["--strategies", "rollback,fast"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("unknown strategy `fast`") && err.contains("baseline"),
        "{err}"
    );
}

#[test]
fn a_missing_or_unreadable_migrations_directory_is_named() {
    let tmp = TempDir::new("bench-missing");
    let missing = tmp.0.join("no-such-dir");
    let out = bench(&["--migrations", path(&missing)]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("no-such-dir") && err.contains("no such directory"),
        "{err}"
    );

    let file = tmp.0.join("a-file.sql");
    std::fs::write(&file, "SELECT 1;").expect("file");
    let out = bench(&["--migrations", path(&file)]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("a-file.sql") && err.contains("not a directory"),
        "{err}"
    );

    // A directory this user may not read (root reads everything, so only as another user).
    let locked = tmp.0.join("locked");
    std::fs::create_dir_all(&locked).expect("dir");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).expect("chmod");
    if std::fs::read_dir(&locked).is_err() {
        let out = bench(&["--migrations", path(&locked)]);
        assert!(!out.status.success());
        let err = stderr(&out);
        assert!(
            err.contains("locked") && err.contains("ermission denied"),
            "{err}"
        );
    }
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

#[test]
fn a_failing_migration_is_named_with_the_servers_message() {
    let tmp = TempDir::new("bench-failing");
    let migrations =
        tmp.migrations(&["CREATE TABLE bench_cli_broken (id int PRIMARY KEY, x no_such_type);"]);
    let out = bench(&["--migrations", path(&migrations), "--tests", "1"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("20240101000000_schema.sql")
            && err.contains("type \"no_such_type\" does not exist"),
        "{err}"
    );
}

#[test]
fn an_unreachable_server_is_named_with_its_host_and_port() {
    let out = Command::new(env!("CARGO_BIN_EXE_seedbed"))
        .args([
            "bench",
            "--database-url",
            "postgres://postgres@127.0.0.1:1/postgres",
        ])
        .env("SEEDBED_CONNECT_TIMEOUT", "1")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("cannot reach PostgreSQL at 127.0.0.1:1") && err.contains("--database-url"),
        "{err}"
    );
}

#[test]
fn a_schema_it_cannot_fill_names_the_table_and_the_column() {
    let tmp = TempDir::new("bench-unfillable");
    let migrations = tmp.migrations(&["CREATE TYPE bench_cli_pair AS (a int, b int);
         CREATE TABLE bench_cli_pairs (id int PRIMARY KEY, pair bench_cli_pair NOT NULL);"]);
    let out = bench(&["--migrations", path(&migrations), "--tests", "1"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("cannot fill any table")
            && err.contains("public.bench_cli_pairs, column pair")
            && err.contains("bench_cli_pair"),
        "{err}"
    );
}

#[test]
fn nonsense_sizes_are_refused() {
    let out = bench(&["--tests", "0"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--tests must be at least 1"));
    let out = bench(&["--process-tests", "0"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("at least 1 test process per target"),
        "{}",
        stderr(&out)
    );
    let out = bench(&["--model", "threads"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("in-process"), "{}", stderr(&out));
}
