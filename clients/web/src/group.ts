/**
 * The group call rules (PROTOCOL §10): the roster and its propagation, inviting (at the start
 * and mid-call, by any member in the call), answering, busy and glare for groups, two inviters
 * of one user, leaving, ending for everyone, joining late, and the media mesh.
 */

import type { Body, CallType, Envelope, MemberRecord, MemberState } from "./envelope.js";
import { idProblem } from "./envelope.js";
import type { JsonObject } from "./json.js";
import type { CallMachine } from "./machine.js";
import type { MediaEvent } from "./media-types.js";
import { Mesh, offersTo } from "./mesh.js";
import { type RecordChange, Roster, isPending, isTerminal } from "./roster.js";
import { BUSY_GRACE_MAX_MS, BUSY_GRACE_MIN_MS, type Call, type Ended, type Invitation, alerting, newInvitation, ringingDevices } from "./session.js";
import type { StateReason } from "./state.js";
import { busyReject, glareWeWin } from "./call.js";
import { InvalidArgumentError, InvalidStateError } from "./errors.js";

/** Others expire a stale pending record this long after its `until_ms` (PROTOCOL §10.1). */
export const EXPIRY_SLACK_MS = 2000;

type Group = NonNullable<Call["group"]>;

function groupOf(m: CallMachine): { c: Call; g: Group } | undefined {
  const c = m.call;
  return c?.group === undefined ? undefined : { c, g: c.group };
}

function notify(m: CallMachine, callId: string, changes: readonly RecordChange[]): void {
  for (const ch of changes) {
    const r = ch.record;
    m.emit({
      type: "member",
      change: {
        callId,
        user: r.user,
        ...(ch.previous !== undefined ? { previous: ch.previous } : {}),
        state: r.state,
        seq: r.seq,
        ...(r.device !== undefined ? { device: r.device } : {}),
        ...(r.reason !== undefined ? { reason: r.reason } : {}),
      },
    });
  }
}

function write(m: CallMachine, user: string, state: MemberState, fields: { device?: string; reason?: string; untilMs?: number }, minSeq = 0): RecordChange | undefined {
  const x = groupOf(m);
  if (x === undefined) return undefined;
  const ch = x.g.roster.write(user, state, fields, minSeq);
  if (ch !== undefined) notify(m, x.c.id, [ch]);
  return ch;
}

function writeExact(m: CallMachine, record: MemberRecord): RecordChange | undefined {
  const x = groupOf(m);
  if (x === undefined) return undefined;
  const ch = x.g.roster.writeExact(record);
  if (ch !== undefined) notify(m, x.c.id, [ch]);
  return ch;
}

function ownInCall(m: CallMachine): boolean {
  const r = m.call?.group?.roster.get(m.user);
  return r !== undefined && r.state === "accepted" && r.device === m.device;
}

function membersBody(g: Group): Body {
  return { kind: "members", members: [...g.roster.records()], ended: g.roster.ended() };
}

/** Sends the roster to `user`/`device`. */
function sendRoster(m: CallMachine, user: string, device: string, now: number): void {
  const x = groupOf(m);
  if (x === undefined) return;
  m.send(user, device, x.c.id, membersBody(x.g), m.messageLifetimeMs, now);
}

/** Sends the roster to every member device in the call but this one and `except`. */
function broadcast(m: CallMachine, now: number, except?: { user: string; device: string }): void {
  const x = groupOf(m);
  if (x === undefined) return;
  for (const r of x.g.roster.inCall()) {
    if (r.user === m.user && r.device === m.device) continue;
    if (except !== undefined && r.user === except.user && r.device === except.device) continue;
    if (r.user === m.user) continue;
    sendRoster(m, r.user, r.device!, now);
  }
}

function checkInvitees(m: CallMachine, users: readonly string[], roster: Roster | undefined, already: number): void {
  if (users.length === 0) throw new InvalidArgumentError("name at least one user to invite");
  const seen = new Set<string>();
  for (const u of users) {
    const p = idProblem(u);
    if (p !== undefined) throw new InvalidArgumentError(`user ${JSON.stringify(u)}: ${p}`);
    if (u === m.user) throw new InvalidArgumentError("cannot invite yourself");
    if (seen.has(u)) throw new InvalidArgumentError(`${u} is named twice`);
    seen.add(u);
    const r = roster?.get(u);
    if (r !== undefined && !isTerminal(r.state)) throw new InvalidArgumentError(`${u} is already ${r.state} in this call: only members who left, declined or missed it can be invited again`);
  }
  if (already + users.length > m.maxInvitees) throw new InvalidArgumentError(`at most ${m.maxInvitees} invitees per call`);
}

