//! The process-per-test runs: every test in a process of its own, as `cargo nextest` runs them,
//! timed from outside (spawn to exit).

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::child::{ChildKind, ChildMigrations, ChildReport, ChildSpec};
use super::host::Host;
use super::isolation_check::{Expected, Registered};
use super::measure::Summary;
use super::report::{ProcessMeasurements, ProcessOutcome, ProcessRun};
use super::{Progress, Target};
use crate::error::{Error, Result};
use crate::isolation::{MigrationSource, Strategy};
use crate::rowgen::rows::RowPlan;

/// How long the isolation check of a process run waits for databases to go: the processes have
/// exited, so only statements the server is still finishing can drop one.
const DROP_WAIT: Duration = Duration::from_secs(2);

/// How a test process is started: a program and the arguments that come before the test's own
/// ([`ChildSpec::to_args`]). `seedbed bench` starts itself: `seedbed __bench-child`.
///
/// ```
/// use seedbed::bench::ChildCommand;
///
/// let command = ChildCommand::new("/usr/local/bin/seedbed").arg("__bench-child");
/// assert_eq!(command.args, ["__bench-child"]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildCommand {
    /// The program.
    pub program: PathBuf,
    /// Its first arguments.
    pub args: Vec<OsString>,
}

impl ChildCommand {
    /// `program`, without arguments yet.
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
        }
    }

    /// Adds an argument.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }
}

/// The plan file, removed when the runs are over.
pub(super) struct PlanFile(PathBuf);

