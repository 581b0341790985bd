//! The text `seedbed bench` prints: what ran where, a table of the targets, the recommendation.

use std::fmt::Write as _;

use seedbed::bench::{Report, Target, TargetOutcome};

use super::{ms, times};

pub(crate) fn render(r: &Report) -> String {
    let mut out = String::new();
    let env = &r.environment;
    let _ = writeln!(
        out,
        "\nseedbed bench: {} tests per suite, each writing {} rows into ~{} tables; serial and {} jobs; seed {}",
        r.tests, r.rows, r.tables, r.jobs, r.seed
    );
    let _ = writeln!(
        out,
        "server:  {} (PostgreSQL {}{}), max_connections {}, seedbed's connection budget {}",
        env.server,
        env.server_version,
        if env.embedded { ", embedded" } else { "" },
        env.max_connections,
        env.connection_budget
    );
    let memory = env
        .memory_bytes
        .map(|b| format!(", {:.1} GiB", b as f64 / (1u64 << 30) as f64))
        .unwrap_or_default();
    let _ = writeln!(out, "machine: {} CPUs{memory}, {}", env.cpus, env.os);
    let s = &r.schema;
    let _ = writeln!(
        out,
        "schema:  {} ({} migrations, checksum {}): {} tables, {} filled by the row generator",
        s.source,
        s.migrations,
        s.checksum,
        s.tables,
        s.fillable.len()
    );
    for skipped in &s.skipped {
        let _ = writeln!(out, "         skipped {skipped}");
    }

    let _ = writeln!(
        out,
        "\n{:<10} {:>29}  {:>9}  {:>19}  {:>18}  {:>5}  left",
        "", "per-test overhead (serial)", "less than", "suite wall time", "one-off", "peak"
    );
    let _ = writeln!(
        out,
        "{:<10} {:>9} {:>9} {:>9}  {:>9}  {:>9} {:>9}  {:>18}  {:>5}  clean",
        "strategy",
        "p50",
        "p95",
        "max",
        "baseline",
        "1 job",
        format!("{} jobs", r.jobs),
        "setup",
        "conns"
    );
    for result in &r.results {
        match &result.outcome {
            TargetOutcome::Unavailable(why) => {
                let _ = writeln!(out, "{:<10} not measured: {why}", result.target.name());
            }
            TargetOutcome::Measured(m) => {
                let ratio = r
                    .ratio_to_baseline(result.target)
                    .map(times)
                    .unwrap_or_else(|| "—".into());
                let setup = if result.target == Target::Baseline {
                    "every test".to_string()
                } else {
                    format!(
                        "{} ({})",
                        ms(m.setup),
                        if m.setup_built { "built" } else { "reused" }
                    )
                };
                let clean = if m.correct() {
                    "yes".to_string()
                } else {
                    let failures = m.serial.failures + m.parallel.failures;
                    if failures > 0 {
                        format!("{failures} FAILED")
                    } else {
                        "NO".into()
                    }
                };
                let _ = writeln!(
                    out,
                    "{:<10} {:>9} {:>9} {:>9}  {:>9}  {:>9} {:>9}  {:>18}  {:>5}  {}",
                    result.target.name(),
                    ms(m.serial.overhead.p50),
                    ms(m.serial.overhead.p95),
                    ms(m.serial.overhead.max),
                    ratio,
                    ms(m.serial.wall),
                    ms(m.parallel.wall),
                    setup,
                    m.peak_connections,
                    clean
                );
            }
        }
    }
    let writes: Vec<String> = r
        .results
        .iter()
        .filter_map(|res| {
            res.measured()
                .map(|m| format!("{} {}", res.target.name(), ms(m.serial.body.p50)))
        })
        .collect();
    if !writes.is_empty() {
        let _ = writeln!(
            out,
            "\nthe writes themselves (not in the overhead), p50 per test: {}",
            writes.join(", ")
        );
    }
    for res in &r.results {
        if let Some(m) = res.measured().filter(|m| !m.correct()) {
            for p in &m.isolation.problems {
                let _ = writeln!(out, "{}: {p}", res.target.name());
            }
            for f in [&m.serial.first_failure, &m.parallel.first_failure]
                .into_iter()
                .flatten()
            {
                let _ = writeln!(out, "{}: a test failed: {f}", res.target.name());
            }
        }
    }
    match r.recommendation() {
        Some(rec) => {
            let _ = writeln!(out, "\nrecommendation: {}", rec.text);
        }
        None => {
            let _ = writeln!(
                out,
                "\nrecommendation: none: no strategy was measured with every test passing and \
                 nothing left behind (see above)"
            );
        }
    }
    let _ = writeln!(out, "\nmeasured in {}", ms(r.elapsed));
    out
}