/** Places a group call inviting `users`. */
export function placeGroupCall(m: CallMachine, users: readonly string[], callType: CallType, extension: JsonObject, now: number): string {
  const prep = m.guardIdle("call");
  checkInvitees(m, users, undefined, 0);
  const id = m.newId();
  const roster = new Roster();
  roster.write(m.user, "accepted", { device: m.device }, 1);
  const call: Call = {
    id,
    role: "caller",
    callType,
    roomId: prep.roomId,
    extension: { ...prep.extension, ...extension },
    invitations: [],
    accepted: false,
    confirmed: false,
    firstFrame: false,
    firstFrameWait: false,
    mediaJoined: false,
    start: now,
    group: { roster, creator: true, answered: false, joining: false, otherInviters: [], mesh: new Mesh() },
  };
  m.call = call;
  m.event("onCalling", id);
  notify(m, id, roster.records().map((record) => ({ record })));
  m.setState("calling", callType === "video" ? "localVideoCall" : "localAudioCall", undefined, m.infoOf(call));
  inviteMembers(m, users, now);
  return id;
}

/** A member in the call invites more users (PROTOCOL §10.3). */
export function invite(m: CallMachine, users: readonly string[], now: number): void {
  const x = groupOf(m);
  if (x === undefined || !ownInCall(m) || x.g.joining) throw new InvalidStateError("invite", m.state, "only a device in a group call can invite; place a group call with call([users])");
  const pending = x.c.invitations.filter((i) => !i.done).length;
  checkInvitees(m, users, x.g.roster, pending);
  inviteMembers(m, users, now);
}

function inviteMembers(m: CallMachine, users: readonly string[], now: number): void {
  const { c, g } = groupOf(m)!;
  const lifetime = m.prepared !== undefined ? m.inviteLifetime(m.prepared) : 15_000;
  const until = now + lifetime;
  for (const user of users) {
    const ch = write(m, user, "inviting", { untilMs: until });
    const inv: Invitation = { ...newInvitation(user, now), base: ch?.record.seq ?? 1, deadline: until };
    const old = c.invitations.findIndex((i) => i.user === user);
    if (old >= 0) c.invitations.splice(old, 1);
    c.invitations.push(inv);
  }
  for (const user of users) {
    m.send(user, undefined, c.id, { kind: "invite", roomId: c.roomId, callType: c.callType, extension: c.extension, members: [...g.roster.records()] }, lifetime, now);
  }
  broadcast(m, now);
}

/** A group invite arrived. */
export function onGroupInvite(m: CallMachine, env: Envelope, b: Extract<Body, { kind: "invite" }>, now: number): void {
  if (env.from === m.user) return;
  const mine = b.members!.find((r) => r.user === m.user);
  const seq = mine?.seq;
  const c = m.call;
  if (c !== undefined && c.id === env.callId) {
    const g = c.group;
    if (g !== undefined && c.role === "callee" && m.state === "calling" && c.inviter !== undefined && c.inviter.user !== env.from) {
      // Two inviters of one user (PROTOCOL §10.6): ring once, tell this one too.
      g.otherInviters.push({ user: env.from, device: env.fromDevice, ...(seq !== undefined ? { seq } : {}) });
      notify(m, c.id, g.roster.merge(b.members!, false).changes);
      m.send(env.from, env.fromDevice, c.id, { kind: "ringing", group: true, ...(seq !== undefined ? { seq } : {}) }, Math.max(1, env.ts + env.lifetimeMs - now), now);
    }
    return;
  }
  const memo = m.endedCall(env.callId);
  if (memo !== undefined) {
    if (memo.group === undefined && memo.remoteUser === env.from) return; // its cancel came first
    if (memo.group?.cancelSeq !== undefined && seq !== undefined && seq <= memo.group.cancelSeq) return;
  }
  if (glareWeWin(m, env.callId, env.from, now)) return;
  if (m.state !== "prepared" || m.call !== undefined || m.prepared === undefined) {
    busyReject(m, env, seq, now);
    return;
  }
  const remaining = env.ts + env.lifetimeMs - now;
  const roster = new Roster();
  const call: Call = {
    id: env.callId,
    role: "callee",
    callType: b.callType,
    roomId: b.roomId,
    extension: b.extension,
    invitations: [],
    inviter: { user: env.from, device: env.fromDevice, expiry: now + remaining, mediaInbox: [], ...(seq !== undefined ? { seq } : {}) },
    accepted: false,
    confirmed: false,
    firstFrame: false,
    firstFrameWait: false,
    mediaJoined: false,
    deadline: now + remaining,
    start: now,
    group: { roster, creator: false, answered: false, joining: false, otherInviters: [], mesh: new Mesh() },
  };
  m.call = call;
  notify(m, call.id, roster.merge(b.members!, false).changes);
  m.setState("calling", b.callType === "video" ? "remoteVideoCall" : "remoteAudioCall", undefined, m.infoOf(call));
  m.send(env.from, env.fromDevice, call.id, { kind: "ringing", group: true, ...(seq !== undefined ? { seq } : {}) }, Math.max(1, remaining), now);
}

