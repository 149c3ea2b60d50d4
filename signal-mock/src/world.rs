//! [`SimWorld`]: bare [`CallMachine`]s wired to a [`SimNetwork`], stepped on a virtual clock.
//!
//! Everything is deterministic: the same seed, fault plan and actions give the same run, event
//! for event, so a failing scenario replays from its seed.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use callapi_core::call::{
    CallConfig, CallMachine, CallState, Command, CommandError, Input, LinkCommand, MediaCommand,
    Notification, Output,
};
use callapi_core::media::{MediaEvent, MediaKind, MediaPeer};
use callapi_core::protocol::{CallId, CallType, DeviceId, Envelope, Extension, UserId};

use crate::fault::FaultPlan;
use crate::sim::SimNetwork;

/// Wall-clock anchor shared by the network and every machine of a world.
pub const SIM_UNIX_MS: u64 = 1_700_000_000_000;

/// Index of a device in a [`SimWorld`].
pub type DeviceIndex = usize;

/// How the simulated media of a device behaves (a stand-in for a real engine).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimMedia {
    /// After a join, `LocalJoined` follows after this delay.
    pub join_delay: Duration,
    /// After a join, the first remote frame follows after this delay (`None`: never).
    pub first_frame_delay: Option<Duration>,
    /// The join fails.
    pub fail_join: bool,
}

impl Default for SimMedia {
    fn default() -> Self {
        Self {
            join_delay: Duration::from_millis(20),
            first_frame_delay: Some(Duration::from_millis(80)),
            fail_join: false,
        }
    }
}

/// One simulated device: its machine and everything it reported.
#[derive(Debug)]
pub struct SimDevice {
    /// The user.
    pub user: UserId,
    /// The device.
    pub device: DeviceId,
    /// The call machine.
    pub machine: CallMachine,
    /// Every notification, in order, with the virtual time it was produced.
    pub notifications: Vec<(Duration, Notification)>,
    /// Every media command, in order.
    pub media_commands: Vec<MediaCommand>,
    /// Every envelope sent.
    pub sent: Vec<Envelope>,
    /// Every link command of the machine (pause, resume, disconnect), with the virtual time.
    /// The world performs them: pause and disconnect take the device offline (its link goes
    /// `Disconnected`), resume brings it back (`Connected`).
    pub link_commands: Vec<(Duration, LinkCommand)>,
    /// Simulated media behaviour; `None` means the machine runs without media (`NoMedia`).
    pub media: Option<SimMedia>,
}

impl SimDevice {
    /// The states this device went through, with their reasons.
    pub fn states(&self) -> Vec<(CallState, callapi_core::call::StateReason)> {
        self.notifications
            .iter()
            .filter_map(|(_, n)| match n {
                Notification::StateChanged(c) => Some((c.state, c.reason)),
                _ => None,
            })
            .collect()
    }

    /// The events this device reported.
    pub fn events(&self) -> Vec<callapi_core::call::CallEvent> {
        self.notifications
            .iter()
            .filter_map(|(_, n)| match n {
                Notification::Event(e) => Some(e.event),
                _ => None,
            })
            .collect()
    }
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Scheduled {
    at: Instant,
    seq: u64,
    device: DeviceIndex,
    what: ScheduledKind,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum ScheduledKind {
    LocalJoined(callapi_core::protocol::CallId),
    FirstFrame(callapi_core::protocol::CallId, bool),
    /// A step of one peer connection of a group call's simulated mesh.
    Peer {
        call_id: callapi_core::protocol::CallId,
        peer: MediaPeer,
        generation: u64,
        step: PeerStep,
    },
}

/// What a simulated mesh connection does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum PeerStep {
    /// The offerer's offer goes out.
    Offer,
    /// The answerer's answer goes out.
    Answer,
    /// Both descriptions are in: the peer's media is present.
    Joined,
    /// The peer's first frame (video or audio).
    FirstFrame(bool),
}

/// One connection of a device's simulated mesh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SimPeer {
    offerer: bool,
    generation: u64,
    video: bool,
    /// The remote description arrived (offer for the answerer, answer for the offerer).
    described: bool,
}

