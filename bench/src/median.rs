//! The median of repeated runs of one workload, so that a noisy machine's single bad
//! (or lucky) run does not decide a figure.
//!
//! Every figure of a step (latencies, rates, CPU, memory) is the median over the runs
//! of that figure alone. A run that never reached a rate (it stopped ramping when its
//! p99 passed `--stop-p99-ms`) counts there as a collapse, worse than any measured
//! step; a rate that most runs did not reach is left out. Capacity is then computed
//! from the median steps, as for one run. Counts of trouble (failed connects, errors,
//! disconnects, missing deliveries) are the worst run's, not the median's.

use crate::error::{BenchError, Result};
use crate::run::{ConnectReport, StepReport, TargetReport, capacity};

/// The median of `values` (the mean of the middle two for an even count); `None` when
/// empty. `f64::INFINITY` sorts last, which is how a collapsed run is counted.
fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    })
}

/// The median of a field over the steps of the runs that reached the rate, with each
/// run that did not reach it counted as `collapsed`.
fn field(steps: &[&StepReport], runs: usize, collapsed: f64, get: fn(&StepReport) -> f64) -> f64 {
    let mut values: Vec<f64> = steps.iter().map(|s| get(s)).collect();
    values.resize(runs, collapsed);
    median(values).unwrap_or(collapsed)
}

fn median_steps(runs: &[&TargetReport]) -> Vec<StepReport> {
    let mut rates: Vec<f64> = runs
        .iter()
        .flat_map(|r| r.steps.iter().map(|s| s.target_rate))
        .collect();
    rates.sort_by(f64::total_cmp);
    rates.dedup();
    let n = runs.len();
    let mut out = Vec::new();
    for rate in rates {
        let steps: Vec<&StepReport> = runs
            .iter()
            .filter_map(|r| r.steps.iter().find(|s| s.target_rate == rate))
            .collect();
        // Most runs collapsed before this rate: its median is a collapse.
        if steps.len() * 2 <= n {
            continue;
        }
        let inf = f64::INFINITY;
        let worst_u64 = |get: fn(&StepReport) -> u64| steps.iter().map(|s| get(s)).max();
        out.push(StepReport {
            target_rate: rate,
            sent: field(&steps, n, 0.0, |s| s.sent as f64) as u64,
            sent_per_s: field(&steps, n, 0.0, |s| s.sent_per_s),
            expected: field(&steps, n, 0.0, |s| s.expected as f64) as u64,
            delivered: field(&steps, n, 0.0, |s| s.delivered as f64) as u64,
            delivered_per_s: field(&steps, n, 0.0, |s| s.delivered_per_s),
            missing_pct: steps.iter().map(|s| s.missing_pct).fold(0.0, f64::max),
            p50_ms: field(&steps, n, inf, |s| s.p50_ms),
            p99_ms: field(&steps, n, inf, |s| s.p99_ms),
            p999_ms: field(&steps, n, inf, |s| s.p999_ms),
            max_ms: field(&steps, n, inf, |s| s.max_ms),
            errors: worst_u64(|s| s.errors).unwrap_or(0),
            gen_dropped: worst_u64(|s| s.gen_dropped).unwrap_or(0),
            disconnected: worst_u64(|s| s.disconnected).unwrap_or(0),
            rss_kib: field(&steps, n, 0.0, |s| s.rss_kib as f64) as u64,
            cpu_pct: field(&steps, n, 0.0, |s| s.cpu_pct),
            timeline: Vec::new(),
            window_start_us: 0,
        });
    }
    out
}

fn median_connect(runs: &[&TargetReport]) -> ConnectReport {
    let of = |get: fn(&ConnectReport) -> f64| {
        median(runs.iter().map(|r| get(&r.connect)).collect()).unwrap_or(0.0)
    };
    let per_conn: Vec<f64> = runs
        .iter()
        .filter_map(|r| r.connect.rss_per_conn_kib)
        .collect();
    ConnectReport {
        requested: runs.iter().map(|r| r.connect.requested).max().unwrap_or(0),
        connected: runs.iter().map(|r| r.connect.connected).min().unwrap_or(0),
        failed: runs.iter().map(|r| r.connect.failed).max().unwrap_or(0),
        secs: of(|c| c.secs),
        rate: of(|c| c.rate),
        rss_before_kib: of(|c| c.rss_before_kib as f64) as u64,
        rss_idle_kib: of(|c| c.rss_idle_kib as f64) as u64,
        rss_per_conn_kib: median(per_conn),
        first_error: runs.iter().find_map(|r| r.connect.first_error.clone()),
    }
}

