//! Figure 9: call setup across fleet nodes against the same setup within one node, in one run.
//! A 3-node nats-server cluster (JetStream, the servers' NATS user alone on
//! `callapi.fleet.>`) and two in-process signal servers joined to it as nodes `s1` and `s2`;
//! call setup exactly as figure 1 times it for ws (`call()` → caller `Connected`, `NoMedia`,
//! the callee accepts as soon as it rings, warm-up discarded) for alice → bob both on `s1`
//! (same node) and carol on `s1` → dave on `s2` (cross node), alternating one call of each so
//! machine noise hits both equally. No target: the figure is the ratio.

use callapi_signal_mock::nats_cluster::{NatsCluster, NatsClusterConfig, NatsClusterError};
use callapi_signal_ws::server::{FleetConfig, ServerHandle, SignalServer};

use crate::common::*;
use crate::report::Report;
use crate::setup::{ws_api, CallPair, WARMUP};
use crate::stats::{round3, us, Samples};

/// The servers' NATS user (the only one allowed on the fleet's subjects).
const SERVER_USER: &str = "callapi-server";
/// Its password.
const SERVER_PASSWORD: &str = "bench-server-secret-0123";

/// The `authorization` block of every NATS node: the servers' user may use the fleet's
/// subjects, JetStream's API and inboxes, nothing else.
fn nats_authorization() -> String {
    format!(
        "authorization {{ users = [ {} ] }}",
        FleetConfig::nats_server_user(SERVER_USER, SERVER_PASSWORD)
    )
}

/// An in-process server with the benchmark limits, joined to the fleet on `cluster` as
/// `node` (every NATS URL, the offline queue replicated on all 3 NATS nodes).
async fn start_node(cluster: &NatsCluster, node: &str) -> Res<ServerHandle> {
    let mut fleet = FleetConfig::new(cluster.nodes().iter().map(|n| n.client_url()).collect());
    fleet.user = Some(SERVER_USER.to_owned());
    fleet.password = Some(SERVER_PASSWORD.to_owned());
    fleet.node = node.to_owned();
    fleet.replicas = 3;
    fleet.connect_timeout = WAIT;
    let config = server_config()?.with_fleet(fleet);
    match tokio::time::timeout(WAIT, SignalServer::start(config)).await {
        Ok(server) => Ok(server?),
        Err(_) => Err(format!("fleet node {node} did not start within {WAIT:?}").into()),
    }
}

/// Runs the figure with `calls` measured calls of each kind (after [`WARMUP`] of each).
pub async fn run(report: &mut Report, calls: usize) -> Res<()> {
    let config = NatsClusterConfig::new(3)
        .with_mqtt(false)
        .with_config(nats_authorization());
    let cluster = match NatsCluster::start(config).await {
        Ok(cluster) => cluster,
        Err(NatsClusterError::NotInstalled) => {
            eprintln!("fleet: SKIP: {}", NatsClusterError::NotInstalled);
            return Ok(());
        }
        Err(err) => return Err(err.into()),
    };
    let s1 = start_node(&cluster, "s1").await?;
    let s2 = match start_node(&cluster, "s2").await {
        Ok(s2) => s2,
        Err(err) => {
            s1.shutdown().await;
            return Err(err);
        }
    };
    let measured = measure(&s1.url(), &s2.url(), calls).await;
    s1.shutdown().await;
    s2.shutdown().await;
    drop(cluster);
    let (same, cross) = measured?;
    record(report, &same, &cross, calls);
    Ok(())
}

/// The two pairs, alternating one call of each (warm-up of both discarded).
async fn measure(s1: &str, s2: &str, calls: usize) -> Res<(Samples, Samples)> {
    let mut same = CallPair::start(
        ws_api(s1, "alice", "a1", 1)?,
        ws_api(s1, "bob", "b1", 2)?,
        "bob",
        true,
    )
    .await?;
    let mut cross = CallPair::start(
        ws_api(s1, "carol", "c1", 3)?,
        ws_api(s2, "dave", "d1", 4)?,
        "dave",
        true,
    )
    .await?;
    let result = alternate(&mut same, &mut cross, calls).await;
    same.shutdown().await;
    cross.shutdown().await;
    result
}

async fn alternate(
    same: &mut CallPair,
    cross: &mut CallPair,
    calls: usize,
) -> Res<(Samples, Samples)> {
    let (mut same_s, mut cross_s) = (Vec::with_capacity(calls), Vec::with_capacity(calls));
    for i in 0..calls + WARMUP {
        // Which kind goes first alternates too, so neither always follows the other.
        let (a, b) = if i % 2 == 0 {
            let a = same
                .time_call()
                .await
                .map_err(|e| format!("same node: {e}"))?;
            let b = cross
                .time_call()
                .await
                .map_err(|e| format!("cross node: {e}"))?;
            (a, b)
        } else {
            let b = cross
                .time_call()
                .await
                .map_err(|e| format!("cross node: {e}"))?;
            let a = same
                .time_call()
                .await
                .map_err(|e| format!("same node: {e}"))?;
            (a, b)
        };
        if i >= WARMUP {
            same_s.push(a);
            cross_s.push(b);
        }
    }
    Ok((Samples::new(same_s), Samples::new(cross_s)))
}

fn record(report: &mut Report, same: &Samples, cross: &Samples, calls: usize) {
    let ratio = us(cross.p50()) / us(same.p50()).max(1e-9);
    eprintln!(
        "  fleet: cross node p50 {:.0} µs p99 {:.0} µs; same node p50 {:.0} µs p99 {:.0} µs \
         (ratio {ratio:.2})",
        us(cross.p50()),
        us(cross.p99()),
        us(same.p50()),
        us(same.p99())
    );
    report.set("fleet.same_node.p50_us", round3(us(same.p50())));
    report.set("fleet.same_node.p99_us", round3(us(same.p99())));
    report.set("fleet.cross_node.p50_us", round3(us(cross.p50())));
    report.set("fleet.cross_node.p99_us", round3(us(cross.p99())));
    report.set("fleet.ratio_p50", round3(ratio));
    report.set("fleet.calls", calls as u64);
    report.row(
        format!("9. call setup across fleet nodes, ws over NATS ({calls} calls each)"),
        format!(
            "cross node p50 {:.0} µs, p99 {:.0} µs",
            us(cross.p50()),
            us(cross.p99())
        ),
        format!(
            "same node p50 {:.0} µs, p99 {:.0} µs",
            us(same.p50()),
            us(same.p99())
        ),
        format!("ratio_p50 {ratio:.2} (no target)"),
    );
}
