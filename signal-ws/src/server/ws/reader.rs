//! Reading a client's WebSocket frames (RFC 6455 §5) from bytes, with no I/O.
//!
//! The reader keeps nothing between frames: the bytes of a frame that is not complete yet (and
//! the fragments of a message not finished yet) are held only until it is, and released then.
//! An idle connection therefore holds no read buffer; [`super::WsSocket`] reads into a buffer
//! its worker thread shares.

use std::collections::VecDeque;
use std::io::Cursor;

use bytes::{Bytes, BytesMut};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Control, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// Longest payload of a control frame (RFC 6455 §5.5).
const MAX_CONTROL_PAYLOAD: u64 = 125;

/// A whole message or control frame from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Incoming {
    /// A text message (reassembled if it came in fragments), valid UTF-8.
    Text(Utf8Bytes),
    /// A binary message; its bytes are not kept (the protocol has no binary messages).
    Binary,
    /// A ping, with the payload the pong must echo.
    Ping(Bytes),
    /// A pong.
    Pong,
    /// A close frame: its status code and reason, if it had any.
    Close(Option<(u16, String)>),
}

/// Why the client's bytes cannot be read on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ReadError {
    /// A message (or one frame) larger than the limit: close with 1009.
    #[error("message of at least {size} bytes is larger than the limit of {max} bytes")]
    TooBig {
        /// Bytes the message has at least.
        size: u64,
        /// The limit.
        max: usize,
    },
    /// The bytes break RFC 6455: close with 1002.
    #[error("WebSocket protocol violation: {0}")]
    Protocol(&'static str),
    /// A text message or close reason that is not UTF-8: close with 1007.
    #[error("a text message or close reason is not valid UTF-8")]
    NotUtf8,
}

/// The data message being put together from its fragments.
#[derive(Debug)]
struct Fragments {
    /// Text (kept) or binary (only counted).
    text: bool,
    bytes: Vec<u8>,
    len: u64,
}

/// Turns the bytes a client sends into [`Incoming`] messages.
#[derive(Debug)]
pub(crate) struct FrameReader {
    /// The start of a frame that is not complete yet; empty (and unallocated) between frames.
    partial: Vec<u8>,
    /// A fragmented message not finished yet.
    message: Option<Fragments>,
    max_message: usize,
}

impl FrameReader {
    /// A reader refusing messages over `max_message` bytes.
    pub(crate) fn new(max_message: usize) -> Self {
        Self {
            partial: Vec::new(),
            message: None,
            max_message,
        }
    }

    /// Bytes held for an incomplete frame or message (0 while idle).
    pub(crate) fn held(&self) -> usize {
        self.partial.capacity() + self.message.as_ref().map_or(0, |m| m.bytes.capacity())
    }

    /// Reads `input` (the next bytes from the socket) and appends every message it completes
    /// to `out`. After an error the connection must be closed: nothing more can be read.
    pub(crate) fn feed(
        &mut self,
        input: &[u8],
        out: &mut VecDeque<Incoming>,
    ) -> Result<(), ReadError> {
        if self.partial.is_empty() {
            let used = self.parse(input, out)?;
            if let Some(rest) = input.get(used..).filter(|r| !r.is_empty()) {
                self.partial.extend_from_slice(rest);
            }
        } else {
            let mut partial = std::mem::take(&mut self.partial);
            partial.extend_from_slice(input);
            let used = self.parse(&partial, out)?;
            if used == 0 {
                self.partial = partial;
            } else if used < partial.len() {
                // Only the start of the next frame stays, in a buffer of its own size: the
                // one the finished frames grew is released.
                self.partial = partial.split_off(used);
            }
            // Else `partial` is dropped: nothing is held between frames.
        }
        Ok(())
    }

    /// Reads every whole frame at the start of `buf`; returns how many bytes they took.
    fn parse(&mut self, buf: &[u8], out: &mut VecDeque<Incoming>) -> Result<usize, ReadError> {
        let mut pos = 0;
        while let Some(rest) = buf.get(pos..).filter(|r| !r.is_empty()) {
            let mut cursor = Cursor::new(rest);
            let parsed = FrameHeader::parse(&mut cursor)
                .map_err(|_| ReadError::Protocol("invalid frame header (reserved opcode)"))?;
            let Some((header, len)) = parsed else {
                break;
            };
            self.check(&header, len)?;
            let head = usize::try_from(cursor.position()).unwrap_or(usize::MAX);
            let Some(payload) = usize::try_from(len)
                .ok()
                .and_then(|l| rest.get(head..head.checked_add(l)?))
            else {
                break;
            };
            self.frame(&header, payload, out)?;
            pos += head + payload.len();
        }
        Ok(pos)
    }

