/**
 * The 1:1 call rules (PROTOCOL §8): placing and ringing, busy auto-reject, glare, expired
 * invites, answering with multi-device (ringing everywhere, first accept wins, answered or
 * rejected elsewhere), busy grace, cancel, timeouts, hangup, late and out-of-order messages,
 * media peer selection and in-call messages.
 */

import type { Body, CallType, Elsewhere, Envelope } from "./envelope.js";
import { compareCallIds } from "./envelope.js";
import type { JsonObject } from "./json.js";
import type { CallMachine } from "./machine.js";
import type { MediaEvent } from "./media-types.js";
import * as grp from "./group.js";
import { BUSY_GRACE_MAX_MS, BUSY_GRACE_MIN_MS, type Call, type Ended, type LateReply, alerting, newInvitation, ringingDevices } from "./session.js";
import { ERROR_CODES } from "./state.js";
import { InvalidArgumentError, InvalidStateError } from "./errors.js";

/** Places a 1:1 call to `to`. */
export function placeCall(m: CallMachine, to: string, callType: CallType, extension: JsonObject, now: number): string {
  const prep = m.guardIdle("call");
  if (to === m.user) throw new InvalidArgumentError("cannot call yourself: pass another user's id");
  const merged: JsonObject = { ...prep.extension, ...extension };
  const id = m.newId();
  const lifetime = m.inviteLifetime(prep);
  const call: Call = {
    id,
    role: "caller",
    callType,
    roomId: prep.roomId,
    extension: merged,
    invitations: [newInvitation(to, now)],
    accepted: false,
    confirmed: false,
    firstFrame: false,
    firstFrameWait: prep.firstFrameWait && m.reportsFrames,
    mediaJoined: false,
    deadline: now + lifetime,
    start: now,
  };
  m.call = call;
  m.event("onCalling", id);
  m.setState("calling", callType === "video" ? "localVideoCall" : "localAudioCall", undefined, m.infoOf(call));
  m.send(to, undefined, id, { kind: "invite", roomId: prep.roomId, callType, extension: merged }, lifetime, now);
  joinMedia(m);
  return id;
}

/** An invite arrived (1:1 or group). */
export function onInvite(m: CallMachine, env: Envelope, now: number): void {
  const b = env.body;
  if (b.kind !== "invite") return;
  if (env.ts + env.lifetimeMs < now) {
    m.event("inviteExpired", env.callId);
    return;
  }
  if (b.members !== undefined) {
    grp.onGroupInvite(m, env, b, now);
    return;
  }
  if (m.call?.id === env.callId || m.ended.some((e) => e.id === env.callId && e.remoteUser === env.from) || env.from === m.user) return;
  if (glareWeWin(m, env.callId, env.from, now)) return;
  if (m.state !== "prepared" || m.call !== undefined || m.prepared === undefined) {
    busyReject(m, env, undefined, now);
    return;
  }
  const prep = m.prepared;
  const remaining = env.ts + env.lifetimeMs - now;
  const call: Call = {
    id: env.callId,
    role: "callee",
    callType: b.callType,
    roomId: b.roomId,
    extension: b.extension,
    invitations: [],
    inviter: { user: env.from, device: env.fromDevice, expiry: now + remaining, mediaInbox: [] },
    accepted: false,
    confirmed: false,
    firstFrame: false,
    firstFrameWait: prep.firstFrameWait && m.reportsFrames,
    mediaJoined: false,
    deadline: now + remaining,
    start: now,
  };
  m.call = call;
  m.setState("calling", b.callType === "video" ? "remoteVideoCall" : "remoteAudioCall", undefined, m.infoOf(call));
  m.sendToPeer({ kind: "ringing", group: false }, Math.max(1, remaining), now);
  if (prep.joinMediaOnRinging) joinMedia(m);
}

/** Declines an invite automatically because this device is busy or not prepared. */
export function busyReject(m: CallMachine, env: Envelope, seq: number | undefined, now: number): void {
  m.event("busyAutoRejected", env.callId);
  m.send(env.from, env.fromDevice, env.callId, { kind: "reject", reason: "busy", busy: true, ...(seq !== undefined ? { seq } : {}) }, m.messageLifetimeMs, now);
}

