//! What the demo prints: each side's notifications as they happen, the timing table, the media
//! counts and the latency summary of several calls.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use callapi_core::call::{CallTimings, Notification, PeerMediaEvent};
use callapi_core::media::MediaKind;
use callapi_core::NotificationStream;
use callapi_examples::link_name;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::media::MediaCounts;
use crate::progress::Progress;

/// Where notification lines go, and the instant their times count from.
#[derive(Debug, Clone)]
pub struct Echo {
    progress: Progress,
    since: Arc<Mutex<Instant>>,
    on: Arc<AtomicBool>,
}

impl Echo {
    /// Prints through `progress`, counting from now.
    pub fn new(progress: Progress) -> Self {
        Self {
            progress,
            since: Arc::new(Mutex::new(Instant::now())),
            on: Arc::new(AtomicBool::new(true)),
        }
    }

    /// Times count from now (a call starts).
    pub fn restart_clock(&self) {
        *self.since.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
    }

    /// Milliseconds since the clock's start.
    pub fn elapsed_ms(&self) -> u128 {
        self.since
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .elapsed()
            .as_millis()
    }

    /// Turns the notification lines on or off.
    pub fn set_on(&self, on: bool) {
        self.on.store(on, Ordering::SeqCst);
    }

    /// Whether notification lines are printed.
    pub fn is_on(&self) -> bool {
        self.on.load(Ordering::SeqCst)
    }

    /// A line stamped with the clock (if lines are on).
    pub fn stamped(&self, text: impl AsRef<str>) {
        if self.is_on() {
            self.progress
                .line(format!("[{:>6} ms] {}", self.elapsed_ms(), text.as_ref()));
        }
    }

    /// Prints `who`'s notifications as they arrive and passes each one on, once printed: so a
    /// step that waits for a notification prints its own lines after it.
    pub fn spawn_printer(
        &self,
        who: &'static str,
        mut events: NotificationStream,
    ) -> mpsc::UnboundedReceiver<Notification> {
        let echo = self.clone();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(n) = events.recv().await {
                if let Some(text) = pretty(&n) {
                    echo.stamped(format!("{who:<5} {text}"));
                }
                if tx.send(n).is_err() {
                    break;
                }
            }
        });
        rx
    }
}

/// A notification for people.
fn pretty(n: &Notification) -> Option<String> {
    Some(match n {
        Notification::StateChanged(c) => {
            let mut s = format!("{:?} → {:?}  ({:?})", c.previous, c.state, c.reason);
            if let Some(text) = &c.event_reason {
                s.push_str(&format!(" {text:?}"));
            }
            if let Some(d) = c.duration {
                s.push_str(&format!("  after {} ms connected", d.as_millis()));
            }
            s
        }
        Notification::Event(e) => {
            let mut s = format!("  · {:?}", e.event);
            if let Some(text) = &e.reason {
                s.push_str(&format!(" {text:?}"));
            }
            s
        }
        Notification::Error(e) => format!("  ! {:?} {} ({})", e.event, e.code, e.message),
        Notification::MessageReceived { from, data, .. } => {
            format!("  · message from {from}: {data:?}")
        }
        Notification::DtmfReceived { from, digits, .. } => {
            format!("  · DTMF from {from}: {digits}")
        }
        Notification::Link(state) => format!("  · link {}", link_name(state)),
        Notification::MediaStats { .. } => return None,
        Notification::MemberChanged { change, .. } => {
            let from = change
                .previous
                .map_or_else(|| "-".to_owned(), |p| format!("{p:?}"));
            let mut s = format!("  ◦ member {}: {from} → {:?}", change.user, change.state);
            if let Some(d) = &change.device {
                s.push_str(&format!(" on {d}"));
            }
            if let Some(r) = &change.reason {
                s.push_str(&format!(" {r:?}"));
            }
            s
        }
        Notification::PeerMedia { peer, event, .. } => {
            let what = match event {
                PeerMediaEvent::Connecting => "connecting".to_owned(),
                PeerMediaEvent::Joined => "connected".to_owned(),
                PeerMediaEvent::FirstFrame(MediaKind::Video) => "first video frame".to_owned(),
                PeerMediaEvent::FirstFrame(_) => "first audio packet".to_owned(),
                PeerMediaEvent::Closed => "closed".to_owned(),
                PeerMediaEvent::Left => "peer closed".to_owned(),
                PeerMediaEvent::Failed(m) => format!("failed: {m}"),
                other => format!("{other:?}"),
            };
            format!("  ~ media with {peer}: {what}")
        }
        other => format!("  · {other:?}"),
    })
}

