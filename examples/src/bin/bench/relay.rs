//! Figure 3: relay capacity, `callapi-signal-server` against Mosquitto, each in its own process
//! and both driven by the same thin load generator (one thread of this process, hand-encoded
//! frames, no client library): N sender/receiver pairs, 300-byte envelopes, the total offered
//! rate rising by ×1.25 per step; per step the messages sent and delivered, the one-way latency
//! p50/p99 and the CPU share of the relay process and of the generator. A step is sustained when
//! ≥ 95 % of the offered messages were sent, every one of them was delivered (within 1 s of
//! the step's end) and p99 < 50 ms; a failed step where the generator used > 90 % of its core
//! is the generator's limit, not the relay's. The figure is the highest sustained step before
//! the first failed one; both p99s are compared at the highest rate both sustained.

mod load;
mod wire;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use callapi_core::protocol::encode;
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::common::*;
use crate::mosquitto::Mosquitto;
use crate::report::{verdict, Report};
use crate::stats::{ms, round3, Samples};
use load::{blank_stamp, drive, Phase, Shared, Template};
use wire::{Mqtt, Wire, Ws};

/// The first offered total rate, envelopes per second.
const FIRST_RATE: f64 = 8_000.0;
/// Each step offers this much more than the previous one.
const STEP_FACTOR: f64 = 1.25;
/// Steps at most (8,000 × 1.25^19 ≈ 582,000 msg/s).
const MAX_STEPS: usize = 20;
/// The envelope size on the wire (the encoded JSON, before framing).
const ENVELOPE_BYTES: usize = 300;
/// p99 bound of a sustained rate.
const P99_BOUND: Duration = Duration::from_millis(50);
/// How long after a step the last deliveries may arrive.
const GRACE: Duration = Duration::from_secs(1);
/// The generator's CPU share (per cent of its one core) above which it is the bottleneck.
const GENERATOR_SATURATED_PCT: f64 = 90.0;

/// The offered rate of step `k`, rounded to 100 msg/s.
fn rate(k: usize) -> u64 {
    ((FIRST_RATE * STEP_FACTOR.powi(k as i32) / 100.0).round() * 100.0) as u64
}

/// One rate step's outcome.
#[derive(Debug, Clone)]
struct Step {
    rate: u64,
    sent: u64,
    received: u64,
    /// Acknowledgements the relay owed the senders and had not sent after the grace (MQTT
    /// PUBACKs; always 0 on WebSocket, which has none).
    unacked: u64,
    p50: Duration,
    p99: Duration,
    server_cpu_pct: f64,
    generator_cpu_pct: f64,
    generator_saturated: bool,
    sustained: bool,
}

/// One relay's series.
struct Series {
    steps: Vec<Step>,
    /// Frames that were neither a stamped delivery nor an ack (hello, errors ...).
    other_frames: u64,
}

impl Series {
    fn best(&self) -> Option<&Step> {
        self.steps.iter().take_while(|s| s.sustained).last()
    }

    /// What ended the series: the relay, the generator, or the last step offered.
    fn limit(&self) -> &'static str {
        match self.steps.iter().find(|s| !s.sustained) {
            Some(s) if s.generator_saturated => "generator",
            Some(_) => "relay",
            None => "highest step offered",
        }
    }

    fn at(&self, rate: u64) -> Option<&Step> {
        self.steps.iter().find(|s| s.rate == rate)
    }
}

fn user(prefix: &str, i: usize) -> String {
    format!("{prefix}{i:03}")
}

/// The pre-encoded envelope from sender `i` to receiver `i`, [`ENVELOPE_BYTES`] long.
fn template(i: usize) -> Res<Template> {
    let (from, to) = (identity(&user("s", i), "d")?, identity(&user("r", i), "d")?);
    let probe = encode(&message(&from, &to.user, blank_stamp()))?.len();
    let pad = ENVELOPE_BYTES.saturating_sub(probe);
    let data = format!("{}{}", blank_stamp(), "x".repeat(pad));
    Template::new(encode(&message(&from, &to.user, data))?)
}

/// A connected socket with its client and the bytes read past the handshake.
type Conn<W> = (TcpStream, W, Vec<u8>);