/** Whether this device is calling `user` and not yet answered (the glare case). */
function callingInvitee(m: CallMachine, user: string): boolean {
  const c = m.call;
  if (c === undefined || c.role !== "caller" || m.state !== "calling" || c.accepted) return false;
  if (c.group !== undefined) return c.group.creator && !c.group.answered && c.invitations.some((i) => i.user === user && !i.done);
  return c.invitations.some((i) => i.user === user);
}

/**
 * Glare (PROTOCOL §8.6): an invite from a user this device is calling. The smaller call id
 * wins; answers true when our own call wins (the invite is then ignored).
 */
export function glareWeWin(m: CallMachine, callId: string, from: string, now: number): boolean {
  const own = m.call?.id;
  if (own === undefined || own === callId || !callingInvitee(m, from)) return false;
  if (compareCallIds(callId, own) > 0) return true;
  m.event("glare", own);
  if (m.call?.group !== undefined) {
    grp.cancelOwnInvitations(m, "glare", now);
    grp.finishGroup(m, "glare", undefined, now);
  } else {
    callerStop(m, "glare", false, undefined, now);
    m.finishCall("glare", undefined, { type: "cancel", timeout: false }, now);
  }
  return false;
}

/** Answers the ringing 1:1 call. */
export function accept(m: CallMachine, now: number): void {
  const c = m.call;
  if (c === undefined || c.inviter === undefined || m.state !== "calling") throw new InvalidStateError("accept", m.state, "only a ringing call can be accepted");
  const deadline = Math.max(c.inviter.expiry, now) + m.confirmGraceMs;
  c.accepted = true;
  c.deadline = deadline;
  m.event("localAccepted", c.id);
  m.setState("connecting", "localAccepted", undefined, m.infoOf(c));
  m.sendToPeer({ kind: "accept", group: false }, deadline - now, now);
  joinMedia(m);
  checkConnected(m, now);
}

/** Declines the ringing 1:1 call. */
export function reject(m: CallMachine, reason: string | undefined, now: number): void {
  const c = m.call;
  if (c === undefined || c.role !== "callee" || m.state !== "calling") throw new InvalidStateError("reject", m.state, "only a ringing call can be rejected");
  m.event("localRejected", c.id, reason);
  m.sendToPeer({ kind: "reject", ...(reason !== undefined ? { reason } : {}), busy: false }, m.messageLifetimeMs, now);
  m.finishCall("localRejected", reason, { type: "hangup" }, now);
}

/** Withdraws the placed call (calling or connecting). */
export function cancel(m: CallMachine, reason: string | undefined, now: number): void {
  const c = m.call;
  if (c === undefined || c.role !== "caller" || !(m.state === "calling" || m.state === "connecting")) {
    throw new InvalidStateError("cancel", m.state, "only the caller cancels, before the call is connected; use hangup() after");
  }
  m.event("localCancelled", c.id, reason);
  callerStop(m, reason, false, undefined, now);
  m.finishCall("localCancelled", reason, { type: "cancel", timeout: false }, now);
}

/** Ends the call whatever its stage: cancel (caller calling), reject (callee ringing), or hangup. */
export function hangup(m: CallMachine, reason: string | undefined, now: number): void {
  const c = m.call;
  if (c === undefined) throw new InvalidStateError("hang up", m.state, "there is no call");
  if (m.state === "calling" && c.role === "caller") return cancel(m, reason, now);
  if (m.state === "calling") return reject(m, reason, now);
  if (c.role === "caller" && m.state === "connecting") return cancel(m, reason, now);
  m.event("localHangup", c.id, reason);
  m.sendToPeer({ kind: "hangup", ...(reason !== undefined ? { reason } : {}) }, m.messageLifetimeMs, now);
  m.finishCall("localHangup", reason, { type: "hangup" }, now);
}

/** The caller stops every device that rings (or the user, when none rang yet). */
export function callerStop(m: CallMachine, reason: string | undefined, timeout: boolean, elsewhere: Elsewhere | undefined, now: number): void {
  const c = m.call;
  if (c === undefined) return;
  const body: Body = { kind: "cancel", ...(reason !== undefined ? { reason } : {}), timeout, ...(elsewhere !== undefined ? { elsewhere } : {}) };
  for (const inv of c.invitations) {
    const targets = alerting(inv);
    if (targets.length === 0) m.send(inv.user, undefined, c.id, body, m.messageLifetimeMs, now);
    else for (const d of targets) m.send(inv.user, d, c.id, body, m.messageLifetimeMs, now);
  }
}

