//! What a run found: the [`Report`], and the strategy it recommends.

use std::time::Duration;

use super::measure::Summary;
use super::{BenchConfig, Target};
use crate::isolation::Strategy;
use crate::rowgen::rows::Skipped;

/// The machine and the server a run measured.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    /// The database system: `PostgreSQL`, or `SQLite`.
    pub backend: String,
    /// The server's URL (maintenance database), without a password; on SQLite, the directory of
    /// the test databases.
    pub server: String,
    /// `SHOW server_version` (SQLite: `sqlite_version()`).
    pub server_version: String,
    /// Whether it is seedbed's embedded server.
    pub embedded: bool,
    /// The server's `max_connections` (0 on SQLite, which has no server).
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

/// One process-per-test suite: `tests` test processes, `jobs` at a time, each timed from
/// outside, from its spawn to its exit, as `cargo nextest` sees it.
///
/// A process's time is its `startup` (everything that is not the test: starting the program,
/// its runtime, reading the row plan, exiting), the test's `overhead` (timed inside the
/// process as in-process tests time theirs) and the `writes`.
#[derive(Debug, Clone, Default)]
pub struct ProcessRun {
    /// Processes running at once.
    pub jobs: usize,
    /// Test processes started.
    pub tests: usize,
    /// From the first process's start to the last one's exit.
    pub wall: Duration,
    /// Per process, spawn to exit.
    pub process: Summary,
    /// Per process, what is neither the test's overhead nor its writes.
    pub startup: Summary,
    /// Per process, the test's overhead: getting the database state and a first connection,
    /// and ending it.
    pub overhead: Summary,
    /// Per process, the writes.
    pub writes: Summary,
    /// Processes that failed (or reported nothing).
    pub failures: usize,
    /// The first failure's message.
    pub first_failure: Option<String>,
}

/// What was measured for one target in processes.
#[derive(Debug, Clone, Default)]
pub struct ProcessMeasurements {
    /// The target's first test process, not timed with the others: it builds what the strategy
    /// needs once, unless the in-process runs or an earlier run left it built.
    pub setup: Duration,
    /// The suite of test processes.
    pub run: ProcessRun,
    /// Connections the processes added on the server at their peak.
    pub peak_connections: i64,
    /// Whether the processes left anything behind.
    pub isolation: IsolationCheck,
}

impl ProcessMeasurements {
    /// Whether every test process passed and nothing was left behind.
    pub fn correct(&self) -> bool {
        self.run.failures == 0 && self.isolation.clean()
    }
}

/// A target's outcome in processes.
#[derive(Debug, Clone)]
pub enum ProcessOutcome {
    /// It ran.
    Measured(Box<ProcessMeasurements>),
    /// Its first test process failed: why.
    Unavailable(String),
}

/// How a target's test processes compare with the floor's (medians).
///
/// ```
/// use std::time::Duration;
/// use seedbed::bench::OverFloor;
///
/// let gap = OverFloor { process: Duration::from_millis(45), floor: Duration::from_millis(30) };
/// assert_eq!(gap.extra_ms(), 15.0);
/// assert_eq!(gap.ratio(), Some(1.5));
/// let below = OverFloor { process: Duration::from_millis(29), floor: Duration::from_millis(30) };
/// assert_eq!(below.extra_ms(), -1.0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverFloor {
    /// The target's test process, p50.
    pub process: Duration,
    /// The floor's, p50.
    pub floor: Duration,
}

impl OverFloor {
    /// What the target's process costs beyond the floor, in milliseconds (negative when it came
    /// out below it: noise).
    pub fn extra_ms(&self) -> f64 {
        let nanos = |d: Duration| i128::try_from(d.as_nanos()).unwrap_or(i128::MAX);
        (nanos(self.process) - nanos(self.floor)) as f64 / 1e6
    }

    /// [`extra_ms`](Self::extra_ms) with its sign, for people.
    ///
    /// ```
    /// use std::time::Duration;
    /// use seedbed::bench::OverFloor;
    ///
    /// let ms = Duration::from_micros;
    /// assert_eq!(OverFloor { process: ms(45_000), floor: ms(30_000) }.format_extra(), "+15.0 ms");
    /// assert_eq!(OverFloor { process: ms(30_400), floor: ms(31_000) }.format_extra(), "-0.60 ms");
    /// ```
    pub fn format_extra(&self) -> String {
        let ms = self.extra_ms();
        let sign = if ms < 0.0 { '-' } else { '+' };
        format!(
            "{sign}{}",
            Report::format_duration(Duration::from_secs_f64(ms.abs() / 1e3))
        )
    }

