//! The JSON report of `seedbed bench` (durations in milliseconds).

use std::time::Duration;

use seedbed::bench::{Report, SuiteRun, Summary, TargetOutcome};
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

pub(crate) fn render(r: &Report) -> String {
    let env = &r.environment;
    let results: Vec<Value> = r
        .results
        .iter()
        .map(|res| match &res.outcome {
            TargetOutcome::Unavailable(why) => json!({
                "target": res.target.name(),
                "available": false,
                "reason": why,
            }),
            TargetOutcome::Measured(m) => json!({
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
            }),
        })
        .collect();
    let recommendation = r.recommendation().map(|rec| {
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
        },
        "environment": {
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
        "recommendation": recommendation,
        "elapsed_ms": millis(r.elapsed),
    });
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_else(|_| doc.to_string());
    text.push('\n');
    text
}