/** The invitee answers. */
export function accept(m: CallMachine, now: number): void {
  const { c } = groupOf(m)!;
  if (c.role !== "callee" || c.inviter === undefined || m.state !== "calling" || c.accepted) throw new InvalidStateError("accept", m.state, "only a ringing call can be accepted");
  const deadline = Math.max(c.inviter.expiry, now) + m.confirmGraceMs;
  c.accepted = true;
  c.deadline = deadline;
  m.event("localAccepted", c.id);
  m.setState("connecting", "localAccepted", undefined, m.infoOf(c));
  const seq = c.inviter.seq;
  m.send(c.inviter.user, c.inviter.device, c.id, { kind: "accept", group: true, ...(seq !== undefined ? { seq } : {}) }, deadline - now, now);
}

/** The invitee declines. */
export function reject(m: CallMachine, reason: string | undefined, now: number): void {
  const { c } = groupOf(m)!;
  if (c.role !== "callee" || c.inviter === undefined || m.state !== "calling") throw new InvalidStateError("reject", m.state, "only a ringing call can be rejected");
  m.event("localRejected", c.id, reason);
  const seq = c.inviter.seq;
  m.send(c.inviter.user, c.inviter.device, c.id, { kind: "reject", ...(reason !== undefined ? { reason } : {}), busy: false, ...(seq !== undefined ? { seq } : {}) }, m.messageLifetimeMs, now);
  finishGroup(m, "localRejected", reason, now);
}

/** Leaves the call (the others go on); a ringing invitee declines, a creator still calling cancels. */
export function leave(m: CallMachine, reason: string | undefined, stateReason: StateReason, now: number): void {
  const x = groupOf(m);
  if (x === undefined) throw new InvalidStateError("leave", m.state, "there is no group call");
  const { c } = x;
  if (c.role === "callee" && m.state === "calling") return reject(m, reason, now);
  if (x.g.joining || (c.role === "callee" && !c.confirmed)) {
    if (c.inviter !== undefined && c.accepted && !c.confirmed) {
      m.send(c.inviter.user, c.inviter.device, c.id, { kind: "reject", ...(reason !== undefined ? { reason } : {}), busy: false, ...(c.inviter.seq !== undefined ? { seq: c.inviter.seq } : {}) }, m.messageLifetimeMs, now);
    }
  }
  const cancelling = stateReason === "localCancelled" || (c.role === "caller" && m.state === "calling");
  m.event(cancelling ? "localCancelled" : "localHangup", c.id, reason);
  cancelOwnInvitations(m, reason, now);
  if (ownInCall(m)) write(m, m.user, "left", { device: m.device, ...(reason !== undefined ? { reason } : {}) });
  broadcast(m, now);
  finishGroup(m, cancelling ? "localCancelled" : "localHangup", reason, now);
}

/** Ends the call for every member (PROTOCOL §10.5). */
export function endForAll(m: CallMachine, reason: string | undefined, now: number): void {
  const x = groupOf(m);
  if (x === undefined || !ownInCall(m)) throw new InvalidStateError("end the call", m.state, "only a member in a group call can end it for everyone");
  x.g.roster.setEnded();
  cancelOwnInvitations(m, reason, now);
  broadcast(m, now);
  m.event("localHangup", x.c.id, reason);
  finishGroup(m, "localHangup", reason, now);
}