    /// The target's process time over the floor's.
    pub fn ratio(&self) -> Option<f64> {
        (!self.floor.is_zero())
            .then(|| self.process.as_nanos() as f64 / self.floor.as_nanos() as f64)
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
    /// What happened in-process (`None`: the in-process suites were not run).
    pub outcome: Option<TargetOutcome>,
    /// What happened in processes (`None`: the process-per-test runs were not run).
    pub processes: Option<ProcessOutcome>,
}

impl TargetResult {
    /// The in-process measurements, when they ran.
    pub fn measured(&self) -> Option<&Measurements> {
        match &self.outcome {
            Some(TargetOutcome::Measured(m)) => Some(m),
            _ => None,
        }
    }

    /// The process-per-test measurements, when they ran.
    pub fn measured_processes(&self) -> Option<&ProcessMeasurements> {
        match &self.processes {
            Some(ProcessOutcome::Measured(m)) => Some(m),
            _ => None,
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
/// assert!(report.processes_recommendation().is_none());
/// ```
#[derive(Debug, Clone)]
pub struct Report {
    /// What was asked for: tests per in-process suite.
    pub tests: usize,
    /// Tables per test.
    pub tables: usize,
    /// Rows per table.
    pub rows: usize,
    /// Workers of the parallel runs (and test processes running at once).
    pub jobs: usize,
    /// The seed.
    pub seed: u64,
    /// Whether the in-process suites ran.
    pub in_process: bool,
    /// Test processes per target in the process-per-test runs (0: they did not run).
    pub process_tests: usize,
    /// The machine and the server.
    pub environment: Environment,
    /// The schema.
    pub schema: SchemaInfo,
    /// The floor of the process-per-test runs: processes that only connect to a migrated
    /// database, `BEGIN`, write the same rows and `ROLLBACK`.
    pub floor: Option<ProcessRun>,
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
            in_process: config.in_process,
            process_tests: config.processes.as_ref().map_or(0, |p| p.tests),
            environment: Environment::default(),
            schema: SchemaInfo::default(),
            floor: None,
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

    /// The in-process measurements of `target`, when it ran.
    pub fn measured(&self, target: Target) -> Option<&Measurements> {
        self.results
            .iter()
            .find(|r| r.target == target)
            .and_then(TargetResult::measured)
    }

    /// The process-per-test measurements of `target`, when it ran.
    pub fn measured_processes(&self, target: Target) -> Option<&ProcessMeasurements> {
        self.results
            .iter()
            .find(|r| r.target == target)
            .and_then(TargetResult::measured_processes)
    }

    /// How many times less per-test overhead `target` has than the baseline (medians of the
    /// serial runs), when both ran.
    pub fn ratio_to_baseline(&self, target: Target) -> Option<f64> {
        let base = self.measured(Target::Baseline)?.serial.overhead.p50;
        let own = self.measured(target)?.serial.overhead.p50;
        (!own.is_zero()).then(|| base.as_secs_f64() / own.as_secs_f64())
    }

    /// How many times shorter `target`'s test processes are than the baseline's (medians),
    /// when both ran.
    pub fn processes_ratio_to_baseline(&self, target: Target) -> Option<f64> {
        let base = self.measured_processes(Target::Baseline)?.run.process.p50;
        let own = self.measured_processes(target)?.run.process.p50;
        (!own.is_zero()).then(|| base.as_secs_f64() / own.as_secs_f64())
    }

    /// How `target`'s test processes compare with the floor's, when both ran (and the floor's
    /// processes passed).
    pub fn over_floor(&self, target: Target) -> Option<OverFloor> {
        let floor = self.floor.as_ref().filter(|f| f.process.samples > 0)?;
        let own = self.measured_processes(target)?;
        (own.run.process.samples > 0).then_some(OverFloor {
            process: own.run.process.p50,
            floor: floor.process.p50,
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

/// Why a target measured in processes does not count as correct.
pub(crate) fn process_failure_summary(m: &ProcessMeasurements) -> String {
    if m.run.failures > 0 {
        format!(
            "{} test process(es) failed, first: {}",
            m.run.failures,
            m.run.first_failure.clone().unwrap_or_default()
        )
    } else {
        format!(
            "its processes left things behind: {}",
            m.isolation.problems.join("; ")
        )
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

#[path = "report_recommend.rs"]
mod recommend;
#[cfg(test)]
#[path = "report_tests.rs"]
mod tests;
