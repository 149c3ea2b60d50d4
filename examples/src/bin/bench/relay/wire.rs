//! The two thin clients' wire formats, of the same shape: one message = one frame carrying a
//! pre-encoded envelope. WebSocket: a masked text frame (RFC 6455 client frame), the server's
//! pings answered with pongs. MQTT 3.1.1: a QoS 1 PUBLISH, every PUBLISH received answered
//! with a PUBACK, the PUBACKs of our own PUBLISHes counted.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use crate::common::{token, Res, WAIT};
use crate::mqtt_wire::{self, Packet, Publisher};

/// What a client read from its socket.
pub enum Incoming<'a> {
    /// A relayed message (its payload: the envelope's bytes).
    Delivery(&'a [u8]),
    /// The relay acknowledged one of our messages (MQTT PUBACK).
    Acked,
    /// Anything else (hello, a control frame, SUBACK ...).
    Other,
}

/// A thin client's framing.
pub trait Wire: Send + 'static {
    /// Whether the relay acknowledges each message to its sender (MQTT QoS 1 PUBACK).
    const ACKS: bool;
    /// Appends one message carrying `payload` to `out`.
    fn frame(&mut self, payload: &[u8], out: &mut Vec<u8>);
    /// Reads the complete frames at the front of `buf`, hands each to `seen`, appends what the
    /// protocol requires in answer (PUBACK, pong) to `out`; returns the bytes consumed.
    fn read(
        &mut self,
        buf: &[u8],
        out: &mut Vec<u8>,
        seen: &mut dyn FnMut(Incoming<'_>),
    ) -> Res<usize>;
}

/// Reads from `tcp` into `buf` until `done(buf)` says how many bytes the awaited answer took,
/// within [`WAIT`]; the bytes after it stay in `buf`.
async fn read_until(
    tcp: &mut TcpStream,
    buf: &mut Vec<u8>,
    what: &str,
    mut done: impl FnMut(&[u8]) -> Res<Option<usize>>,
) -> Res<()> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(n) = done(buf)? {
            buf.drain(..n);
            return Ok(());
        }
        buf.reserve(4096);
        let n = tokio::time::timeout_at(deadline, tcp.read_buf(buf))
            .await
            .map_err(|_| format!("no {what} in time"))??;
        if n == 0 {
            return Err(format!("socket closed before {what}").into());
        }
    }
}

/// A WebSocket client connection (after the opening handshake and the server's `hello`).
pub struct Ws {
    key: [u8; 4],
}

impl Ws {
    /// Connects to the signal server at `addr` as `user`/`d`; returns the socket, the client
    /// and the bytes read past `hello`.
    pub async fn connect(addr: SocketAddr, user: &str) -> Res<(TcpStream, Self, Vec<u8>)> {
        let mut tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let nonce: [u8; 16] = rand::random();
        let key = base64(&nonce);
        let request = format!(
            "GET /v1/signal?device=d HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\
             Authorization: Bearer {}\r\n\r\n",
            token(user)?
        );
        tcp.write_all(request.as_bytes()).await?;
        let mut buf = Vec::new();
        let accept = derive_accept_key(key.as_bytes());
        read_until(&mut tcp, &mut buf, "upgrade answer", |b| {
            let Some(end) = b.windows(4).position(|w| w == b"\r\n\r\n") else {
                return Ok(None);
            };
            let head = String::from_utf8_lossy(&b[..end]);
            if !head.starts_with("HTTP/1.1 101") || !head.contains(&accept) {
                return Err(format!("upgrade refused: {head}").into());
            }
            Ok(Some(end + 4))
        })
        .await?;
        let mut ws = Self {
            key: rand::random(),
        };
        let mut pong = Vec::new();
        read_until(&mut tcp, &mut buf, "hello", |b| {
            let mut hello = false;
            let n = ws.read_frames(b, &mut pong, &mut |f| {
                if let Incoming::Delivery(t) = f {
                    hello |= t.windows(7).any(|w| w == b"\"hello\"");
                }
            })?;
            Ok(hello.then_some(n))
        })
        .await?;
        if !pong.is_empty() {
            tcp.write_all(&pong).await?;
        }
        Ok((tcp, ws, buf))
    }

