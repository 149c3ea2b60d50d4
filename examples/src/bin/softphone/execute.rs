//! Carrying out a [`Command`] on the phone's `CallApi`, printing `ok <command> ...` or
//! `error <command>: <why>` (and, for `status`, `members` and `counters`, what was asked for).

use callapi_core::protocol::{Member, MemberState};
use callapi_core::signal::LinkState;
use callapi_core::{CallApi, CallApiError};
use callapi_examples::{call_type_name, link_name};
use tokio::sync::watch;

use crate::commands::{Command, HELP};
use crate::media::MediaWatch;
use crate::say;

/// Whether to go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Read the next command.
    Continue,
    /// Leave.
    Quit,
}

/// Prints `ok <what>` or `error <what>: <why>`.
fn report(what: &str, result: Result<(), CallApiError>) {
    match result {
        Ok(()) => say(format!("ok {what}")),
        Err(e) => say(format!("error {what}: {e}")),
    }
}

/// Carries out `cmd`.
pub async fn execute(
    api: &CallApi,
    link: &watch::Receiver<LinkState>,
    media: &MediaWatch,
    cmd: Command,
) -> Outcome {
    match cmd {
        Command::Call { user, call_type } => match api.call(&user, call_type).await {
            Ok(id) => say(format!(
                "ok call call={id} remote={user} type={}",
                call_type_name(call_type)
            )),
            Err(e) => say(format!("error call: {e}")),
        },
        Command::CallGroup { users, call_type } => {
            let names: Vec<&str> = users.iter().map(String::as_str).collect();
            match api.call_group(&names, call_type).await {
                Ok(id) => say(format!(
                    "ok call call={id} invited={} type={} group",
                    names.join(","),
                    call_type_name(call_type)
                )),
                Err(e) => say(format!("error call: {e}")),
            }
        }
        Command::Accept => report("accept", api.accept().await),
        Command::Reject(reason) => report("reject", api.reject(reason).await),
        Command::Cancel => report("cancel", api.cancel().await),
        Command::Hangup(reason) => report("hangup", api.hangup(reason).await),
        Command::Invite(users) => {
            let names: Vec<&str> = users.iter().map(String::as_str).collect();
            let what = format!("invite invited={}", names.join(","));
            report(&what, api.invite(&names).await);
        }
        Command::Leave(reason) => report("leave", api.leave(reason).await),
        Command::End(reason) => report("end", api.end(reason).await),
        Command::Join(call_id) => report(&format!("join call={call_id}"), api.join(call_id).await),
        Command::Members => members(api).await,
        Command::Counters => match media.lines() {
            Ok(lines) => lines.iter().for_each(say),
            Err(e) => say(format!("error counters: {e}")),
        },
        Command::Dtmf(digits) => report("dtmf", api.send_dtmf(&digits).await),
        Command::Msg(text) => report("msg", api.send_message(text).await),
        Command::Status => status(api, link).await,
        Command::Help => say(HELP),
        Command::Quit => return Outcome::Quit,
    }
    Outcome::Continue
}

/// `members user=alice state=Accepted seq=1 device=a1` for one roster record (plus
/// `text="..."` for its reason and `until_ms=` for a pending invitation's deadline).
fn member_line(m: &Member) -> String {
    let mut line = format!("members user={} state={:?} seq={}", m.user, m.state, m.seq);
    if let Some(device) = &m.device {
        line.push_str(&format!(" device={device}"));
    }
    if let Some(text) = &m.reason {
        line.push_str(&format!(" text={text:?}"));
    }
    if let Some(until) = m.until_ms {
        line.push_str(&format!(" until_ms={until}"));
    }
    line
}

/// One `members ...` line per record of the group call's roster, then `ok members count=N
/// in_call=K` (count 0 outside a group call).
async fn members(api: &CallApi) {
    let roster = match api.members().await {
        Ok(roster) => roster,
        Err(e) => {
            say(format!("error members: {e}"));
            return;
        }
    };
    for m in &roster {
        say(member_line(m));
    }
    let in_call = roster.iter().filter(|m| m.state.is_in_call()).count();
    let mut line = format!("ok members count={} in_call={in_call}", roster.len());
    if let Ok(Some(call)) = api.call_info().await {
        line.push_str(&format!(" call={}", call.call_id));
    }
    say(line);
}

/// `status state=... link=... [call=... remote=... type=... role=...] [group in_call=N
/// pending=M]`.
async fn status(api: &CallApi, link: &watch::Receiver<LinkState>) {
    let mut line = format!(
        "status state={:?} link={}",
        api.state(),
        link_name(&link.borrow())
    );
    if let Ok(Some(call)) = api.call_info().await {
        line.push_str(&format!(
            " call={} remote={} type={} role={}",
            call.call_id,
            call.remote_user,
            call_type_name(call.call_type),
            if call.caller == *api.user_id() {
                "caller"
            } else {
                "callee"
            }
        ));
    }
    if let Ok(roster) = api.members().await {
        if !roster.is_empty() {
            let count =
                |keep: fn(MemberState) -> bool| roster.iter().filter(|m| keep(m.state)).count();
            line.push_str(&format!(
                " group in_call={} pending={}",
                count(MemberState::is_in_call),
                count(MemberState::is_pending)
            ));
        }
    }
    say(line);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use callapi_core::protocol::{DeviceId, UserId};

    use super::*;

    #[test]
    fn member_records_are_one_line() {
        let mut m = Member::new(UserId::new("carol").unwrap(), MemberState::Left, 5);
        m.device = Some(DeviceId::new("c1").unwrap());
        m.reason = Some("see you".into());
        assert_eq!(
            member_line(&m),
            r#"members user=carol state=Left seq=5 device=c1 text="see you""#
        );
        let mut m = Member::new(UserId::new("dave").unwrap(), MemberState::Ringing, 2);
        m.until_ms = Some(1_732_350_015_000);
        assert_eq!(
            member_line(&m),
            "members user=dave state=Ringing seq=2 until_ms=1732350015000"
        );
    }
}
