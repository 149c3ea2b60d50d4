//! The softphone's commands: one line of input parsed into a [`Command`] (carried out by
//! [`crate::execute`]).

use callapi_core::protocol::{CallId, CallType};

/// One command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `call <user> [audio|video]`: a 1:1 call.
    Call {
        /// Who.
        user: String,
        /// Video unless `audio`.
        call_type: CallType,
    },
    /// `call <user> <user>... [audio|video]`: a group call (two users or more).
    CallGroup {
        /// Whom, in the order given.
        users: Vec<String>,
        /// Video unless `audio`.
        call_type: CallType,
    },
    /// `accept`
    Accept,
    /// `reject [reason]`
    Reject(Option<String>),
    /// `cancel`
    Cancel,
    /// `hangup [reason]`
    Hangup(Option<String>),
    /// `invite <user>...`: more users into the group call.
    Invite(Vec<String>),
    /// `leave [reason]`: out of the group call, which goes on.
    Leave(Option<String>),
    /// `end [reason]`: the group call ends for everyone.
    End(Option<String>),
    /// `join <call-id>`: back into a group call.
    Join(CallId),
    /// `members`: the group call's roster.
    Members,
    /// `counters`: what the media engine sent and received (`--media webrtc`).
    Counters,
    /// `dtmf <digits>`
    Dtmf(String),
    /// `msg <text>`
    Msg(String),
    /// `status`
    Status,
    /// `help`
    Help,
    /// `quit`
    Quit,
}

/// What `help` prints: every command, on one line.
pub const HELP: &str = "help commands: call <user> [audio|video] | call <user> <user>... \
                        [audio|video] | accept | reject [reason] | cancel | hangup [reason] \
                        | invite <user>... | leave [reason] | end [reason] | join <call-id> \
                        | members | counters | dtmf <digits> | msg <text> | status | quit";

const CALL_USAGE: &str = "call: usage: call <user> [<user>...] [audio|video]";

fn rest(text: &str) -> Option<String> {
    let t = text.trim();
    (!t.is_empty()).then(|| t.to_owned())
}

/// Users named once each, at least one.
fn users(words: &[&str], usage: &str) -> Result<Vec<String>, String> {
    if words.is_empty() {
        return Err(usage.to_owned());
    }
    let mut users: Vec<String> = Vec::with_capacity(words.len());
    for w in words {
        if users.iter().any(|u| u == w) {
            return Err(format!("{usage}: {w} is named twice"));
        }
        users.push((*w).to_owned());
    }
    Ok(users)
}

/// `call ...`: the first word is always a user; a last word `audio` or `video` after it is
/// the call type.
fn parse_call(args: &str) -> Result<Command, String> {
    let words: Vec<&str> = args.split_whitespace().collect();
    let (names, call_type) = match words.split_last() {
        Some((last, names)) if !names.is_empty() => match last.to_ascii_lowercase().as_str() {
            "audio" => (names, CallType::Audio),
            "video" => (names, CallType::Video),
            _ => (&words[..], CallType::Video),
        },
        _ => (&words[..], CallType::Video),
    };
    let mut users = users(names, CALL_USAGE)?;
    Ok(match users.len() {
        1 => Command::Call {
            user: users.remove(0),
            call_type,
        },
        _ => Command::CallGroup { users, call_type },
    })
}

/// A call id as printed in `call=` fields (a UUID).
fn parse_call_id(text: &str) -> Result<CallId, String> {
    let text = text.trim();
    if text.is_empty() || text.contains(char::is_whitespace) {
        return Err("join: usage: join <call-id>".into());
    }
    serde_json::from_value(serde_json::Value::String(text.to_owned()))
        .map_err(|_| format!("join: {text:?} is not a call id (a UUID, as in call= fields)"))
}

