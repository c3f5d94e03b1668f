//! [`Daemon`]: one restartable server process of the cluster (NATS, Redis, a gateway,
//! a worker, nginx), with the command line to start it again after a stop.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use crate::error::HarnessError;
use crate::process::{Proc, Signal, port_open};

/// How long a daemon may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Daemon {
    name: String,
    program: PathBuf,
    args: Vec<String>,
    /// `Some`: the environment is exactly this (nothing inherited).
    env: Option<BTreeMap<String, String>>,
    port: Option<u16>,
    log: PathBuf,
    proc: Option<Proc>,
}

impl Daemon {
    pub fn new(name: &str, program: &Path, args: &[&str], log: &Path) -> Self {
        Self {
            name: name.to_string(),
            program: program.to_path_buf(),
            args: args.iter().map(|a| a.to_string()).collect(),
            env: None,
            port: None,
            log: log.to_path_buf(),
            proc: None,
        }
    }

    /// The port it listens on: `start` waits for it.
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    pub fn env(mut self, env: BTreeMap<String, String>) -> Self {
        self.env = Some(env);
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn log(&self) -> &Path {
        &self.log
    }

    pub fn listen_port(&self) -> Option<u16> {
        self.port
    }

    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().and_then(Proc::pid)
    }

    /// Starts the process and waits until its port accepts connections.
    pub async fn start(&mut self) -> Result<(), HarnessError> {
        if self.pid().is_some() {
            return Ok(());
        }
        let mut command = Command::new(&self.program);
        command.args(&self.args);
        if let Some(env) = &self.env {
            command.env_clear().envs(env);
        }
        let proc = Proc::spawn(&self.name, command, &self.log)?;
        self.proc = Some(proc);
        let Some(port) = self.port else {
            return Ok(());
        };
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            if port_open(port).await {
                return Ok(());
            }
            if let Some(status) = self.proc.as_mut().and_then(Proc::exited) {
                self.proc = None;
                return Err(self.failed(format!("exited with {status} before listening")));
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(HarnessError::Timeout(
                    format!("{} listening on {port}", self.name),
                    START_TIMEOUT,
                ));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub(crate) fn failed(&self, reason: impl Into<String>) -> HarnessError {
        HarnessError::Process {
            name: self.name.clone(),
            reason: reason.into(),
            log: self.log.clone(),
        }
    }

    /// Sends `signal`, waits up to `grace` for the exit, then SIGKILL.
    pub async fn stop(&mut self, signal: Signal, grace: Duration) -> Option<ExitStatus> {
        let mut proc = self.proc.take()?;
        proc.stop(signal, grace).await
    }

    /// SIGKILL (and its children), no goodbye.
    pub fn kill(&mut self) {
        if let Some(mut proc) = self.proc.take() {
            proc.kill();
        }
    }

    /// Whether it is still running (reaps it when it exited by itself).
    pub fn running(&mut self) -> bool {
        match self.proc.as_mut() {
            Some(proc) => {
                if proc.exited().is_some() {
                    self.proc = None;
                    false
                } else {
                    true
                }
            }
            None => false,
        }
    }
}