/// A JSON file written by `chatx-bench run --out`: the workload and rates that make
/// runs comparable, and the reports.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RunFile {
    pub workload: serde_json::Value,
    pub rates: serde_json::Value,
    pub reports: Vec<TargetReport>,
}

/// The target `name` of run `i` (from 0); its absence means the runs differ.
fn target_in<'a>(run: &'a RunFile, i: usize, name: &str) -> Result<&'a TargetReport> {
    run.reports.iter().find(|r| r.name == name).ok_or_else(|| {
        BenchError::Setup(format!(
            "run {} has no target named {name:?}: the runs are not of one workload",
            i + 1
        ))
    })
}

/// One report per target of the first run, each the median over every run. The runs
/// must be of one workload (the same `bench/run.sh` command repeated): the same
/// workload and rates, and every target of the first.
pub fn median_reports(runs: &[RunFile], slo_ms: f64) -> Result<Vec<TargetReport>> {
    let first = runs
        .first()
        .ok_or_else(|| BenchError::Setup("no runs to take the median of".into()))?;
    if let Some(i) = runs
        .iter()
        .position(|r| r.workload != first.workload || r.rates != first.rates)
    {
        return Err(BenchError::Setup(format!(
            "run {} has another workload or rates than run 1",
            i + 1
        )));
    }
    first
        .reports
        .iter()
        .map(|target| {
            let same: Vec<&TargetReport> = runs
                .iter()
                .enumerate()
                .map(|(i, run)| target_in(run, i, &target.name))
                .collect::<Result<_>>()?;
            let steps = median_steps(&same);
            Ok(TargetReport {
                name: target.name.clone(),
                kind: target.kind,
                nodes: target.nodes,
                connect: median_connect(&same),
                capacity_per_s: capacity(&steps, slo_ms),
                steps,
                disconnected: same.iter().map(|r| r.disconnected).max().unwrap_or(0),
                errors_total: same.iter().map(|r| r.errors_total).max().unwrap_or(0),
            })
        })
        .collect()
}