/** Joins a group call again (PROTOCOL §10.7). */
export function joinLate(m: CallMachine, callId: string, now: number): void {
  const prep = m.guardIdle("join");
  const memo = m.endedCall(callId);
  if (memo?.group === undefined) throw new InvalidArgumentError(`no group call ${callId} is known here: only a call this device rang for or was in can be joined`);
  const roster = memo.group.roster.clone();
  if (roster.ended()) throw new InvalidStateError("join", m.state, "that call was ended for everyone");
  const mine = roster.get(m.user);
  if (mine !== undefined && !isTerminal(mine.state)) throw new InvalidArgumentError(`your record in that call is ${mine.state}, not one you can join from`);
  const others = roster.inCall().filter((r) => r.user !== m.user);
  if (others.length === 0) throw new InvalidStateError("join", m.state, "nobody is in that call any more");
  const first = others[0]!;
  const call: Call = {
    id: callId,
    role: "callee",
    callType: memo.group.callType,
    roomId: memo.group.roomId,
    extension: {},
    invitations: [],
    inviter: { user: first.user, device: first.device!, expiry: now, mediaInbox: [] },
    accepted: true,
    confirmed: false,
    firstFrame: false,
    firstFrameWait: false,
    mediaJoined: false,
    deadline: now + m.inviteLifetime(prep),
    start: now,
    group: { roster, creator: false, answered: false, joining: true, otherInviters: [], mesh: new Mesh() },
  };
  m.call = call;
  write(m, m.user, "accepted", { device: m.device });
  m.setState("connecting", "localAccepted", undefined, m.infoOf(call));
  broadcast(m, now);
}

/** Sends a message or DTMF to every other member device in the call. */
export function sendToAll(m: CallMachine, body: Body, now: number): void {
  const { c, g } = groupOf(m)!;
  for (const r of g.roster.inCall()) if (r.user !== m.user) m.send(r.user, r.device, c.id, body, m.messageLifetimeMs, now);
}

/** Stops this device's pending invitations (cancel to their devices, record `cancelled`). */
export function cancelOwnInvitations(m: CallMachine, reason: string | undefined, now: number): void {
  const x = groupOf(m);
  if (x === undefined) return;
  for (const inv of x.c.invitations) {
    if (inv.done) continue;
    sendCancel(m, inv, { reason, timeout: false }, now);
    endInvitation(m, inv, "cancelled", reason);
  }
}

function sendCancel(m: CallMachine, inv: Invitation, how: { reason: string | undefined; timeout: boolean }, now: number): void {
  const c = m.call!;
  const body: Body = { kind: "cancel", ...(how.reason !== undefined ? { reason: how.reason } : {}), timeout: how.timeout, ...(inv.base !== undefined ? { seq: inv.base } : {}) };
  const targets = alerting(inv);
  if (targets.length === 0) m.send(inv.user, undefined, c.id, body, m.messageLifetimeMs, now);
  else for (const d of targets) m.send(inv.user, d, c.id, body, m.messageLifetimeMs, now);
}

/** Whether the invitation still owns its member's record (pending, at its base or base+1). */
function ownsRecord(m: CallMachine, inv: Invitation): boolean {
  const r = m.call?.group?.roster.get(inv.user);
  return r !== undefined && isPending(r.state) && inv.base !== undefined && r.seq <= inv.base + 1;
}

function endInvitation(m: CallMachine, inv: Invitation, outcome: MemberState, reason?: string): void {
  inv.done = true;
  inv.outcome = outcome;
  inv.busyUntil = undefined;
  if (ownsRecord(m, inv)) {
    writeExact(m, { user: inv.user, state: outcome, seq: inv.base! + 2, ...(reason !== undefined ? { reason } : {}) });
  }
}

/** Invitations whose record someone else's write took out of pending: stop and cancel them. */
function settleSuperseded(m: CallMachine, now: number): void {
  const x = groupOf(m);
  if (x === undefined) return;
  for (const inv of x.c.invitations) {
    if (inv.done || ownsRecord(m, inv)) continue;
    inv.done = true;
    inv.busyUntil = undefined;
    const r = x.g.roster.get(inv.user);
    if (r !== undefined) inv.outcome = r.state;
    for (const d of ringingDevices(inv)) {
      inv.devices.set(d, "cancelled");
      m.send(inv.user, d, x.c.id, { kind: "cancel", timeout: false, ...(inv.base !== undefined ? { seq: inv.base } : {}) }, m.messageLifetimeMs, now);
    }
  }
}

function groupConnected(m: CallMachine, reason: StateReason, now: number): void {
  const c = m.call;
  if (c === undefined || m.state === "connected") return;
  c.accepted = true;
  c.confirmed = true;
  c.deadline = undefined;
  c.connectedAt = now;
  m.setState("connected", reason, undefined, m.infoOf(c));
}

/** Ends the group call on this device, remembering its roster. */
export function finishGroup(m: CallMachine, reason: StateReason, text: string | undefined, now: number): void {
  const x = groupOf(m);
  if (x === undefined) return;
  const inv = x.c.inviter;
  m.finishCall(reason, text, { type: "hangup" }, now, {
    roster: x.g.roster.clone(),
    callType: x.c.callType,
    roomId: x.c.roomId,
    ...(inv !== undefined ? { inviter: { user: inv.user, device: inv.device } } : {}),
  });
}

