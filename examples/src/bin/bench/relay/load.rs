//! The load generator: one task per socket, all on one thread. A sender writes, every
//! millisecond, the messages its share of the offered rate makes due (a pre-encoded envelope
//! with the step and the send time patched into fixed-width digits), in one write; every
//! socket reads what arrives and answers what its protocol requires ([`Wire::read`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::wire::{Incoming, Wire};
use crate::common::Res;

/// Width of the step number in the stamp.
const STEP_DIGITS: usize = 4;
/// Width of the send time (ns since the epoch) in the stamp.
const NANOS_DIGITS: usize = 20;
/// The stamp's marker in the encoded envelope: the start of the `message` body's `data`.
const MARKER: &[u8] = b"\"data\":\"";

/// The stamp at the start of `data`: `SSSS:NNNNNNNNNNNNNNNNNNNN:`, then padding.
pub fn blank_stamp() -> String {
    format!("{}:{}:", "0".repeat(STEP_DIGITS), "0".repeat(NANOS_DIGITS))
}

/// A pre-encoded envelope and where its stamp's digits are.
#[derive(Debug, Clone)]
pub struct Template {
    bytes: Vec<u8>,
    at: usize,
}

impl Template {
    /// `bytes`: an encoded `message` envelope whose `data` starts with [`blank_stamp`].
    pub fn new(bytes: Vec<u8>) -> Res<Self> {
        let at = find(&bytes, MARKER).ok_or("no data member in the envelope")? + MARKER.len();
        if bytes.get(at..at + blank_stamp().len()) != Some(blank_stamp().as_bytes()) {
            return Err("the envelope's data does not start with the stamp".into());
        }
        Ok(Self { bytes, at })
    }

    fn stamp(&mut self, step: usize, nanos: u64) {
        let at = self.at;
        digits(&mut self.bytes[at..at + STEP_DIGITS], step as u64);
        let n = at + STEP_DIGITS + 1;
        digits(&mut self.bytes[n..n + NANOS_DIGITS], nanos);
    }
}

fn digits(out: &mut [u8], mut v: u64) {
    for b in out.iter_mut().rev() {
        *b = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The step and send time stamped in a relayed envelope.
fn parse_stamp(payload: &[u8]) -> Option<(usize, u64)> {
    let at = find(payload, MARKER)? + MARKER.len();
    let num = |b: &[u8]| -> Option<u64> {
        b.iter().try_fold(0u64, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u64::from(c - b'0'))
        })
    };
    let step = num(payload.get(at..at + STEP_DIGITS)?)?;
    let n = at + STEP_DIGITS + 1;
    let nanos = num(payload.get(n..n + NANOS_DIGITS)?)?;
    Some((step as usize, nanos))
}

/// One rate step, as the senders see it.
#[derive(Debug, Clone, Copy)]
pub struct Phase {
    /// Its index (stamped into each envelope).
    pub step: usize,
    /// Messages per second of each sender.
    pub per_sender: f64,
    /// When it started.
    pub start: Instant,
    /// How long it lasts.
    pub len: Duration,
}

/// The counters all tasks share.
pub struct Shared {
    /// The clock of the stamps.
    pub epoch: Instant,
    /// Messages written, per step.
    pub sent: Vec<AtomicU64>,
    /// Messages delivered, per step.
    pub received: Vec<AtomicU64>,
    /// Acknowledgements of our messages received (MQTT PUBACKs), all steps.
    pub acked: AtomicU64,
    /// Frames read that were neither a stamped delivery nor an ack.
    pub other: AtomicU64,
    /// One-way latencies, per step.
    pub latencies: Mutex<Vec<Vec<Duration>>>,
}

impl Shared {
    /// Counters for `steps` steps.
    pub fn new(steps: usize) -> Arc<Self> {
        Arc::new(Self {
            epoch: Instant::now(),
            sent: (0..steps).map(|_| AtomicU64::new(0)).collect(),
            received: (0..steps).map(|_| AtomicU64::new(0)).collect(),
            acked: AtomicU64::new(0),
            other: AtomicU64::new(0),
            latencies: Mutex::new(vec![Vec::new(); steps]),
        })
    }

    /// Messages written in all steps.
    pub fn sent_total(&self) -> u64 {
        self.sent.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

/// Drives one socket until it closes or `phase` is dropped: with a `template` it sends at the
/// phase's rate, and it reads and answers whatever arrives.
pub async fn drive<W: Wire>(
    mut tcp: TcpStream,
    mut wire: W,
    mut inbuf: Vec<u8>,
    mut template: Option<Template>,
    shared: Arc<Shared>,
    mut phase: watch::Receiver<Option<Phase>>,
) -> Res<()> {
    let (mut rd, mut wr) = tcp.split();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut out = Vec::with_capacity(64 * 1024);
    let mut cur = *phase.borrow_and_update();
    let mut done = 0u64;
    let mut lat = Vec::new();
    inbuf.reserve(64 * 1024);
    loop {
        tokio::select! {
            _ = tick.tick(), if cur.is_some() && template.is_some() => {
                let (Some(p), Some(t)) = (cur, template.as_mut()) else { continue };
                let elapsed = p.start.elapsed().min(p.len);
                let due = (elapsed.as_secs_f64() * p.per_sender) as u64;
                let nanos = shared.epoch.elapsed().as_nanos() as u64;
                for _ in done..due {
                    t.stamp(p.step, nanos);
                    wire.frame(&t.bytes, &mut out);
                }
                if !out.is_empty() {
                    wr.write_all(&out).await?;
                    out.clear();
                }
                if let Some(c) = shared.sent.get(p.step) {
                    c.fetch_add(due.saturating_sub(done), Ordering::Relaxed);
                }
                done = done.max(due);
                if elapsed >= p.len {
                    cur = None;
                }
            }
            r = rd.read_buf(&mut inbuf) => {
                if r? == 0 {
                    return Ok(());
                }
                let now = shared.epoch.elapsed().as_nanos() as u64;
                let (mut acked, mut other) = (0, 0);
                let used = wire.read(&inbuf, &mut out, &mut |i| match i {
                    Incoming::Delivery(p) => match parse_stamp(p) {
                        Some((step, sent)) => lat.push((step, now.saturating_sub(sent))),
                        None => other += 1,
                    },
                    Incoming::Acked => acked += 1,
                    Incoming::Other => other += 1,
                })?;
                inbuf.drain(..used);
                if inbuf.capacity() - inbuf.len() < 16 * 1024 {
                    inbuf.reserve(64 * 1024);
                }
                if !out.is_empty() {
                    wr.write_all(&out).await?;
                    out.clear();
                }
                shared.acked.fetch_add(acked, Ordering::Relaxed);
                shared.other.fetch_add(other, Ordering::Relaxed);
                if !lat.is_empty() {
                    if let Ok(mut all) = shared.latencies.lock() {
                        for &(step, d) in &lat {
                            if let (Some(v), Some(c)) = (all.get_mut(step), shared.received.get(step)) {
                                v.push(Duration::from_nanos(d));
                                c.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    lat.clear();
                }
            }
            c = phase.changed() => {
                if c.is_err() {
                    return Ok(());
                }
                cur = *phase.borrow_and_update();
                done = 0;
            }
        }
    }
}