fn ms(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".to_owned(), fmt_ms)
}

/// The milestones of `t` in call order (the names of `CallTimings::as_millis`).
fn milestones(t: &CallTimings) -> [(&'static str, Option<Duration>); 7] {
    [
        ("remote_user_recv_call", t.remote_user_recv_call),
        ("accept", t.accept),
        ("local_joined", t.local_joined),
        ("remote_joined", t.remote_joined),
        ("first_local_frame_published", t.first_local_frame_published),
        ("first_remote_frame", t.first_remote_frame),
        ("connected", t.connected),
    ]
}

/// The call timings (diagnostics) of both sides, side by side.
pub fn timing_table(caller: &CallTimings, callee: &CallTimings) -> Vec<String> {
    let mut lines = vec![
        "timings (ms from the call's start — alice: call(); bob: invite received)".to_owned(),
        format!(
            "  {:<28} {:>15} {:>15}",
            "milestone", "alice (caller)", "bob (callee)"
        ),
    ];
    for ((name, a), (_, b)) in milestones(caller).into_iter().zip(milestones(callee)) {
        lines.push(format!("  {name:<28} {:>15} {:>15}", ms(a), ms(b)));
    }
    lines
}

/// One side's call timings (diagnostics): `who` and what its clock starts at.
pub fn timing_column(who: &str, since: &str, t: &CallTimings) -> Vec<String> {
    let mut lines = vec![
        format!("timings (ms from the call's start — {who}: {since})"),
        format!("  {:<28} {:>15}", "milestone", who),
    ];
    for (name, d) in milestones(t) {
        lines.push(format!("  {name:<28} {:>15}", ms(d)));
    }
    lines
}

/// The frames and packets that flowed each way, from both engines' counters.
pub fn media_table(alice: &MediaCounts, bob: &MediaCounts, video: bool) -> Vec<String> {
    let mut lines = vec![
        "media that flowed (each side's engine counters)".to_owned(),
        format!(
            "  {:<13} {:>20} {:>24}",
            "direction", "video frames sent/rcvd", "audio packets sent/rcvd"
        ),
    ];
    let row = |dir: &str, from: &MediaCounts, to: &MediaCounts| {
        let video = if video {
            format!("{} / {}", from.video_frames_sent, to.video_frames_received)
        } else {
            "- (audio only)".to_owned()
        };
        format!(
            "  {dir:<13} {video:>20} {:>24}",
            format!(
                "{} / {}",
                from.audio_packets_sent, to.audio_packets_received
            )
        )
    };
    lines.push(row("alice → bob", alice, bob));
    lines.push(row("bob → alice", bob, alice));
    lines
}

/// Group calls: the frames and packets that flowed each way between every pair of members,
/// from both engines' per-member counters (`counters[user][other]`: what `user` counted with
/// `other`). Also answers the pairs that lack media one way or the other.
pub fn pair_table(
    counters: &[(String, std::collections::BTreeMap<String, MediaCounts>)],
    video: bool,
) -> (Vec<String>, Vec<String>) {
    let mut lines = vec![
        "media that flowed between members (each side's per-member engine counters)".to_owned(),
        format!(
            "  {:<22} {:>22} {:>24}",
            "direction", "video frames sent/rcvd", "audio packets sent/rcvd"
        ),
    ];
    let mut missing = Vec::new();
    let get = |who: &str, with: &str| {
        counters
            .iter()
            .find(|(u, _)| u == who)
            .and_then(|(_, m)| m.get(with).copied())
            .unwrap_or_default()
    };
    for (i, (x, _)) in counters.iter().enumerate() {
        for (y, _) in &counters[i + 1..] {
            for (from, to) in [(x, y), (y, x)] {
                let (sent, rcvd) = (get(from, to), get(to, from));
                let video_cell = if video {
                    format!(
                        "{} / {}",
                        sent.video_frames_sent, rcvd.video_frames_received
                    )
                } else {
                    "- (audio only)".to_owned()
                };
                let audio_cell = format!(
                    "{} / {}",
                    sent.audio_packets_sent, rcvd.audio_packets_received
                );
                lines.push(format!(
                    "  {:<22} {video_cell:>22} {audio_cell:>24}",
                    format!("{from} → {to}")
                ));
                if (video && rcvd.video_frames_received == 0) || rcvd.audio_packets_received == 0 {
                    missing.push(format!("{from} → {to}"));
                }
            }
        }
    }
    (lines, missing)
}

/// What one call measured, for the latency summary.
#[derive(Debug, Clone, Copy, Default)]
pub struct CallSample {
    /// alice's call() → bob ringing (seen by alice).
    pub ringing: Option<Duration>,
    /// bob's accept (seen by alice) → alice Connected.
    pub accept_to_connected: Option<Duration>,
    /// alice's call() → alice Connected.
    pub call_to_connected: Option<Duration>,
    /// alice's hangup() → bob back in Prepared.
    pub hangup_to_ended: Duration,
}

impl CallSample {
    /// From alice's timings and the measured hangup.
    pub fn new(caller: &CallTimings, hangup_to_ended: Duration) -> Self {
        Self {
            ringing: caller.remote_user_recv_call,
            accept_to_connected: caller
                .connected
                .zip(caller.accept)
                .map(|(c, a)| c.saturating_sub(a)),
            call_to_connected: caller.connected,
            hangup_to_ended,
        }
    }
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn fmt_ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

/// min / p50 / p95 / max / mean over the calls, per measure.
pub fn latency_summary(samples: &[CallSample]) -> Vec<String> {
    let measures: [(&str, Vec<Option<Duration>>); 4] = [
        (
            "call() → ringing",
            samples.iter().map(|s| s.ringing).collect(),
        ),
        (
            "accept → connected",
            samples.iter().map(|s| s.accept_to_connected).collect(),
        ),
        (
            "call() → connected",
            samples.iter().map(|s| s.call_to_connected).collect(),
        ),
        (
            "hangup() → callee ended",
            samples.iter().map(|s| Some(s.hangup_to_ended)).collect(),
        ),
    ];
    let mut lines = vec![
        format!(
            "latency over {} calls (ms, as seen by alice unless noted)",
            samples.len()
        ),
        format!(
            "  {:<24} {:>4} {:>8} {:>8} {:>8} {:>8} {:>8}",
            "measure", "n", "min", "p50", "p95", "max", "mean"
        ),
    ];
    for (name, values) in measures {
        let mut v: Vec<Duration> = values.into_iter().flatten().collect();
        v.sort();
        if v.is_empty() {
            lines.push(format!("  {name:<24} {:>4}", 0));
            continue;
        }
        let total: Duration = v.iter().sum();
        let mean = total / u32::try_from(v.len()).unwrap_or(u32::MAX);
        lines.push(format!(
            "  {name:<24} {:>4} {:>8} {:>8} {:>8} {:>8} {:>8}",
            v.len(),
            fmt_ms(v[0]),
            fmt_ms(percentile(&v, 50.0)),
            fmt_ms(percentile(&v, 95.0)),
            fmt_ms(v[v.len() - 1]),
            fmt_ms(mean)
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<Duration> = (1..=20).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 50.0), Duration::from_millis(10));
        assert_eq!(percentile(&v, 95.0), Duration::from_millis(19));
        assert_eq!(percentile(&v, 100.0), Duration::from_millis(20));
        assert_eq!(percentile(&v[..1], 95.0), Duration::from_millis(1));
    }
}
