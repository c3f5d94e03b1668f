//! The harness itself: a small private cluster comes up behind nginx, carries
//! messages end to end, survives a gateway kill, and leaves no process behind.

use std::time::Duration;

use chatx_harness::load::{Crowd, CrowdConfig};
use chatx_harness::process::alive;
use chatx_harness::{Cluster, ClusterConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_cluster_carries_messages_through_nginx_and_stops_every_process() {
    let mut cluster = Cluster::start(ClusterConfig {
        gateways: 2,
        workers: 1,
        ..ClusterConfig::default()
    })
    .await
    .expect("cluster starts");
    let pids = cluster.pids();
    let names: Vec<&str> = pids.iter().map(|(n, _)| n.as_str()).collect();
    for expected in [
        "postgres",
        "nats",
        "redis",
        "nginx",
        "worker-0",
        "gateway-0",
        "gateway-1",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    for (name, pid) in &pids {
        assert!(alive(*pid), "{name} ({pid}) is not running");
    }
    assert!(
        !cluster
            .env()
            .get("REDIS_URL")
            .is_some_and(|u| u.ends_with(":6379")),
        "never the shared Redis"
    );

    let crowd = Crowd::connect(
        &cluster.url(),
        &CrowdConfig {
            clients: 6,
            rooms: 2,
            rooms_per_client: 2,
            prefix: "smoke".into(),
            concurrency: 6,
        },
        |_| {},
    )
    .await
    .expect("clients connect through nginx");
    let mut acked = 0;
    for (i, member) in crowd.members.iter().enumerate() {
        member
            .client
            .send(&member.rooms[i % 2], "hello")
            .await
            .expect("acked");
        acked += 1;
    }
    // A gateway dies: its clients come back through nginx on the other one.
    cluster.kill_gateway(0);
    for member in &crowd.members {
        member
            .client
            .send(&member.rooms[0], "after the kill")
            .await
            .expect("acked after the kill");
        acked += 1;
    }
    assert!(
        crowd.settle(Duration::from_secs(20)).await,
        "deliveries settle"
    );
    let mut rows = Vec::new();
    for _ in 0..100 {
        rows = cluster.messages().await.expect("rows");
        if rows.len() >= acked {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let report = crowd.checker.report(Some(&rows));
    println!("{report}");
    assert!(report.passed(), "{:?}", report.failures());
    assert_eq!(report.acked, acked);
    crowd.close().await;

    let pids = cluster.pids();
    drop(cluster);
    for (name, pid) in pids {
        assert!(!alive(pid), "{name} ({pid}) survived the cluster");
    }
}
