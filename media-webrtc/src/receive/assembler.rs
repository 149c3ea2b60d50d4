//! VP8 frame assembly (RFC 7741): a frame is the run of packets with one RTP timestamp and
//! consecutive sequence numbers, from the packet that starts partition 0 (`S` = 1, `PID` = 0)
//! to the packet carrying the marker bit. A frame is complete — and released — when its last
//! packet arrives, not when the next frame's first packet does.
//!
//! Packets may arrive out of order: a complete frame that follows a gap (packets still
//! missing before it, perhaps on their way as a NACK retransmission) is held until the gap
//! fills or gives up — more than `max_late_packets` newer packets or `max_late_time` since the
//! held frame completed — and then released, reported as following a loss.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rtc::rtp::codec::vp8::Vp8Packet;
use rtc::rtp::packetizer::Depacketizer;

/// The VP8 RTP clock.
const CLOCK_RATE: u64 = 90_000;
/// Timestamp steps above this (10 s) are a discontinuity, not a frame interval.
const MAX_FRAME_INTERVAL_TICKS: u32 = 10 * 90_000;

/// One complete VP8 frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Frame {
    /// The VP8 bitstream of the frame (payload descriptors removed).
    pub data: Bytes,
    /// The frame's RTP timestamp.
    pub rtp_timestamp: u32,
    /// Time since the previous frame's timestamp (zero for the first frame or after a jump).
    pub interval: Duration,
    /// Packets were lost (or given up) between the previous frame and this one.
    pub after_loss: bool,
}

struct Buffered {
    arrived: Instant,
    timestamp: u32,
    marker: bool,
    payload: Bytes,
}

/// Turns VP8 RTP packets into complete frames.
pub(crate) struct FrameAssembler {
    max_late_packets: u64,
    max_late_time: Duration,
    /// Packets not yet released, by extended sequence number.
    buffer: BTreeMap<u64, Buffered>,
    /// Extended sequence number of the newest packet seen.
    highest: Option<u64>,
    /// The extended sequence number that follows the last released frame.
    next: Option<u64>,
    /// RTP timestamp of the last released frame.
    last_timestamp: Option<u32>,
    /// Packets were dropped since the last released frame.
    lost: bool,
}

impl FrameAssembler {
    /// An assembler waiting at most `max_late_packets` packets or `max_late_time` for a
    /// missing packet.
    pub(crate) fn new(max_late_packets: u16, max_late_time: Duration) -> Self {
        Self {
            max_late_packets: u64::from(max_late_packets.max(1)),
            max_late_time,
            buffer: BTreeMap::new(),
            highest: None,
            next: None,
            last_timestamp: None,
            lost: false,
        }
    }

    /// Adds a packet; duplicates and packets of frames already released (or given up) are
    /// ignored.
    pub(crate) fn push(&mut self, now: Instant, packet: rtc::rtp::Packet) {
        let seq = self.extend(packet.header.sequence_number);
        if self.next.is_some_and(|next| seq < next) || self.buffer.contains_key(&seq) {
            return;
        }
        self.buffer.insert(
            seq,
            Buffered {
                arrived: now,
                timestamp: packet.header.timestamp,
                marker: packet.header.marker,
                payload: packet.payload,
            },
        );
        self.bound();
    }

    /// The next complete frame, in sequence order, if one is ready.
    pub(crate) fn pop(&mut self, now: Instant) -> Option<Frame> {
        loop {
            self.skip_padding();
            let (start, end) = self.first_complete()?;
            let gap = self.next.is_some_and(|next| start > next);
            if gap {
                let completed_at = self.buffer.get(&end).map_or(now, |p| p.arrived);
                let newer = self
                    .highest
                    .zip(self.next)
                    .map_or(0, |(h, n)| h.saturating_sub(n));
                if now.saturating_duration_since(completed_at) < self.max_late_time
                    && newer <= self.max_late_packets
                {
                    return None; // the missing packets may still come
                }
                self.lost = true;
            }
            // Whatever precedes the frame is older and can no longer complete in order.
            self.buffer = self.buffer.split_off(&start);
            let rest = self.buffer.split_off(&(end + 1));
            let packets = std::mem::replace(&mut self.buffer, rest);
            self.next = Some(end + 1);
            let Some(timestamp) = packets.values().next().map(|p| p.timestamp) else {
                continue;
            };
            let Some(data) = depacketize(packets.values()) else {
                self.lost = true;
                continue;
            };
            let interval = self
                .last_timestamp
                .map(|last| timestamp.wrapping_sub(last))
                .filter(|ticks| *ticks <= MAX_FRAME_INTERVAL_TICKS)
                .map_or(Duration::ZERO, |ticks| {
                    Duration::from_micros(u64::from(ticks) * 1_000_000 / CLOCK_RATE)
                });
            self.last_timestamp = Some(timestamp);
            return Some(Frame {
                data,
                rtp_timestamp: timestamp,
                interval,
                after_loss: std::mem::take(&mut self.lost),
            });
        }
    }

