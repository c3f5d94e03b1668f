//! The results table and the chart (p99 latency against delivered messages/s).

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;

use crate::error::{BenchError, Result};
use crate::run::TargetReport;

/// A plain-text table: one block of rows per target.
pub fn table(reports: &[TargetReport]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<22} {:>7} {:>9} {:>9} {:>10} {:>12}",
        "system", "nodes", "sockets", "failed", "conn/s", "RSS KiB/sock"
    );
    for r in reports {
        let _ = writeln!(
            out,
            "{:<22} {:>7} {:>9} {:>9} {:>10.0} {:>12}",
            r.name,
            r.nodes,
            r.connect.connected,
            r.connect.failed,
            r.connect.rate,
            r.connect
                .rss_per_conn_kib
                .map_or("-".into(), |k| format!("{k:.1}"))
        );
    }
    if reports.iter().any(|r| !r.steps.is_empty()) {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{:<22} {:>8} {:>8} {:>11} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7} {:>6} {:>8}",
            "system",
            "rate",
            "sent/s",
            "deliv/s",
            "p50 ms",
            "p99 ms",
            "p99.9",
            "max ms",
            "miss %",
            "errors",
            "cpu%",
            "RSS MiB"
        );
        for r in reports {
            for s in &r.steps {
                let _ = writeln!(
                    out,
                    "{:<22} {:>8.0} {:>8.0} {:>11.0} {:>8.2} {:>8.2} {:>8.2} {:>8.1} {:>8.2} {:>7} {:>6.0} {:>8.1}",
                    r.name,
                    s.target_rate,
                    s.sent_per_s,
                    s.delivered_per_s,
                    s.p50_ms,
                    s.p99_ms,
                    s.p999_ms,
                    s.max_ms,
                    s.missing_pct,
                    s.errors,
                    s.cpu_pct,
                    s.rss_kib as f64 / 1024.0
                );
            }
        }
        let _ = writeln!(out);
        for r in reports {
            let _ = writeln!(
                out,
                "{:<22} capacity (p99 <= SLO, <1% missing): {}",
                r.name,
                capacity_text(r)
            );
        }
    }
    out
}

/// The capacity, or why there is none: when even the lowest step missed, the ramp
/// started above what this machine holds, and the table says so instead of a bare
/// "none".
fn capacity_text(report: &TargetReport) -> String {
    let lowest = report.steps.iter().map(|s| s.target_rate).reduce(f64::min);
    match (report.capacity_per_s, lowest) {
        (Some(capacity), _) => format!("{capacity:.0} deliveries/s"),
        (None, Some(lowest)) => format!(
            "none (even the lowest step, {lowest:.0} sends/s, missed: lower --rates to find it)"
        ),
        (None, None) => "none".into(),
    }
}

/// SVG chart of p99 (log scale) against delivered messages/s, one series per system.
pub fn chart(reports: &[TargetReport], path: &Path, title: &str) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| BenchError::Chart(e.to_string());
    let points: Vec<(f64, f64)> = reports
        .iter()
        .flat_map(|r| {
            r.steps
                .iter()
                .map(|s| (s.delivered_per_s, s.p99_ms.max(0.01)))
        })
        .collect();
    let x_max = points.iter().map(|p| p.0).fold(1.0, f64::max) * 1.1;
    let y_max = points.iter().map(|p| p.1).fold(1.0, f64::max) * 2.0;
    let y_min = points.iter().map(|p| p.1).fold(f64::MAX, f64::min).min(1.0) / 2.0;
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..x_max, (y_min..y_max).log_scale())
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("delivered messages/s")
        .y_desc("p99 end-to-end latency (ms, log)")
        .x_label_formatter(&|x| format!("{:.0}k", x / 1000.0))
        .draw()
        .map_err(|e| err(&e))?;
    // The 50 ms SLO of workload S2.
    chart
        .draw_series(LineSeries::new(
            [(0.0, 50.0), (x_max, 50.0)],
            ShapeStyle::from(&BLACK.mix(0.3)).stroke_width(1),
        ))
        .map_err(|e| err(&e))?
        .label("p99 = 50 ms");
    for (i, r) in reports.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let series: Vec<(f64, f64)> = r
            .steps
            .iter()
            .map(|s| (s.delivered_per_s, s.p99_ms.max(0.01)))
            .collect();
        chart
            .draw_series(LineSeries::new(series.clone(), color.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(r.name.clone())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2)));
        chart
            .draw_series(
                series
                    .into_iter()
                    .map(|p| Circle::new(p, 4, color.filled())),
            )
            .map_err(|e| err(&e))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Kind;
    use crate::run::{ConnectReport, StepReport};

    fn report(capacity: Option<f64>, p99s: &[(f64, f64)]) -> TargetReport {
        TargetReport {
            name: "chatx".into(),
            kind: Kind::Chatx,
            nodes: 1,
            connect: ConnectReport::default(),
            steps: p99s
                .iter()
                .map(|&(rate, p99)| StepReport {
                    target_rate: rate,
                    delivered_per_s: rate * 100.0,
                    p99_ms: p99,
                    ..StepReport::default()
                })
                .collect(),
            capacity_per_s: capacity,
            disconnected: 0,
            errors_total: 0,
        }
    }

    #[test]
    fn the_table_says_when_even_the_lowest_step_missed() {
        let missed = table(&[report(None, &[(375.0, 80.0), (250.0, 60.0)])]);
        assert!(
            missed.contains("none (even the lowest step, 250 sends/s, missed"),
            "{missed}"
        );
        let held = table(&[report(Some(25_000.0), &[(250.0, 9.0), (375.0, 60.0)])]);
        assert!(held.contains("capacity (p99 <= SLO, <1% missing): 25000 deliveries/s"));
        // A target without steps (an idle run beside a ramped one) has nothing to lower.
        let mut idle = report(None, &[]);
        idle.name = "idle".into();
        let mixed = table(&[report(None, &[(250.0, 60.0)]), idle]);
        assert!(
            mixed
                .lines()
                .any(|l| l.starts_with("idle ") && l.ends_with("missing): none")),
            "{mixed}"
        );
    }
}