/// Call machines on a simulated network, stepped by hand on a virtual clock.
#[derive(Debug)]
pub struct SimWorld {
    /// The network.
    pub net: SimNetwork,
    /// The devices, by [`DeviceIndex`].
    pub devices: Vec<SimDevice>,
    start: Instant,
    now: Instant,
    seed: u64,
    scheduled: BinaryHeap<Reverse<Scheduled>>,
    seq: u64,
    active_media: Vec<(DeviceIndex, callapi_core::protocol::CallId)>,
    /// Group calls joined, with whether they are video calls.
    group_media: Vec<(DeviceIndex, callapi_core::protocol::CallId, bool)>,
    /// The simulated mesh connections of every device.
    mesh: std::collections::HashMap<
        (DeviceIndex, callapi_core::protocol::CallId, MediaPeer),
        SimPeer,
    >,
    generation: u64,
}

impl SimWorld {
    /// An empty world whose network draws faults from `seed`.
    pub fn new(seed: u64, plan: FaultPlan) -> Self {
        let start = Instant::now();
        Self {
            net: SimNetwork::new(seed, plan, start),
            devices: Vec::new(),
            start,
            now: start,
            seed,
            scheduled: BinaryHeap::new(),
            seq: 0,
            active_media: Vec::new(),
            group_media: Vec::new(),
            mesh: std::collections::HashMap::new(),
            generation: 0,
        }
    }

    /// Adds an online device with default settings and the given media behaviour.
    ///
    /// # Panics
    /// If `user` or `device` is not a valid id (this is a test tool).
    #[allow(clippy::expect_used)]
    pub fn add_device(&mut self, user: &str, device: &str, media: Option<SimMedia>) -> DeviceIndex {
        let user = UserId::new(user).expect("valid user id");
        let device = DeviceId::new(device).expect("valid device id");
        let index = self.devices.len() as u64;
        let cfg = CallConfig::new(user.clone(), device.clone())
            .with_seed(self.seed.wrapping_mul(31).wrapping_add(index + 1));
        self.add_device_with(cfg, media)
    }

    /// Adds an online device with a custom configuration.
    pub fn add_device_with(&mut self, cfg: CallConfig, media: Option<SimMedia>) -> DeviceIndex {
        let (user, device) = (cfg.user_id.clone(), cfg.device_id.clone());
        let mut machine = CallMachine::new(cfg, self.start, SIM_UNIX_MS);
        machine.set_reports_frames(media.is_some());
        self.net.add_device(user.clone(), device.clone());
        self.devices.push(SimDevice {
            user,
            device,
            machine,
            notifications: Vec::new(),
            media_commands: Vec::new(),
            sent: Vec::new(),
            link_commands: Vec::new(),
            media,
        });
        self.devices.len() - 1
    }

    /// The virtual time now.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Virtual time elapsed since the world began.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// The device at `index`.
    pub fn device(&self, index: DeviceIndex) -> &SimDevice {
        &self.devices[index]
    }

    /// Runs a command on a device now.
    pub fn command(&mut self, index: DeviceIndex, cmd: Command) -> Result<(), CommandError> {
        let now = self.now;
        let result = self.devices[index].machine.handle_command(cmd, now);
        self.drain(index);
        result
    }

    /// Prepares a device with default settings in room `"{user}-room"`.
    pub fn prepare_default(&mut self, index: DeviceIndex) -> Result<(), CommandError> {
        let room = format!("{}-room", self.devices[index].user);
        self.command(
            index,
            Command::Prepare(callapi_core::call::PrepareConfig::new(room)),
        )
    }

    /// Places a call from device `index` to `remote` and answers its id.
    #[allow(clippy::expect_used)]
    pub fn call(
        &mut self,
        index: DeviceIndex,
        remote: &str,
        call_type: CallType,
    ) -> Result<CallId, CommandError> {
        self.call_with_extension(index, remote, call_type, Extension::new())
    }