    /// The extended (wrap-free) form of a sequence number: the one nearest the newest seen.
    fn extend(&mut self, seq: u16) -> u64 {
        let Some(highest) = self.highest else {
            // Start far from zero so that earlier (reordered) packets stay representable.
            let first = (1 << 32) + u64::from(seq);
            self.highest = Some(first);
            return first;
        };
        // `seq - highest` modulo 2^16, as a signed step in [-2^15, 2^15).
        let step = i64::from(seq.wrapping_sub(highest as u16) as i16);
        let ext = highest.saturating_add_signed(step);
        if ext > highest {
            self.highest = Some(ext);
        }
        ext
    }

    /// Drops padding (empty packets) right after the last released frame.
    fn skip_padding(&mut self) {
        let Some(mut next) = self.next else { return };
        while self.buffer.get(&next).is_some_and(|p| p.payload.is_empty()) {
            self.buffer.remove(&next);
            next += 1;
        }
        self.next = Some(next);
    }

    /// The first complete frame in the buffer: its first and last extended sequence numbers.
    fn first_complete(&self) -> Option<(u64, u64)> {
        // The current run: its start, timestamp, and whether it starts a frame.
        let mut run: Option<(u64, u32, bool)> = None;
        let mut previous: Option<u64> = None;
        for (&seq, packet) in &self.buffer {
            let continues =
                previous == Some(seq - 1) && run.is_some_and(|(_, ts, _)| ts == packet.timestamp);
            if !continues {
                run = Some((seq, packet.timestamp, is_frame_start(&packet.payload)));
            }
            previous = Some(seq);
            if let Some((start, _, true)) = run {
                if packet.marker {
                    return Some((start, seq));
                }
            }
        }
        None
    }

    /// Keeps the buffer within the reordering window when no frame completes (a lost first
    /// packet or marker): the oldest packets go, counted as a loss.
    fn bound(&mut self) {
        let limit = usize::try_from(self.max_late_packets.saturating_mul(2)).unwrap_or(usize::MAX);
        while self.buffer.len() > limit {
            let Some((seq, _)) = self.buffer.pop_first() else {
                break;
            };
            self.next = Some(self.next.map_or(seq + 1, |next| next.max(seq + 1)));
            self.lost = true;
        }
    }
}

/// Whether a VP8 payload starts a frame: the start of partition 0 (RFC 7741 §4.2).
fn is_frame_start(payload: &[u8]) -> bool {
    payload
        .first()
        .is_some_and(|b| b & 0x10 != 0 && b & 0x07 == 0)
}

/// The frame's bitstream: every payload without its descriptor, in order.
fn depacketize<'a>(packets: impl Iterator<Item = &'a Buffered>) -> Option<Bytes> {
    let mut parts = Vec::new();
    for packet in packets {
        if packet.payload.is_empty() {
            continue;
        }
        // A fresh depacketizer per packet: it keeps descriptor fields between calls.
        parts.push(Vp8Packet::default().depacketize(&packet.payload).ok()?);
    }
    match parts.len() {
        0 => None,
        1 => parts.pop(),
        _ => {
            let mut data = BytesMut::with_capacity(parts.iter().map(Bytes::len).sum());
            for part in &parts {
                data.extend_from_slice(part);
            }
            Some(data.freeze())
        }
    }
}

#[cfg(test)]
mod tests;