/// Runs the rising steps over connected (sender, receiver) pairs, `relay_pid` being the relay.
async fn rising<W: Wire>(
    pairs: Vec<(Conn<W>, Conn<W>)>,
    step_len: Duration,
    relay_pid: u32,
) -> Res<Series> {
    let n = pairs.len();
    let shared = Shared::new(MAX_STEPS);
    let (phase_tx, phase_rx) = watch::channel(None::<Phase>);
    let mut tasks = Vec::new();
    for (i, ((stcp, sw, sbuf), (rtcp, rw, rbuf))) in pairs.into_iter().enumerate() {
        let t = template(i)?;
        tasks.push(tokio::spawn(drive(
            stcp,
            sw,
            sbuf,
            Some(t),
            shared.clone(),
            phase_rx.clone(),
        )));
        tasks.push(tokio::spawn(drive(
            rtcp,
            rw,
            rbuf,
            None,
            shared.clone(),
            phase_rx.clone(),
        )));
    }
    drop(phase_rx);
    let mut steps = Vec::new();
    for k in 0..MAX_STEPS {
        let rate = rate(k);
        let (relay0, gen0, t0) = (cpu_time(relay_pid)?, own_cpu_time()?, Instant::now());
        phase_tx.send(Some(Phase {
            step: k,
            per_sender: rate as f64 / n as f64,
            start: t0,
            len: step_len,
        }))?;
        // The senders' last tick falls at the step's end; leave it a few ms.
        tokio::time::sleep(step_len + Duration::from_millis(5)).await;
        let (relay1, gen1, wall) = (cpu_time(relay_pid)?, own_cpu_time()?, t0.elapsed());
        phase_tx.send(None)?;
        let pct = |a: Duration, b: Duration| 100.0 * (b - a).as_secs_f64() / wall.as_secs_f64();
        let (server_cpu_pct, generator_cpu_pct) = (pct(relay0, relay1), pct(gen0, gen1));
        let sent = shared.sent[k].load(Ordering::Relaxed);
        let grace = Instant::now();
        while (shared.received[k].load(Ordering::Relaxed) < sent
            || W::ACKS && shared.acked.load(Ordering::Relaxed) < shared.sent_total())
            && grace.elapsed() < GRACE
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let received = shared.received[k].load(Ordering::Relaxed);
        let unacked = if W::ACKS {
            shared
                .sent_total()
                .saturating_sub(shared.acked.load(Ordering::Relaxed))
        } else {
            0
        };
        let samples = Samples::new(std::mem::take(
            shared
                .latencies
                .lock()
                .map_err(|_| "latency lock poisoned")?
                .get_mut(k)
                .ok_or("no such step")?,
        ));
        let offered = rate as f64 * step_len.as_secs_f64();
        let sustained = sent as f64 >= 0.95 * offered
            && received >= sent
            && unacked == 0
            && samples.p99() < P99_BOUND;
        let step = Step {
            rate,
            sent,
            received,
            unacked,
            p50: samples.p50(),
            p99: samples.p99(),
            server_cpu_pct,
            generator_cpu_pct,
            generator_saturated: generator_cpu_pct > GENERATOR_SATURATED_PCT,
            sustained,
        };
        eprintln!(
            "    {:>7} msg/s: sent {:>8} received {:>8} unacked {:>5} p50 {:>7.3} ms p99 {:>7.3} ms \
             cpu relay {:>5.1} % generator {:>5.1} %{}",
            step.rate,
            step.sent,
            step.received,
            step.unacked,
            ms(step.p50),
            ms(step.p99),
            step.server_cpu_pct,
            step.generator_cpu_pct,
            if sustained { "" } else { "  not sustained" }
        );
        steps.push(step);
        if !sustained {
            break;
        }
    }
    drop(phase_tx);
    for t in tasks {
        // Each task ends once the phase sender is gone; a socket error is reported.
        match tokio::time::timeout(WAIT, t).await {
            Ok(r) => r??,
            Err(_) => return Err("a load task did not stop".into()),
        }
    }
    Ok(Series {
        steps,
        other_frames: shared.other.load(Ordering::Relaxed),
    })
}

async fn ws_pairs(addr: SocketAddr, n: usize) -> Res<Vec<(Conn<Ws>, Conn<Ws>)>> {
    let mut pairs = Vec::with_capacity(n);
    for i in 0..n {
        let r = Ws::connect(addr, &user("r", i)).await?;
        let s = Ws::connect(addr, &user("s", i)).await?;
        pairs.push((s, r));
    }
    Ok(pairs)
}

async fn mqtt_pairs(addr: SocketAddr, n: usize) -> Res<Vec<(Conn<Mqtt>, Conn<Mqtt>)>> {
    let mut pairs = Vec::with_capacity(n);
    for i in 0..n {
        let (s, r) = (user("s", i), user("r", i));
        let rc = Mqtt::connect(addr, &r, "pw", None).await?;
        let sc = Mqtt::connect(addr, &s, "pw", Some(&r)).await?;
        pairs.push((sc, rc));
    }
    Ok(pairs)
}