/// A JSON file written by `chatx-bench run --out` (or by `median --out`).
pub fn read_run(json: &str) -> Result<RunFile> {
    Ok(serde_json::from_str(json)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Kind;

    fn step(rate: f64, p99_ms: f64) -> StepReport {
        StepReport {
            target_rate: rate,
            delivered: (rate * 100.0) as u64,
            delivered_per_s: rate * 100.0,
            p50_ms: p99_ms / 4.0,
            p99_ms,
            ..Default::default()
        }
    }

    fn run(targets: Vec<TargetReport>) -> RunFile {
        RunFile {
            workload: serde_json::json!({"conns": 2000, "rooms": 20}),
            rates: serde_json::json!([250.0, 375.0]),
            reports: targets,
        }
    }

    fn target(name: &str, steps: Vec<StepReport>) -> TargetReport {
        TargetReport {
            name: name.into(),
            kind: Kind::Chatx,
            nodes: 1,
            connect: ConnectReport::default(),
            steps,
            capacity_per_s: None,
            disconnected: 0,
            errors_total: 0,
        }
    }

    /// One run per entry, each of the one target `name` with the `(rate, p99)` steps.
    fn runs_of(name: &str, runs: &[&[(f64, f64)]]) -> Vec<RunFile> {
        runs.iter()
            .map(|steps| {
                let steps = steps.iter().map(|&(rate, p99)| step(rate, p99)).collect();
                run(vec![target(name, steps)])
            })
            .collect()
    }

    #[test]
    fn each_figure_is_the_median_of_the_runs_and_capacity_follows_it() {
        let runs = runs_of(
            "chatx",
            &[
                &[(250.0, 4.0), (375.0, 60.0)],
                &[(250.0, 30.0), (375.0, 12.0)],
                &[(250.0, 7.0), (375.0, 45.0)],
            ],
        );
        let median = median_reports(&runs, 50.0).expect("median");
        let steps = &median[0].steps;
        assert_eq!(steps.len(), 2);
        assert_eq!(steps[0].p99_ms, 7.0);
        assert_eq!(steps[0].p50_ms, 1.75);
        assert_eq!(steps[1].p99_ms, 45.0);
        // Run 1 missed 50 ms at 375 sends/s; the median step holds it.
        assert_eq!(median[0].capacity_per_s, Some(37_500.0));
    }

    #[test]
    fn a_run_that_stopped_ramping_counts_as_a_collapse_at_the_rates_it_missed() {
        let runs = runs_of(
            "sio",
            &[
                &[(250.0, 40.0), (375.0, 30.0)],
                &[(250.0, 20.0), (375.0, 45.0)],
                &[(250.0, 1500.0)],
            ],
        );
        let median = median_reports(&runs, 50.0).expect("median");
        let steps = &median[0].steps;
        // 375: [30, 45, collapse] -> 45, still held.
        assert_eq!(steps[1].p99_ms, 45.0);
        assert_eq!(median[0].capacity_per_s, Some(37_500.0));

        // Reached by one run of three: left out.
        let runs = runs_of(
            "sio",
            &[
                &[(250.0, 40.0), (375.0, 30.0)],
                &[(250.0, 1500.0)],
                &[(250.0, 1200.0)],
            ],
        );
        let median = median_reports(&runs, 50.0).expect("median");
        assert_eq!(median[0].steps.len(), 1);
        assert_eq!(median[0].steps[0].p99_ms, 1200.0);
        assert_eq!(median[0].capacity_per_s, None);
    }

    #[test]
    fn trouble_counts_are_the_worst_runs() {
        let mut bad = target("chatx", vec![step(250.0, 5.0)]);
        bad.errors_total = 3;
        bad.steps[0].missing_pct = 2.5;
        bad.connect.failed = 7;
        let runs = vec![
            run(vec![target("chatx", vec![step(250.0, 5.0)])]),
            run(vec![bad]),
            run(vec![target("chatx", vec![step(250.0, 5.0)])]),
        ];
        let median = median_reports(&runs, 50.0).expect("median");
        assert_eq!(median[0].errors_total, 3);
        assert_eq!(median[0].connect.failed, 7);
        assert_eq!(median[0].steps[0].missing_pct, 2.5);
        // 2.5 % missing in one run: the step does not count toward capacity.
        assert_eq!(median[0].capacity_per_s, None);
    }

    #[test]
    fn runs_of_different_workloads_are_refused_with_the_reason() {
        let runs = vec![
            run(vec![target("chatx", vec![]), target("baseline", vec![])]),
            run(vec![target("chatx", vec![])]),
        ];
        let err = median_reports(&runs, 50.0).expect_err("must refuse");
        assert!(
            err.to_string()
                .contains("run 2 has no target named \"baseline\""),
            "{err}"
        );
        let err = median_reports(&[], 50.0).expect_err("must refuse");
        assert!(err.to_string().contains("no runs"), "{err}");

        let mut other = run(vec![target("chatx", vec![])]);
        other.workload = serde_json::json!({"conns": 10000, "rooms": 100});
        let runs = vec![run(vec![target("chatx", vec![])]), other];
        let err = median_reports(&runs, 50.0).expect_err("must refuse");
        assert!(
            err.to_string().contains("run 2 has another workload"),
            "{err}"
        );
    }

    #[test]
    fn a_file_that_is_not_a_run_report_is_an_error() {
        assert!(read_run("{\"workload\": {}, \"rates\": []}").is_err());
        assert!(read_run("not json").is_err());
        let empty = read_run("{\"workload\": {}, \"rates\": [], \"reports\": []}")
            .expect("a run with no targets");
        assert!(empty.reports.is_empty());
    }

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median(vec![1.0, 9.0, 3.0, 5.0]), Some(4.0));
        assert_eq!(median(vec![2.0, f64::INFINITY, 1.0]), Some(2.0));
        assert_eq!(median(Vec::new()), None);
    }
}
