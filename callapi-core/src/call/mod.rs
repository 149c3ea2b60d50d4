//! The call model (call flow: `docs/PROTOCOL.md` §8): states, reasons, events, the sans-IO [`CallMachine`] and its
//! reliable-delivery layer.

mod command;
mod config;
mod ended;
mod group;
mod group_invites;
mod group_media;
mod invited;
mod inviter;
mod io;
mod link;
mod machine;
mod media_glue;
mod members;
mod mesh;
mod reliable;
mod roster;
mod session;
mod state;
mod timings;

pub use command::{validate_dtmf, Command, CommandError, MAX_DTMF_DIGITS, MAX_MESSAGE_BYTES};
pub use config::{
    CallConfig, CallPolicy, DefaultPolicy, IncomingInvite, PrepareConfig, Reliability,
    MAX_CALL_TIMEOUT,
};
pub use group::DEFAULT_MAX_INVITEES;
pub use io::{Input, LinkCommand, MediaCommand, Output};
pub use machine::CallMachine;
pub use roster::{MemberChange, MergeOutcome, Roster};
pub use state::{
    codes, CallError, CallErrorEvent, CallEvent, CallInfo, CallState, ErrorCodeType, EventInfo,
    Notification, PeerMediaEvent, StateChange, StateReason,
};
pub use timings::{CallTimings, Milestone};
