//! Figure 3: relay capacity, `callapi-signal-server` against Mosquitto. N sender/receiver
//! pairs (callapi's own transport links: `WsTransport` to the in-process server, `MqttTransport`
//! at QoS 1 to Mosquitto) send 300-byte envelopes at a rising total rate; per rate step the
//! delivery ratio and the one-way latency p99. The highest step each relay sustains (≥ 95 % of
//! the offered rate sent, ≥ 99 % of that delivered, p99 < 50 ms), and both p99s at the highest
//! rate both sustain.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use callapi_core::connection::{Identity, LinkEvent, Transport, TransportLink};
use callapi_core::protocol::{encode, Body};
use callapi_signal_mqtt::{MqttConfig, MqttTransport};
use callapi_signal_ws::client::ClientOptions;
use callapi_signal_ws::WsTransport;

use crate::common::*;
use crate::mosquitto::Mosquitto;
use crate::report::{verdict, Report};
use crate::stats::{ms, round3, Samples};

/// Offered total rates, envelopes per second.
const RATES: &[u64] = &[
    2_000, 4_000, 8_000, 16_000, 24_000, 32_000, 40_000, 48_000, 56_000, 64_000, 80_000, 96_000,
];
/// The envelope size on the wire.
const ENVELOPE_BYTES: usize = 300;
/// p99 bound of a sustained rate.
const P99_BOUND: Duration = Duration::from_millis(50);

/// One rate step's outcome.
#[derive(Debug, Clone)]
struct Step {
    rate: u64,
    sent: u64,
    send_errors: u64,
    received: u64,
    p99: Duration,
    sustained: bool,
}

type Latencies = Arc<Mutex<Vec<(u32, Duration)>>>;

fn user(prefix: &str, i: usize) -> String {
    format!("{prefix}{i:03}")
}

/// The padding that makes a stamped envelope from `from` to `to` [`ENVELOPE_BYTES`] long once
/// encoded (the stamp has a fixed width).
fn padding(from: &Identity, to: &Identity, epoch: Instant) -> Res<usize> {
    let probe = stamped(from, to, 0, epoch, 0);
    Ok(ENVELOPE_BYTES.saturating_sub(encode(&probe)?.len()))
}

/// An envelope from `from` to `to` whose data carries the step and the send time, plus `pad`
/// bytes.
fn stamped(
    from: &Identity,
    to: &Identity,
    step: u32,
    epoch: Instant,
    pad: usize,
) -> callapi_core::protocol::Envelope {
    let mut data = format!("{step:04}:{:020}:", epoch.elapsed().as_nanos());
    data.extend(std::iter::repeat_n('x', pad));
    message(from, &to.user, data)
}

fn parse_stamp(env: &callapi_core::protocol::Envelope) -> Option<(u32, u128)> {
    let Body::Message { data } = &env.body else {
        return None;
    };
    let mut parts = data.splitn(3, ':');
    let step = parts.next()?.parse().ok()?;
    let nanos = parts.next()?.parse().ok()?;
    Some((step, nanos))
}

