//! The SVG chart of `seedbed bench`: per target, the per-test overhead in one process (solid bar)
//! beside the time of a whole test process when every test runs in its own (light bar), median
//! bars with whiskers to the 95th percentile, and the floor of a test process as a line; on a
//! log scale so the baseline and the fastest strategy fit one picture.

use std::path::Path;
use std::time::Duration;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use seedbed::bench::{Report, Summary, Target};

use super::{ms, times};

fn color(target: Target) -> RGBColor {
    match target {
        Target::Baseline => RGBColor(150, 150, 150),
        Target::Strategy(seedbed::Strategy::Rollback) => RGBColor(46, 125, 50),
        Target::Strategy(seedbed::Strategy::Truncate) => RGBColor(21, 101, 192),
        Target::Strategy(seedbed::Strategy::Template) => RGBColor(239, 108, 0),
        Target::Strategy(seedbed::Strategy::Namespace) => RGBColor(123, 31, 162),
    }
}

/// `c` mixed with white: the process-per-test bars.
fn light(c: RGBColor) -> RGBColor {
    let mix = |v: u8| v + (255 - v) / 2;
    RGBColor(mix(c.0), mix(c.1), mix(c.2))
}

fn chart_error(e: impl std::fmt::Display) -> seedbed::Error {
    seedbed::Error::Config(format!("cannot draw the chart: {e}"))
}

/// Which half of a target's slot a bar takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Whole,
    Left,
    Right,
}

