//! The negotiation payloads carried in `media` envelopes, in the browser's JSON shapes:
//! a session description `{"type":"offer"|"answer","sdp":"…"}` or an ICE candidate
//! `{"candidate":"…","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"…"}`. A browser peer can
//! pass them straight to `setRemoteDescription` / `addIceCandidate`.

use serde_json::Value;
use webrtc::peer_connection::{RTCIceCandidateInit, RTCSessionDescription};

use crate::error::WebRtcError;

/// One negotiation message.
#[derive(Debug, Clone)]
pub(crate) enum Payload {
    /// An offer or an answer.
    Description(Box<RTCSessionDescription>),
    /// A trickled ICE candidate.
    Candidate(RTCIceCandidateInit),
}

impl Payload {
    pub(crate) fn parse(value: Value) -> Result<Self, WebRtcError> {
        let bad = |e: serde_json::Error| WebRtcError::Payload(e.to_string());
        if value.get("type").is_some() && value.get("sdp").is_some() {
            Ok(Payload::Description(Box::new(
                serde_json::from_value(value).map_err(bad)?,
            )))
        } else if value.get("candidate").is_some() {
            Ok(Payload::Candidate(
                serde_json::from_value(value).map_err(bad)?,
            ))
        } else {
            Err(WebRtcError::Payload(
                "neither a session description nor an ICE candidate".into(),
            ))
        }
    }

    pub(crate) fn to_value(&self) -> Result<Value, WebRtcError> {
        let bad = |e: serde_json::Error| WebRtcError::Payload(e.to_string());
        match self {
            Payload::Description(d) => serde_json::to_value(d).map_err(bad),
            Payload::Candidate(c) => serde_json::to_value(c).map_err(bad),
        }
    }
}