    fn read_frames(
        &mut self,
        buf: &[u8],
        out: &mut Vec<u8>,
        seen: &mut dyn FnMut(Incoming<'_>),
    ) -> Res<usize> {
        let mut at = 0;
        loop {
            let b = &buf[at..];
            if b.len() < 2 {
                return Ok(at);
            }
            let (opcode, masked, len7) = (b[0] & 0x0f, b[1] & 0x80 != 0, (b[1] & 0x7f) as usize);
            if masked {
                return Err("the server sent a masked frame".into());
            }
            let (len, head) = match len7 {
                126 if b.len() >= 4 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
                127 if b.len() >= 10 => {
                    let mut l = [0u8; 8];
                    l.copy_from_slice(&b[2..10]);
                    (u64::from_be_bytes(l) as usize, 10)
                }
                126 | 127 => return Ok(at),
                n => (n, 2),
            };
            let Some(payload) = b.get(head..head + len) else {
                return Ok(at);
            };
            match opcode {
                0x1 => seen(Incoming::Delivery(payload)),
                0x9 => {
                    // Pong with the ping's payload (control payloads are < 126 bytes).
                    self.frame_op(0x8A, payload, out);
                    seen(Incoming::Other);
                }
                0x8 => return Err("the server closed the WebSocket".into()),
                _ => seen(Incoming::Other),
            }
            at += head + len;
        }
    }

    fn frame_op(&mut self, first: u8, payload: &[u8], out: &mut Vec<u8>) {
        out.push(first);
        match payload.len() {
            n @ 0..=125 => out.push(0x80 | n as u8),
            n @ 126..=65535 => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&self.key);
        let start = out.len();
        out.extend_from_slice(payload);
        for (i, b) in out[start..].iter_mut().enumerate() {
            *b ^= self.key[i & 3];
        }
    }
}

impl Wire for Ws {
    const ACKS: bool = false;

    fn frame(&mut self, payload: &[u8], out: &mut Vec<u8>) {
        self.frame_op(0x81, payload, out);
    }

    fn read(
        &mut self,
        buf: &[u8],
        out: &mut Vec<u8>,
        seen: &mut dyn FnMut(Incoming<'_>),
    ) -> Res<usize> {
        self.read_frames(buf, out, seen)
    }
}

/// Standard base64 with padding (for the 16-byte `Sec-WebSocket-Key`).
fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in bytes.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                s.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// An MQTT 3.1.1 client connection (after CONNACK, and SUBACK for a subscriber).
pub struct Mqtt {
    publisher: Option<Publisher>,
}

impl Mqtt {
    /// Connects to the broker at `addr` as `user` (password `pw`, client id
    /// `callapi-{user}-d`, clean session 0 as callapi devices do); subscribes to its inbox at
    /// QoS 1 when `to` is `None`, else publishes to `to`'s inbox. Returns the socket, the
    /// client and the bytes read past the handshake.
    pub async fn connect(
        addr: SocketAddr,
        user: &str,
        pw: &str,
        to: Option<&str>,
    ) -> Res<(TcpStream, Self, Vec<u8>)> {
        let mut tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        tcp.write_all(&mqtt_wire::connect(
            &format!("callapi-{user}-d"),
            user,
            pw,
            false,
        ))
        .await?;
        let mut buf = Vec::new();
        read_until(&mut tcp, &mut buf, "CONNACK", |b| {
            if b.len() < 4 {
                return Ok(None);
            }
            if b[..4] != mqtt_wire::CONNACK_ACCEPTED {
                return Err(format!("CONNACK refused: {:?}", &b[..4]).into());
            }
            Ok(Some(4))
        })
        .await?;
        let publisher = match to {
            Some(to) => Some(Publisher::new(&format!("callapi/v1/inbox/{to}/{user}"))),
            None => {
                tcp.write_all(&mqtt_wire::subscribe(
                    1,
                    &format!("callapi/v1/inbox/{user}/+"),
                ))
                .await?;
                let want = mqtt_wire::suback_qos1(1);
                read_until(&mut tcp, &mut buf, "SUBACK", |b| {
                    if b.len() < want.len() {
                        return Ok(None);
                    }
                    if b[..want.len()] != want {
                        return Err(format!("SUBACK refused: {:?}", &b[..want.len()]).into());
                    }
                    Ok(Some(want.len()))
                })
                .await?;
                None
            }
        };
        Ok((tcp, Self { publisher }, buf))
    }
}

impl Wire for Mqtt {
    const ACKS: bool = true;

    fn frame(&mut self, payload: &[u8], out: &mut Vec<u8>) {
        if let Some(p) = &mut self.publisher {
            p.publish(payload, out);
        }
    }

    fn read(
        &mut self,
        buf: &[u8],
        out: &mut Vec<u8>,
        seen: &mut dyn FnMut(Incoming<'_>),
    ) -> Res<usize> {
        let mut at = 0;
        while let Some((packet, n)) = mqtt_wire::split(&buf[at..])? {
            match packet {
                Packet::Publish { qos, id, payload } => {
                    if qos == 1 {
                        mqtt_wire::puback(out, id);
                    }
                    seen(Incoming::Delivery(payload));
                }
                Packet::Puback => seen(Incoming::Acked),
                Packet::Other => seen(Incoming::Other),
            }
            at += n;
        }
        Ok(at)
    }
}