/// One bar: p50 and p95 in milliseconds, its label, and a second line above it.
struct Bar {
    slot: usize,
    side: Side,
    p50: f64,
    p95: f64,
    fill: RGBColor,
    label: String,
    note: Option<String>,
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn bar(slot: usize, side: Side, s: &Summary, fill: RGBColor, label: String) -> Bar {
    Bar {
        slot,
        side,
        p50: millis(s.p50),
        p95: millis(s.p95),
        fill,
        label,
        note: None,
    }
}

/// The bars of the report: a slot per target, with its in-process and its process bar.
fn bars(report: &Report) -> (Vec<String>, Vec<Bar>) {
    let both = report.in_process && report.process_tests > 0;
    let (left, right) = if both {
        (Side::Left, Side::Right)
    } else {
        (Side::Whole, Side::Whole)
    };
    let mut names = Vec::new();
    let mut out = Vec::new();
    for r in &report.results {
        let (in_process, processes) = (r.measured(), r.measured_processes());
        if in_process.is_none() && processes.is_none() {
            continue;
        }
        let slot = names.len();
        names.push(r.target.name().to_string());
        if let Some(m) = in_process {
            let ratio = report
                .ratio_to_baseline(r.target)
                .filter(|_| r.target != Target::Baseline)
                .map(|x| format!(" · {} less", times(x)))
                .unwrap_or_default();
            let label = format!("{}{ratio}", ms(m.serial.overhead.p50));
            out.push(bar(slot, left, &m.serial.overhead, color(r.target), label));
        }
        if let Some(p) = processes {
            let mut b = bar(
                slot,
                right,
                &p.run.process,
                light(color(r.target)),
                ms(p.run.process.p50),
            );
            b.note = report
                .over_floor(r.target)
                .map(|gap| format!("{} over floor", gap.format_extra()));
            out.push(b);
        }
    }
    (names, out)
}

pub(crate) fn draw(report: &Report, path: &Path) -> Result<(), seedbed::Error> {
    let (names, bars) = bars(report);
    let floor = report
        .floor
        .as_ref()
        .filter(|f| f.process.samples > 0)
        .map(|f| millis(f.process.p50));
    let root = SVGBackend::new(path, (960, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(chart_error)?;
    let positive = |v: f64| v.max(0.001);
    let lo = bars
        .iter()
        .map(|b| positive(b.p50))
        .fold(f64::INFINITY, f64::min)
        .min(1.0)
        / 3.0;
    let hi = bars
        .iter()
        .map(|b| positive(b.p95))
        .chain(floor)
        .fold(0.0, f64::max)
        .max(1.0)
        * 4.0;
    let what = match (report.in_process, report.process_tests > 0) {
        (true, true) => "overhead per test in one process; time per test process",
        (false, true) => "time per test process",
        _ => "per-test overhead",
    };
    let caption = format!(
        "seedbed bench: {what} ({}, {} rows × ~{} tables per test)",
        report.schema.source, report.rows, report.tables
    );
    let slots = names.len().max(1);
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 16))
        .margin(16)
        .x_label_area_size(36)
        .y_label_area_size(80)
        .build_cartesian_2d((0..slots - 1).into_segmented(), (lo..hi).log_scale())
        .map_err(chart_error)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .y_desc("milliseconds (log scale)")
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => names.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .y_label_formatter(&|v| {
            if *v >= 1.0 {
                format!("{v:.0}")
            } else {
                format!("{v}")
            }
        })
        .draw()
        .map_err(chart_error)?;
    // Half a slot, in pixels, places the two bars of a target side by side.
    let slot_px =
        i32::try_from(chart.plotting_area().dim_in_pixel().0 / slots as u32).unwrap_or(160);
    let half = slot_px / 2;
    let (outer, inner) = (slot_px / 8, 3);
    let margins = |side: Side| match side {
        Side::Whole => (slot_px / 6, slot_px / 6),
        Side::Left => (outer, half + inner),
        Side::Right => (half + inner, outer),
    };
    // The x of a bar's centre: its slot's centre, moved a quarter slot for a half bar.
    let centre_shift = |side: Side| match side {
        Side::Whole => 0,
        Side::Left => -(slot_px / 4) + (outer - inner) / 2,
        Side::Right => slot_px / 4 - (outer - inner) / 2,
    };
    chart
        .draw_series(bars.iter().map(|b| {
            let (left, right) = margins(b.side);
            let mut rect = Rectangle::new(
                [
                    (SegmentValue::Exact(b.slot), lo),
                    (SegmentValue::Exact(b.slot + 1), positive(b.p50)),
                ],
                b.fill.filled(),
            );
            rect.set_margin(0, 0, left.max(0) as u32, right.max(0) as u32);
            rect
        }))
        .map_err(chart_error)?;
    let area = chart.plotting_area();
    let to_px = |slot: usize, y: f64| area.map_coordinate(&(SegmentValue::CenterOf(slot), y));
    for b in &bars {
        let (x, y50) = to_px(b.slot, positive(b.p50));
        let (_, y95) = to_px(b.slot, positive(b.p95));
        let x = x + centre_shift(b.side);
        root.draw(&PathElement::new(
            vec![(x, y50), (x, y95)],
            BLACK.stroke_width(2),
        ))
        .map_err(chart_error)?;
        let size = if b.side == Side::Whole { 15 } else { 12 };
        let style = TextStyle::from(("sans-serif", size).into_font())
            .pos(Pos::new(HPos::Center, VPos::Bottom));
        let top = y95.min(y50) - 4;
        root.draw(&Text::new(b.label.clone(), (x, top), style))
            .map_err(chart_error)?;
        if let Some(note) = &b.note {
            let style = ("sans-serif", 11)
                .into_font()
                .color(&RGBColor(90, 90, 90))
                .pos(Pos::new(HPos::Center, VPos::Bottom));
            root.draw(&Text::new(note.clone(), (x, top - size - 2), style))
                .map_err(chart_error)?;
        }
    }
    if let Some(f) = floor {
        let (x0, y) = to_px(0, positive(f));
        let x0 = x0 - slot_px / 2;
        let x1 = x0 + slot_px * slots as i32;
        let grey = RGBColor(110, 110, 110);
        let mut x = x0;
        while x < x1 {
            root.draw(&PathElement::new(
                vec![(x, y), ((x + 8).min(x1), y)],
                grey.stroke_width(1),
            ))
            .map_err(chart_error)?;
            x += 14;
        }
        root.draw(&Text::new(
            format!(
                "floor: a test process that connects, writes the same rows and rolls back ({})",
                ms(Duration::from_secs_f64(f / 1e3))
            ),
            (x0 + 6, y - 4),
            ("sans-serif", 12)
                .into_font()
                .color(&grey)
                .pos(Pos::new(HPos::Left, VPos::Bottom)),
        ))
        .map_err(chart_error)?;
    }
    if report.in_process && report.process_tests > 0 {
        let legend = [
            (
                RGBColor(90, 90, 90),
                "in one process (cargo test): per-test overhead",
            ),
            (
                light(RGBColor(90, 90, 90)),
                "one process per test (cargo nextest): the whole process, spawn to exit",
            ),
        ];
        for (i, (c, text)) in legend.iter().enumerate() {
            let y = 52 + 18 * i as i32;
            root.draw(&Rectangle::new([(110, y), (122, y + 12)], c.filled()))
                .map_err(chart_error)?;
            root.draw(&Text::new(
                *text,
                (128, y),
                ("sans-serif", 12).into_font().color(&RGBColor(60, 60, 60)),
            ))
            .map_err(chart_error)?;
        }
    }
    let env = &report.environment;
    let runs = match (report.in_process, report.process_tests > 0) {
        (true, true) => format!(
            "serial suite of {} tests; {} test processes per target, {} at a time",
            report.tests, report.process_tests, report.jobs
        ),
        (false, true) => format!(
            "{} test processes per target, {} at a time",
            report.process_tests, report.jobs
        ),
        _ => format!("serial suite of {} tests", report.tests),
    };
    let version = env
        .server_version
        .split_whitespace()
        .next()
        .unwrap_or(&env.server_version);
    let footer = format!(
        "median bar, whisker to p95 · {runs} · {} {version}{} · {} CPUs · {}",
        env.backend,
        if env.embedded { " (embedded)" } else { "" },
        env.cpus,
        env.os
    );
    root.draw(&Text::new(
        footer,
        (16, 520),
        ("sans-serif", 12).into_font().color(&RGBColor(90, 90, 90)),
    ))
    .map_err(chart_error)?;
    root.present().map_err(chart_error)?;
    Ok(())
}
