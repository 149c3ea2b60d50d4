//! Errors of the WebRTC media engine.

/// Why the WebRTC engine could not do something.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebRtcError {
    /// The configuration is unusable (for example no bind address, or a codec the engine cannot
    /// register); fix the [`WebRtcConfig`](crate::WebRtcConfig).
    #[error("invalid WebRTC configuration: {0}")]
    Config(String),
    /// The `webrtc` stack refused an operation (building a peer connection, adding a track, SDP).
    #[error("WebRTC stack error: {0}")]
    Stack(#[from] webrtc::error::Error),
    /// A negotiation payload from the peer could not be understood (not an SDP description or an
    /// ICE candidate in the browser's JSON shape).
    #[error("malformed negotiation payload: {0}")]
    Payload(String),
    /// The embedded test clip or a media source could not be read.
    #[error("media source error: {0}")]
    Source(String),
    /// An operation on the peer connection did not finish in time (its driver is stuck or gone).
    #[error("WebRTC operation `{0}` timed out")]
    Timeout(&'static str),
}

impl From<WebRtcError> for callapi_core::media::MediaError {
    fn from(err: WebRtcError) -> Self {
        callapi_core::media::MediaError::Other(err.to_string())
    }
}
