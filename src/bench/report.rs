//! What a run found: the [`Report`], and the strategy it recommends.

use std::time::Duration;

use super::measure::Summary;
use super::rows::Skipped;
use super::{BenchConfig, Target};
use crate::isolation::Strategy;

/// The machine and the server a run measured.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    /// The server's URL (maintenance database), without a password.
    pub server: String,
    /// `SHOW server_version`.
    pub server_version: String,
    /// Whether it is seedbed's embedded server.
    pub embedded: bool,
    /// The server's `max_connections`.
    pub max_connections: i64,
    /// How many connections seedbed's test processes may hold at once (see `SEEDBED_MAX_CONNECTIONS`).
    pub connection_budget: i64,
    /// CPUs of the machine.
    pub cpus: usize,
    /// Memory of the machine, in bytes (where the system says).
    pub memory_bytes: Option<u64>,
    /// The operating system and kernel.
    pub os: String,
}

/// The schema the run measured on.
#[derive(Debug, Clone, Default)]
pub struct SchemaInfo {
    /// Where the migrations came from.
    pub source: String,
    /// How many migrations.
    pub migrations: usize,
    /// Their checksum.
    pub checksum: String,
    /// Tables of the schema (partitions not counted).
    pub tables: usize,
    /// Tables the generator fills, parents first.
    pub fillable: Vec<String>,
    /// Tables it leaves out, and why.
    pub skipped: Vec<Skipped>,
}

/// One suite: `tests` tests with `jobs` workers.
#[derive(Debug, Clone, Default)]
pub struct SuiteRun {
    /// Parallel workers.
    pub jobs: usize,
    /// Tests run.
    pub tests: usize,
    /// From the first test's start to the last one's end.
    pub wall: Duration,
    /// Per-test overhead: getting the database state and its first connection, and ending it.
    pub overhead: Summary,
    /// Per-test work: the writes.
    pub body: Summary,
    /// Tests that failed.
    pub failures: usize,
    /// The first failure's message.
    pub first_failure: Option<String>,
}

/// The isolation check after a target's runs.
#[derive(Debug, Clone, Default)]
pub struct IsolationCheck {
    /// Databases whose rows and schemas were compared with what migrations leave.
    pub databases_checked: usize,
    /// Databases that had to be gone and were checked for.
    pub databases_gone: usize,
    /// What was left behind (empty: clean).
    pub problems: Vec<String>,
}

impl IsolationCheck {
    /// Whether nothing was left behind.
    pub fn clean(&self) -> bool {
        self.problems.is_empty()
    }
}

/// What was measured for one target.
#[derive(Debug, Clone, Default)]
pub struct Measurements {
    /// The first test of the target in this process, building what it needs once.
    pub setup: Duration,
    /// Whether that first test built databases (`false`: an earlier run left them).
    pub setup_built: bool,
    /// The serial suite.
    pub serial: SuiteRun,
    /// The parallel suite.
    pub parallel: SuiteRun,
    /// Connections the runs added on the server at their peak.
    pub peak_connections: i64,
    /// Whether the runs left anything behind.
    pub isolation: IsolationCheck,
}

impl Measurements {
    /// Whether every test passed and nothing was left behind.
    pub fn correct(&self) -> bool {
        self.serial.failures == 0 && self.parallel.failures == 0 && self.isolation.clean()
    }
}

/// A target's outcome.
#[derive(Debug, Clone)]
pub enum TargetOutcome {
    /// It ran.
    Measured(Box<Measurements>),
    /// It could not run (the strategy is not available, the server refused): why.
    Unavailable(String),
}

/// One target of the report.
#[derive(Debug, Clone)]
pub struct TargetResult {
    /// The target.
    pub target: Target,
    /// What happened.
    pub outcome: TargetOutcome,
}

impl TargetResult {
    /// The measurements, when it ran.
    pub fn measured(&self) -> Option<&Measurements> {
        match &self.outcome {
            TargetOutcome::Measured(m) => Some(m),
            TargetOutcome::Unavailable(_) => None,
        }
    }
}