/** Ends the call here when nobody else is in it and none of this device's invitations is pending. */
function checkGroupEnd(m: CallMachine, now: number): void {
  const x = groupOf(m);
  if (x === undefined || x.g.joining || !ownInCall(m)) return;
  const othersIn = x.g.roster.inCall().some((r) => r.user !== m.user);
  if (othersIn || x.c.invitations.some((i) => !i.done)) return;
  let reason: StateReason;
  let text: string;
  if (x.g.answered) [reason, text] = ["everyoneLeft", "everyone left"];
  else {
    const outcomes = x.c.invitations.map((i) => i.outcome).filter((o): o is MemberState => o !== undefined);
    if (outcomes.includes("rejected")) [reason, text] = ["remoteRejected", "rejected"];
    else if (outcomes.length > 0 && outcomes.every((o) => o === "busy")) [reason, text] = ["remoteCallBusy", "busy"];
    else [reason, text] = ["callingTimeout", "no answer"];
  }
  write(m, m.user, "left", { device: m.device, reason: text });
  finishGroup(m, reason, text, now);
}

/** A roster from another member (PROTOCOL §10.4). */
function onMembers(m: CallMachine, from: string, fromDevice: string, records: readonly MemberRecord[], ended: boolean, now: number): void {
  const { c, g } = groupOf(m)!;
  const roster = g.roster;
  const lacks = roster.lacks(records, ended);
  const inBefore = roster.inCall().map((r) => ({ user: r.user, device: r.device! }));
  const { changes, endedNow } = roster.merge(records, ended);
  notify(m, c.id, changes);
  const welcome = changes.some((ch) => ch.record.user === from && ch.record.state === "accepted" && ch.previous !== "accepted");
  const changed = changes.length > 0 || endedNow;
  const senderIn = roster.get(from)?.state === "accepted";
  const ownIn = ownInCall(m);
  const joinedNow = g.joining && senderIn && ownIn && !roster.ended();
  const joinLost = g.joining && !ownIn;
  if (joinedNow) g.joining = false;
  if (roster.inCall().some((r) => r.user !== m.user)) g.answered = true;
  settleSuperseded(m, now);
  if (joinedNow) groupConnected(m, "localAccepted", now);
  if (c.role === "callee" && m.state === "connecting" && ownIn && !g.joining && c.accepted) groupConnected(m, "localAccepted", now);
  if (g.creator && m.state === "calling" && g.answered) groupConnected(m, "remoteAccepted", now);
  const wasIn = m.state === "connected" && !ownIn;
  if (joinLost || wasIn) {
    onOwnRecordLost(m, now);
    return;
  }
  if (ownIn && changed) {
    broadcast(m, now, { user: from, device: fromDevice });
    for (const p of inBefore) {
      if (p.user === m.user || (p.user === from && p.device === fromDevice)) continue;
      const r = roster.get(p.user);
      if (r?.state === "accepted" && r.device === p.device) continue;
      sendRoster(m, p.user, p.device, now);
    }
  }
  if (lacks || welcome) sendRoster(m, from, fromDevice, now);
  if (roster.ended()) onGroupEnded(m, now);
  else {
    expireStale(m, now);
    checkGroupEnd(m, now);
  }
}

function onOwnRecordLost(m: CallMachine, now: number): void {
  const { c, g } = groupOf(m)!;
  const elsewhere = g.roster.get(m.user)?.state === "accepted";
  cancelOwnInvitations(m, undefined, now);
  m.event(elsewhere ? "answeredElsewhere" : "remoteCancelled", c.id);
  finishGroup(m, elsewhere ? "answeredElsewhere" : "remoteCancelled", undefined, now);
}

function onGroupEnded(m: CallMachine, now: number): void {
  const { c } = groupOf(m)!;
  cancelOwnInvitations(m, undefined, now);
  broadcast(m, now);
  m.event("remoteHangup", c.id, "ended");
  finishGroup(m, "callEnded", "ended", now);
}

/** Writes `timeout` for pending records whose `until_ms` passed (plus slack) by this clock. */
function expireStale(m: CallMachine, now: number): void {
  const x = groupOf(m);
  if (x === undefined) return;
  let changed = false;
  for (const r of [...x.g.roster.records()]) {
    if (!isPending(r.state) || r.untilMs === undefined || now < r.untilMs + EXPIRY_SLACK_MS) continue;
    const own = x.c.invitations.find((i) => i.user === r.user && !i.done);
    if (own !== undefined) continue; // its own timer writes it
    const seq = r.state === "inviting" ? r.seq + 2 : r.seq + 1;
    if (writeExact(m, { user: r.user, state: "timeout", seq }) !== undefined) changed = true;
  }
  if (changed) broadcast(m, now);
}