/// Both series, measured on this thread's runtime.
async fn measure(pairs: usize, step_len: Duration) -> Res<(Series, Series)> {
    eprintln!("  callapi-signal-server (child process):");
    let server = child_server("--serve-ws").await?;
    let links = ws_pairs(server.addr, pairs).await?;
    let ours = rising(links, step_len, server.pid).await?;
    drop(server);

    eprintln!("  mosquitto (child process):");
    let names: Vec<String> = (0..pairs)
        .flat_map(|i| [user("s", i), user("r", i)])
        .collect();
    let users: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "pw")).collect();
    let broker = Mosquitto::start(&users)?;
    let addr: SocketAddr = format!("127.0.0.1:{}", broker.port()).parse()?;
    let links = mqtt_pairs(addr, pairs).await?;
    let theirs = rising(links, step_len, broker.pid()).await?;
    drop(broker);
    Ok((ours, theirs))
}

fn steps_json(s: &Series) -> Vec<serde_json::Value> {
    s.steps
        .iter()
        .map(|s| {
            serde_json::json!({"rate": s.rate, "sent": s.sent, "received": s.received,
                "unacked": s.unacked, "p50_ms": round3(ms(s.p50)), "p99_ms": round3(ms(s.p99)),
                "server_cpu_pct": round3(s.server_cpu_pct),
                "generator_cpu_pct": round3(s.generator_cpu_pct),
                "generator_saturated": s.generator_saturated, "sustained": s.sustained})
        })
        .collect()
}

/// Runs the figure.
pub async fn run(report: &mut Report, pairs: usize, step_len: Duration) -> Res<()> {
    // The generator gets one thread of its own (a current-thread runtime): its CPU budget is
    // one core, and the relay processes share the rest of the machine with it.
    let (ours, theirs) = tokio::task::spawn_blocking(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(measure(pairs, step_len))
    })
    .await??;

    let ours_best = ours.best().map_or(0, |s| s.rate);
    let theirs_best = theirs.best().map_or(0, |s| s.rate);
    let ratio = if theirs_best > 0 {
        ours_best as f64 / theirs_best as f64
    } else {
        f64::INFINITY
    };
    // p99 at the highest rate both sustained (else at the first step).
    let common = if ours_best.min(theirs_best) > 0 {
        ours_best.min(theirs_best)
    } else {
        rate(0)
    };
    let p99 = |s: &Series| s.at(common).map_or(Duration::ZERO, |s| s.p99);
    let cpu_at = |s: &Series, f: fn(&Step) -> f64| s.best().map_or(0.0, f);
    let (p_ours, p_theirs) = (p99(&ours), p99(&theirs));
    report.set("relay.callapi_msgs_per_s", ours_best);
    report.set("relay.mosquitto_msgs_per_s", theirs_best);
    report.set("relay.ratio", round3(ratio));
    report.set("relay.callapi_p99_ms", round3(ms(p_ours)));
    report.set("relay.mosquitto_p99_ms", round3(ms(p_theirs)));
    report.set("relay.common_rate_msgs_per_s", common);
    report.set("relay.callapi_limit", ours.limit());
    report.set("relay.mosquitto_limit", theirs.limit());
    report.set(
        "relay.callapi_server_cpu_pct",
        round3(cpu_at(&ours, |s| s.server_cpu_pct)),
    );
    report.set(
        "relay.callapi_generator_cpu_pct",
        round3(cpu_at(&ours, |s| s.generator_cpu_pct)),
    );
    report.set(
        "relay.mosquitto_server_cpu_pct",
        round3(cpu_at(&theirs, |s| s.server_cpu_pct)),
    );
    report.set(
        "relay.mosquitto_generator_cpu_pct",
        round3(cpu_at(&theirs, |s| s.generator_cpu_pct)),
    );
    report.set("relay.callapi_other_frames", ours.other_frames);
    report.set("relay.mosquitto_other_frames", theirs.other_frames);
    report.set("relay.pairs", pairs as u64);
    report.set("relay.envelope_bytes", ENVELOPE_BYTES as u64);
    report.set("relay.step_s", round3(step_len.as_secs_f64()));
    report.set("relay.step_factor", STEP_FACTOR);
    report.set("relay.callapi_steps", steps_json(&ours));
    report.set("relay.mosquitto_steps", steps_json(&theirs));
    let describe = |name: &str, s: &Series, best: u64, p: Duration| {
        let cpu = s.best().map_or(String::new(), |b| {
            format!(
                " (CPU: relay {:.0} %, generator {:.0} % of a core)",
                b.server_cpu_pct, b.generator_cpu_pct
            )
        });
        format!(
            "{name} {best} msg/s{cpu}, limit: {}; p99 {:.1} ms at {common} msg/s",
            s.limit(),
            ms(p)
        )
    };
    report.row(
        format!("3. relay, {pairs} pairs, {ENVELOPE_BYTES} B, thin generators"),
        describe("callapi-signal-server", &ours, ours_best, p_ours),
        describe("Mosquitto", &theirs, theirs_best, p_theirs),
        format!(
            "ratio {ratio:.2} ≥ 2.0 with lower p99: {}",
            verdict(ratio >= 2.0 && p_ours < p_theirs)
        ),
    );
    Ok(())
}