/** Some device of the invitee acknowledged the invite. */
export function onInviteAcked(m: CallMachine, acked: Envelope): void {
  const c = m.call;
  if (c === undefined || c.id !== acked.callId) return;
  const inv = c.invitations.find((i) => i.user === acked.to);
  if (inv !== undefined) inv.acked = true;
}

function cancelElsewhere(m: CallMachine, user: string, device: string, why: Elsewhere, now: number): void {
  const c = m.call;
  if (c === undefined) return;
  const inv = c.invitations.find((i) => i.user === user);
  if (inv !== undefined) inv.devices.set(device, "cancelled");
  m.send(user, device, c.id, { kind: "cancel", timeout: false, elsewhere: why }, m.messageLifetimeMs, now);
}

/** Caller side: an envelope from a device of the invited user. */
export function onFromInvitee(m: CallMachine, env: Envelope, now: number): void {
  const c = m.call!;
  const inv = c.invitations.find((i) => i.user === env.from)!;
  const dev = env.fromDevice;
  const b = env.body;
  switch (b.kind) {
    case "ringing": {
      if (inv.answered !== undefined && inv.answered !== dev) return cancelElsewhere(m, inv.user, dev, "answered", now);
      if (!inv.devices.has(dev)) inv.devices.set(dev, "ringing");
      const first = !inv.ringingSeen;
      inv.ringingSeen = true;
      if (inv.mediaPeer === undefined) {
        inv.mediaPeer = dev;
        for (const payload of inv.mediaOutbox.splice(0)) m.send(inv.user, dev, c.id, { kind: "media", payload }, m.messageLifetimeMs, now);
      }
      if (first) m.event("remoteUserRecvCall", c.id);
      return;
    }
    case "accept": {
      if (inv.answered !== undefined) {
        if (inv.answered !== dev) cancelElsewhere(m, inv.user, dev, "answered", now);
        return;
      }
      if (m.state !== "calling") return m.event("stateMismatch", c.id);
      return callerAccepted(m, inv.user, dev, now);
    }
    case "reject": {
      if (inv.answered !== undefined || m.state !== "calling") return;
      if (b.busy) {
        inv.devices.set(dev, "busy");
        if (inv.busyUntil === undefined) {
          const rtt = now - inv.sentAt;
          inv.busyUntil = now + Math.min(BUSY_GRACE_MAX_MS, Math.max(BUSY_GRACE_MIN_MS, rtt));
          if (b.reason !== undefined) inv.busyReason = b.reason;
        }
        return;
      }
      inv.devices.set(dev, "rejected");
      const others = ringingDevices(inv, dev);
      m.event("remoteRejected", c.id, b.reason);
      for (const d of others) cancelElsewhere(m, inv.user, d, "rejected", now);
      m.finishCall("remoteRejected", b.reason, { type: "cancel", timeout: false, elsewhere: "rejected" }, now);
      return;
    }
    case "hangup":
      if (inv.answered !== dev) return;
      m.event("remoteHangup", c.id, b.reason);
      m.finishCall("remoteHangup", b.reason, { type: "hangup" }, now);
      return;
    case "media":
      if (inv.mediaPeer === dev) m.mediaCommand({ type: "remoteSignal", callId: c.id, payload: b.payload });
      return;
    case "message":
    case "dtmf":
      if (inv.answered !== dev) return m.event("stateMismatch", c.id);
      deliverData(m, env);
      return;
    default:
      m.event("stateMismatch", c.id);
  }
}

function deliverData(m: CallMachine, env: Envelope): void {
  const b = env.body;
  if (b.kind === "message") m.emit({ type: "message", message: { callId: env.callId, from: env.from, fromDevice: env.fromDevice, data: b.data } });
  else if (b.kind === "dtmf") m.emit({ type: "dtmf", dtmf: { callId: env.callId, from: env.from, fromDevice: env.fromDevice, data: b.digits } });
}