    /// Checks what a frame's header alone says, before its payload has arrived.
    fn check(&self, header: &FrameHeader, len: u64) -> Result<(), ReadError> {
        if header.rsv1 || header.rsv2 || header.rsv3 {
            return Err(ReadError::Protocol(
                "reserved bits set, but no extension was negotiated",
            ));
        }
        if header.mask.is_none() {
            return Err(ReadError::Protocol("a client's frames must be masked"));
        }
        match header.opcode {
            OpCode::Control(_) => {
                if !header.is_final {
                    return Err(ReadError::Protocol("a control frame cannot be fragmented"));
                }
                if len > MAX_CONTROL_PAYLOAD {
                    return Err(ReadError::Protocol(
                        "a control frame's payload is at most 125 bytes",
                    ));
                }
            }
            OpCode::Data(data) => {
                let before = match (data, &self.message) {
                    (Data::Continue, Some(m)) => m.len,
                    (Data::Continue, None) => {
                        return Err(ReadError::Protocol(
                            "a continuation frame with no message to continue",
                        ))
                    }
                    (_, Some(_)) => {
                        return Err(ReadError::Protocol(
                            "a new message before the last fragment of the previous one",
                        ))
                    }
                    (_, None) => 0,
                };
                let size = before.saturating_add(len);
                if size > self.max_message as u64 {
                    return Err(ReadError::TooBig {
                        size,
                        max: self.max_message,
                    });
                }
            }
        }
        Ok(())
    }

    /// Handles one whole frame whose header passed [`check`](Self::check).
    fn frame(
        &mut self,
        header: &FrameHeader,
        masked: &[u8],
        out: &mut VecDeque<Incoming>,
    ) -> Result<(), ReadError> {
        let mask = header.mask.unwrap_or_default();
        match header.opcode {
            OpCode::Control(Control::Ping) => out.push_back(Incoming::Ping(unmask(masked, mask))),
            OpCode::Control(Control::Pong) => out.push_back(Incoming::Pong),
            OpCode::Control(Control::Close) => {
                out.push_back(Incoming::Close(close_payload(&unmask(masked, mask))?))
            }
            OpCode::Control(Control::Reserved(_)) | OpCode::Data(Data::Reserved(_)) => {
                return Err(ReadError::Protocol("reserved opcode"))
            }
            OpCode::Data(Data::Continue) => {
                let Some(m) = self.message.as_mut() else {
                    return Err(ReadError::Protocol("continuation with no message"));
                };
                m.len += masked.len() as u64;
                if m.text {
                    let start = m.bytes.len();
                    m.bytes.extend_from_slice(masked);
                    if let Some(tail) = m.bytes.get_mut(start..) {
                        apply_mask(tail, mask, 0);
                    }
                }
                if header.is_final {
                    if let Some(m) = self.message.take() {
                        out.push_back(whole(m.text, Bytes::from(m.bytes))?);
                    }
                }
            }
            OpCode::Data(data) => {
                let text = data == Data::Text;
                if header.is_final {
                    let payload = if text {
                        unmask(masked, mask)
                    } else {
                        Bytes::new()
                    };
                    out.push_back(whole(text, payload)?);
                } else {
                    let mut bytes = Vec::new();
                    if text {
                        bytes.extend_from_slice(masked);
                        apply_mask(&mut bytes, mask, 0);
                    }
                    self.message = Some(Fragments {
                        text,
                        bytes,
                        len: masked.len() as u64,
                    });
                }
            }
        }
        Ok(())
    }
}

/// A finished data message.
fn whole(text: bool, bytes: Bytes) -> Result<Incoming, ReadError> {
    if !text {
        return Ok(Incoming::Binary);
    }
    Utf8Bytes::try_from(bytes)
        .map(Incoming::Text)
        .map_err(|_| ReadError::NotUtf8)
}

/// A close frame's payload: nothing, or a 2-byte status code and a UTF-8 reason.
fn close_payload(payload: &[u8]) -> Result<Option<(u16, String)>, ReadError> {
    match payload {
        [] => Ok(None),
        [_] => Err(ReadError::Protocol("a close frame's payload of one byte")),
        [hi, lo, reason @ ..] => {
            let reason = std::str::from_utf8(reason).map_err(|_| ReadError::NotUtf8)?;
            Ok(Some((u16::from_be_bytes([*hi, *lo]), reason.to_owned())))
        }
    }
}

/// A copy of `masked` with the client's mask removed.
fn unmask(masked: &[u8], mask: [u8; 4]) -> Bytes {
    let mut bytes = BytesMut::from(masked);
    apply_mask(&mut bytes, mask, 0);
    bytes.freeze()
}

