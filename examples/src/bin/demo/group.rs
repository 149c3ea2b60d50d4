//! The group demo (`--group bob,carol [--add dave] [--leave carol]`): alice calls several users
//! at once; each accepts when it rings; the media is a WebRTC full mesh. Once everyone is in,
//! bob (the first invitee) invites the `--add` users mid-call; after they are in, the `--leave`
//! members quit while the others stay; alice then ends the call for everyone. Prints every
//! member's state, member and media changes as they happen, and a media table per pair.

use std::time::Duration;

use callapi_core::call::{CallState, PeerMediaEvent, PrepareConfig, StateReason};
use callapi_core::media::MediaKind;
use callapi_core::protocol::CallType;

use crate::args::Args;
use crate::backend::Backend;
use crate::error::{ApiContext, DemoError};
use crate::media::{MediaChoice, MediaFactory};
use crate::progress::Progress;
use crate::report::{pair_table, Echo};
use crate::side::Side;

/// The call's number in errors (one call).
const CALL: u32 = 1;

/// A device name for `user`, as in the 1:1 demo.
fn device_of(user: &str) -> String {
    if user == "alice" {
        "alice-laptop".to_owned()
    } else {
        format!("{user}-phone")
    }
}

fn side_mut<'a>(sides: &'a mut [Side], name: &str) -> Result<&'a mut Side, DemoError> {
    sides
        .iter_mut()
        .find(|s| s.name == name)
        .ok_or_else(|| DemoError::Setup(format!("no device for {name}")))
}

/// Waits until each of `who` got its first frame (video, or audio in an audio-only call)
/// from each of `from`.
async fn media_between(
    sides: &mut [Side],
    who: &[String],
    from: &[String],
    kind: MediaKind,
) -> Result<(), DemoError> {
    for w in who {
        let others: Vec<&str> = from
            .iter()
            .filter(|f| *f != w)
            .map(String::as_str)
            .collect();
        side_mut(sides, w)?
            .until_peers(CALL, &others, PeerMediaEvent::FirstFrame(kind))
            .await?;
    }
    Ok(())
}

