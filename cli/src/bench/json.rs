//! The JSON report of `seedbed bench` (durations in milliseconds).
//!
//! - `config`: `tests`, `tables`, `rows`, `jobs`, `seed`, `model` (`in-process`, `processes`
//!   or `both`), `process_tests` (test processes per target; 0 when they did not run).
//! - `environment`, `schema`: the machine, the server, the schema.
//! - `results[]`, per target: `target`; the in-process figures (`available`, `reason`,
//!   `overhead_ratio_to_baseline`, `setup_ms`, `setup_built`, `serial`, `parallel`,
//!   `peak_connections`, `isolation`, `correct`), or `"in_process": null` when they did not
//!   run; and `processes`, the process-per-test figures (`null` when they did not run):
//!   `available` (and `reason` when not), `setup_ms` (the first, untimed process), `jobs`,
//!   `tests`, `wall_ms` (the suite of processes), `process` (per process, spawn to exit:
//!   `p50_ms`, `p95_ms`, `max_ms`, `mean_ms`, `samples`), `startup` (per process, what is
//!   neither overhead nor writes: program start, runtime, plan, exit), `overhead` and `writes`
//!   (timed inside the process), `over_floor_ms` (process p50 less the floor's p50; negative is
//!   noise), `ratio_to_floor` (process p50 / floor p50), `ratio_to_baseline` (the baseline's
//!   process p50 / this one's), `failures`, `first_failure`, `peak_connections`, `isolation`,
//!   `correct`.
//! - `floor`: the floor processes (connect to a migrated database, `BEGIN`, the same writes,
//!   `ROLLBACK`): `jobs`, `tests`, `wall_ms`, `process`, `startup`, `overhead`, `writes`,
//!   `failures`, `first_failure`; `null` when the process runs did not run.
//! - `recommendation` (in one process, `cargo test`) and `recommendation_processes` (one process
//!   per test, `cargo nextest`): `strategy` and `text`, or `null`.
//! - `elapsed_ms`: the whole run.

use std::time::Duration;

use seedbed::bench::{ProcessOutcome, ProcessRun, Report, SuiteRun, Summary, TargetOutcome};
use serde_json::{Value, json};

fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

fn summary(s: &Summary) -> Value {
    json!({
        "p50_ms": millis(s.p50),
        "p95_ms": millis(s.p95),
        "max_ms": millis(s.max),
        "mean_ms": millis(s.mean),
        "samples": s.samples,
    })
}

fn suite(s: &SuiteRun) -> Value {
    json!({
        "jobs": s.jobs,
        "tests": s.tests,
        "wall_ms": millis(s.wall),
        "overhead": summary(&s.overhead),
        "writes": summary(&s.body),
        "failures": s.failures,
        "first_failure": s.first_failure,
    })
}

/// A suite of test processes (a target's, or the floor's).
fn process_run(p: &ProcessRun) -> Value {
    json!({
        "jobs": p.jobs,
        "tests": p.tests,
        "wall_ms": millis(p.wall),
        "process": summary(&p.process),
        "startup": summary(&p.startup),
        "overhead": summary(&p.overhead),
        "writes": summary(&p.writes),
        "failures": p.failures,
        "first_failure": p.first_failure,
    })
}

fn processes(
    r: &Report,
    target: seedbed::bench::Target,
    outcome: Option<&ProcessOutcome>,
) -> Value {
    match outcome {
        None => Value::Null,
        Some(ProcessOutcome::Unavailable(why)) => json!({
            "available": false,
            "reason": why,
        }),
        Some(ProcessOutcome::Measured(m)) => {
            let mut doc = process_run(&m.run);
            let gap = r.over_floor(target);
            if let Some(fields) = doc.as_object_mut() {
                for (key, value) in [
                    ("available", json!(true)),
                    ("setup_ms", json!(millis(m.setup))),
                    (
                        "over_floor_ms",
                        json!(gap.map(|g| (g.extra_ms() * 1e3).round() / 1e3)),
                    ),
                    ("ratio_to_floor", json!(gap.and_then(|g| g.ratio()))),
                    (
                        "ratio_to_baseline",
                        json!(r.processes_ratio_to_baseline(target)),
                    ),
                    ("peak_connections", json!(m.peak_connections)),
                    (
                        "isolation",
                        json!({
                            "clean": m.isolation.clean(),
                            "databases_checked": m.isolation.databases_checked,
                            "databases_gone": m.isolation.databases_gone,
                            "problems": m.isolation.problems,
                        }),
                    ),
                    ("correct", json!(m.correct())),
                ] {
                    fields.insert(key.to_string(), value);
                }
            }
            doc
        }
    }
}

pub(crate) fn render(r: &Report, model: &str) -> String {
    let env = &r.environment;
    let results: Vec<Value> = r
        .results
        .iter()
        .map(|res| match &res.outcome {
            None => json!({
                "target": res.target.name(),
                "in_process": null,
                "processes": processes(r, res.target, res.processes.as_ref()),
            }),
            Some(TargetOutcome::Unavailable(why)) => json!({
                "target": res.target.name(),
                "available": false,
                "reason": why,
                "processes": processes(r, res.target, res.processes.as_ref()),
            }),
            Some(TargetOutcome::Measured(m)) => json!({
                "target": res.target.name(),
                "available": true,
                "overhead_ratio_to_baseline": r.ratio_to_baseline(res.target),
                "setup_ms": millis(m.setup),
                "setup_built": m.setup_built,
                "serial": suite(&m.serial),
                "parallel": suite(&m.parallel),
                "peak_connections": m.peak_connections,
                "isolation": {
                    "clean": m.isolation.clean(),
                    "databases_checked": m.isolation.databases_checked,
                    "databases_gone": m.isolation.databases_gone,
                    "problems": m.isolation.problems,
                },
                "correct": m.correct(),
                "processes": processes(r, res.target, res.processes.as_ref()),
            }),
        })
        .collect();
    let recommendation = r.recommendation().map(|rec| {
        json!({
            "strategy": rec.strategy.name(),
            "text": rec.text,
        })
    });
    let recommendation_processes = r.processes_recommendation().map(|rec| {
        json!({
            "strategy": rec.strategy.name(),
            "text": rec.text,
        })
    });
    let doc = json!({
        "seedbed_version": env!("CARGO_PKG_VERSION"),
        "config": {
            "tests": r.tests,
            "tables": r.tables,
            "rows": r.rows,
            "jobs": r.jobs,
            "seed": r.seed,
            "model": model,
            "process_tests": r.process_tests,
        },
        "environment": {
            "backend": env.backend,
            "server": env.server,
            "server_version": env.server_version,
            "embedded": env.embedded,
            "max_connections": env.max_connections,
            "connection_budget": env.connection_budget,
            "cpus": env.cpus,
            "memory_bytes": env.memory_bytes,
            "os": env.os,
        },
        "schema": {
            "source": r.schema.source,
            "migrations": r.schema.migrations,
            "checksum": r.schema.checksum,
            "tables": r.schema.tables,
            "filled": r.schema.fillable,
            "skipped": r.schema.skipped.iter().map(|s| json!({
                "table": s.table.unquoted(),
                "column": s.column,
                "constraint": s.constraint,
                "reason": s.reason,
            })).collect::<Vec<_>>(),
        },
        "results": results,
        "floor": r.floor.as_ref().map(process_run),
        "recommendation": recommendation,
        "recommendation_processes": recommendation_processes,
        "elapsed_ms": millis(r.elapsed),
    });
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_else(|_| doc.to_string());
    text.push('\n');
    text
}
