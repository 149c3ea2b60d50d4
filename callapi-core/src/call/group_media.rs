//! Group calls' media (`docs/PROTOCOL.md` §10.9): joining the media once this device is in the
//! call, one connection per other member's device in it (the [`Mesh`](super::mesh::Mesh)), the
//! `media` envelopes of each pair with their membership `seq`s, and the engine's per-peer
//! events. A 1:1 call's media is `media_glue.rs`.

use std::time::Instant;

use serde_json::Value;

use crate::media::{JoinRequest, MediaEvent, MediaPeer, MediaPlan, MediaRole};
use crate::protocol::{Body, CallId, CallType, DeviceId, UserId};

use super::io::MediaCommand;
use super::machine::CallMachine;
use super::members::Members;
use super::mesh::{Arrival, MeshPeer};
use super::state::{
    codes, CallErrorEvent, CallEvent, CallState, ErrorCodeType, Notification, PeerMediaEvent,
};

impl CallMachine {
    fn me_as_peer(&self) -> MediaPeer {
        MediaPeer::new(self.cfg.user_id.clone(), self.cfg.device_id.clone())
    }

    /// Brings the group call's media in line with the roster: joins it once this device is in
    /// the call (`Connected` on its own `accepted` record), connects to every other member's
    /// device in the call, disconnects those that left (or joined again), and hands over the
    /// payloads that waited for their peer. Run after every step of the machine; a no-op for
    /// 1:1 calls and when nothing changed.
    pub(super) fn sync_group_media(&mut self) {
        let me = self.me_as_peer();
        let connected = self.state == CallState::Connected;
        let Some(call) = &mut self.call else { return };
        let Some(group) = call.group.as_deref_mut() else {
            return;
        };
        let own = group
            .roster
            .get(&me.user)
            .filter(|m| connected && m.state.is_in_call() && m.device.as_ref() == Some(&me.device))
            .map(|m| m.seq);
        let desired: Vec<MeshPeer> = group
            .roster
            .members_in_call()
            .filter(|m| m.user != me.user)
            .filter_map(|m| {
                m.device.clone().map(|d| MeshPeer {
                    peer: MediaPeer::new(m.user.clone(), d),
                    seq: m.seq,
                })
            })
            .collect();
        let change = group.mesh.sync(own, desired);
        let released = group.mesh.release();
        let creator = group.creator;
        let id = call.id;
        let join = (own.is_some() && !call.media_joined).then(|| {
            call.media_joined = true;
            let video = call.call_type == CallType::Video;
            // In the call: everything is published and played at once.
            call.plan = MediaPlan {
                publish_audio: true,
                publish_video: video,
                subscribe_audio: true,
                subscribe_video: video,
            };
            let remote_user = match &call.members {
                Members::InvitedBy(inviter) => inviter.user.clone(),
                Members::Invited(_) => call.remote_user().clone(),
            };
            JoinRequest {
                call_id: id,
                room_id: call.room_id.clone(),
                role: if creator {
                    MediaRole::Caller
                } else {
                    MediaRole::Callee
                },
                call_type: call.call_type,
                local_user: me.user.clone(),
                remote_user,
                plan: call.plan,
                group: true,
            }
        });
        if let Some(request) = join {
            self.media(MediaCommand::Join(request));
            self.event(CallEvent::JoinMediaStart, Some(id), None);
        }
        for peer in change.removed {
            self.media(MediaCommand::RemovePeer {
                call_id: id,
                peer: peer.clone(),
            });
            self.notify_peer(id, peer, PeerMediaEvent::Closed);
        }
        for peer in change.added {
            let offerer = MediaPeer::offers_to(&me, &peer);
            self.media(MediaCommand::AddPeer {
                call_id: id,
                peer: peer.clone(),
                offerer,
            });
            self.notify_peer(id, peer, PeerMediaEvent::Connecting);
        }
        for (peer, payload) in released {
            self.media(MediaCommand::PeerSignal {
                call_id: id,
                peer,
                payload,
            });
        }
    }

    /// A `media` envelope of the group call from a member's device: handed to the engine if
    /// it belongs to a connection of this mesh, held if it is ahead of this device's roster,
    /// dropped if it belongs to a connection that is over.
    pub(super) fn on_group_media(
        &mut self,
        from: UserId,
        from_device: DeviceId,
        payload: Value,
        tags: (Option<u64>, Option<u64>),
    ) {
        let Some(id) = self.current_id() else { return };
        let (Some(seq), Some(to_seq)) = tags else {
            tracing::debug!(%from, "group media without seq/to_seq ignored");
            return;
        };
        let Some(group) = self.group_mut() else {
            return;
        };
        let peer = MediaPeer::new(from, from_device);
        match group.mesh.arrive(peer, seq, to_seq, payload) {
            (Arrival::Deliver(peer), Some(payload)) => self.media(MediaCommand::PeerSignal {
                call_id: id,
                peer,
                payload,
            }),
            (Arrival::Stale, _) => {
                tracing::debug!(call_id = %id, seq, to_seq, "media of an earlier membership ignored");
            }
            _ => {}
        }
    }

    /// The engine's per-peer events in a group call.
    pub(super) fn on_peer_media(&mut self, ev: MediaEvent, now: Instant) {
        let Some(id) = self.current_id() else { return };
        let (peer, event) = match ev {
            MediaEvent::PeerSignal { peer, payload, .. } => {
                let Some(mesh) = self.group().map(|g| &g.mesh) else {
                    return;
                };
                let (Some(seq), Some(to_seq)) = (mesh.own_seq(), mesh.peer_seq(&peer)) else {
                    // A connection that was closed meanwhile.
                    return;
                };
                let lifetime = self.message_lifetime();
                let body = Body::Media {
                    payload,
                    seq: Some(seq),
                    to_seq: Some(to_seq),
                };
                self.send(peer.user, Some(peer.device), id, body, lifetime, now);
                return;
            }
            MediaEvent::PeerJoined { peer, .. } => (peer, PeerMediaEvent::Joined),
            MediaEvent::PeerFirstFrame { peer, kind, .. } => {
                (peer, PeerMediaEvent::FirstFrame(kind))
            }
            MediaEvent::PeerLeft { peer, .. } => (peer, PeerMediaEvent::Left),
            MediaEvent::PeerFailed { peer, message, .. } => {
                self.error(
                    Some(id),
                    CallErrorEvent::MediaError,
                    ErrorCodeType::Media,
                    codes::PEER_MEDIA_FAILED,
                    format!("media with {peer}: {message}"),
                );
                (peer, PeerMediaEvent::Failed(message))
            }
            _ => return,
        };
        let current = self
            .group()
            .is_some_and(|g| g.mesh.peers().any(|p| p.peer == peer));
        if current {
            self.notify_peer(id, peer, event);
        }
    }

    /// Tells the app about one peer's media, when the engine has media to tell about (with
    /// `NoMedia`, whose media lives elsewhere, the mesh commands go nowhere and say nothing).
    fn notify_peer(&mut self, call_id: CallId, peer: MediaPeer, event: PeerMediaEvent) {
        if self.reports_frames {
            self.notify(Notification::PeerMedia {
                call_id,
                peer,
                event,
            });
        }
    }
}