impl Command {
    /// Parses a line; `Ok(None)` for a blank line or a `#` comment.
    pub fn parse(line: &str) -> Result<Option<Self>, String> {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return Ok(None);
        }
        let (word, args) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let cmd = match word.to_ascii_lowercase().as_str() {
            "call" => parse_call(args)?,
            "accept" | "answer" => Command::Accept,
            "reject" | "decline" => Command::Reject(rest(args)),
            "cancel" => Command::Cancel,
            "hangup" | "bye" => Command::Hangup(rest(args)),
            "invite" => {
                let words: Vec<&str> = args.split_whitespace().collect();
                Command::Invite(users(&words, "invite: usage: invite <user>...")?)
            }
            "leave" => Command::Leave(rest(args)),
            "end" => Command::End(rest(args)),
            "join" => Command::Join(parse_call_id(args)?),
            "members" | "roster" => Command::Members,
            "counters" => Command::Counters,
            "dtmf" => Command::Dtmf(
                rest(args)
                    .map(|d| d.split_whitespace().collect())
                    .ok_or("dtmf: usage: dtmf <digits>")?,
            ),
            "msg" | "message" => Command::Msg(rest(args).ok_or("msg: usage: msg <text>")?),
            "status" => Command::Status,
            "help" | "?" => Command::Help,
            "quit" | "exit" => Command::Quit,
            other => return Err(format!("unknown command {other:?} (try help)")),
        };
        Ok(Some(cmd))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn p(l: &str) -> Option<Command> {
        Command::parse(l).unwrap()
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn parses_every_command() {
        assert_eq!(
            p("call bob"),
            Some(Command::Call {
                user: "bob".into(),
                call_type: CallType::Video
            })
        );
        assert_eq!(
            p("  CALL bob audio "),
            Some(Command::Call {
                user: "bob".into(),
                call_type: CallType::Audio
            })
        );
        assert_eq!(p("accept"), Some(Command::Accept));
        assert_eq!(p("reject"), Some(Command::Reject(None)));
        assert_eq!(
            p("reject in a meeting"),
            Some(Command::Reject(Some("in a meeting".into())))
        );
        assert_eq!(p("cancel"), Some(Command::Cancel));
        assert_eq!(
            p("hangup bye now"),
            Some(Command::Hangup(Some("bye now".into())))
        );
        assert_eq!(p("dtmf 1 2 #"), Some(Command::Dtmf("12#".into())));
        assert_eq!(
            p("msg hello there"),
            Some(Command::Msg("hello there".into()))
        );
        assert_eq!(p("status"), Some(Command::Status));
        assert_eq!(p("help"), Some(Command::Help));
        assert_eq!(p("quit"), Some(Command::Quit));
        assert_eq!(p(""), None);
        assert_eq!(p("# a comment"), None);
    }

    #[test]
    fn parses_group_commands() {
        assert_eq!(
            p("call bob carol"),
            Some(Command::CallGroup {
                users: names(&["bob", "carol"]),
                call_type: CallType::Video
            })
        );
        assert_eq!(
            p("call bob carol dave Audio"),
            Some(Command::CallGroup {
                users: names(&["bob", "carol", "dave"]),
                call_type: CallType::Audio
            })
        );
        // The first word is a user even when it reads like a call type.
        assert_eq!(
            p("call audio"),
            Some(Command::Call {
                user: "audio".into(),
                call_type: CallType::Video
            })
        );
        assert_eq!(p("invite dave"), Some(Command::Invite(names(&["dave"]))));
        assert_eq!(
            p("invite dave erin"),
            Some(Command::Invite(names(&["dave", "erin"])))
        );
        assert_eq!(p("leave"), Some(Command::Leave(None)));
        assert_eq!(
            p("leave see you"),
            Some(Command::Leave(Some("see you".into())))
        );
        assert_eq!(p("end"), Some(Command::End(None)));
        assert_eq!(
            p("end that's all"),
            Some(Command::End(Some("that's all".into())))
        );
        let id = CallId::from_random_bytes([3; 16]);
        assert_eq!(p(&format!("join {id}")), Some(Command::Join(id)));
        assert_eq!(p("members"), Some(Command::Members));
        assert_eq!(p("counters"), Some(Command::Counters));
    }

    #[test]
    fn refuses_bad_lines() {
        for bad in [
            "call",
            "call bob bob",
            "call bob carol bob audio",
            "invite",
            "invite dave dave",
            "join",
            "join 42",
            "join a b",
            "dtmf",
            "msg   ",
            "dance",
        ] {
            assert!(Command::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            Command::parse("call bob bob").unwrap_err(),
            "call: usage: call <user> [<user>...] [audio|video]: bob is named twice"
        );
    }
}