/// XORs `buf` with `mask`; `offset` is the position of `buf[0]` in its frame's payload.
fn apply_mask(buf: &mut [u8], mask: [u8; 4], offset: usize) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b ^= mask[(offset + i) % 4];
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    /// A client frame: FIN flag, opcode, masked payload.
    fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
        match payload.len() {
            n @ 0..=125 => out.push(0x80 | n as u8),
            n @ 126..=0xffff => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&MASK);
        let mut body = payload.to_vec();
        apply_mask(&mut body, MASK, 0);
        out.extend_from_slice(&body);
        out
    }

    fn read_all(reader: &mut FrameReader, bytes: &[u8]) -> Result<Vec<Incoming>, ReadError> {
        let mut out = VecDeque::new();
        reader.feed(bytes, &mut out)?;
        Ok(out.into_iter().collect())
    }

    fn text(s: &str) -> Incoming {
        Incoming::Text(Utf8Bytes::from(s.to_owned()))
    }

    #[test]
    fn reads_several_frames_from_one_read() {
        let mut r = FrameReader::new(1024);
        let mut bytes = frame(true, 1, b"hello");
        bytes.extend(frame(true, 9, b"p"));
        bytes.extend(frame(true, 1, "\u{e9}t\u{e9}".as_bytes()));
        let got = read_all(&mut r, &bytes).unwrap();
        assert_eq!(
            got,
            vec![
                text("hello"),
                Incoming::Ping(Bytes::from_static(b"p")),
                text("\u{e9}t\u{e9}")
            ]
        );
        assert_eq!(r.held(), 0);
    }

    #[test]
    fn a_frame_split_at_every_byte_arrives_whole_and_nothing_is_held_after() {
        let payload = "x".repeat(300);
        let bytes = frame(true, 1, payload.as_bytes());
        let mut r = FrameReader::new(1024);
        let mut out = VecDeque::new();
        for (i, b) in bytes.iter().enumerate() {
            r.feed(std::slice::from_ref(b), &mut out).unwrap();
            if i + 1 < bytes.len() {
                assert!(out.is_empty(), "a message before its last byte (at {i})");
            }
        }
        assert_eq!(out.pop_front(), Some(text(&payload)));
        assert_eq!(r.held(), 0, "the partial frame's buffer is released");
    }

    #[test]
    fn fragments_with_a_ping_between_them_make_one_message() {
        let mut r = FrameReader::new(1024);
        let mut bytes = frame(false, 1, b"hel");
        bytes.extend(frame(true, 9, b""));
        bytes.extend(frame(false, 0, b"lo "));
        bytes.extend(frame(true, 0, b"world"));
        let got = read_all(&mut r, &bytes).unwrap();
        assert_eq!(got, vec![Incoming::Ping(Bytes::new()), text("hello world")]);
        assert_eq!(r.held(), 0);
    }

    #[test]
    fn the_size_limit_is_applied_from_the_header_before_the_payload_arrives() {
        let mut r = FrameReader::new(100);
        let bytes = frame(true, 1, &[b'a'; 101]);
        // Only the header (and mask) has arrived.
        let err = read_all(&mut r, &bytes[..8]).unwrap_err();
        assert_eq!(
            err,
            ReadError::TooBig {
                size: 101,
                max: 100
            }
        );
    }

    #[test]
    fn the_size_limit_counts_every_fragment() {
        let mut r = FrameReader::new(100);
        let mut bytes = frame(false, 1, &[b'a'; 60]);
        bytes.extend(frame(true, 0, &[b'a'; 60]));
        let err = read_all(&mut r, &bytes).unwrap_err();
        assert_eq!(
            err,
            ReadError::TooBig {
                size: 120,
                max: 100
            }
        );
    }

    #[test]
    fn unmasked_frames_are_refused() {
        let mut r = FrameReader::new(100);
        let err = read_all(&mut r, &[0x81, 0x02, b'h', b'i']).unwrap_err();
        assert!(matches!(err, ReadError::Protocol(_)), "{err:?}");
    }

    #[test]
    fn rule_breaking_frames_are_protocol_errors() {
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("reserved bit", {
                let mut f = frame(true, 1, b"x");
                f[0] |= 0x40;
                f
            }),
            ("reserved opcode", frame(true, 3, b"x")),
            ("fragmented ping", frame(false, 9, b"x")),
            ("long ping", frame(true, 9, &[0; 126])),
            ("lone continuation", frame(true, 0, b"x")),
            ("message inside a message", {
                let mut f = frame(false, 1, b"x");
                f.extend(frame(true, 1, b"y"));
                f
            }),
            ("one-byte close", frame(true, 8, &[3])),
        ];
        for (name, bytes) in cases {
            let mut r = FrameReader::new(1024);
            let err = read_all(&mut r, &bytes).unwrap_err();
            assert!(matches!(err, ReadError::Protocol(_)), "{name}: {err:?}");
        }
    }

    #[test]
    fn invalid_utf8_is_refused_even_when_split_across_fragments() {
        let mut r = FrameReader::new(1024);
        assert_eq!(
            read_all(&mut r, &frame(true, 1, &[0xff])).unwrap_err(),
            ReadError::NotUtf8
        );
        // "é" split between two fragments is fine...
        let mut r = FrameReader::new(1024);
        let mut bytes = frame(false, 1, &[0xc3]);
        bytes.extend(frame(true, 0, &[0xa9]));
        assert_eq!(read_all(&mut r, &bytes).unwrap(), vec![text("\u{e9}")]);
        // ... a lone continuation byte is not.
        let mut r = FrameReader::new(1024);
        let mut bytes = frame(false, 1, b"a");
        bytes.extend(frame(true, 0, &[0xa9]));
        assert_eq!(read_all(&mut r, &bytes).unwrap_err(), ReadError::NotUtf8);
    }

    #[test]
    fn binary_messages_are_reported_but_not_kept() {
        let mut r = FrameReader::new(1024);
        let mut bytes = frame(false, 2, &[1; 50]);
        bytes.extend(frame(true, 0, &[2; 50]));
        assert_eq!(read_all(&mut r, &bytes).unwrap(), vec![Incoming::Binary]);
        assert_eq!(r.held(), 0);
    }

    #[test]
    fn close_frames_carry_their_code_and_reason() {
        let mut r = FrameReader::new(1024);
        let mut payload = 1000u16.to_be_bytes().to_vec();
        payload.extend_from_slice(b"bye");
        let mut bytes = frame(true, 8, &payload);
        bytes.extend(frame(true, 8, b""));
        assert_eq!(
            read_all(&mut r, &bytes).unwrap(),
            vec![
                Incoming::Close(Some((1000, "bye".into()))),
                Incoming::Close(None)
            ]
        );
    }

    #[test]
    fn long_lengths_use_the_16_and_64_bit_forms() {
        let mut r = FrameReader::new(1 << 20);
        let medium = "m".repeat(70_000);
        let got = read_all(&mut r, &frame(true, 1, medium.as_bytes())).unwrap();
        assert_eq!(got, vec![text(&medium)]);
        let short = "s".repeat(200);
        let got = read_all(&mut r, &frame(true, 1, short.as_bytes())).unwrap();
        assert_eq!(got, vec![text(&short)]);
    }
    /// Found by the `server_frames` fuzz target (its input, cut as it cut it): a ping with a
    /// 9-byte payload, the first 111-byte fragment of a text message and the first byte of a
    /// next frame, fed in chunks of 129, 1 and 3 bytes. When the fragment completed, the one
    /// byte behind it stayed in the 228-byte buffer the fragment had grown: 339 bytes held
    /// after 133 were fed.
    #[test]
    fn a_finished_frame_releases_its_buffer_when_the_next_one_has_begun() {
        let mut bytes = vec![0x89, 0x89, 0x89, 0xff, 0xff, 0xff]; // ping, 9 bytes; mask
        bytes.extend([0xff; 9]);
        bytes.extend([0x01, 0xef, 0xff, 0xff, 0xff, 0x19]); // text, not final, 111 bytes; mask
        bytes.extend([0x19; 24]);
        bytes.extend([0xd3; 7]);
        bytes.extend([0x19; 20]);
        bytes.extend([0x94, 0x81, 0x19]);
        bytes.extend([0xd3; 21]);
        bytes.push(0x72);
        bytes.extend([0xd3; 8]);
        bytes.extend([0x19; 27]);
        bytes.push(0x19); // the next frame's first byte
        assert_eq!(bytes.len(), 133);
        let mut r = FrameReader::new(65_535);
        let mut out = VecDeque::new();
        let mut rest = &bytes[..];
        for n in [129, 1].into_iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (chunk, tail) = rest.split_at(n.min(rest.len()));
            rest = tail;
            r.feed(chunk, &mut out).unwrap();
            let content = r.partial.len() + r.message.as_ref().map_or(0, |m| m.bytes.len());
            assert!(
                r.held() <= 2 * content + 16,
                "holds {} bytes for {content} bytes of unfinished frames",
                r.held()
            );
        }
        assert_eq!(out.len(), 1, "{out:?}");
    }
}
