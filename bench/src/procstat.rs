//! Server resource use from /proc: resident memory and CPU time of the given pids.

/// One sample over a set of processes.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcSample {
    pub rss_kib: u64,
    /// utime + stime in clock ticks (100 per second on Linux).
    pub cpu_ticks: u64,
}

pub fn sample(pids: &[u32]) -> ProcSample {
    let mut total = ProcSample::default();
    for pid in pids {
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            total.rss_kib += status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            // Fields after the parenthesised command name: state is field 3, utime 14.
            if let Some((_, rest)) = stat.rsplit_once(')') {
                let fields: Vec<&str> = rest.split_whitespace().collect();
                let num = |i: usize| {
                    fields
                        .get(i)
                        .and_then(|v| v.parse::<u64>().ok())
                        .unwrap_or(0)
                };
                total.cpu_ticks += num(11) + num(12);
            }
        }
    }
    total
}

/// CPU use between two samples in percent of one core.
pub fn cpu_pct(before: ProcSample, after: ProcSample, secs: f64) -> f64 {
    if secs <= 0.0 {
        return 0.0;
    }
    after.cpu_ticks.saturating_sub(before.cpu_ticks) as f64 / secs
}
