//! The `gateway` binary itself: starts with no configuration but a port, prints where
//! it listens, and exits cleanly on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The child's exit status once it exits, or `None` if it still runs after `limit`.
fn exit_within(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_binary_prints_its_address_and_exits_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().expect("dir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .current_dir(dir.path())
        .env_clear()
        .env("BIND_ADDR", "127.0.0.1:0")
        .env("CHATX_DRAIN_SECS", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn gateway");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("read");
    assert!(
        line.starts_with("ChatX listening on http://127.0.0.1:"),
        "{line}"
    );
    assert!(
        dir.path().join("chatx.db").exists(),
        "embedded mode creates chatx.db in the working directory"
    );
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let status = exit_within(&mut child, Duration::from_secs(15))
        .expect("did not exit within 15 s of SIGTERM");
    assert!(status.success(), "exit status {status}");
}

#[test]
fn invalid_configuration_stops_start_up_with_one_line_naming_the_setting() {
    let output = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .env_clear()
        .env("REDIS_URL", "redis://127.0.0.1:6379")
        .output()
        .expect("run gateway");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("NATS_URL"), "{stderr}");
}

#[test]
fn embedded_mode_refuses_an_in_memory_database_with_the_reason() {
    let dir = tempfile::tempdir().expect("dir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .current_dir(dir.path())
        .env_clear()
        .env("BIND_ADDR", "127.0.0.1:0")
        .env("DATABASE_URL", "sqlite::memory:")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn gateway");
    // A gateway that started anyway would serve forever: stop it and fail.
    if exit_within(&mut child, Duration::from_secs(15)).is_none() {
        child.kill().expect("kill");
        panic!("the gateway started on an in-memory database");
    }
    let output = child.wait_with_output().expect("output");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.contains("DATABASE_URL (sqlite::memory:)"), "{stderr}");
    assert!(last.contains("not an in-memory database"), "{stderr}");
}

#[test]
fn an_unreachable_dependency_is_retried_then_named_in_one_line() {
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .env_clear()
        .env("BIND_ADDR", "127.0.0.1:0")
        .env("REDIS_URL", "redis://127.0.0.1:1")
        .env("NATS_URL", "nats://127.0.0.1:1")
        .env("JWT_SECRET", "0123456789abcdef0123456789abcdef")
        .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/chatx")
        .env("CHATX_STARTUP_TIMEOUT_SECS", "2")
        .output()
        .expect("run gateway");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains("REDIS_URL (redis://127.0.0.1:1): unreachable after"),
        "{stderr}"
    );
    assert!(stderr.contains("retrying"), "it retried first: {stderr}");
    assert!(started.elapsed() < Duration::from_secs(15));
}
