//! A private PostgreSQL cluster in a directory of the harness: `initdb`, then
//! `pg_ctl start|stop` on a loopback port. Run as the `postgres` user (`runuser`) when
//! the harness runs as root, since PostgreSQL refuses to run as root.
//!
//! `pg_ctl` forks the postmaster, so the harness tracks it by the PID in
//! `postmaster.pid` and kills exactly that PID if a clean stop fails.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::HarnessError;
use crate::process::{Signal, alive, signal_pid};

pub struct Postgres {
    dir: PathBuf,
    bin: PathBuf,
    /// `Some((uid, gid))`: run the tools as this user (the harness is root).
    run_as: Option<(u32, u32)>,
    port: u16,
    running: bool,
}

/// The newest `/usr/lib/postgresql/<version>/bin` with `pg_ctl` (or `CHATX_PG_BIN`).
fn bin_dir() -> Result<PathBuf, HarnessError> {
    if let Ok(dir) = std::env::var("CHATX_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|e| HarnessError::Missing("PostgreSQL".into(), e.to_string()))?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("pg_ctl").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).ok_or_else(|| {
        HarnessError::Missing(
            "PostgreSQL".into(),
            "no pg_ctl in /usr/lib/postgresql/*/bin".into(),
        )
    })
}

/// uid and gid of the `postgres` user, from `/etc/passwd`.
fn postgres_user() -> Result<(u32, u32), HarnessError> {
    let passwd =
        std::fs::read_to_string("/etc/passwd").map_err(HarnessError::io("reading /etc/passwd"))?;
    passwd
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.first() == Some(&"postgres") && fields.len() > 3)
                .then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
                .flatten()
        })
        .ok_or_else(|| {
            HarnessError::Missing("the postgres user".into(), "not in /etc/passwd".into())
        })
}

/// The effective uid of this process, from `/proc/self/status`.
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

impl Postgres {
    /// Creates the cluster in `dir` (which must not exist yet).
    pub async fn init(dir: &Path, port: u16) -> Result<Self, HarnessError> {
        let bin = bin_dir()?;
        let run_as = if effective_uid() == Some(0) {
            Some(postgres_user()?)
        } else {
            None
        };
        std::fs::create_dir_all(dir)
            .map_err(HarnessError::io(format!("creating {}", dir.display())))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(HarnessError::io("chmod of the PostgreSQL directory"))?;
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(dir, Some(uid), Some(gid))
                .map_err(HarnessError::io("chown of the PostgreSQL directory"))?;
        }
        let postgres = Postgres {
            dir: dir.to_path_buf(),
            bin,
            run_as,
            port,
            running: false,
        };
        let data = postgres.data();
        postgres
            .tool(
                "initdb",
                &[
                    "-D",
                    &data,
                    "-U",
                    "postgres",
                    "-A",
                    "trust",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "--no-sync",
                ],
            )
            .await?;
        Ok(postgres)
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    pub fn log(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://postgres@127.0.0.1:<port>/<database>`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    async fn tool(&self, name: &str, args: &[&str]) -> Result<(), HarnessError> {
        let program = self.bin.join(name);
        let mut command = match self.run_as {
            Some(_) => {
                let mut c = tokio::process::Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(&program);
                c
            }
            None => tokio::process::Command::new(&program),
        };
        let output = command
            .args(args)
            .current_dir(&self.dir)
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .map_err(HarnessError::io(format!("running {name}")))?;
        if output.status.success() {
            return Ok(());
        }
        Err(HarnessError::Process {
            name: name.to_string(),
            reason: format!(
                "{}: {}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
            log: self.log(),
        })
    }

    /// The postmaster's PID while it runs.
    pub fn pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.dir.join("data/postmaster.pid")).ok()?;
        let pid = text.lines().next()?.trim().parse().ok()?;
        alive(pid).then_some(pid)
    }

    pub async fn start(&mut self) -> Result<(), HarnessError> {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c fsync=off -c max_connections=300",
            self.port,
            self.dir.display()
        );
        let log = self.log().display().to_string();
        let data = self.data();
        self.tool(
            "pg_ctl",
            &[
                "-D", &data, "-l", &log, "-o", &options, "-w", "-t", "60", "start",
            ],
        )
        .await?;
        self.running = true;
        Ok(())
    }

    /// Stops the server (`fast`: connections are cut, a clean shutdown checkpoint).
    pub async fn stop(&mut self) -> Result<(), HarnessError> {
        let data = self.data();
        self.tool(
            "pg_ctl",
            &["-D", &data, "-m", "fast", "-w", "-t", "30", "stop"],
        )
        .await?;
        self.running = false;
        Ok(())
    }

    /// Stops without waiting for anything: `pg_ctl stop -m immediate`, then SIGKILL to
    /// the postmaster's PID if it is still there.
    pub fn kill(&mut self) {
        let Some(pid) = self.pid() else {
            return;
        };
        let program = self.bin.join("pg_ctl");
        let data = self.data();
        let mut command = match self.run_as {
            Some(_) => {
                let mut c = std::process::Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(&program);
                c
            }
            None => std::process::Command::new(&program),
        };
        let _ = command
            .args(["-D", &data, "-m", "immediate", "-w", "-t", "10", "stop"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        for _ in 0..50 {
            if !alive(pid) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if alive(pid) {
            let _ = signal_pid(pid, Signal::SIGKILL);
        }
        self.running = false;
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.kill();
    }
}