    /// Places a call with extension data (merged over the prepare extension).
    #[allow(clippy::expect_used)]
    pub fn call_with_extension(
        &mut self,
        index: DeviceIndex,
        remote: &str,
        call_type: CallType,
        extension: Extension,
    ) -> Result<CallId, CommandError> {
        let remote = UserId::new(remote).expect("valid user id");
        let now = self.now;
        let result = self.devices[index]
            .machine
            .call(remote, call_type, extension, now);
        self.drain(index);
        result
    }

    /// Places a group call from device `index` to `users` and answers its id.
    #[allow(clippy::expect_used)]
    pub fn call_group(
        &mut self,
        index: DeviceIndex,
        users: &[&str],
        call_type: CallType,
    ) -> Result<CallId, CommandError> {
        let users = users
            .iter()
            .map(|u| UserId::new(*u).expect("valid user id"))
            .collect();
        let now = self.now;
        let result =
            self.devices[index]
                .machine
                .call_group(users, call_type, Extension::new(), now);
        self.drain(index);
        result
    }

    /// Invites `users` into the group call of device `index`.
    #[allow(clippy::expect_used)]
    pub fn invite(&mut self, index: DeviceIndex, users: &[&str]) -> Result<(), CommandError> {
        let users = users
            .iter()
            .map(|u| UserId::new(*u).expect("valid user id"))
            .collect();
        self.command(index, Command::Invite { users })
    }

    /// The member changes device `index` was told about, in order.
    pub fn member_changes(&self, index: DeviceIndex) -> Vec<callapi_core::call::MemberChange> {
        self.devices[index]
            .notifications
            .iter()
            .filter_map(|(_, n)| match n {
                Notification::MemberChanged { change, .. } => Some(change.clone()),
                _ => None,
            })
            .collect()
    }

    /// Device `index`'s roster of its group call, as `(user, state)` pairs; empty when it is in
    /// no group call.
    pub fn roster(&self, index: DeviceIndex) -> Vec<(String, callapi_core::protocol::MemberState)> {
        self.devices[index]
            .machine
            .members()
            .map(|r| r.iter().map(|m| (m.user.to_string(), m.state)).collect())
            .unwrap_or_default()
    }

    /// Feeds a media event to a device now.
    pub fn media_event(&mut self, index: DeviceIndex, event: MediaEvent) {
        let now = self.now;
        self.devices[index]
            .machine
            .handle_input(Input::Media(event), now);
        self.drain(index);
    }

    /// Takes a device on- or offline (a link change on its machine, too).
    pub fn set_online(&mut self, index: DeviceIndex, online: bool) {
        let state = if online {
            callapi_core::signal::LinkState::Connected
        } else {
            callapi_core::signal::LinkState::Reconnecting {
                attempt: 1,
                next_in: Duration::ZERO,
            }
        };
        self.set_link(index, online, state);
        self.drain(index);
    }

    /// Takes the device on- or offline in the network and tells its machine `state`.
    fn set_link(
        &mut self,
        index: DeviceIndex,
        online: bool,
        state: callapi_core::signal::LinkState,
    ) {
        let now = self.now;
        let d = &mut self.devices[index];
        self.net
            .set_online(d.user.clone(), d.device.clone(), online, now);
        d.machine.handle_input(Input::Link(state), now);
    }

    /// Feeds a link state change to a device's machine now (the network is not touched; see
    /// [`set_online`](Self::set_online) for that).
    pub fn link_event(&mut self, index: DeviceIndex, state: callapi_core::signal::LinkState) {
        let now = self.now;
        self.devices[index]
            .machine
            .handle_input(Input::Link(state), now);
        self.drain(index);
    }

    fn drain(&mut self, index: DeviceIndex) {
        let now = self.now;
        let elapsed = now - self.start;
        while let Some(out) = self.devices[index].machine.poll_output() {
            match out {
                Output::Send(env) => {
                    self.devices[index].sent.push(env.clone());
                    self.net.send(env, now);
                }
                Output::Media(cmd) => self.on_media_command(index, cmd),
                Output::Notify(n) => self.devices[index].notifications.push((elapsed, n)),
                Output::Link(cmd) => {
                    self.devices[index].link_commands.push((elapsed, cmd));
                    let online = matches!(cmd, LinkCommand::Resume);
                    let state = if online {
                        callapi_core::signal::LinkState::Connected
                    } else {
                        callapi_core::signal::LinkState::Disconnected
                    };
                    self.set_link(index, online, state);
                }
            }
        }
    }

