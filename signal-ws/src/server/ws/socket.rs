//! One upgraded WebSocket connection's bytes: reads on readiness into a buffer the worker
//! thread shares, writes whole frames, and holds no buffer while the connection is idle.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Control, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::reader::{FrameReader, Incoming, ReadError};

thread_local! {
    /// The read buffer of every connection polled on this thread: a socket is read into it
    /// and the bytes are parsed at once, so only an incomplete frame is copied out.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Why reading stopped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SocketError {
    /// The client's bytes broke the protocol or a limit.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The socket failed.
    #[error("socket error: {0}")]
    Io(#[from] io::Error),
}

/// A frame being written: its header and payload, and how much of them the socket took.
#[derive(Debug)]
struct Outgoing {
    head: [u8; 10],
    head_len: usize,
    payload: Bytes,
    written: usize,
}

impl Outgoing {
    fn new(opcode: OpCode, payload: Bytes) -> Self {
        let header = FrameHeader {
            opcode,
            ..FrameHeader::default()
        };
        let mut head = [0u8; 10];
        let mut cursor = io::Cursor::new(&mut head[..]);
        // A server frame's header (no mask) is at most 10 bytes: this cannot fail.
        let _ = header.format(payload.len() as u64, &mut cursor);
        let head_len = usize::try_from(cursor.position()).unwrap_or(0);
        Self {
            head,
            head_len,
            payload,
            written: 0,
        }
    }

    fn total(&self) -> usize {
        self.head_len + self.payload.len()
    }

    fn slices(&self) -> [IoSlice<'_>; 2] {
        let head = self.head.get(..self.head_len).unwrap_or_default();
        let (h, p) = if self.written < head.len() {
            (
                head.get(self.written..).unwrap_or_default(),
                &self.payload[..],
            )
        } else {
            let from = self.written - head.len();
            (&[][..], self.payload.get(from..).unwrap_or_default())
        };
        [IoSlice::new(h), IoSlice::new(p)]
    }
}

/// A server-side WebSocket over `S`, after the HTTP upgrade.
#[derive(Debug)]
pub(crate) struct WsSocket<S> {
    io: S,
    reader: FrameReader,
    /// Messages read but not handed out yet; empty (and unallocated) while idle.
    ready: VecDeque<Incoming>,
    /// A frame the socket has not taken whole yet (a write that was cut short), written before
    /// anything else.
    out: Option<Outgoing>,
    read_chunk: usize,
    eof: bool,
}

impl<S> WsSocket<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    /// Wraps an upgraded connection. Messages over `max_message` bytes are refused; a read
    /// takes at most `read_chunk` bytes at a time.
    pub(crate) fn new(io: S, max_message: usize, read_chunk: usize) -> Self {
        Self {
            io,
            reader: FrameReader::new(max_message),
            ready: VecDeque::new(),
            out: None,
            read_chunk: read_chunk.max(64),
            eof: false,
        }
    }

    /// The connection itself, to drain it after a close.
    pub(crate) fn get_mut(&mut self) -> &mut S {
        &mut self.io
    }

    /// The next message; `None` once the client closed its side. Cancel-safe: a message is
    /// never lost to a dropped call.
    pub(crate) async fn next(&mut self) -> Option<Result<Incoming, SocketError>> {
        loop {
            if let Some(msg) = self.ready.pop_front() {
                if self.ready.is_empty() {
                    self.ready = VecDeque::new();
                }
                return Some(Ok(msg));
            }
            if self.eof {
                return None;
            }
            if let Err(err) = self.read_some().await {
                self.eof = true;
                return Some(Err(err));
            }
        }
    }

    /// Reads what the socket has (waiting until it has something) and parses it.
    async fn read_some(&mut self) -> Result<(), SocketError> {
        let Self {
            io,
            reader,
            ready,
            read_chunk,
            eof,
            ..
        } = self;
        poll_fn(|cx| {
            SCRATCH.with(|scratch| {
                let mut scratch = scratch.borrow_mut();
                if scratch.len() < *read_chunk {
                    scratch.resize(*read_chunk, 0);
                }
                let mut buf = ReadBuf::new(&mut scratch[..*read_chunk]);
                ready!(Pin::new(&mut *io).poll_read(cx, &mut buf))?;
                let filled = buf.filled();
                if filled.is_empty() {
                    *eof = true;
                } else {
                    reader.feed(filled, ready)?;
                }
                Poll::Ready(Ok::<(), SocketError>(()))
            })
        })
        .await
    }

    /// Sends a text message.
    pub(crate) async fn send_text(&mut self, text: Utf8Bytes) -> io::Result<()> {
        self.send(OpCode::Data(Data::Text), Bytes::from(text)).await
    }

    /// Sends a ping with no payload.
    pub(crate) async fn send_ping(&mut self) -> io::Result<()> {
        self.send(OpCode::Control(Control::Ping), Bytes::new())
            .await
    }

    /// Answers a ping.
    pub(crate) async fn send_pong(&mut self, payload: Bytes) -> io::Result<()> {
        self.send(OpCode::Control(Control::Pong), payload).await
    }

    /// Sends a close frame with `code` and `reason` (cut to fit a control frame).
    pub(crate) async fn send_close(&mut self, code: u16, reason: &str) -> io::Result<()> {
        let mut payload = code.to_be_bytes().to_vec();
        let mut end = reason.len().min(123);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        payload.extend_from_slice(reason.get(..end).unwrap_or_default().as_bytes());
        self.send(OpCode::Control(Control::Close), Bytes::from(payload))
            .await
    }

    /// Writes one frame, after whatever an earlier, cut-short write left.
    async fn send(&mut self, opcode: OpCode, payload: Bytes) -> io::Result<()> {
        self.finish_write().await?;
        self.out = Some(Outgoing::new(opcode, payload));
        self.finish_write().await
    }

    /// Writes the rest of the frame in flight, if any, and flushes.
    async fn finish_write(&mut self) -> io::Result<()> {
        let Self { io, out, .. } = self;
        poll_fn(|cx| {
            while let Some(frame) = out.as_mut() {
                let n = ready!(Pin::new(&mut *io).poll_write_vectored(cx, &frame.slices()))?;
                if n == 0 {
                    return Poll::Ready(Err(io::Error::from(io::ErrorKind::WriteZero)));
                }
                frame.written += n;
                if frame.written >= frame.total() {
                    *out = None;
                }
            }
            Poll::Ready(Ok::<(), io::Error>(()))
        })
        .await?;
        self.io.flush().await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A masked client text frame.
    fn client_text(s: &str) -> Vec<u8> {
        let mask = [1, 2, 3, 4];
        let mut out = vec![0x81, 0x80 | s.len() as u8];
        out.extend_from_slice(&mask);
        out.extend(s.bytes().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    #[tokio::test]
    async fn reads_messages_and_writes_frames() {
        let (server, mut client) = tokio::io::duplex(64);
        let mut ws = WsSocket::new(server, 1024, 16);
        client
            .write_all(&client_text("hello, server"))
            .await
            .unwrap();
        let got = ws.next().await.unwrap().unwrap();
        assert_eq!(got, Incoming::Text(Utf8Bytes::from_static("hello, server")));
        assert_eq!(ws.reader.held(), 0);
        ws.send_text(Utf8Bytes::from_static("hi")).await.unwrap();
        ws.send_close(1000, "bye").await.unwrap();
        let mut buf = [0u8; 11];
        client.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf[..4], &[0x81, 2, b'h', b'i']);
        assert_eq!(&buf[4..], &[0x88, 5, 0x03, 0xe8, b'b', b'y', b'e']);
        drop(client);
        assert!(ws.next().await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_cut_short_is_finished_before_the_next_frame() {
        // A pipe that holds 8 bytes: a 20-byte frame cannot be written at once.
        let (server, mut client) = tokio::io::duplex(8);
        let mut ws = WsSocket::new(server, 1024, 64);
        let text = Utf8Bytes::from("0123456789abcdefghij".to_owned());
        let cut = tokio::time::timeout(
            std::time::Duration::from_millis(1),
            ws.send_text(text.clone()),
        )
        .await;
        assert!(cut.is_err(), "the pipe was expected to fill up");
        let reading = tokio::spawn(async move {
            let mut all = vec![0u8; 2 + 20 + 2];
            client.read_exact(&mut all).await.unwrap();
            all
        });
        ws.send_ping().await.unwrap();
        let all = reading.await.unwrap();
        assert_eq!(&all[..2], &[0x81, 20]);
        assert_eq!(&all[2..22], text.as_bytes());
        assert_eq!(&all[22..], &[0x89, 0]);
    }

    #[tokio::test]
    async fn a_protocol_error_ends_reading() {
        let (server, mut client) = tokio::io::duplex(64);
        let mut ws = WsSocket::new(server, 1024, 64);
        // Unmasked.
        client.write_all(&[0x81, 0x01, b'x']).await.unwrap();
        let err = ws.next().await.unwrap().unwrap_err();
        assert!(matches!(err, SocketError::Read(ReadError::Protocol(_))));
        assert!(ws.next().await.is_none());
    }
}
