//! The wire protocol (normative text in `docs/PROTOCOL.md`).

mod codec;
mod envelope;
mod header;
mod ids;
mod member;

pub use codec::{decode, decode_str, encode, encode_string, DecodeError, EncodeError};
pub use envelope::{
    Body, CallType, Elsewhere, Envelope, Extension, MAX_ENVELOPE_BYTES, PROTOCOL_VERSION,
};
pub use header::{decode_header, RoutingHeader};
pub use ids::{CallId, DeviceId, IdError, MessageId, UserId, MAX_ID_LEN};
pub use member::{Member, MemberState};
