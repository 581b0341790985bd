//! The recommendation: the strategy the measurements favour, in-process and one process per test,
//! with the caveats that qualify it.

use std::time::Duration;

use super::{
    Measurements, ProcessMeasurements, ProcessOutcome, Recommendation, Report, TargetOutcome,
    failure_summary, process_failure_summary, times, title,
};
use crate::bench::Target;
use crate::isolation::Strategy;

impl Report {
    /// The fastest strategy (median per-test overhead) whose tests all passed and that left
    /// nothing behind, with why, and what to choose instead when the suite's code does what it
    /// cannot contain: the choice for suites run in one process (`cargo test`).
    pub fn recommendation(&self) -> Option<Recommendation> {
        let mut correct: Vec<(Strategy, &Measurements)> = self
            .results
            .iter()
            .filter_map(|r| match (r.target, r.measured()) {
                (Target::Strategy(s), Some(m)) if m.correct() => Some((s, m)),
                _ => None,
            })
            .collect();
        correct.sort_by_key(|(_, m)| m.serial.overhead.p50);
        let (best, m) = *correct.first()?;
        let d = Report::format_duration;
        let mut text = format!(
            "{}: {} per test (p50; p95 {})",
            title(best),
            d(m.serial.overhead.p50),
            d(m.serial.overhead.p95)
        );
        if let Some(ratio) = self.ratio_to_baseline(Target::Strategy(best)) {
            text.push_str(&format!(
                ", {} less overhead than creating and migrating a database per test as \
                 #[sqlx::test] does",
                times(ratio)
            ));
        }
        if let Some(base) = self.measured(Target::Baseline) {
            text.push_str(&format!(
                "; the suite of {} tests took {} with {} jobs, against {} for the baseline",
                m.parallel.tests,
                d(m.parallel.wall),
                m.parallel.jobs,
                d(base.parallel.wall)
            ));
        }
        text.push('.');
        let ranked: Vec<(Strategy, Duration)> = correct
            .iter()
            .map(|(s, m)| (*s, m.serial.overhead.p50))
            .collect();
        text.push_str(&caveat(best, &ranked, "per test", self.backend_kind()));
        let excluded: Vec<String> = self
            .results
            .iter()
            .filter_map(|r| match (r.target, &r.outcome) {
                (Target::Strategy(s), Some(TargetOutcome::Unavailable(why))) => {
                    Some(format!("{} was not measured ({why})", title(s)))
                }
                (Target::Strategy(s), Some(TargetOutcome::Measured(m))) if !m.correct() => {
                    Some(format!("{} is left out: {}", title(s), failure_summary(m)))
                }
                _ => None,
            })
            .collect();
        push_excluded(&mut text, &excluded);
        Some(Recommendation {
            strategy: best,
            text,
        })
    }

