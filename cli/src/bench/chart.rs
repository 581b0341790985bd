//! The SVG chart of `seedbed bench`: per-test overhead per target (median bar, whisker to the
//! 95th percentile), on a log scale so the baseline and the fastest strategy fit one picture.

use std::path::Path;

use plotters::prelude::*;
use seedbed::bench::{Report, Target};

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

fn chart_error(e: impl std::fmt::Display) -> seedbed::Error {
    seedbed::Error::Config(format!("cannot draw the chart: {e}"))
}

pub(crate) fn draw(report: &Report, path: &Path) -> Result<(), seedbed::Error> {
    // (target, p50, p95) in milliseconds.
    let bars: Vec<(Target, f64, f64)> = report
        .results
        .iter()
        .filter_map(|r| {
            r.measured().map(|m| {
                (
                    r.target,
                    m.serial.overhead.p50.as_secs_f64() * 1e3,
                    m.serial.overhead.p95.as_secs_f64() * 1e3,
                )
            })
        })
        .collect();
    let root = SVGBackend::new(path, (960, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(chart_error)?;
    let positive = |v: f64| v.max(0.001);
    let lo = bars
        .iter()
        .map(|b| positive(b.1))
        .fold(f64::INFINITY, f64::min)
        .min(1.0)
        / 3.0;
    let hi = bars
        .iter()
        .map(|b| positive(b.2))
        .fold(0.0, f64::max)
        .max(1.0)
        * 4.0;
    let names: Vec<String> = bars.iter().map(|b| b.0.name().to_string()).collect();
    let caption = format!(
        "seedbed bench: per-test overhead on {} ({} tests, {} rows × ~{} tables per test)",
        report.schema.source, report.tests, report.rows, report.tables
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 18))
        .margin(16)
        .x_label_area_size(36)
        .y_label_area_size(80)
        .build_cartesian_2d(
            (0..bars.len().saturating_sub(1).max(1)).into_segmented(),
            (lo..hi).log_scale(),
        )
        .map_err(chart_error)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .y_desc("per-test overhead, ms (log scale)")
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
    chart
        .draw_series(bars.iter().enumerate().map(|(i, (target, p50, _))| {
            let mut bar = Rectangle::new(
                [
                    (SegmentValue::Exact(i), lo),
                    (SegmentValue::Exact(i + 1), positive(*p50)),
                ],
                color(*target).filled(),
            );
            bar.set_margin(0, 0, 24, 24);
            bar
        }))
        .map_err(chart_error)?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, (_, p50, p95))| {
            PathElement::new(
                vec![
                    (SegmentValue::CenterOf(i), positive(*p50)),
                    (SegmentValue::CenterOf(i), positive(*p95)),
                ],
                BLACK.stroke_width(2),
            )
        }))
        .map_err(chart_error)?;
    let label_style = TextStyle::from(("sans-serif", 15).into_font()).pos(
        plotters::style::text_anchor::Pos::new(
            plotters::style::text_anchor::HPos::Center,
            plotters::style::text_anchor::VPos::Bottom,
        ),
    );
    chart
        .draw_series(bars.iter().enumerate().map(|(i, (target, p50, p95))| {
            let ratio = report
                .ratio_to_baseline(*target)
                .filter(|_| *target != Target::Baseline)
                .map(|x| format!(" · {} less", times(x)))
                .unwrap_or_default();
            let label = format!(
                "{}{ratio}",
                ms(std::time::Duration::from_secs_f64(p50 / 1e3))
            );
            Text::new(
                label,
                (SegmentValue::CenterOf(i), positive(p50.max(*p95)) * 1.25),
                label_style.clone(),
            )
        }))
        .map_err(chart_error)?;
    let env = &report.environment;
    let footer = format!(
        "median bar, whisker to p95 · serial suite · PostgreSQL {}{} · {} CPUs · {}",
        env.server_version,
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
