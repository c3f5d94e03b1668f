//! Smoke test of the load generator: tiny fleets against an in-process embedded
//! gateway and the in-process baseline server, so the tool never rots.

use std::time::Duration;

use bench::proto::Kind;
use bench::run::{StepPlan, Target, Workload, run_target};
use infra::config::{Secret, Settings};

fn tiny() -> (Workload, StepPlan) {
    (
        Workload {
            conns: 12,
            rooms: 3,
            users: 2,
            senders_per_room: 2,
            body_bytes: 64,
            connect_rate: 0.0,
            connect_concurrency: 8,
            src_ips: vec![
                "127.0.0.2".parse().expect("ip"),
                "127.0.0.3".parse().expect("ip"),
            ],
            room_prefix: "smoke-".into(),
            shard: 0,
            shards: 1,
        },
        StepPlan {
            rates: vec![40.0],
            warmup: Duration::from_millis(200),
            secs: Duration::from_millis(800),
            drain: Duration::from_secs(2),
            stop_p99_ms: 10_000.0,
            slo_ms: 50.0,
            hold: Duration::ZERO,
        },
    )
}

fn check(report: &bench::run::TargetReport) {
    assert_eq!(report.connect.connected, 12, "{report:?}");
    let step = &report.steps[0];
    assert!(step.sent > 0, "{step:?}");
    assert_eq!(step.errors, 0, "{step:?}");
    assert_eq!(step.delivered, step.expected, "{step:?}");
    assert!(step.p99_ms > 0.0 && step.p99_ms < 5_000.0, "{step:?}");
    assert!(bench::report::table(std::slice::from_ref(report)).contains(&report.name));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_runs_against_the_embedded_gateway() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Test-only settings: a fast bcrypt and raised limits (never used for numbers).
    let settings = Settings {
        bind_addr: "127.0.0.1:0".into(),
        database_url: format!("sqlite://{}/chatx.db?mode=rwc", dir.path().display()),
        jwt_secret: Some(Secret::new("smoke-secret-smoke-secret-smoke-secret")),
        bcrypt_cost: 4,
        rate_join_per_sec: 1000.0,
        rate_join_burst: 1000,
        rate_msg_per_sec: 1000.0,
        rate_msg_burst: 1000,
        http_per_ip_per_sec: 10_000,
        http_per_ip_burst: 10_000,
        drain_secs: 1,
        ..Settings::default()
    };
    let gateway = gateway::start(settings).await.expect("gateway starts");
    let target = Target {
        name: "chatx".into(),
        kind: Kind::Chatx,
        urls: vec![format!("http://{}", gateway.addr)],
        pids: Vec::new(),
    };
    let (load, plan) = tiny();
    let report = run_target(&target, &load, &plan, true).await.expect("run");
    check(&report);
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_runs_against_the_baseline() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(bench::baseline::serve(listener));
    let target: Target = format!("baseline;baseline;http://{addr}")
        .parse()
        .expect("target");
    let (load, plan) = tiny();
    let report = run_target(&target, &load, &plan, true).await.expect("run");
    check(&report);
    let dir = tempfile::tempdir().expect("temp dir");
    let chart = dir.path().join("chart.svg");
    bench::report::chart(&[report], &chart, "smoke").expect("chart");
    assert!(
        std::fs::read_to_string(chart)
            .expect("svg")
            .contains("<svg")
    );
    server.abort();
}
