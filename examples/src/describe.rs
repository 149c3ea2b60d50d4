//! One stable, greppable line per notification: `<kind> <Name> key=value ...`.

use callapi_core::call::{MemberChange, Notification};
use callapi_core::protocol::{CallId, CallType};
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

/// `member user=carol from=Ringing to=Accepted device=c1 call=<id> text="..."`.
fn member_line(call_id: CallId, change: &MemberChange) -> String {
    let mut line = format!("member user={} from=", change.user);
    match change.previous {
        Some(previous) => line.push_str(&format!("{previous:?}")),
        None => line.push('-'),
    }
    line.push_str(&format!(" to={:?}", change.state));
    if let Some(device) = &change.device {
        line.push_str(&format!(" device={device}"));
    }
    line.push_str(&format!(" call={call_id}"));
    if let Some(text) = &change.reason {
        line.push_str(&format!(" text={text:?}"));
    }
    line
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
/// | group member change | `member user=carol from=Ringing to=Accepted device=c1 call=<id>` (`from=-` for a member not known before; plus `text="..."` for a reason the record carries, such as a leave's) |
/// | group media with one member's device | `media peer=bob/b1 event=FirstFrame(Video)` |
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
        Notification::MemberChanged { call_id, change } => member_line(*call_id, change),
        Notification::PeerMedia { peer, event, .. } => {
            format!("media peer={peer} event={event:?}")
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use callapi_core::protocol::{DeviceId, MemberState, UserId};

    use super::*;

    fn change(previous: Option<MemberState>, state: MemberState) -> MemberChange {
        MemberChange {
            user: UserId::new("carol").unwrap(),
            state,
            previous,
            reason: None,
            device: None,
        }
    }

    #[test]
    fn member_changes_are_one_line() {
        let call_id = CallId::from_random_bytes([7; 16]);
        let line = |change| describe(&Notification::MemberChanged { call_id, change }).unwrap();
        assert_eq!(
            line(change(None, MemberState::Inviting)),
            format!("member user=carol from=- to=Inviting call={call_id}")
        );
        let mut accepted = change(Some(MemberState::Ringing), MemberState::Accepted);
        accepted.device = Some(DeviceId::new("c1").unwrap());
        assert_eq!(
            line(accepted),
            format!("member user=carol from=Ringing to=Accepted device=c1 call={call_id}")
        );
        let mut left = change(Some(MemberState::Accepted), MemberState::Left);
        left.device = Some(DeviceId::new("c1").unwrap());
        left.reason = Some("see you".into());
        assert_eq!(
            line(left),
            format!(
                "member user=carol from=Accepted to=Left device=c1 call={call_id} text=\"see you\""
            )
        );
    }
}