/** When the group rules next need to run (stale records of others' invitations). */
export function nextTimeout(m: CallMachine): number | undefined {
  const x = groupOf(m);
  if (x === undefined) return undefined;
  let best: number | undefined;
  for (const r of x.g.roster.records()) {
    if (!isPending(r.state) || r.untilMs === undefined) continue;
    if (x.c.invitations.some((i) => i.user === r.user && !i.done)) continue;
    const t = r.untilMs + EXPIRY_SLACK_MS;
    if (best === undefined || t < best) best = t;
  }
  return best;
}

/** Timers of a group call: own invitations, busy graces, the wait for confirm or a join. */
export function onTimers(m: CallMachine, now: number): void {
  const x = groupOf(m);
  if (x === undefined) return;
  const { c } = x;
  let changed = false;
  for (const inv of c.invitations) {
    if (inv.done) continue;
    if (inv.busyUntil !== undefined && now >= inv.busyUntil) {
      inv.busyUntil = undefined;
      if (ringingDevices(inv).length === 0 && inv.answered === undefined) {
        endInvitation(m, inv, "busy", inv.busyReason);
        changed = true;
      }
    }
    if (!inv.done && inv.deadline !== undefined && now >= inv.deadline) {
      sendCancel(m, inv, { reason: undefined, timeout: true }, now);
      endInvitation(m, inv, "timeout");
      changed = true;
    }
  }
  if (changed) {
    broadcast(m, now);
    checkGroupEnd(m, now);
  }
  const c2 = m.call;
  if (c2 === undefined || c2.group === undefined) return;
  if (c2.deadline !== undefined && now >= c2.deadline) {
    if (c2.group.joining) {
      m.event("callingTimeout", c2.id);
      write(m, m.user, "left", { device: m.device, reason: "join failed" });
      finishGroup(m, "callingTimeout", "join failed", now);
      return;
    }
    if (c2.accepted && c2.inviter !== undefined) {
      const seq = c2.inviter.seq;
      m.send(c2.inviter.user, c2.inviter.device, c2.id, { kind: "reject", reason: "timeout", busy: false, ...(seq !== undefined ? { seq } : {}) }, m.messageLifetimeMs, now);
    }
    m.event("remoteCallingTimeout", c2.id);
    finishGroup(m, "remoteCallingTimeout", undefined, now);
    return;
  }
  expireStale(m, now);
}

/** An envelope of the current group call. */
export function onEnvelope(m: CallMachine, env: Envelope, now: number): void {
  const { c, g } = groupOf(m)!;
  const b = env.body;
  const dev = env.fromDevice;
  if (b.kind === "members") return onMembers(m, env.from, dev, b.members, b.ended, now);
  const inv = c.invitations.find((i) => i.user === env.from);
  if (inv !== undefined && (b.kind === "ringing" || b.kind === "accept" || b.kind === "reject")) return onInviteeReply(m, inv, env, now);
  if (c.inviter !== undefined && env.from === c.inviter.user && dev === c.inviter.device && !g.joining) {
    if (b.kind === "cancel") {
      if (b.seq !== undefined && c.inviter.seq !== undefined && b.seq < c.inviter.seq) return;
      if (m.state === "connected") return;
      const [reason, ev] =
        b.elsewhere === "answered"
          ? (["answeredElsewhere", "answeredElsewhere"] as const)
          : b.elsewhere === "rejected"
            ? (["rejectedElsewhere", "rejectedElsewhere"] as const)
            : b.timeout
              ? (["remoteCallingTimeout", "remoteCallingTimeout"] as const)
              : (["remoteCancelled", "remoteCancelled"] as const);
      m.event(ev, c.id, b.reason);
      finishGroup(m, reason, b.reason, now);
      const memo = m.endedCall(c.id);
      if (memo?.group !== undefined && b.seq !== undefined) memo.group.cancelSeq = Math.max(memo.group.cancelSeq ?? 0, b.seq);
      return;
    }
    if (b.kind === "confirm") {
      if (!c.accepted || c.confirmed) return;
      c.confirmed = true;
      if (b.members !== undefined) notify(m, c.id, g.roster.merge(b.members, false).changes);
      if (ownInCall(m)) {
        if (g.roster.inCall().some((r) => r.user !== m.user)) g.answered = true;
        groupConnected(m, "localAccepted", now);
      }
      return;
    }
  }
  if (b.kind === "cancel") {
    const o = g.otherInviters.findIndex((i) => i.user === env.from && i.device === dev);
    if (o >= 0) g.otherInviters.splice(o, 1);
    return;
  }
  const sender = g.roster.get(env.from);
  const fromMember = sender?.state === "accepted" && sender.device === dev;
  if (b.kind === "media") {
    if (!fromMember || b.seq === undefined || b.toSeq === undefined) return;
    const peer = { user: env.from, device: dev };
    const r = g.mesh.arrive(peer, b.seq, b.toSeq, b.payload);
    if (r === "deliver") m.mediaCommand({ type: "peerSignal", callId: c.id, peer, payload: b.payload });
    return;
  }
  if ((b.kind === "message" || b.kind === "dtmf") && fromMember && ownInCall(m)) {
    if (b.kind === "message") m.emit({ type: "message", message: { callId: c.id, from: env.from, fromDevice: dev, data: b.data } });
    else m.emit({ type: "dtmf", dtmf: { callId: c.id, from: env.from, fromDevice: dev, data: b.digits } });
    return;
  }
  m.event("stateMismatch", c.id);
}