impl PlanFile {
    pub(super) fn write(plan: &RowPlan) -> Result<PlanFile> {
        let path = std::env::temp_dir().join(format!(
            "seedbed-bench-plan-{}-{}.json",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        plan.save(&path)?;
        Ok(PlanFile(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for PlanFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Everything the test processes of a run share.
pub(super) struct Children {
    pub(super) command: ChildCommand,
    /// The environment the processes find the databases by (`SEEDBED_DATABASE_URL`, …).
    pub(super) env: Vec<(&'static str, String)>,
    pub(super) plan: PlanFile,
    pub(super) migrations: ChildMigrations,
    /// Test processes per target (the setup process not counted).
    pub(super) tests: usize,
    pub(super) jobs: usize,
    pub(super) tables: usize,
    pub(super) rows: usize,
    pub(super) seed: u64,
}

/// One test process, seen from outside.
struct Sample {
    wall: Duration,
    report: std::result::Result<ChildReport, String>,
}

/// How test processes find the run's migrations.
pub(super) fn child_migrations(source: &MigrationSource) -> ChildMigrations {
    match source {
        MigrationSource::Dir(dir) => ChildMigrations::Dir(dir.clone()),
        MigrationSource::None => ChildMigrations::None,
        MigrationSource::Default
        | MigrationSource::Migrator(_)
        | MigrationSource::Custom(_)
        | MigrationSource::Named(..) => ChildMigrations::Program,
    }
}

/// The run the test processes of this bench belong to, as the processes of one `cargo nextest
/// run` do.
fn run_id() -> &'static str {
    static RUN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    RUN.get_or_init(|| format!("bench{}", std::process::id()))
}

impl Children {
    fn spec(&self, kind: ChildKind, test: usize) -> ChildSpec {
        ChildSpec {
            kind,
            test,
            // Test 0 is the setup process.
            tests: self.tests + 1,
            plan: self.plan.path().to_path_buf(),
            tables: self.tables,
            rows: self.rows,
            seed: self.seed,
            migrations: self.migrations.clone(),
        }
    }

    /// Starts one test process and waits for it to exit; its wall time is from just before the
    /// spawn to its exit (its output read).
    ///
    /// The process gets the environment `cargo nextest` gives a test process: it runs one test
    /// (`NEXTEST_EXECUTION_MODE=process-per-test`), its run is this bench's (`NEXTEST_RUN_ID`),
    /// and `slot` is its place among the processes running at once
    /// (`NEXTEST_TEST_GLOBAL_SLOT`).
    async fn run_one(self: &Arc<Self>, spec: ChildSpec, slot: usize) -> Sample {
        let this = Arc::clone(self);
        let ran = tokio::task::spawn_blocking(move || {
            let mut command = Command::new(&this.command.program);
            command
                .args(&this.command.args)
                .args(spec.to_args())
                .envs(this.env.iter().map(|(k, v)| (k, v)))
                .env("NEXTEST_EXECUTION_MODE", "process-per-test")
                .env("NEXTEST_RUN_ID", run_id())
                .env("NEXTEST_TEST_GLOBAL_SLOT", slot.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let started = Instant::now();
            let output = command.output();
            (started.elapsed(), output)
        })
        .await;
        let (wall, output) = match ran {
            Ok(r) => r,
            Err(e) => {
                return Sample {
                    wall: Duration::ZERO,
                    report: Err(format!("the task starting a test process failed: {e}")),
                };
            }
        };
        let report = match output {
            Err(e) => Err(format!(
                "cannot start the test process {}: {e}",
                self.command.program.display()
            )),
            Ok(out) => {
                let stdout = String::from_utf8_lossy(&out.stdout);
                match ChildReport::from_output(&stdout) {
                    Some(report) if out.status.success() => Ok(report),
                    _ => {
                        let stderr = String::from_utf8_lossy(&out.stderr);
                        let tail: Vec<&str> =
                            stderr.lines().filter(|l| !l.trim().is_empty()).collect();
                        let tail = tail[tail.len().saturating_sub(3)..].join(" / ");
                        Err(format!(
                            "the test process {} ({}){}",
                            if out.status.success() {
                                "printed no report"
                            } else {
                                "failed"
                            },
                            out.status,
                            if tail.is_empty() {
                                String::new()
                            } else {
                                format!(": {tail}")
                            }
                        ))
                    }
                }
            }
        };
        Sample { wall, report }
    }

    /// `tests` processes of `kind`, numbered from 1, `jobs` at a time; the databases they used
    /// go into `used`.
    async fn run_suite(
        self: &Arc<Self>,
        kind: &ChildKind,
        progress: &dyn Progress,
        used: &mut BTreeSet<String>,
    ) -> ProcessRun {
        let (tests, jobs) = (self.tests, self.jobs.min(self.tests).max(1));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let next = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let mut workers = Vec::new();
        for slot in 0..jobs {
            let (this, next, tx, kind) = (
                Arc::clone(self),
                Arc::clone(&next),
                tx.clone(),
                kind.clone(),
            );
            workers.push(tokio::spawn(async move {
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    if k >= tests {
                        break;
                    }
                    let sample = this.run_one(this.spec(kind.clone(), 1 + k), slot).await;
                    if tx.send(sample).is_err() {
                        break;
                    }
                }
            }));
        }
        drop(tx);
        let mut samples = Vec::with_capacity(tests);
        while let Some(sample) = rx.recv().await {
            progress.test_done();
            samples.push(sample);
        }
        let wall = started.elapsed();
        for w in workers {
            let _ = w.await;
        }
        summarize(samples, tests, jobs, wall, used)
    }

    /// The floor: processes that only connect to the migrated `database`, `BEGIN`, write and
    /// `ROLLBACK`.
    pub(super) async fn floor(
        self: &Arc<Self>,
        database: &str,
        progress: &dyn Progress,
    ) -> ProcessRun {
        progress.phase(&self.phase_name("floor"), self.tests as u64);
        let mut used = BTreeSet::new();
        self.run_suite(
            &ChildKind::Floor {
                database: database.to_string(),
            },
            progress,
            &mut used,
        )
        .await
    }

    fn phase_name(&self, what: &str) -> String {
        format!(
            "{what}: {} processes, {} job{}",
            self.tests,
            self.jobs,
            if self.jobs == 1 { "" } else { "s" }
        )
    }

    /// A target's processes: a setup process (untimed: it builds what the strategy needs once,
    /// unless that is built), the suite, and the isolation check.
    pub(super) async fn target(
        self: &Arc<Self>,
        host: Host,
        target: Target,
        expected: &Expected,
        progress: &dyn Progress,
    ) -> Result<ProcessOutcome> {
        let kind = ChildKind::Target(target);
        let sampler = host.sampler().await?;
        progress.phase(&format!("{target}: setup process"), 1);
        let setup = self.run_one(self.spec(kind.clone(), 0), 0).await;
        progress.test_done();
        let first = match setup.report {
            Ok(report) => report,
            Err(why) => {
                let _ = sampler.finish().await;
                return Ok(ProcessOutcome::Unavailable(why));
            }
        };
        let mut used: BTreeSet<String> = [first.database].into();
        progress.phase(&self.phase_name(target.name()), self.tests as u64);
        let run = self.run_suite(&kind, progress, &mut used).await;
        let peak_connections = sampler.finish().await;

        progress.phase(&format!("{target}: isolation check (processes)"), 1);
        let (stay, gone) = if host.must_go(target) {
            (BTreeSet::new(), used)
        } else {
            (used, BTreeSet::new())
        };
        let registered = if target == Target::Strategy(Strategy::Template) {
            Registered::ByAnyProcess
        } else {
            Registered::Unchecked
        };
        let isolation = host
            .check(expected, &stay, &gone, DROP_WAIT, registered)
            .await;
        progress.test_done();
        Ok(ProcessOutcome::Measured(Box::new(ProcessMeasurements {
            setup: setup.wall,
            run,
            peak_connections,
            isolation,
        })))
    }
}

/// The run's figures from its processes' samples.
fn summarize(
    samples: Vec<Sample>,
    tests: usize,
    jobs: usize,
    wall: Duration,
    used: &mut BTreeSet<String>,
) -> ProcessRun {
    let ok: Vec<(Duration, &ChildReport)> = samples
        .iter()
        .filter_map(|s| s.report.as_ref().ok().map(|r| (s.wall, r)))
        .collect();
    used.extend(ok.iter().map(|(_, r)| r.database.clone()));
    let of = |f: &dyn Fn(Duration, &ChildReport) -> Duration| {
        Summary::of(&ok.iter().map(|(w, r)| f(*w, r)).collect::<Vec<_>>())
    };
    ProcessRun {
        jobs,
        tests,
        wall,
        process: of(&|w, _| w),
        startup: of(&|w, r| w.saturating_sub(r.overhead + r.writes)),
        overhead: of(&|_, r| r.overhead),
        writes: of(&|_, r| r.writes),
        failures: samples.len() - ok.len() + tests.saturating_sub(samples.len()),
        first_failure: samples
            .iter()
            .find_map(|s| s.report.as_ref().err().cloned()),
    }
}

/// Checks the process-per-test settings before anything starts.
pub(super) fn validate(tests: usize, command: &super::ChildCommand) -> Result<()> {
    if tests == 0 {
        return Err(Error::Config(
            "the process-per-test runs need at least 1 test process per target".into(),
        ));
    }
    if command.program.as_os_str().is_empty() {
        return Err(Error::Config(
            "the process-per-test runs need a program to start for each test".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_sums_up_its_processes_and_names_the_first_failure() {
        let ms = Duration::from_millis;
        let report = |db: &str, overhead, writes| ChildReport {
            database: db.into(),
            overhead: ms(overhead),
            writes: ms(writes),
            total: ms(overhead + writes + 2),
        };
        let samples = vec![
            Sample {
                wall: ms(40),
                report: Ok(report("a", 20, 10)),
            },
            Sample {
                wall: ms(50),
                report: Err("the test process failed (exit status: 1): error: boom".into()),
            },
            Sample {
                wall: ms(60),
                report: Ok(report("b", 30, 10)),
            },
        ];
        let mut used = BTreeSet::new();
        let run = summarize(samples, 4, 2, ms(200), &mut used);
        assert_eq!((run.tests, run.jobs, run.wall), (4, 2, ms(200)));
        // One failed, one never reported.
        assert_eq!(run.failures, 2);
        assert!(
            run.first_failure
                .as_deref()
                .unwrap_or_default()
                .contains("boom")
        );
        assert_eq!(run.process.samples, 2);
        assert_eq!((run.process.p50, run.process.max), (ms(40), ms(60)));
        assert_eq!(run.startup.max, ms(20));
        assert_eq!(run.overhead.max, ms(30));
        assert_eq!(used, ["a".to_string(), "b".to_string()].into());
    }
}