function callerAccepted(m: CallMachine, user: string, dev: string, now: number): void {
  const c = m.call!;
  const inv = c.invitations.find((i) => i.user === user)!;
  c.accepted = true;
  c.confirmed = true;
  inv.answered = dev;
  inv.devices.set(dev, "accepted");
  const others = ringingDevices(inv, dev);
  const restart = inv.mediaPeer !== undefined && inv.mediaPeer !== dev;
  const outbox = inv.mediaPeer === undefined ? inv.mediaOutbox.splice(0) : [];
  inv.mediaPeer = dev;
  if (restart) {
    c.firstFrame = false;
    c.mediaJoined = false;
    m.mediaCommand({ type: "leave", callId: c.id });
  }
  for (const payload of outbox) m.send(user, dev, c.id, { kind: "media", payload }, m.messageLifetimeMs, now);
  for (const d of others) cancelElsewhere(m, user, d, "answered", now);
  if (restart) joinMedia(m);
  m.event("remoteAccepted", c.id);
  m.setState("connecting", "remoteAccepted", undefined, m.infoOf(c));
  checkConnected(m, now);
}

/** Callee side: an envelope from the inviter's device. */
export function onFromInviter(m: CallMachine, env: Envelope, now: number): void {
  const c = m.call!;
  const b = env.body;
  switch (b.kind) {
    case "cancel": {
      const [reason, ev] =
        b.elsewhere === "answered"
          ? (["answeredElsewhere", "answeredElsewhere"] as const)
          : b.elsewhere === "rejected"
            ? (["rejectedElsewhere", "rejectedElsewhere"] as const)
            : b.timeout
              ? (["remoteCallingTimeout", "remoteCallingTimeout"] as const)
              : (["remoteCancelled", "remoteCancelled"] as const);
      m.event(ev, c.id, b.reason);
      m.finishCall(reason, b.reason, { type: "hangup" }, now);
      return;
    }
    case "confirm":
      if (c.accepted && !c.confirmed) {
        c.confirmed = true;
        checkConnected(m, now);
      }
      return;
    case "hangup":
      m.event("remoteHangup", c.id, b.reason);
      m.finishCall("remoteHangup", b.reason, { type: "hangup" }, now);
      return;
    case "media":
      if (c.mediaJoined) m.mediaCommand({ type: "remoteSignal", callId: c.id, payload: b.payload });
      else c.inviter!.mediaInbox.push(b.payload);
      return;
    case "message":
    case "dtmf":
      if (c.accepted) deliverData(m, env);
      else m.event("stateMismatch", c.id);
      return;
    default:
      m.event("stateMismatch", c.id);
  }
}

/** Caller: the busy grace ended; ends the call busy unless another device rings. */
export function onBusyGraceOver(m: CallMachine, now: number): void {
  const c = m.call;
  if (c === undefined) return;
  const inv = c.invitations.find((i) => i.busyUntil !== undefined && now >= i.busyUntil);
  if (inv === undefined) return;
  inv.busyUntil = undefined;
  const reason = inv.busyReason;
  inv.busyReason = undefined;
  if (c.accepted || m.state !== "calling" || ringingDevices(inv).length > 0) return;
  m.event("remoteCallBusy", c.id, reason);
  m.finishCall("remoteCallBusy", reason, { type: "cancel", timeout: false }, now);
}

/** Caller: the call timeout ran out. */
export function onCallingTimeout(m: CallMachine, now: number): void {
  const c = m.call!;
  const reached = c.invitations.some((i) => i.acked || i.ringingSeen);
  if (!reached && !c.accepted) {
    m.error({ callId: c.id, event: "sendMessageFail", code: ERROR_CODES.MESSAGE_UNDELIVERED, message: "the invitation was not delivered within its lifetime" });
    m.event("messageFailed", c.id);
    callerStop(m, undefined, true, undefined, now);
    m.finishCall("messageFailed", undefined, { type: "cancel", timeout: true }, now);
    return;
  }
  m.event("callingTimeout", c.id);
  callerStop(m, undefined, true, undefined, now);
  m.finishCall("callingTimeout", undefined, { type: "cancel", timeout: true }, now);
}

/** Callee: the invite's lifetime (or the wait for `confirm`) ran out. */
export function onInviteTimeout(m: CallMachine, now: number): void {
  const c = m.call!;
  m.event("remoteCallingTimeout", c.id);
  if (c.accepted) m.sendToPeer({ kind: "hangup", reason: "timeout" }, m.messageLifetimeMs, now);
  m.finishCall("remoteCallingTimeout", undefined, { type: "hangup" }, now);
}