    fn schedule(&mut self, at: Instant, device: DeviceIndex, what: ScheduledKind) {
        self.seq += 1;
        self.scheduled.push(Reverse(Scheduled {
            at,
            seq: self.seq,
            device,
            what,
        }));
    }

    fn on_media_command(&mut self, index: DeviceIndex, cmd: MediaCommand) {
        self.devices[index].media_commands.push(cmd.clone());
        let Some(media) = self.devices[index].media else {
            return;
        };
        let now = self.now;
        match cmd {
            MediaCommand::Join(req) => {
                if media.fail_join {
                    self.devices[index].machine.handle_input(
                        Input::MediaJoinFailed {
                            call_id: req.call_id,
                            message: "simulated join failure".into(),
                        },
                        now,
                    );
                    return;
                }
                self.active_media.push((index, req.call_id));
                self.schedule(
                    now + media.join_delay,
                    index,
                    ScheduledKind::LocalJoined(req.call_id),
                );
                if req.group {
                    let video = req.call_type == CallType::Video;
                    self.group_media.push((index, req.call_id, video));
                    return;
                }
                if let Some(delay) = media.first_frame_delay {
                    let video = req.call_type == CallType::Video;
                    self.schedule(
                        now + delay,
                        index,
                        ScheduledKind::FirstFrame(req.call_id, video),
                    );
                }
            }
            MediaCommand::Leave { call_id } => {
                self.active_media
                    .retain(|(d, c)| !(*d == index && *c == call_id));
                self.group_media
                    .retain(|(d, c, _)| !(*d == index && *c == call_id));
                self.mesh
                    .retain(|(d, c, _), _| !(*d == index && *c == call_id));
            }
            MediaCommand::AddPeer {
                call_id,
                peer,
                offerer,
            } => {
                let Some(video) = self
                    .group_media
                    .iter()
                    .find(|(d, c, _)| *d == index && *c == call_id)
                    .map(|(_, _, v)| *v)
                else {
                    return;
                };
                self.generation += 1;
                let generation = self.generation;
                self.mesh.insert(
                    (index, call_id, peer.clone()),
                    SimPeer {
                        offerer,
                        generation,
                        video,
                        described: false,
                    },
                );
                if offerer {
                    self.schedule_peer(
                        index,
                        call_id,
                        peer,
                        generation,
                        PeerStep::Offer,
                        now + media.join_delay,
                    );
                }
            }
            MediaCommand::RemovePeer { call_id, peer } => {
                self.mesh.remove(&(index, call_id, peer));
            }
            MediaCommand::PeerSignal {
                call_id,
                peer,
                payload,
            } => {
                let key = (index, call_id, peer);
                let Some(p) = self.mesh.get_mut(&key) else {
                    return;
                };
                let expected = if p.offerer { "answer" } else { "offer" };
                if payload.get("sdp").and_then(|v| v.as_str()) != Some(expected) || p.described {
                    return;
                }
                p.described = true;
                let p = *p;
                let (_, call_id, peer) = key;
                if !p.offerer {
                    self.schedule_peer(
                        index,
                        call_id,
                        peer.clone(),
                        p.generation,
                        PeerStep::Answer,
                        now,
                    );
                }
                self.schedule_peer(
                    index,
                    call_id,
                    peer.clone(),
                    p.generation,
                    PeerStep::Joined,
                    now + media.join_delay,
                );
                if let Some(delay) = media.first_frame_delay {
                    self.schedule_peer(
                        index,
                        call_id,
                        peer,
                        p.generation,
                        PeerStep::FirstFrame(p.video),
                        now + delay,
                    );
                }
            }
            MediaCommand::UpdatePlan { .. } | MediaCommand::RemoteSignal { .. } => {}
        }
    }