/// The strategy a run recommends, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recommendation {
    /// The strategy.
    pub strategy: Strategy,
    /// Why, and what to choose instead in which case.
    pub text: String,
}

/// Everything a run found.
///
/// ```
/// use seedbed::bench::{BenchConfig, Report};
///
/// let report = Report::new(&BenchConfig::default());
/// assert!(report.results.is_empty());
/// assert!(report.recommendation().is_none());
/// ```
#[derive(Debug, Clone)]
pub struct Report {
    /// What was asked for.
    pub tests: usize,
    /// Tables per test.
    pub tables: usize,
    /// Rows per table.
    pub rows: usize,
    /// Workers of the parallel runs.
    pub jobs: usize,
    /// The seed.
    pub seed: u64,
    /// The machine and the server.
    pub environment: Environment,
    /// The schema.
    pub schema: SchemaInfo,
    /// Per target, in the order asked.
    pub results: Vec<TargetResult>,
    /// The whole run's wall time.
    pub elapsed: Duration,
}

impl Report {
    /// An empty report for `config`.
    pub fn new(config: &BenchConfig) -> Report {
        Report {
            tests: config.tests,
            tables: config.tables,
            rows: config.rows,
            jobs: config.jobs,
            seed: config.seed,
            environment: Environment::default(),
            schema: SchemaInfo::default(),
            results: Vec::new(),
            elapsed: Duration::ZERO,
        }
    }

    /// Formats a duration for people.
    ///
    /// ```
    /// use std::time::Duration;
    /// use seedbed::bench::Report;
    /// assert_eq!(Report::format_duration(Duration::from_micros(412)), "0.41 ms");
    /// assert_eq!(Report::format_duration(Duration::from_micros(12_340)), "12.3 ms");
    /// assert_eq!(Report::format_duration(Duration::from_millis(1520)), "1.52 s");
    /// ```
    pub fn format_duration(d: Duration) -> String {
        let ms = d.as_secs_f64() * 1e3;
        if ms >= 1000.0 {
            format!("{:.2} s", ms / 1000.0)
        } else if ms >= 10.0 {
            format!("{ms:.1} ms")
        } else {
            format!("{ms:.2} ms")
        }
    }

    /// The measurements of `target`, when it ran.
    pub fn measured(&self, target: Target) -> Option<&Measurements> {
        self.results
            .iter()
            .find(|r| r.target == target)
            .and_then(TargetResult::measured)
    }

    /// How many times less per-test overhead `target` has than the baseline (medians of the
    /// serial runs), when both ran.
    pub fn ratio_to_baseline(&self, target: Target) -> Option<f64> {
        let base = self.measured(Target::Baseline)?.serial.overhead.p50;
        let own = self.measured(target)?.serial.overhead.p50;
        (!own.is_zero()).then(|| base.as_secs_f64() / own.as_secs_f64())
    }

    /// The fastest strategy (median per-test overhead) whose tests all passed and that left
    /// nothing behind, with why, and what to choose instead when the suite's code does what it
    /// cannot contain.
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
        // The next fastest correct strategy that also isolates what `best` cannot.
        let alternative = |wanted: &dyn Fn(Strategy) -> bool| {
            correct
                .iter()
                .find(|(s, _)| *s != best && wanted(*s))
                .map(|(s, m)| format!("{} ({} per test)", title(*s), d(m.serial.overhead.p50)))
        };
        let caveat = match best {
            Strategy::Rollback => {
                let other = alternative(&|s| matches!(s, Strategy::Template | Strategy::Truncate));
                format!(
                    " It holds each test in one transaction: if your code commits, LISTENs or \
                     opens connections of its own, choose {} for those tests.",
                    other.unwrap_or_else(|| "Template".into())
                )
            }
            Strategy::Namespace => {
                let other = alternative(&|s| s != Strategy::Namespace);
                format!(
                    " Tests share one database and see each other's rows: it fits tests that \
                     look only at their own rows; for tests that count or scan whole tables, \
                     choose {}.",
                    other.unwrap_or_else(|| "Template".into())
                )
            }
            Strategy::Truncate => {
                " Each test commits for real on a database copy of its own while it runs, \
                 emptied after; code that commits, LISTENs or opens connections is isolated."
                    .to_string()
            }
            Strategy::Template => " Each test gets a database of its own, cloned from a \
                 migrated template: whatever your code does is isolated."
                .to_string(),
        };
        text.push_str(&caveat);
        let excluded: Vec<String> = self
            .results
            .iter()
            .filter_map(|r| match (r.target, &r.outcome) {
                (Target::Strategy(s), TargetOutcome::Unavailable(why)) => {
                    Some(format!("{} was not measured ({why})", title(s)))
                }
                (Target::Strategy(s), TargetOutcome::Measured(m)) if !m.correct() => {
                    Some(format!("{} is left out: {}", title(s), failure_summary(m)))
                }
                _ => None,
            })
            .collect();
        if !excluded.is_empty() {
            text.push(' ');
            text.push_str(&excluded.join("; "));
            text.push('.');
        }
        Some(Recommendation {
            strategy: best,
            text,
        })
    }
}

