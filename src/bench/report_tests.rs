//! Tests of [`super`] (report.rs).

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
            outcome: Some(TargetOutcome::Measured(measured(100, false))),
            processes: None,
        },
        TargetResult {
            target: Target::Strategy(Strategy::Rollback),
            outcome: Some(TargetOutcome::Measured(measured(400, true))),
            processes: None,
        },
        TargetResult {
            target: Target::Strategy(Strategy::Template),
            outcome: Some(TargetOutcome::Measured(measured(3000, true))),
            processes: None,
        },
        TargetResult {
            target: Target::Baseline,
            outcome: Some(TargetOutcome::Measured(measured(88_000, true))),
            processes: None,
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
    assert!(r.text.contains("commits, LISTENs or opens"), "{}", r.text);
    assert_eq!(report.ratio_to_baseline(Target::Baseline), Some(1.0));

    // On MySQL, DDL is what escapes a transaction, and there is nothing to LISTEN to.
    report.environment.backend = "MariaDB".into();
    let r = report.recommendation().unwrap();
    assert!(r.text.contains("commits, runs DDL or opens"), "{}", r.text);
}

fn summary(p50_us: u64) -> Summary {
    Summary {
        p50: Duration::from_micros(p50_us),
        p95: Duration::from_micros(p50_us * 3 / 2),
        max: Duration::from_micros(p50_us * 2),
        mean: Duration::from_micros(p50_us),
        samples: 20,
    }
}

fn process_run(p50_us: u64) -> ProcessRun {
    ProcessRun {
        jobs: 2,
        tests: 20,
        wall: Duration::from_micros(p50_us * 10),
        process: summary(p50_us),
        ..ProcessRun::default()
    }
}

fn processes(p50_us: u64, clean: bool) -> Option<ProcessOutcome> {
    Some(ProcessOutcome::Measured(Box::new(ProcessMeasurements {
        run: process_run(p50_us),
        isolation: IsolationCheck {
            problems: if clean {
                vec![]
            } else {
                vec!["database seedbed_c_1 was left behind".into()]
            },
            ..IsolationCheck::default()
        },
        ..ProcessMeasurements::default()
    })))
}

/// In one process Rollback is fastest; in processes of their own Namespace's tests are
/// (its start-up costs less), Template left a clone behind, Truncate did not start.
fn mixed_report() -> Report {
    let mut report = Report::new(&BenchConfig::default());
    report.process_tests = 20;
    report.floor = Some(process_run(30_000));
    let result = |s, in_process, processes| TargetResult {
        target: Target::Strategy(s),
        outcome: Some(TargetOutcome::Measured(in_process)),
        processes,
    };
    report.results = vec![
        result(
            Strategy::Rollback,
            measured(800, true),
            processes(48_000, true),
        ),
        TargetResult {
            target: Target::Strategy(Strategy::Truncate),
            outcome: Some(TargetOutcome::Measured(measured(2_000, true))),
            processes: Some(ProcessOutcome::Unavailable(
                "the test process failed".into(),
            )),
        },
        result(
            Strategy::Template,
            measured(18_000, true),
            processes(33_000, false),
        ),
        result(
            Strategy::Namespace,
            measured(2_500, true),
            processes(36_000, true),
        ),
        TargetResult {
            target: Target::Baseline,
            outcome: Some(TargetOutcome::Measured(measured(72_000, true))),
            processes: processes(144_000, true),
        },
    ];
    report
}

#[test]
fn compares_test_processes_with_the_floor_and_the_baseline() {
    let report = mixed_report();
    let gap = report
        .over_floor(Target::Strategy(Strategy::Namespace))
        .unwrap();
    assert_eq!(gap.extra_ms(), 6.0);
    assert_eq!(gap.ratio(), Some(1.2));
    assert_eq!(gap.format_extra(), "+6.00 ms");
    assert_eq!(
        report.processes_ratio_to_baseline(Target::Strategy(Strategy::Namespace)),
        Some(4.0)
    );
    // Not measured in processes: nothing to compare.
    assert_eq!(
        report.over_floor(Target::Strategy(Strategy::Truncate)),
        None
    );
    // No floor (or a floor whose processes all failed): no comparison either.
    let mut no_floor = mixed_report();
    no_floor.floor = Some(ProcessRun::default());
    assert_eq!(no_floor.over_floor(Target::Baseline), None);
}

#[test]
fn recommends_for_nextest_and_says_when_the_choice_differs() {
    let report = mixed_report();
    assert_eq!(
        report.recommendation().map(|r| r.strategy),
        Some(Strategy::Rollback)
    );
    let r = report.processes_recommendation().unwrap();
    assert_eq!(r.strategy, Strategy::Namespace, "{}", r.text);
    for part in [
        "Namespace: 36.0 ms per test process (p50; p95 54.0 ms)",
        "+6.00 ms over the floor of 30.0 ms",
        "4.0× less than a process that creates and migrates its database",
        "20 test processes took 360.0 ms with 2 jobs, against 1.44 s for the baseline",
        "for tests that count or scan whole tables, choose Rollback (48.0 ms per test process)",
        "In one process (cargo test) the choice differs: Rollback: in processes of their own \
         its tests take 48.0 ms (p50), 12.0 ms more.",
        "Truncate was not measured in processes (the test process failed)",
        "Template is left out: its processes left things behind: database seedbed_c_1 was \
         left behind",
    ] {
        assert!(r.text.contains(part), "{part:?} not in: {}", r.text);
    }
}

#[test]
fn the_same_choice_in_both_models_is_said_so() {
    let mut report = mixed_report();
    report.results.retain(|r| {
        matches!(
            r.target,
            Target::Strategy(Strategy::Rollback) | Target::Baseline
        )
    });
    let r = report.processes_recommendation().unwrap();
    assert_eq!(r.strategy, Strategy::Rollback);
    assert!(
        r.text
            .contains("In one process (cargo test) the choice is the same."),
        "{}",
        r.text
    );
    // Processes only: no in-process choice to compare with.
    for result in &mut report.results {
        result.outcome = None;
    }
    let r = report.processes_recommendation().unwrap();
    assert!(!r.text.contains("cargo test"), "{}", r.text);
    assert!(report.recommendation().is_none());
}