    /// The strategy to choose when every test runs in a process of its own (`cargo nextest`):
    /// the fastest (median time per test process) whose processes all passed and left nothing
    /// behind, with its cost over the floor and against the baseline, what to choose instead
    /// for code it cannot contain, and whether the in-process choice differs.
    pub fn processes_recommendation(&self) -> Option<Recommendation> {
        let mut correct: Vec<(Strategy, &ProcessMeasurements)> = self
            .results
            .iter()
            .filter_map(|r| match (r.target, r.measured_processes()) {
                (Target::Strategy(s), Some(m)) if m.correct() => Some((s, m)),
                _ => None,
            })
            .collect();
        correct.sort_by_key(|(_, m)| m.run.process.p50);
        let (best, m) = *correct.first()?;
        let d = Report::format_duration;
        let mut text = format!(
            "{}: {} per test process (p50; p95 {})",
            title(best),
            d(m.run.process.p50),
            d(m.run.process.p95)
        );
        if let Some(gap) = self.over_floor(Target::Strategy(best)) {
            text.push_str(&format!(
                ", {} over the floor of {} (a process that only connects to a migrated database \
                 and writes the same rows in a transaction it rolls back)",
                gap.format_extra(),
                d(gap.floor)
            ));
        }
        if let Some(base) = self.measured_processes(Target::Baseline) {
            if let Some(ratio) = self.processes_ratio_to_baseline(Target::Strategy(best)) {
                text.push_str(&format!(
                    ", {} less than a process that creates and migrates its database as \
                     #[sqlx::test] does ({})",
                    times(ratio),
                    d(base.run.process.p50)
                ));
            }
            text.push_str(&format!(
                "; {} test processes took {} with {} jobs, against {} for the baseline",
                m.run.tests,
                d(m.run.wall),
                m.run.jobs,
                d(base.run.wall)
            ));
        }
        text.push('.');
        let ranked: Vec<(Strategy, Duration)> = correct
            .iter()
            .map(|(s, m)| (*s, m.run.process.p50))
            .collect();
        text.push_str(&caveat(
            best,
            &ranked,
            "per test process",
            self.backend_kind(),
        ));
        if let Some(in_process) = self.recommendation() {
            if in_process.strategy == best {
                text.push_str(" In one process (cargo test) the choice is the same.");
            } else {
                let theirs = self
                    .measured_processes(Target::Strategy(in_process.strategy))
                    .filter(|p| p.correct())
                    .map(|p| {
                        format!(
                            ": in processes of their own its tests take {} (p50), {} more",
                            d(p.run.process.p50),
                            d(p.run.process.p50.saturating_sub(m.run.process.p50))
                        )
                    })
                    .unwrap_or_default();
                text.push_str(&format!(
                    " In one process (cargo test) the choice differs: {}{theirs}.",
                    title(in_process.strategy)
                ));
            }
        }
        let excluded: Vec<String> = self
            .results
            .iter()
            .filter_map(|r| match (r.target, &r.processes) {
                (Target::Strategy(s), Some(ProcessOutcome::Unavailable(why))) => Some(format!(
                    "{} was not measured in processes ({why})",
                    title(s)
                )),
                (Target::Strategy(s), Some(ProcessOutcome::Measured(m))) if !m.correct() => Some(
                    format!("{} is left out: {}", title(s), process_failure_summary(m)),
                ),
                _ => None,
            })
            .collect();
        push_excluded(&mut text, &excluded);
        Some(Recommendation {
            strategy: best,
            text,
        })
    }
}

/// What the advice depends on of the database system a run was on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Postgres,
    /// No LISTEN; Template copies files.
    Sqlite,
    /// No LISTEN; DDL commits; Template's copies are emptied and reused.
    MySql,
}

impl Report {
    fn backend_kind(&self) -> Kind {
        match self.environment.backend.as_str() {
            "SQLite" => Kind::Sqlite,
            "MySQL" | "MariaDB" => Kind::MySql,
            _ => Kind::Postgres,
        }
    }
}

/// What to choose instead of `best` for code it cannot contain: the next of `ranked` (correct
/// strategies, fastest first, with their median) that can.
fn caveat(best: Strategy, ranked: &[(Strategy, Duration)], unit: &str, kind: Kind) -> String {
    let alternative = |wanted: &dyn Fn(Strategy) -> bool| {
        ranked
            .iter()
            .find(|(s, _)| *s != best && wanted(*s))
            .map(|(s, p50)| format!("{} ({} {unit})", title(*s), Report::format_duration(*p50)))
    };
    let escapes = match kind {
        Kind::Postgres => "commits, LISTENs or opens connections",
        Kind::Sqlite => "commits or opens connections",
        Kind::MySql => "commits, runs DDL or opens connections",
    };
    match best {
        Strategy::Rollback => {
            let other = alternative(&|s| matches!(s, Strategy::Template | Strategy::Truncate));
            format!(
                " It holds each test in one transaction: if your code {escapes} of its own, \
                 choose {} for those tests.",
                other.unwrap_or_else(|| "Template".into())
            )
        }
        Strategy::Namespace => {
            let other = alternative(&|s| s != Strategy::Namespace);
            format!(
                " Tests share one database and see each other's rows: it fits tests that look \
                 only at their own rows; for tests that count or scan whole tables, choose {}.",
                other.unwrap_or_else(|| "Template".into())
            )
        }
        Strategy::Truncate => format!(
            " Each test commits for real on a database copy of its own while it runs, emptied \
             after; code that {escapes} is isolated."
        ),
        Strategy::Template if kind == Kind::Sqlite => " Each test gets a database file of its \
             own, copied from a migrated image: whatever your code does is isolated."
            .to_string(),
        Strategy::Template if kind == Kind::MySql => " Each test gets a database of its own, a \
             copy of the migrated database made ahead and emptied back after a test: whatever \
             your code does is isolated."
            .to_string(),
        Strategy::Template => " Each test gets a database of its own, cloned from a migrated \
             template: whatever your code does is isolated."
            .to_string(),
    }
}

fn push_excluded(text: &mut String, excluded: &[String]) {
    if !excluded.is_empty() {
        text.push(' ');
        text.push_str(&excluded.join("; "));
        text.push('.');
    }
}