    fn schedule_peer(
        &mut self,
        index: DeviceIndex,
        call_id: callapi_core::protocol::CallId,
        peer: MediaPeer,
        generation: u64,
        step: PeerStep,
        at: Instant,
    ) {
        self.schedule(
            at,
            index,
            ScheduledKind::Peer {
                call_id,
                peer,
                generation,
                step,
            },
        );
    }

    /// The event of a mesh step, if its connection still exists.
    fn peer_event(
        &self,
        device: DeviceIndex,
        call_id: callapi_core::protocol::CallId,
        peer: MediaPeer,
        generation: u64,
        step: PeerStep,
    ) -> Option<MediaEvent> {
        let live = self
            .mesh
            .get(&(device, call_id, peer.clone()))
            .is_some_and(|p| p.generation == generation);
        if !live {
            return None;
        }
        Some(match step {
            PeerStep::Offer => MediaEvent::PeerSignal {
                call_id,
                peer,
                payload: serde_json::json!({ "sdp": "offer" }),
            },
            PeerStep::Answer => MediaEvent::PeerSignal {
                call_id,
                peer,
                payload: serde_json::json!({ "sdp": "answer" }),
            },
            PeerStep::Joined => MediaEvent::PeerJoined { call_id, peer },
            PeerStep::FirstFrame(video) => MediaEvent::PeerFirstFrame {
                call_id,
                peer,
                kind: if video {
                    MediaKind::Video
                } else {
                    MediaKind::Audio
                },
            },
        })
    }

    /// The next instant anything happens (a delivery, a timer, a media event).
    pub fn next_event_at(&self) -> Option<Instant> {
        let timers = self
            .devices
            .iter()
            .filter_map(|d| d.machine.poll_timeout())
            .min();
        let media = self.scheduled.peek().map(|Reverse(s)| s.at);
        [self.net.next_delivery_at(), timers, media]
            .into_iter()
            .flatten()
            .min()
    }

    /// Processes everything due up to `until`, in time order, and moves the clock there.
    pub fn run_until(&mut self, until: Instant) {
        while let Some(at) = self.next_event_at() {
            if at > until {
                break;
            }
            self.now = self.now.max(at);
            self.step_now();
        }
        self.now = self.now.max(until);
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    /// Runs until nothing is left to happen or `limit` of virtual time passed. Returns whether
    /// the world went quiet.
    pub fn run_until_quiet(&mut self, limit: Duration) -> bool {
        let until = self.now + limit;
        self.run_until(until);
        self.next_event_at().is_none()
    }

    fn step_now(&mut self) {
        let now = self.now;
        while let Some(delivery) = self.net.poll_delivery(now) {
            if let Some(i) = self
                .devices
                .iter()
                .position(|d| d.user == delivery.user && d.device == delivery.device)
            {
                self.devices[i]
                    .machine
                    .handle_input(Input::Envelope(delivery.envelope), now);
                self.drain(i);
            }
        }
        while self.scheduled.peek().is_some_and(|Reverse(s)| s.at <= now) {
            let Some(Reverse(s)) = self.scheduled.pop() else {
                break;
            };
            let (call_id, event) = match s.what {
                ScheduledKind::Peer {
                    call_id,
                    peer,
                    generation,
                    step,
                } => {
                    if let Some(event) = self.peer_event(s.device, call_id, peer, generation, step)
                    {
                        self.media_event(s.device, event);
                    }
                    continue;
                }
                ScheduledKind::LocalJoined(call_id) => {
                    (call_id, MediaEvent::LocalJoined { call_id })
                }
                ScheduledKind::FirstFrame(call_id, video) => (
                    call_id,
                    MediaEvent::FirstRemoteFrame {
                        call_id,
                        kind: if video {
                            MediaKind::Video
                        } else {
                            MediaKind::Audio
                        },
                    },
                ),
            };
            if self.active_media.contains(&(s.device, call_id)) {
                self.media_event(s.device, event);
            }
        }
        for i in 0..self.devices.len() {
            if self.devices[i]
                .machine
                .poll_timeout()
                .is_some_and(|t| t <= now)
            {
                self.devices[i].machine.handle_timeout(now);
                self.drain(i);
            }
        }
    }
}
