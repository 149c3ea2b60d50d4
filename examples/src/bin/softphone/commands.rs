//! The softphone's commands: parsing a line, and carrying it out.

use callapi_core::protocol::CallType;
use callapi_core::signal::LinkState;
use callapi_core::CallApi;
use callapi_examples::{call_type_name, link_name};
use tokio::sync::watch;

use crate::say;

/// One command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `call <user> [audio|video]`
    Call {
        /// Who.
        user: String,
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

/// Whether to go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Read the next command.
    Continue,
    /// Leave.
    Quit,
}

const HELP: &str = "help commands: call <user> [audio|video] | accept | reject [reason] | cancel \
                    | hangup [reason] | dtmf <digits> | msg <text> | status | quit";

fn rest(text: &str) -> Option<String> {
    let t = text.trim();
    (!t.is_empty()).then(|| t.to_owned())
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
            "call" => {
                let mut parts = args.split_whitespace();
                let user = parts
                    .next()
                    .ok_or("call: usage: call <user> [audio|video]")?
                    .to_owned();
                let call_type = match parts.next().map(str::to_ascii_lowercase).as_deref() {
                    None | Some("video") => CallType::Video,
                    Some("audio") => CallType::Audio,
                    Some(other) => {
                        return Err(format!(
                            "call: unknown call type {other:?} (audio or video)"
                        ))
                    }
                };
                if parts.next().is_some() {
                    return Err("call: usage: call <user> [audio|video]".into());
                }
                Command::Call { user, call_type }
            }
            "accept" | "answer" => Command::Accept,
            "reject" | "decline" => Command::Reject(rest(args)),
            "cancel" => Command::Cancel,
            "hangup" | "bye" => Command::Hangup(rest(args)),
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

/// Carries out `cmd`, printing `ok ...` or `error ...`.
pub async fn execute(api: &CallApi, link: &watch::Receiver<LinkState>, cmd: Command) -> Outcome {
    let report = |what: &str, result: Result<(), callapi_core::CallApiError>| match result {
        Ok(()) => say(format!("ok {what}")),
        Err(e) => say(format!("error {what}: {e}")),
    };
    match cmd {
        Command::Call { user, call_type } => match api.call(&user, call_type).await {
            Ok(id) => say(format!(
                "ok call call={id} remote={user} type={}",
                call_type_name(call_type)
            )),
            Err(e) => say(format!("error call: {e}")),
        },
        Command::Accept => report("accept", api.accept().await),
        Command::Reject(reason) => report("reject", api.reject(reason).await),
        Command::Cancel => report("cancel", api.cancel().await),
        Command::Hangup(reason) => report("hangup", api.hangup(reason).await),
        Command::Dtmf(digits) => report("dtmf", api.send_dtmf(&digits).await),
        Command::Msg(text) => report("msg", api.send_message(text).await),
        Command::Status => {
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
            say(line);
        }
        Command::Help => say(HELP),
        Command::Quit => return Outcome::Quit,
    }
    Outcome::Continue
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_every_command() {
        let p = |l: &str| Command::parse(l).unwrap();
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
        assert_eq!(p("quit"), Some(Command::Quit));
        assert_eq!(p(""), None);
        assert_eq!(p("# a comment"), None);
    }

    #[test]
    fn refuses_bad_lines() {
        assert!(Command::parse("call").is_err());
        assert!(Command::parse("call bob fax").is_err());
        assert!(Command::parse("dtmf").is_err());
        assert!(Command::parse("msg   ").is_err());
        assert!(Command::parse("dance").is_err());
    }
}