/// Runs the rising-rate steps over `pairs` (sender, receiver) links.
async fn rising<L: TransportLink>(
    links: Vec<(Identity, L, Identity, L)>,
    step_len: Duration,
) -> Res<Vec<Step>> {
    let epoch = Instant::now();
    let pairs = links.len();
    let lat: Vec<Latencies> = (0..pairs).map(|_| Latencies::default()).collect();
    let received: Arc<Vec<AtomicU64>> =
        Arc::new((0..RATES.len()).map(|_| AtomicU64::new(0)).collect());
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    for (i, (si, sl, ri, mut rl)) in links.into_iter().enumerate() {
        senders.push(Some((si, sl, ri)));
        let lat = lat[i].clone();
        let received = received.clone();
        receivers.push(tokio::spawn(async move {
            while let Some(ev) = rl.next_event().await {
                if let LinkEvent::Message(env) = ev {
                    if let Some((step, nanos)) = parse_stamp(&env) {
                        let now = epoch.elapsed().as_nanos();
                        let d = Duration::from_nanos(now.saturating_sub(nanos) as u64);
                        if let Ok(mut v) = lat.lock() {
                            v.push((step, d));
                        }
                        if let Some(c) = received.get(step as usize) {
                            c.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
            rl.close().await;
        }));
    }

    let mut steps = Vec::new();
    for (k, &rate) in RATES.iter().enumerate() {
        let per_sender = rate as f64 / pairs as f64;
        let mut tasks = Vec::new();
        for slot in senders.iter_mut() {
            let Some((si, mut sl, ri)) = slot.take() else {
                return Err("a sender link was lost".into());
            };
            let pad = padding(&si, &ri, epoch)?;
            tasks.push(tokio::spawn(async move {
                let start = Instant::now();
                let (mut sent, mut errors) = (0u64, 0u64);
                let mut tick = tokio::time::interval(Duration::from_millis(1));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                while start.elapsed() < step_len {
                    tick.tick().await;
                    let due = (start.elapsed().as_secs_f64().min(step_len.as_secs_f64())
                        * per_sender) as u64;
                    while sent + errors < due {
                        let env = stamped(&si, &ri, k as u32, epoch, pad);
                        let ok = sl.send(env).await.is_ok();
                        if ok {
                            sent += 1;
                        } else {
                            errors += 1;
                        }
                    }
                }
                (si, sl, ri, sent, errors)
            }));
        }
        let (mut sent, mut errors) = (0, 0);
        for (slot, t) in senders.iter_mut().zip(tasks) {
            let (si, sl, ri, s, e) = t.await?;
            sent += s;
            errors += e;
            *slot = Some((si, sl, ri));
        }
        // Let the last envelopes of the step arrive (bounded).
        let grace = Instant::now();
        while received[k].load(Ordering::Relaxed) < sent && grace.elapsed() < Duration::from_secs(1)
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut samples = Vec::new();
        for l in &lat {
            if let Ok(mut v) = l.lock() {
                samples.extend(v.iter().filter(|(s, _)| *s == k as u32).map(|(_, d)| *d));
                v.retain(|(s, _)| *s != k as u32);
            }
        }
        let got = received[k].load(Ordering::Relaxed);
        let samples = Samples::new(samples);
        let offered = rate as f64 * step_len.as_secs_f64();
        let sustained = sent as f64 >= 0.95 * offered
            && got as f64 >= 0.99 * sent as f64
            && samples.p99() < P99_BOUND;
        let step = Step {
            rate,
            sent,
            send_errors: errors,
            received: got,
            p99: samples.p99(),
            sustained,
        };
        eprintln!("    relay step {step:?}");
        steps.push(step);
        if !sustained {
            break;
        }
    }
    for slot in senders.iter_mut() {
        if let Some((_, mut sl, _)) = slot.take() {
            sl.close().await;
        }
    }
    for r in receivers {
        r.abort();
    }
    Ok(steps)
}

async fn connect_pairs<T: Transport>(
    transport: &mut T,
    pairs: usize,
    secret: impl Fn(&str) -> Res<String>,
) -> Res<Vec<(Identity, T::Link, Identity, T::Link)>> {
    let mut links = Vec::with_capacity(pairs);
    for i in 0..pairs {
        let (s, r) = (user("s", i), user("r", i));
        let (si, ri) = (identity(&s, "d")?, identity(&r, "d")?);
        let sl = transport.connect(&si, &secret(&s)?).await?;
        let rl = transport.connect(&ri, &secret(&r)?).await?;
        links.push((si, sl, ri, rl));
    }
    Ok(links)
}

fn best(steps: &[Step]) -> Option<&Step> {
    steps.iter().filter(|s| s.sustained).max_by_key(|s| s.rate)
}

/// Runs the figure.
pub async fn run(report: &mut Report, pairs: usize, step_len: Duration) -> Res<()> {
    eprintln!("  callapi-signal-server:");
    let server = start_server().await?;
    let mut options = ClientOptions::default();
    options.ping_interval = Duration::from_secs(120);
    let mut ws = WsTransport::new(&server.url())?.with_options(options);
    let links = connect_pairs(&mut ws, pairs, token).await?;
    let ours = rising(links, step_len).await?;
    server.shutdown().await;

    eprintln!("  mosquitto:");
    let names: Vec<String> = (0..pairs)
        .flat_map(|i| [user("s", i), user("r", i)])
        .collect();
    let users: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "pw")).collect();
    let broker = Mosquitto::start(&users)?;
    let mut mqtt =
        MqttTransport::new(MqttConfig::new("127.0.0.1", broker.port()).with_presence(false));
    let links = connect_pairs(&mut mqtt, pairs, |_| Ok("pw".to_owned())).await?;
    let theirs = rising(links, step_len).await?;
    drop(broker);

    let ours_best = best(&ours).map_or(0, |s| s.rate);
    let theirs_best = best(&theirs).map_or(0, |s| s.rate);
    let ratio = if theirs_best > 0 {
        ours_best as f64 / theirs_best as f64
    } else {
        f64::INFINITY
    };
    // p99 at the highest rate both sustained (else at the first step).
    let common = ours_best.min(theirs_best);
    let at = |steps: &[Step]| {
        steps
            .iter()
            .find(|s| s.rate == common)
            .or(steps.first())
            .map_or(Duration::ZERO, |s| s.p99)
    };
    let common_rate = if common > 0 { common } else { RATES[0] };
    let (p_ours, p_theirs) = (at(&ours), at(&theirs));
    report.set("relay.callapi_msgs_per_s", ours_best);
    report.set("relay.mosquitto_msgs_per_s", theirs_best);
    report.set("relay.ratio", round3(ratio));
    report.set("relay.callapi_p99_ms", round3(ms(p_ours)));
    report.set("relay.mosquitto_p99_ms", round3(ms(p_theirs)));
    report.set("relay.common_rate_msgs_per_s", common_rate);
    report.set("relay.pairs", pairs as u64);
    report.set("relay.envelope_bytes", ENVELOPE_BYTES as u64);
    report.set("relay.step_s", round3(step_len.as_secs_f64()));
    let steps_json = |steps: &[Step]| {
        steps
            .iter()
            .map(|s| {
                serde_json::json!({"rate": s.rate, "sent": s.sent, "send_errors": s.send_errors,
                    "received": s.received, "p99_ms": round3(ms(s.p99)), "sustained": s.sustained})
            })
            .collect::<Vec<_>>()
    };
    report.set("relay.callapi_steps", steps_json(&ours));
    report.set("relay.mosquitto_steps", steps_json(&theirs));
    let top = *RATES.last().unwrap_or(&0);
    let capped = |r: u64| {
        if r == top {
            " (highest step offered)"
        } else {
            ""
        }
    };
    report.row(
        format!("3. relay, {pairs} pairs, {ENVELOPE_BYTES} B"),
        format!(
            "callapi-signal-server {ours_best} msg/s{}; p99 {:.1} ms at {common_rate} msg/s",
            capped(ours_best),
            ms(p_ours)
        ),
        format!(
            "Mosquitto {theirs_best} msg/s{}; p99 {:.1} ms at {common_rate} msg/s",
            capped(theirs_best),
            ms(p_theirs)
        ),
        format!(
            "ratio {ratio:.2} ≥ 1.5 with lower p99: {}",
            verdict(ratio >= 1.5 && p_ours < p_theirs)
        ),
    );
    Ok(())
}