/** A message of a 1:1 call that already ended here (PROTOCOL §8.7). */
export function onLate(m: CallMachine, ended: Ended, env: Envelope, now: number): void {
  if (env.from !== ended.remoteUser) return;
  const k = env.body.kind;
  let body: Body;
  if ((k === "ringing" || k === "accept") && ended.role === "caller") {
    if (ended.answered !== undefined) {
      body = ended.answered === env.fromDevice ? { kind: "hangup" } : { kind: "cancel", timeout: false, elsewhere: "answered" };
    } else {
      const r: LateReply = ended.reply;
      body = r.type === "cancel" ? { kind: "cancel", timeout: r.timeout, ...(r.elsewhere !== undefined ? { elsewhere: r.elsewhere } : {}) } : { kind: "cancel", timeout: false };
    }
  } else if (k === "confirm" && ended.role === "callee") {
    body = { kind: "hangup" };
  } else return;
  m.send(env.from, env.fromDevice, ended.id, body, m.messageLifetimeMs, now);
}

/** Joins the media of the 1:1 call (once). */
export function joinMedia(m: CallMachine): void {
  const c = m.call;
  if (c === undefined || c.mediaJoined || c.group !== undefined) return;
  c.mediaJoined = true;
  const remote = c.role === "caller" ? c.invitations[0]!.user : c.inviter!.user;
  m.mediaCommand({ type: "join", request: { callId: c.id, roomId: c.roomId, role: c.role, callType: c.callType, localUser: m.user, remoteUser: remote } });
  m.event("joinMediaStart", c.id);
  if (c.inviter !== undefined) for (const payload of c.inviter.mediaInbox.splice(0)) m.mediaCommand({ type: "remoteSignal", callId: c.id, payload });
}

/** Connected once accepted, confirmed and (if waited for) the first remote frame arrived. */
export function checkConnected(m: CallMachine, now: number): void {
  const c = m.call;
  if (m.state !== "connecting" || c === undefined) return;
  if (!(c.accepted && c.confirmed && (c.firstFrame || !c.firstFrameWait))) return;
  c.connectedAt = now;
  c.deadline = undefined;
  const reason = c.firstFrameWait ? "recvRemoteFirstFrame" : c.role === "caller" ? "remoteAccepted" : "localAccepted";
  if (c.role === "caller") m.sendToPeer({ kind: "confirm" }, m.messageLifetimeMs, now);
  m.setState("connected", reason, undefined, m.infoOf(c));
}

/** A media event of a 1:1 call. */
export function onMedia(m: CallMachine, ev: MediaEvent, now: number): void {
  const c = m.call!;
  switch (ev.type) {
    case "signal": {
      if (c.role === "caller") {
        const inv = c.invitations[0]!;
        if (inv.mediaPeer === undefined) inv.mediaOutbox.push(ev.payload);
        else m.send(inv.user, inv.mediaPeer, c.id, { kind: "media", payload: ev.payload }, m.messageLifetimeMs, now);
      } else {
        m.send(c.inviter!.user, c.inviter!.device, c.id, { kind: "media", payload: ev.payload }, m.messageLifetimeMs, now);
      }
      return;
    }
    case "firstRemoteFrame": {
      const wanted = c.callType === "video" ? "video" : "audio";
      if (ev.kind !== wanted || c.firstFrame) return;
      c.firstFrame = true;
      m.event("recvRemoteFirstFrame", c.id);
      checkConnected(m, now);
      return;
    }
    case "failed": {
      m.error({ callId: c.id, event: "mediaError", code: ev.atJoin ? ERROR_CODES.JOIN_FAILED : ERROR_CODES.MEDIA_FAILED, message: ev.message });
      m.event(ev.atJoin ? "joinMediaFailed" : "mediaFailed", c.id);
      endLocally(m, "media_failed", ev.atJoin ? "joinMediaFailed" : "mediaFailed", now);
      return;
    }
    case "peerSignal":
      return;
  }
}

function endLocally(m: CallMachine, why: string, reason: "joinMediaFailed" | "mediaFailed", now: number): void {
  const c = m.call;
  if (c === undefined) return;
  if (c.role === "caller" && m.state === "calling") callerStop(m, why, false, undefined, now);
  else if (m.state === "calling") m.sendToPeer({ kind: "reject", reason: why, busy: false }, m.messageLifetimeMs, now);
  else m.sendToPeer({ kind: "hangup", reason: why }, m.messageLifetimeMs, now);
  m.finishCall(reason, why, { type: "hangup" }, now);
}