/// Runs the group demo; `Ok` means every member got in, media flowed between every pair that
/// was in the call together, and the call ended for everyone.
pub async fn run(args: &Args, progress: &Progress) -> Result<(), DemoError> {
    let call_type = if args.audio_only {
        CallType::Audio
    } else {
        CallType::Video
    };
    let kind = if args.audio_only {
        MediaKind::Audio
    } else {
        MediaKind::Video
    };
    let with_media = args.media == MediaChoice::Webrtc;
    let media = MediaFactory::new(args.media);
    progress.phase("starting the signaling backend");
    let backend = Backend::start(args).await?;

    let invitees: Vec<String> = args.group.clone();
    let added: Vec<String> = args.add.clone();
    progress.line(format!(
        "callapi demo — alice calls {} in a group call{}{}",
        invitees.join(", "),
        if added.is_empty() {
            String::new()
        } else {
            format!(", {} invites {} mid-call", invitees[0], added.join(", "))
        },
        if args.leave.is_empty() {
            String::new()
        } else {
            format!(
                ", {} leave{} mid-call",
                args.leave.join(", "),
                if args.leave.len() == 1 { "s" } else { "" }
            )
        }
    ));
    progress.line(format!("  signaling  {}", backend.description));
    progress.line(format!(
        "  media      {} (a full mesh: one peer connection per pair)",
        media.describe()
    ));

    let echo = Echo::new(progress.clone());
    let names: Vec<String> = std::iter::once("alice".to_owned())
        .chain(invitees.iter().cloned())
        .chain(added.iter().cloned())
        .collect();
    let mut sides = Vec::new();
    let mut links = Vec::new();
    for name in &names {
        // The printer and the side keep the name for the process's life: a handful of users.
        let name: &'static str = Box::leak(name.clone().into_boxed_str());
        let (side, link) = Side::start(name, &device_of(name), &backend, &media, &echo)?;
        sides.push(side);
        links.push((name, link));
    }
    progress.phase("connecting every device to the signaling backend");
    for (name, link) in links {
        link.connected(name).await?;
    }
    echo.stamped(format!("{} devices connected", names.len()));
    for side in &mut sides {
        side.api
            .prepare(PrepareConfig::new(format!("{}-room", side.name)))
            .await
            .ctx(side.name, "prepare")?;
        side.until(CALL, CallState::Prepared).await?;
    }

    // 1. alice calls the group.
    echo.restart_clock();
    echo.stamped(format!(
        "alice calls {} ({} group call)",
        invitees.join(", "),
        callapi_examples::call_type_name(call_type)
    ));
    let refs: Vec<&str> = invitees.iter().map(String::as_str).collect();
    let call_id = side_mut(&mut sides, "alice")?
        .api
        .call_group(&refs, call_type)
        .await
        .ctx("alice", "call_group")?;
    answer(&mut sides, &invitees, args.answer_after(), progress).await?;
    side_mut(&mut sides, "alice")?
        .until(CALL, CallState::Connected)
        .await?;
    let mut in_call: Vec<String> = std::iter::once("alice".to_owned())
        .chain(invitees.iter().cloned())
        .collect();
    if with_media {
        progress.phase("first frames across the mesh");
        media_between(&mut sides, &in_call, &in_call, kind).await?;
        echo.stamped(format!("media flows between all {} members", in_call.len()));
    }

    // 2. bob invites more mid-call.
    if !added.is_empty() {
        let inviter = invitees[0].clone();
        echo.stamped(format!("{inviter} invites {}", added.join(", ")));
        let refs: Vec<&str> = added.iter().map(String::as_str).collect();
        side_mut(&mut sides, &inviter)?
            .api
            .invite(&refs)
            .await
            .ctx("inviter", "invite")?;
        answer(&mut sides, &added, args.answer_after(), progress).await?;
        if with_media {
            progress.phase("first frames with the new members");
            let everyone: Vec<String> = in_call.iter().chain(&added).cloned().collect();
            media_between(&mut sides, &added, &everyone, kind).await?;
            media_between(&mut sides, &in_call, &added, kind).await?;
            echo.stamped(format!(
                "media flows between all {} members",
                everyone.len()
            ));
        }
        in_call.extend(added.iter().cloned());
    }
    hold(args.hold(), progress).await;

    // 3. Members quit mid-call; the others stay.
    for leaver in &args.leave {
        echo.stamped(format!("{leaver} leaves the call"));
        let side = side_mut(&mut sides, leaver)?;
        side.api
            .leave(Some("demo: leaving".into()))
            .await
            .ctx("leaver", "leave")?;
        side.until(CALL, CallState::Prepared).await?;
        in_call.retain(|u| u != leaver);
        if with_media {
            for u in in_call.clone() {
                side_mut(&mut sides, &u)?
                    .until_peers(CALL, &[leaver.as_str()], PeerMediaEvent::Closed)
                    .await?;
            }
            echo.stamped(format!(
                "{leaver}'s peer connections are closed on every side"
            ));
        }
    }
    if !args.leave.is_empty() {
        hold(args.hold() / 2, progress).await;
    }

    let roster = side_mut(&mut sides, "alice")?
        .api
        .members()
        .await
        .ctx("alice", "members")?;

    // 4. alice ends it for everyone.
    echo.stamped("alice ends the call for everyone");
    side_mut(&mut sides, "alice")?
        .api
        .end(Some("demo done".into()))
        .await
        .ctx("alice", "end")?;
    for u in &in_call {
        let change = side_mut(&mut sides, u)?
            .until(CALL, CallState::Prepared)
            .await?;
        let want = if u == "alice" {
            StateReason::LocalHangup
        } else {
            StateReason::CallEnded
        };
        if u != "alice" && change.reason != want {
            return Err(DemoError::Call {
                call: CALL,
                message: format!("{u} ended with {:?}, expected {want:?}", change.reason),
            });
        }
    }

    progress.line("");
    progress.line(format!(
        "roster of call {call_id} at the end (alice's view)"
    ));
    for m in &roster {
        progress.line(format!(
            "  {:<8} {:<9} seq {:<3} {}",
            m.user.as_str(),
            m.state.as_str(),
            m.seq,
            m.device.as_ref().map(|d| d.as_str()).unwrap_or("")
        ));
    }
    progress.line("");
    let counters: Vec<_> = sides
        .iter()
        .filter_map(|s| s.counters.by_peer().map(|c| (s.name.to_owned(), c)))
        .collect();
    let missing = if with_media {
        let (lines, missing) = pair_table(&counters, call_type == CallType::Video);
        for l in lines {
            progress.line(l);
        }
        missing
    } else {
        progress.line(media.no_counts_reason());
        Vec::new()
    };

    progress.phase("shutting down");
    for side in &sides {
        side.api.shutdown().await.ctx(side.name, "shutdown")?;
    }
    backend.stop().await;
    if !missing.is_empty() {
        return Err(DemoError::Call {
            call: CALL,
            message: format!("no media for {}", missing.join(", ")),
        });
    }
    progress.line("");
    progress.line(format!(
        "demo: OK — group call with {} members connected, {} joined mid-call, {} left, ended \
         for everyone",
        names.len(),
        added.len(),
        args.leave.len()
    ));
    Ok(())
}

/// Each of `users` rings (after `after`, as a person reaching for the phone) and accepts; waits
/// until each is in the call.
async fn answer(
    sides: &mut [Side],
    users: &[String],
    after: Duration,
    progress: &Progress,
) -> Result<(), DemoError> {
    progress.phase(format!("waiting for {} to ring", users.join(", ")));
    for u in users {
        side_mut(sides, u)?.until(CALL, CallState::Calling).await?;
    }
    if !after.is_zero() {
        tokio::time::sleep(after).await;
    }
    for u in users {
        let side = side_mut(sides, u)?;
        side.api.accept().await.ctx(side.name, "accept")?;
    }
    for u in users {
        side_mut(sides, u)?
            .until(CALL, CallState::Connected)
            .await?;
    }
    Ok(())
}

/// Keeps the call up for `d`, media flowing.
async fn hold(d: Duration, progress: &Progress) {
    progress.phase(format!(
        "in the call for {:.1} s, media flowing",
        d.as_secs_f64()
    ));
    tokio::time::sleep(d).await;
}