function onInviteeReply(m: CallMachine, inv: Invitation, env: Envelope, now: number): void {
  const { c, g } = groupOf(m)!;
  const b = env.body;
  const dev = env.fromDevice;
  const seq = b.kind === "ringing" || b.kind === "accept" || b.kind === "reject" ? b.seq : undefined;
  const earlier = seq !== undefined && inv.base !== undefined && seq < inv.base;
  const cancelDevice = (elsewhere?: "answered"): void => {
    inv.devices.set(dev, "cancelled");
    m.send(inv.user, dev, c.id, { kind: "cancel", timeout: false, ...(elsewhere !== undefined ? { elsewhere } : {}), ...(inv.base !== undefined ? { seq: inv.base } : {}) }, m.messageLifetimeMs, now);
  };
  if (b.kind === "ringing") {
    if (earlier || inv.done) {
      if (!(inv.answered === dev)) cancelDevice(inv.answered !== undefined ? "answered" : undefined);
      return;
    }
    if (!b.group) {
      inv.devices.set(dev, "cancelled");
      m.send(inv.user, dev, c.id, { kind: "cancel", reason: "group_unsupported", timeout: false, ...(inv.base !== undefined ? { seq: inv.base } : {}) }, m.messageLifetimeMs, now);
      if (ringingDevices(inv).length === 0) {
        endInvitation(m, inv, "rejected", "group_unsupported");
        broadcast(m, now);
        checkGroupEnd(m, now);
      }
      return;
    }
    if (inv.answered !== undefined && inv.answered !== dev) return cancelDevice("answered");
    if (!inv.devices.has(dev)) inv.devices.set(dev, "ringing");
    const first = !inv.ringingSeen;
    inv.ringingSeen = true;
    if (first) m.event("remoteUserRecvCall", c.id);
    const r = g.roster.get(inv.user);
    if (r !== undefined && r.state === "inviting" && r.seq === inv.base) {
      writeExact(m, { user: inv.user, state: "ringing", seq: inv.base + 1, ...(r.untilMs !== undefined ? { untilMs: r.untilMs } : {}) });
      broadcast(m, now);
    }
    return;
  }
  if (b.kind === "accept") {
    if (inv.answered !== undefined) {
      if (inv.answered !== dev) cancelDevice("answered");
      return;
    }
    if (earlier || inv.done || !ownsRecord(m, inv)) return cancelDevice();
    inv.answered = dev;
    inv.devices.set(dev, "accepted");
    for (const d of ringingDevices(inv, dev)) {
      inv.devices.set(d, "cancelled");
      m.send(inv.user, d, c.id, { kind: "cancel", timeout: false, elsewhere: "answered", ...(inv.base !== undefined ? { seq: inv.base } : {}) }, m.messageLifetimeMs, now);
    }
    inv.done = true;
    inv.outcome = "accepted";
    writeExact(m, { user: inv.user, state: "accepted", seq: inv.base! + 2, device: dev });
    g.answered = true;
    m.send(inv.user, dev, c.id, { kind: "confirm", members: [...g.roster.records()] }, m.messageLifetimeMs, now);
    broadcast(m, now, { user: inv.user, device: dev });
    m.event("remoteAccepted", c.id);
    if (g.creator && m.state === "calling") groupConnected(m, "remoteAccepted", now);
    return;
  }
  if (b.kind !== "reject") return;
  if (inv.answered === dev) {
    // The accepting device gave up waiting for confirm: it is out, if the record still names it.
    const r = g.roster.get(inv.user);
    if (r?.state === "accepted" && r.device === dev) {
      write(m, inv.user, "left", { device: dev, ...(b.reason !== undefined ? { reason: b.reason } : {}) }, inv.base! + 3);
      broadcast(m, now);
      checkGroupEnd(m, now);
    }
    return;
  }
  if (earlier || inv.done || inv.answered !== undefined) return;
  if (b.busy) {
    inv.devices.set(dev, "busy");
    if (inv.busyUntil === undefined) {
      inv.busyUntil = now + Math.min(BUSY_GRACE_MAX_MS, Math.max(BUSY_GRACE_MIN_MS, now - inv.sentAt));
      if (b.reason !== undefined) inv.busyReason = b.reason;
    }
    return;
  }
  inv.devices.set(dev, "rejected");
  for (const d of ringingDevices(inv, dev)) {
    inv.devices.set(d, "cancelled");
    m.send(inv.user, d, c.id, { kind: "cancel", timeout: false, elsewhere: "rejected", ...(inv.base !== undefined ? { seq: inv.base } : {}) }, m.messageLifetimeMs, now);
  }
  m.event("remoteRejected", c.id, b.reason);
  endInvitation(m, inv, "rejected", b.reason);
  broadcast(m, now);
  checkGroupEnd(m, now);
}

