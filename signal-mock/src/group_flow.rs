//! [`group_call_through`]: one whole three-user group call between `CallApi`s, whatever
//! backend links them — what the group tests over signal-mock, a real callapi-signal-server and
//! a real Mosquitto all run.

use std::time::Duration;

use callapi_core::call::{CallState, Notification, PrepareConfig, StateReason};
use callapi_core::protocol::{CallType, MemberState};
use callapi_core::{CallApi, NotificationStream};

use crate::wait::{next_matching, CallFlowError, WaitError};

/// Runs a three-user group call and checks every step on every device:
///
/// 1. all three prepare; `alice` calls `bob` and `carol` at once; both ring;
/// 2. `bob` accepts: `alice` and `bob` are `Connected`, `carol` still rings;
/// 3. `carol` declines: she is `rejected` in `alice`'s and `bob`'s rosters, the call goes on;
/// 4. `bob` invites `carol` again mid-call; she rings, accepts and is `Connected`; all three
///    rosters show all three `accepted`;
/// 5. `carol` leaves: `left` for the others, who stay `Connected`;
/// 6. `alice` ends the call for everyone: `bob` ends with `CallEnded`, `alice` with
///    `LocalHangup`.
///
/// Each wait is bounded by `within`. Errors name the step.
pub async fn group_call_through(
    alice: &CallApi,
    bob: &CallApi,
    carol: &CallApi,
    within: Duration,
) -> Result<(), CallFlowError> {
    let api = |stage| move |source| CallFlowError::Api { stage, source };
    let (mut a, mut b, mut c) = (alice.subscribe(), bob.subscribe(), carol.subscribe());
    for phone in [alice, bob, carol] {
        phone
            .prepare(PrepareConfig::new(format!("{}-room", phone.user_id())))
            .await
            .map_err(api("prepare"))?;
    }
    let (bob_id, carol_id) = (bob.user_id().as_str(), carol.user_id().as_str());
    alice
        .call_group(&[bob_id, carol_id], CallType::Audio)
        .await
        .map_err(api("call_group"))?;
    state(&mut b, within, "bob rings", CallState::Calling).await?;
    state(&mut c, within, "carol rings", CallState::Calling).await?;

    bob.accept().await.map_err(api("bob accepts"))?;
    state(&mut a, within, "alice connected", CallState::Connected).await?;
    state(&mut b, within, "bob connected", CallState::Connected).await?;

    carol
        .reject(Some("not now".into()))
        .await
        .map_err(api("carol declines"))?;
    state(&mut c, within, "carol declined", CallState::Prepared).await?;
    for s in [&mut a, &mut b] {
        member(s, within, "carol rejected", carol_id, MemberState::Rejected).await?;
    }
    expect_state(alice, CallState::Connected, "the call goes on (alice)")?;
    expect_state(bob, CallState::Connected, "the call goes on (bob)")?;

    bob.invite(&[carol_id])
        .await
        .map_err(api("bob invites carol"))?;
    state(&mut c, within, "carol rings again", CallState::Calling).await?;
    carol.accept().await.map_err(api("carol accepts"))?;
    state(&mut c, within, "carol connected", CallState::Connected).await?;
    for s in [&mut a, &mut b] {
        member(s, within, "carol in", carol_id, MemberState::Accepted).await?;
    }
    for (phone, stage) in [(alice, "alice"), (bob, "bob"), (carol, "carol")] {
        let members = phone.members().await.map_err(api("members"))?;
        let all_in = members.len() == 3 && members.iter().all(|m| m.state == MemberState::Accepted);
        if !all_in {
            return Err(wrong(
                stage,
                format!("roster is not all three in: {members:?}"),
            ));
        }
    }

    carol.leave(None).await.map_err(api("carol leaves"))?;
    state(&mut c, within, "carol left", CallState::Prepared).await?;
    for s in [&mut a, &mut b] {
        member(s, within, "carol left", carol_id, MemberState::Left).await?;
    }
    expect_state(alice, CallState::Connected, "alice stays")?;
    expect_state(bob, CallState::Connected, "bob stays")?;

    alice.end(None).await.map_err(api("alice ends"))?;
    let ended = next_matching(
        &mut b,
        within,
        |_| {},
        |n| matches!(n, Notification::StateChanged(ch) if ch.state == CallState::Prepared),
    )
    .await
    .map_err(|source| CallFlowError::Wait {
        stage: "bob's call ends",
        source,
    })?;
    if !matches!(&ended, Notification::StateChanged(ch) if ch.reason == StateReason::CallEnded) {
        return Err(wrong("bob's call ends", format!("{ended:?}")));
    }
    expect_state(alice, CallState::Prepared, "alice ended")?;
    Ok(())
}

fn wrong(stage: &'static str, what: String) -> CallFlowError {
    CallFlowError::Unexpected { stage, what }
}

fn expect_state(
    phone: &CallApi,
    want: CallState,
    stage: &'static str,
) -> Result<(), CallFlowError> {
    let got = phone.state();
    if got == want {
        Ok(())
    } else {
        Err(wrong(stage, format!("state {got:?}, expected {want:?}")))
    }
}

async fn state(
    stream: &mut NotificationStream,
    within: Duration,
    stage: &'static str,
    want: CallState,
) -> Result<(), CallFlowError> {
    next_matching(
        stream,
        within,
        |_| {},
        |n| matches!(n, Notification::StateChanged(c) if c.state == want),
    )
    .await
    .map(|_| ())
    .map_err(|source| CallFlowError::Wait { stage, source })
}

async fn member(
    stream: &mut NotificationStream,
    within: Duration,
    stage: &'static str,
    user: &str,
    want: MemberState,
) -> Result<(), CallFlowError> {
    next_matching(
        stream,
        within,
        |_| {},
        |n| {
            matches!(n, Notification::MemberChanged { change, .. }
            if change.user.as_str() == user && change.state == want)
        },
    )
    .await
    .map(|_| ())
    .map_err(|source: WaitError| CallFlowError::Wait { stage, source })
}
