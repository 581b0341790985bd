//! The text `seedbed bench` prints: what ran where, a table of the targets, the recommendation.

use std::fmt::Write as _;

use seedbed::bench::{ProcessOutcome, ProcessRun, Report, Target, TargetOutcome};

use super::{ms, times};

pub(crate) fn render(r: &Report) -> String {
    let mut out = String::new();
    let env = &r.environment;
    if r.in_process {
        let _ = writeln!(
            out,
            "\nseedbed bench: {} tests per suite, each writing {} rows into ~{} tables; serial and {} jobs; seed {}",
            r.tests, r.rows, r.tables, r.jobs, r.seed
        );
    } else {
        let _ = writeln!(
            out,
            "\nseedbed bench: {} test processes per strategy, each writing {} rows into ~{} tables; {} jobs; seed {}",
            r.process_tests, r.rows, r.tables, r.jobs, r.seed
        );
    }
    if env.backend == "SQLite" {
        let _ = writeln!(
            out,
            "sqlite:  {} (SQLite {}): database files, no server",
            env.server, env.server_version
        );
    } else {
        let _ = writeln!(
            out,
            "server:  {} ({} {}{}), max_connections {}, {}",
            env.server,
            env.backend,
            env.server_version,
            if env.embedded { ", embedded" } else { "" },
            env.max_connections,
            if env.connection_budget > 0 {
                format!("seedbed's connection budget {}", env.connection_budget)
            } else {
                "no connection budget of seedbed's".to_string()
            }
        );
    }
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

    if r.in_process {
        in_process_block(&mut out, r);
    }
    if r.process_tests > 0 {
        processes_block(&mut out, r);
    }
    if r.in_process {
        match r.recommendation() {
            Some(rec) => {
                let _ = writeln!(
                    out,
                    "\nrecommendation (cargo test, one process): {}",
                    rec.text
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "\nrecommendation (cargo test, one process): none: no strategy was measured \
                     with every test passing and nothing left behind (see above)"
                );
            }
        }
    }
    if r.process_tests > 0 {
        match r.processes_recommendation() {
            Some(rec) => {
                let _ = writeln!(
                    out,
                    "\nrecommendation (cargo nextest, one process per test): {}",
                    rec.text
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "\nrecommendation (cargo nextest, one process per test): none: no strategy's \
                     test processes all passed and left nothing behind (see above)"
                );
            }
        }
    }
    let _ = writeln!(out, "\nmeasured in {}", ms(r.elapsed));
    out
}

/// The in-process suites: one row per target.
fn in_process_block(out: &mut String, r: &Report) {
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
            None => {}
            Some(TargetOutcome::Unavailable(why)) => {
                let _ = writeln!(out, "{:<10} not measured: {why}", result.target.name());
            }
            Some(TargetOutcome::Measured(m)) => {
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
                    connections(r, m.peak_connections),
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
}

/// The process-per-test runs: the floor, then one row per target.
fn processes_block(out: &mut String, r: &Report) {
    let _ = writeln!(
        out,
        "\none process per test (as cargo nextest runs): {} test processes per target, {} at a time; \
         each started as a process of its own and timed from spawn to exit",
        r.process_tests, r.jobs
    );
    let _ = writeln!(
        out,
        "\n{:<10} {:>19}  {:>18}  {:>29}  {:>10}  {:>9}  {:>5}  left",
        "",
        "per test process",
        "over the floor",
        "inside the process, p50",
        "suite wall",
        "one-off",
        "peak"
    );
    let _ = writeln!(
        out,
        "{:<10} {:>9} {:>9}  {:>9} {:>8}  {:>9} {:>9} {:>9}  {:>10}  {:>9}  {:>5}  clean",
        "strategy",
        "p50",
        "p95",
        "p50",
        "ratio",
        "start-up",
        "overhead",
        "writes",
        format!("{} jobs", r.jobs),
        "setup",
        "conns"
    );
    if let Some(floor) = &r.floor {
        let _ = writeln!(
            out,
            "{:<10} {}  {:>9} {:>8}  {}  {:>10}  {:>9}  {:>5}  {}",
            "floor",
            process_times(floor),
            "",
            "1.0×",
            inside(floor),
            ms(floor.wall),
            "",
            "",
            if floor.failures > 0 {
                format!("{} FAILED", floor.failures)
            } else {
                "—".into()
            }
        );
    }
    for result in &r.results {
        match &result.processes {
            None => {}
            Some(ProcessOutcome::Unavailable(why)) => {
                let _ = writeln!(out, "{:<10} not measured: {why}", result.target.name());
            }
            Some(ProcessOutcome::Measured(m)) => {
                let gap = r.over_floor(result.target);
                let extra = gap.map_or_else(|| "—".into(), |g| g.format_extra());
                let ratio = gap
                    .and_then(|g| g.ratio())
                    .map_or_else(|| "—".into(), times);
                let setup = if result.target == Target::Baseline {
                    "every test".to_string()
                } else {
                    ms(m.setup)
                };
                let clean = if m.correct() {
                    "yes".to_string()
                } else if m.run.failures > 0 {
                    format!("{} FAILED", m.run.failures)
                } else {
                    "NO".into()
                };
                let _ = writeln!(
                    out,
                    "{:<10} {}  {:>9} {:>8}  {}  {:>10}  {:>9}  {:>5}  {}",
                    result.target.name(),
                    process_times(&m.run),
                    extra,
                    ratio,
                    inside(&m.run),
                    ms(m.run.wall),
                    setup,
                    connections(r, m.peak_connections),
                    clean
                );
            }
        }
    }
    let _ = writeln!(
        out,
        "\nfloor: a test process that only connects to a migrated database, runs BEGIN, the same \
         writes and ROLLBACK; start-up: what a process spends outside its test (starting, its \
         runtime, reading the row plan, exiting)"
    );
    if let Some(f) = r.floor.as_ref().and_then(|f| f.first_failure.as_ref()) {
        let _ = writeln!(out, "floor: a test process failed: {f}");
    }
    for res in &r.results {
        if let Some(m) = res.measured_processes().filter(|m| !m.correct()) {
            for p in &m.isolation.problems {
                let _ = writeln!(out, "{} (processes): {p}", res.target.name());
            }
            if let Some(f) = &m.run.first_failure {
                let _ = writeln!(
                    out,
                    "{} (processes): a test process failed: {f}",
                    res.target.name()
                );
            }
        }
    }
}

/// The peak of connections a run added, or `-` on SQLite (no server to count them on).
fn connections(r: &Report, peak: i64) -> String {
    if r.environment.backend == "SQLite" {
        "-".into()
    } else {
        peak.to_string()
    }
}

/// p50 and p95 per process.
fn process_times(p: &ProcessRun) -> String {
    format!("{:>9} {:>9}", ms(p.process.p50), ms(p.process.p95))
}

/// Start-up, overhead and writes inside the process, p50.
fn inside(p: &ProcessRun) -> String {
    format!(
        "{:>9} {:>9} {:>9}",
        ms(p.startup.p50),
        ms(p.overhead.p50),
        ms(p.writes.p50)
    )
}
