#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use rtc::rtp::codec::vp8::Vp8Payloader;
use rtc::rtp::packetizer::Payloader;

use super::{Frame, FrameAssembler};
use crate::clip::TestClip;

const LATE_PACKETS: u16 = 16;
const LATE_TIME: Duration = Duration::from_millis(300);
/// 30 frames per second at 90 kHz.
const TICKS: u32 = 3000;

/// The RTP packets of `frame`, numbered from `seq`, with the marker on the last.
fn packetize(frame: &Bytes, seq: u16, timestamp: u32) -> Vec<rtc::rtp::Packet> {
    let mut payloader = Vp8Payloader::default();
    let payloads = payloader.payload(300, frame).unwrap();
    let last = payloads.len() - 1;
    payloads
        .into_iter()
        .enumerate()
        .map(|(i, payload)| rtc::rtp::Packet {
            header: rtc::rtp::Header {
                version: 2,
                marker: i == last,
                sequence_number: seq.wrapping_add(i as u16),
                timestamp,
                ..Default::default()
            },
            payload,
        })
        .collect()
}

/// The clip's first `n` frames, packetized back to back from `seq`.
fn stream(n: usize, seq: u16) -> (Vec<Bytes>, Vec<Vec<rtc::rtp::Packet>>) {
    let clip = TestClip::new().unwrap();
    let frames: Vec<Bytes> = clip.video_frames()[..n]
        .iter()
        .map(|s| s.data.clone())
        .collect();
    let mut next = seq;
    let mut packets = Vec::new();
    for (i, frame) in frames.iter().enumerate() {
        let p = packetize(frame, next, 1000 + TICKS * i as u32);
        next = next.wrapping_add(p.len() as u16);
        packets.push(p);
    }
    (frames, packets)
}

fn assembler() -> FrameAssembler {
    FrameAssembler::new(LATE_PACKETS, LATE_TIME)
}

fn push_all(a: &mut FrameAssembler, now: Instant, packets: &[rtc::rtp::Packet]) -> Vec<Frame> {
    let mut out = Vec::new();
    for p in packets {
        a.push(now, p.clone());
        while let Some(frame) = a.pop(now) {
            out.push(frame);
        }
    }
    out
}

#[test]
fn a_frame_completes_at_its_marker_packet() {
    let (frames, packets) = stream(2, 100);
    assert!(packets[0].len() > 2, "the keyframe spans several packets");
    let mut a = assembler();
    let now = Instant::now();
    let (last, head) = packets[0].split_last().unwrap();
    assert!(push_all(&mut a, now, head).is_empty());
    a.push(now, last.clone());
    let frame = a
        .pop(now)
        .expect("complete at the marker, before the next frame");
    assert_eq!(frame.data, frames[0]);
    assert_eq!(frame.rtp_timestamp, 1000);
    assert_eq!(frame.interval, Duration::ZERO);
    assert!(!frame.after_loss);
    assert!(a.pop(now).is_none());
    let next = push_all(&mut a, now, &packets[1]);
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].data, frames[1]);
    assert_eq!(next[0].interval, Duration::from_micros(33_333));
}

#[test]
fn packets_reordered_within_a_frame_still_make_it() {
    let (frames, mut packets) = stream(1, 7);
    packets[0].reverse();
    let out = push_all(&mut assembler(), Instant::now(), &packets[0]);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].data, frames[0]);
}

#[test]
fn a_frame_after_a_gap_waits_for_the_missing_packet() {
    let (frames, packets) = stream(3, 500);
    let mut a = assembler();
    let now = Instant::now();
    assert_eq!(push_all(&mut a, now, &packets[0]).len(), 1);
    let mut second = packets[1].clone();
    let missing = second.remove(0);
    let mut out = push_all(&mut a, now, &second);
    out.extend(push_all(&mut a, now, &packets[2]));
    assert!(out.is_empty(), "the third frame waits behind the second");
    let out = push_all(&mut a, now, &[missing]);
    let data: Vec<_> = out.iter().map(|f| f.data.clone()).collect();
    assert_eq!(data, frames[1..3].to_vec());
    assert!(out.iter().all(|f| !f.after_loss));
}

#[test]
fn a_missing_packet_is_given_up_after_the_late_time() {
    let (frames, packets) = stream(3, 40);
    let mut a = assembler();
    let t0 = Instant::now();
    assert_eq!(push_all(&mut a, t0, &packets[0]).len(), 1);
    let mut second = packets[1].clone();
    let missing = second.pop().unwrap(); // the marker
    assert!(push_all(&mut a, t0, &second).is_empty());
    assert!(push_all(&mut a, t0, &packets[2]).is_empty());
    assert!(a.pop(t0 + LATE_TIME - Duration::from_millis(1)).is_none());
    let frame = a
        .pop(t0 + LATE_TIME)
        .expect("given up: the third frame goes");
    assert_eq!(frame.data, frames[2]);
    assert!(frame.after_loss);
    // The late packet belongs to a frame given up: ignored.
    a.push(t0 + LATE_TIME, missing);
    assert!(a.pop(t0 + LATE_TIME).is_none());
}

#[test]
fn a_missing_packet_is_given_up_after_the_late_packets() {
    let (_, packets) = stream(12, 1);
    let mut a = assembler();
    let now = Instant::now();
    assert_eq!(push_all(&mut a, now, &packets[0]).len(), 1);
    let mut second = packets[1].clone();
    second.remove(0);
    let mut out = push_all(&mut a, now, &second);
    for p in &packets[2..] {
        out.extend(push_all(&mut a, now, p));
    }
    assert!(!out.is_empty(), "released once the window is passed");
    assert!(out[0].after_loss);
    assert!(out[1..].iter().all(|f| !f.after_loss));
    assert_eq!(out.last().unwrap().rtp_timestamp, 1000 + TICKS * 11);
}

#[test]
fn sequence_numbers_wrap() {
    let (frames, packets) = stream(3, u16::MAX - 2);
    let all: Vec<_> = packets.concat();
    let out = push_all(&mut assembler(), Instant::now(), &all);
    let data: Vec<_> = out.into_iter().map(|f| f.data).collect();
    assert_eq!(data, frames);
}

#[test]
fn duplicates_and_padding_are_ignored() {
    let (frames, packets) = stream(2, 10);
    let mut a = assembler();
    let now = Instant::now();
    let mut out = push_all(&mut a, now, &packets[0]);
    // A duplicate of a released frame's packet, then a padding packet before the next frame.
    out.extend(push_all(&mut a, now, &packets[0][..1]));
    let mut next = packets[1].clone();
    let mut padding = next[0].clone();
    padding.payload = Bytes::new();
    for p in &mut next {
        p.header.sequence_number = p.header.sequence_number.wrapping_add(1);
    }
    out.extend(push_all(&mut a, now, &[padding]));
    out.extend(push_all(&mut a, now, &next));
    out.extend(push_all(&mut a, now, &next[..1]));
    let data: Vec<_> = out.iter().map(|f| f.data.clone()).collect();
    assert_eq!(data, frames);
    assert!(out.iter().all(|f| !f.after_loss));
}

#[test]
fn joining_mid_frame_starts_at_the_next_whole_frame() {
    let (frames, packets) = stream(2, 300);
    let mut a = assembler();
    let now = Instant::now();
    assert!(push_all(&mut a, now, &packets[0][1..]).is_empty());
    let out = push_all(&mut a, now, &packets[1]);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].data, frames[1]);
    assert!(!out[0].after_loss);
}