/// Why a measured target does not count as correct.
pub(crate) fn failure_summary(m: &Measurements) -> String {
    let failures = m.serial.failures + m.parallel.failures;
    if failures > 0 {
        let first = m
            .serial
            .first_failure
            .as_ref()
            .or(m.parallel.first_failure.as_ref())
            .cloned()
            .unwrap_or_default();
        format!("{failures} test(s) failed, first: {first}")
    } else {
        format!("it left things behind: {}", m.isolation.problems.join("; "))
    }
}

fn title(s: Strategy) -> &'static str {
    match s {
        Strategy::Rollback => "Rollback",
        Strategy::Truncate => "Truncate",
        Strategy::Template => "Template",
        Strategy::Namespace => "Namespace",
    }
}

/// `215×`, `3.4×`.
fn times(ratio: f64) -> String {
    if ratio >= 10.0 {
        format!("{ratio:.0}×")
    } else {
        format!("{ratio:.1}×")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured(p50_us: u64, clean: bool) -> Box<Measurements> {
        let overhead = Summary {
            p50: Duration::from_micros(p50_us),
            p95: Duration::from_micros(p50_us * 2),
            max: Duration::from_micros(p50_us * 3),
            mean: Duration::from_micros(p50_us),
            samples: 10,
        };
        let run = SuiteRun {
            jobs: 2,
            tests: 10,
            wall: Duration::from_micros(p50_us * 10),
            overhead,
            ..SuiteRun::default()
        };
        Box::new(Measurements {
            serial: run.clone(),
            parallel: run,
            isolation: IsolationCheck {
                problems: if clean {
                    vec![]
                } else {
                    vec!["rows left".into()]
                },
                ..IsolationCheck::default()
            },
            ..Measurements::default()
        })
    }

    #[test]
    fn recommends_the_fastest_correct_strategy() {
        let mut report = Report::new(&BenchConfig::default());
        report.results = vec![
            TargetResult {
                target: Target::Strategy(Strategy::Namespace),
                outcome: TargetOutcome::Measured(measured(100, false)),
            },
            TargetResult {
                target: Target::Strategy(Strategy::Rollback),
                outcome: TargetOutcome::Measured(measured(400, true)),
            },
            TargetResult {
                target: Target::Strategy(Strategy::Template),
                outcome: TargetOutcome::Measured(measured(3000, true)),
            },
            TargetResult {
                target: Target::Baseline,
                outcome: TargetOutcome::Measured(measured(88_000, true)),
            },
        ];
        let r = report.recommendation().unwrap();
        assert_eq!(r.strategy, Strategy::Rollback);
        assert!(
            r.text.starts_with("Rollback: 0.40 ms per test"),
            "{}",
            r.text
        );
        assert!(r.text.contains("220× less overhead"), "{}", r.text);
        assert!(
            r.text.contains("choose Template (3.00 ms per test)"),
            "{}",
            r.text
        );
        assert!(r.text.contains("Namespace is left out"), "{}", r.text);
        assert_eq!(report.ratio_to_baseline(Target::Baseline), Some(1.0));
    }
}
