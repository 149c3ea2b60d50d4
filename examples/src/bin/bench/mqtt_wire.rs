//! Hand-encoded MQTT 3.1.1 packets for the bench's thin clients (figures 3 and 4): CONNECT,
//! SUBSCRIBE, QoS 1 PUBLISH and PUBACK, and the split of a byte stream into packets. Only what
//! those clients send and receive; no client library in between.

/// Appends an MQTT string (two-byte big-endian length, then the bytes).
fn encode_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Appends the variable-length "remaining length" of a fixed header.
fn encode_len(out: &mut Vec<u8>, mut len: usize) {
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if len == 0 {
            break;
        }
    }
}

/// A packet of type byte `first` with `body`.
fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut p = vec![first];
    encode_len(&mut p, body.len());
    p.extend_from_slice(body);
    p
}

/// A CONNECT (protocol level 4, keep-alive off, user name and password); `clean` sets the
/// clean-session flag.
pub fn connect(client_id: &str, user: &str, password: &str, clean: bool) -> Vec<u8> {
    let mut body = Vec::new();
    encode_str(&mut body, "MQTT");
    body.push(4); // protocol level 3.1.1
    body.push(0x80 | 0x40 | if clean { 0x02 } else { 0 }); // user name, password
    body.extend_from_slice(&0u16.to_be_bytes()); // keep-alive off
    encode_str(&mut body, client_id);
    encode_str(&mut body, user);
    encode_str(&mut body, password);
    packet(0x10, &body)
}

/// The CONNACK of an accepted connection without a stored session.
pub const CONNACK_ACCEPTED: [u8; 4] = [0x20, 0x02, 0x00, 0x00];

/// A SUBSCRIBE of `filter` at QoS 1 with packet id `id`.
pub fn subscribe(id: u16, filter: &str) -> Vec<u8> {
    let mut body = id.to_be_bytes().to_vec();
    encode_str(&mut body, filter);
    body.push(1);
    packet(0x82, &body)
}

/// The SUBACK granting QoS 1 to the single filter of SUBSCRIBE `id`.
pub fn suback_qos1(id: u16) -> [u8; 5] {
    let [hi, lo] = id.to_be_bytes();
    [0x90, 0x03, hi, lo, 0x01]
}

/// Appends a PUBACK for packet id `id`.
pub fn puback(out: &mut Vec<u8>, id: u16) {
    out.extend_from_slice(&[0x40, 0x02]);
    out.extend_from_slice(&id.to_be_bytes());
}

/// A QoS 1 PUBLISH to one topic, pre-encoded up to the packet id.
#[derive(Debug, Clone)]
pub struct Publisher {
    topic: Vec<u8>,
    next_id: u16,
}

impl Publisher {
    /// Publishes to `topic`, packet ids from 1 on.
    pub fn new(topic: &str) -> Self {
        let mut t = Vec::with_capacity(topic.len() + 2);
        encode_str(&mut t, topic);
        Self {
            topic: t,
            next_id: 1,
        }
    }

    /// Appends a PUBLISH (QoS 1, retain 0) of `payload`, with the next packet id (1..=65535,
    /// wrapping).
    pub fn publish(&mut self, payload: &[u8], out: &mut Vec<u8>) {
        out.push(0x32);
        encode_len(out, self.topic.len() + 2 + payload.len());
        out.extend_from_slice(&self.topic);
        out.extend_from_slice(&self.next_id.to_be_bytes());
        out.extend_from_slice(payload);
        self.next_id = self.next_id.checked_add(1).unwrap_or(1);
    }
}

/// One complete packet at the front of a buffer.
#[derive(Debug)]
pub enum Packet<'a> {
    /// A PUBLISH: its QoS, packet id (0 at QoS 0) and payload.
    Publish {
        /// 0, 1 or 2.
        qos: u8,
        /// The packet id (QoS 1 and 2).
        id: u16,
        /// The application message.
        payload: &'a [u8],
    },
    /// A PUBACK.
    Puback,
    /// Any other packet.
    Other,
}

/// Splits the first complete packet off `buf`: the packet and its length, `None` while
/// incomplete, an error for a malformed one.
pub fn split(buf: &[u8]) -> Result<Option<(Packet<'_>, usize)>, &'static str> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let (mut len, mut shift, mut at) = (0usize, 0u32, 1usize);
    loop {
        let Some(&b) = buf.get(at) else {
            return Ok(None);
        };
        len |= ((b & 0x7f) as usize) << shift;
        at += 1;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 21 {
            return Err("MQTT remaining length over 4 bytes");
        }
    }
    let end = at + len;
    let Some(body) = buf.get(at..end) else {
        return Ok(None);
    };
    let packet = match first >> 4 {
        3 => {
            let qos = (first >> 1) & 3;
            let tlen = u16::from_be_bytes([
                *body.first().ok_or("short PUBLISH")?,
                *body.get(1).ok_or("short PUBLISH")?,
            ]) as usize;
            let mut p = 2 + tlen;
            let mut id = 0;
            if qos > 0 {
                let b = body.get(p..p + 2).ok_or("short PUBLISH")?;
                id = u16::from_be_bytes([b[0], b[1]]);
                p += 2;
            }
            Packet::Publish {
                qos,
                id,
                payload: body.get(p..).ok_or("short PUBLISH")?,
            }
        }
        4 => Packet::Puback,
        _ => Packet::Other,
    };
    Ok(Some((packet, end)))
}