/** A message of a group call that already ended here. */
export function onLate(m: CallMachine, ended: Ended, env: Envelope, now: number): void {
  const memo = ended.group!;
  const b = env.body;
  switch (b.kind) {
    case "cancel":
      if (b.seq !== undefined) memo.cancelSeq = Math.max(memo.cancelSeq ?? 0, b.seq);
      return;
    case "ringing":
    case "accept":
      m.send(env.from, env.fromDevice, ended.id, { kind: "cancel", timeout: false, ...(b.seq !== undefined ? { seq: b.seq } : {}) }, m.messageLifetimeMs, now);
      return;
    case "confirm":
      m.send(env.from, env.fromDevice, ended.id, { kind: "reject", reason: "timeout", busy: false }, m.messageLifetimeMs, now);
      return;
    case "members": {
      const lacks = memo.roster.lacks(b.members, b.ended);
      memo.roster.merge(b.members, b.ended);
      if (lacks) m.send(env.from, env.fromDevice, ended.id, { kind: "members", members: [...memo.roster.records()], ended: memo.roster.ended() }, m.messageLifetimeMs, now);
      return;
    }
    default:
      return;
  }
}

/** A `members` envelope to a device in the call went unacknowledged: that member is unreachable. */
export function onUndelivered(m: CallMachine, env: Envelope, now: number): void {
  if (env.body.kind !== "members" || env.toDevice === undefined) return;
  const x = groupOf(m);
  const r = x?.g.roster.get(env.to);
  if (x === undefined || r?.state !== "accepted" || r.device !== env.toDevice) return;
  write(m, env.to, "left", { device: env.toDevice, reason: "unreachable" });
  broadcast(m, now);
  sendRoster(m, env.to, env.toDevice, now);
  checkGroupEnd(m, now);
}

/** A media event of a group call (the mesh). */
export function onMedia(m: CallMachine, ev: MediaEvent, now: number): void {
  const { c, g } = groupOf(m)!;
  if (ev.type === "peerSignal") {
    const own = g.mesh.ownSeq();
    const peerSeq = g.mesh.peerSeq(ev.peer);
    if (own === undefined || peerSeq === undefined) return;
    m.send(ev.peer.user, ev.peer.device, c.id, { kind: "media", payload: ev.payload, seq: own, toSeq: peerSeq }, m.messageLifetimeMs, now);
  } else if (ev.type === "failed") {
    m.error({ callId: c.id, event: "mediaError", code: 2004, message: ev.message });
  }
}

/** Brings the mesh in line with the roster: connections to every other member device in the call. */
export function syncMesh(m: CallMachine): void {
  const x = groupOf(m);
  if (x === undefined) return;
  const { c, g } = x;
  const inMedia = ownInCall(m) && m.state === "connected" && c.confirmed;
  const own = inMedia ? g.roster.get(m.user)!.seq : undefined;
  const desired = g.roster
    .inCall()
    .filter((r) => r.user !== m.user)
    .map((r) => ({ user: r.user, device: r.device!, seq: r.seq }));
  const change = g.mesh.sync(own, desired);
  for (const p of change.removed) m.mediaCommand({ type: "removePeer", callId: c.id, peer: { user: p.user, device: p.device } });
  const me = { user: m.user, device: m.device };
  for (const p of change.added) m.mediaCommand({ type: "addPeer", callId: c.id, callType: c.callType, peer: { user: p.user, device: p.device }, offerer: offersTo(me, p) });
  for (const h of g.mesh.release()) m.mediaCommand({ type: "peerSignal", callId: c.id, peer: h.peer, payload: h.payload });
}
