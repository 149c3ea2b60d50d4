//! One stable, greppable line per notification: `<kind> <Name> key=value ...`.

use callapi_core::call::Notification;
use callapi_core::protocol::CallType;
use callapi_core::signal::LinkState;

/// `video` or `audio`.
pub fn call_type_name(call_type: CallType) -> &'static str {
    match call_type {
        CallType::Video => "video",
        CallType::Audio => "audio",
        _ => "other",
    }
}

/// A link state in a few words: `connected`, `connecting`, `reconnecting attempt=2 in_ms=3120`,
/// `failed reason="..."`, `disconnected`.
pub fn link_name(state: &LinkState) -> String {
    match state {
        LinkState::Disconnected => "disconnected".into(),
        LinkState::Connecting => "connecting".into(),
        LinkState::Connected => "connected".into(),
        LinkState::Reconnecting { attempt, next_in } => {
            format!(
                "reconnecting attempt={attempt} in_ms={}",
                next_in.as_millis()
            )
        }
        LinkState::Failed { reason } => format!("failed reason={reason:?}"),
        other => format!("{other:?}"),
    }
}

/// Renders `notification` as one line, for logs, scripts and tests. The first word says what it
/// is; values with spaces are quoted (Rust string syntax):
///
/// | notification | line |
/// |---|---|
/// | state change | `state Calling reason=RemoteVideoCall prev=Prepared call=<id> remote=alice type=video` (plus `text="..."` for an app-given reason, `duration_ms=` when a connected call ends) |
/// | event | `event RemoteUserRecvCall call=<id>` (plus `text="..."`) |
/// | error | `error SendMessageFail code=1001 message="..."` |
/// | in-call message | `msg from=alice text="hello"` |
/// | DTMF | `dtmf from=alice digits=123#` |
/// | link | `link connected` ([`link_name`]) |
/// | media figures | `stats rtt_ms=12.5 lost=0 recv_bps=... send_bps=...` |
///
/// Returns `None` for nothing (every current notification has a line; the `Option` leaves room
/// for kinds a newer core adds, which print as `other <debug>`).
pub fn describe(notification: &Notification) -> Option<String> {
    let line = match notification {
        Notification::StateChanged(c) => {
            let mut line = format!(
                "state {:?} reason={:?} prev={:?}",
                c.state, c.reason, c.previous
            );
            if let Some(call) = &c.call {
                line.push_str(&format!(
                    " call={} remote={} type={}",
                    call.call_id,
                    call.remote_user,
                    call_type_name(call.call_type)
                ));
            }
            if let Some(text) = &c.event_reason {
                line.push_str(&format!(" text={text:?}"));
            }
            if let Some(d) = c.duration {
                line.push_str(&format!(" duration_ms={}", d.as_millis()));
            }
            line
        }
        Notification::Event(e) => {
            let mut line = format!("event {:?}", e.event);
            if let Some(id) = e.call_id {
                line.push_str(&format!(" call={id}"));
            }
            if let Some(text) = &e.reason {
                line.push_str(&format!(" text={text:?}"));
            }
            line
        }
        Notification::Error(e) => format!(
            "error {:?} code={} message={:?}",
            e.event, e.code, e.message
        ),
        Notification::MessageReceived { from, data, .. } => {
            format!("msg from={from} text={data:?}")
        }
        Notification::DtmfReceived { from, digits, .. } => {
            format!("dtmf from={from} digits={digits}")
        }
        Notification::Link(state) => format!("link {}", link_name(state)),
        Notification::MediaStats { stats, .. } => format!(
            "stats rtt_ms={} lost={} recv_bps={} send_bps={}",
            stats
                .rtt_ms
                .map_or_else(|| "-".to_owned(), |r| format!("{r:.1}")),
            stats.packets_lost,
            stats.recv_bitrate_bps,
            stats.send_bitrate_bps
        ),
        other => format!("other {other:?}"),
    };
    Some(line)
}
