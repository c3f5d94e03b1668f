//! Child processes the harness owns: each with its log file, signalled and stopped by
//! its PID only, and killed when dropped (also while a panicking test unwinds).

use std::fs::OpenOptions;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

pub use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::error::HarnessError;

/// A process started by the harness.
pub struct Proc {
    name: String,
    child: Option<Child>,
    pid: u32,
    log: PathBuf,
}

impl Proc {
    /// Starts `command` with stdout and stderr appended to `log`, in its own process
    /// group (a Ctrl-C in the terminal reaches the harness, which stops it in order).
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> Result<Proc, HarnessError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(HarnessError::io(format!("opening {}", log.display())))?;
        let stderr = file
            .try_clone()
            .map_err(HarnessError::io("duplicating a log handle"))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(stderr))
            .process_group(0)
            .spawn()
            .map_err(HarnessError::io(format!("starting {name}")))?;
        Ok(Proc {
            name: name.to_string(),
            pid: child.id(),
            child: Some(child),
            log: log.to_path_buf(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn log(&self) -> &Path {
        &self.log
    }

    /// The PID while the process has not been reaped.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|_| self.pid)
    }

    /// `Some(status)` once the process has exited (it is reaped then).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => {
                self.child = None;
                Some(status)
            }
            _ => None,
        }
    }

    pub fn signal(&self, signal: Signal) -> Result<(), HarnessError> {
        if self.child.is_none() {
            return Ok(());
        }
        signal_pid(self.pid, signal).map_err(|e| HarnessError::Process {
            name: self.name.clone(),
            reason: format!("sending {signal}: {e}"),
            log: self.log.clone(),
        })
    }

    /// Sends `signal` and waits up to `grace` for the exit; SIGKILL after that.
    pub async fn stop(&mut self, signal: Signal, grace: Duration) -> Option<ExitStatus> {
        self.child.as_ref()?;
        let _ = self.signal(signal);
        let deadline = tokio::time::Instant::now() + grace;
        while tokio::time::Instant::now() < deadline {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tracing::warn!(name = %self.name, pid = self.pid, "did not stop in time; SIGKILL");
        self.kill()
    }

    /// SIGKILL and reap; direct children too (an nginx master's workers would
    /// otherwise outlive it).
    pub fn kill(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let children = children_of(self.pid);
        let _ = child.kill();
        for pid in children {
            let _ = signal_pid(pid, Signal::SIGKILL);
        }
        child.wait().ok()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn signal_pid(pid: u32, signal: Signal) -> Result<(), nix::Error> {
    let pid = i32::try_from(pid).map_err(|_| nix::Error::EINVAL)?;
    nix::sys::signal::kill(Pid::from_raw(pid), signal)
}

/// An exclusive lock on this machine, held while a load scenario runs: two
/// 300-client clusters on a small machine would slow each other past every timing
/// criterion. Test processes of different `cargo test` runs (other engineers, CI)
/// queue up on it; it is released when dropped (or when the process dies).
pub struct MachineLock {
    _file: std::fs::File,
}

impl MachineLock {
    /// Waits for the lock (`<temp dir>/chatx-harness-machine.lock`), saying so on
    /// stderr when another holder makes it wait.
    pub async fn acquire(what: &str) -> Result<MachineLock, HarnessError> {
        Self::acquire_at(
            &std::env::temp_dir().join("chatx-harness-machine.lock"),
            what,
        )
        .await
    }

    pub async fn acquire_at(path: &Path, what: &str) -> Result<MachineLock, HarnessError> {
        let path = path.to_path_buf();
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(HarnessError::io(format!("opening {}", path.display())))?;
        match file.try_lock() {
            Ok(()) => return Ok(MachineLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => {
                eprintln!(
                    "{what}: waiting for another load scenario on this machine ({})",
                    path.display()
                );
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(HarnessError::io(format!("locking {}", path.display()))(e));
            }
        }
        let file = tokio::task::spawn_blocking(move || file.lock().map(|()| file))
            .await
            .map_err(|e| HarnessError::Io {
                what: "waiting for the machine lock".into(),
                source: std::io::Error::other(e.to_string()),
            })?
            .map_err(HarnessError::io(format!("locking {}", path.display())))?;
        Ok(MachineLock { _file: file })
    }
}

/// Whether `pid` is a live process (not a zombie).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Resident memory of `pid` in bytes (`VmRSS`).
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// PIDs whose parent is `pid` (nginx workers of a master).
pub fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| {
            std::fs::read_to_string(format!("/proc/{child}/stat"))
                .ok()
                .and_then(|stat| {
                    let (_, rest) = stat.rsplit_once(')')?;
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(pid)
        })
        .collect()
}

/// A TCP port that was free a moment ago on every interface, below the kernel's
/// ephemeral range: a port handed out by `bind(:0)` lies IN that range, and an outgoing
/// connection made meanwhile (a gateway connecting to NATS) can take it before the
/// server binds it. Never the same port twice in one process.
pub fn free_port() -> Result<u16, HarnessError> {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let high = ephemeral_low.max(12_000);
    let low = high.saturating_sub(10_000).max(1024);
    let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
    for _ in 0..1000 {
        let port = rand::random_range(low..high);
        if given.contains(&port) {
            continue;
        }
        if TcpListener::bind(("0.0.0.0", port)).is_ok() {
            given.push(port);
            return Ok(port);
        }
    }
    Err(HarnessError::Io {
        what: format!("finding a free port in {low}..{high}"),
        source: std::io::Error::from(std::io::ErrorKind::AddrInUse),
    })
}

/// Waits until something accepts connections on 127.0.0.1:`port`.
pub async fn wait_port(port: u16, within: Duration, what: &str) -> Result<(), HarnessError> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(HarnessError::Timeout(
                format!("{what} listening on {port}"),
                within,
            ));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Whether anything accepts connections on 127.0.0.1:`port` right now.
pub async fn port_open(port: u16) -> bool {
    tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_process_is_stopped_by_its_pid_and_reaped() {
        let dir = tempfile::tempdir().expect("dir");
        let mut command = Command::new("sleep");
        command.arg("30");
        let mut proc = Proc::spawn("sleep", command, &dir.path().join("sleep.log")).expect("spawn");
        let pid = proc.pid().expect("pid");
        assert!(alive(pid));
        assert!(rss_bytes(pid).is_some());
        let status = proc.stop(Signal::SIGTERM, Duration::from_secs(5)).await;
        assert!(status.is_some());
        assert!(!alive(pid));
        assert_eq!(proc.pid(), None);
    }

    #[tokio::test]
    async fn the_machine_lock_admits_one_holder_at_a_time() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("lock");
        let first = MachineLock::acquire_at(&path, "first").await.expect("lock");
        let waiting = tokio::spawn({
            let path = path.clone();
            async move { MachineLock::acquire_at(&path, "second").await }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!waiting.is_finished(), "the second holder waits");
        drop(first);
        let second = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("released in time");
        assert!(second.expect("task").is_ok());
    }

    #[test]
    fn free_ports_are_nonzero() {
        assert!(free_port().expect("port") > 0);
    }
}
