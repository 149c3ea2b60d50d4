/**
 * The call machine: the whole call protocol of one device as a sans-IO state machine. It is
 * fed received envelopes, commands, media events and the time, and answers with outputs
 * (envelopes to send, notifications, media commands) and the time it next needs to run. It
 * never touches a socket, a timer or a peer connection; `CallClient` does.
 *
 * This file holds the core (addressing, acks, de-duplication, retransmission, sending, ending
 * calls, late messages); the 1:1 rules are in `call.ts`, the group rules in `group.ts`.
 */

import { type Body, type CallType, type Envelope, EnvelopeDecodeError, PROTOCOL_VERSION, idProblem } from "./envelope.js";
import type { JsonObject } from "./json.js";
import type { MediaCommand, MediaEvent } from "./media-types.js";
import { DEFAULT_RELIABILITY, type Reliability, Reliable } from "./reliable.js";
import type { Roster } from "./roster.js";
import { type Random, uuidV4 } from "./random.js";
import { type Call, type Ended, type LateReply, peerDevice, remoteUser } from "./session.js";
import {
  type CallErrorInfo,
  type CallEventName,
  type CallInfo,
  type CallState,
  ERROR_CODES,
  type Notification,
  type StateReason,
  isActive,
} from "./state.js";
import * as one from "./call.js";
import * as grp from "./group.js";
import { BusyError, InvalidArgumentError, InvalidStateError, NotPreparedError } from "./errors.js";

/** Longest call timeout (and so invite lifetime): 5 minutes, well inside the de-dup window. */
export const MAX_CALL_TIMEOUT_MS = 300_000;
const ENDED_MEMORY = 64;

/** Settings of a device's machine. */
export interface MachineConfig {
  readonly user: string;
  readonly device: string;
  readonly random: Random;
  readonly reliability?: Reliability;
  /** Lifetime of envelopes other than invite, ringing, accept and ack (60 s). */
  readonly messageLifetimeMs?: number;
  /** How long past the invite's lifetime an accepting device waits for `confirm` (30 s). */
  readonly confirmGraceMs?: number;
  /** Most users one group call may invite at once (9). */
  readonly maxInvitees?: number;
  /** Whether the media engine reports first frames (calls then wait for one to connect). */
  readonly reportsFrames?: boolean;
}

/** How the device takes and places calls (PROTOCOL: a device that is not prepared is busy). */
export interface PrepareOptions {
  /** This user's room, sent in invites. */
  readonly roomId: string;
  /** Call timeout, ms (15 s); 0 for none (then 5 minutes). At most 5 minutes. */
  readonly callTimeoutMs?: number;
  /** Wait for the first remote frame before `connected` (true; only if media reports frames). */
  readonly firstFrameWait?: boolean;
  /** Join the media while ringing, for early media (false). */
  readonly joinMediaOnRinging?: boolean;
  /** Application data merged into every invite's extension. */
  readonly extension?: JsonObject;
}

/** What the machine asks its shell to do. */
export type Output =
  | { readonly type: "send"; readonly envelope: Envelope }
  | { readonly type: "notify"; readonly notification: Notification }
  | { readonly type: "media"; readonly command: MediaCommand };

/** See the file comment. */
export class CallMachine {
  /** @internal */ readonly user: string;
  /** @internal */ readonly device: string;
  /** @internal */ readonly reliable: Reliable;
  /** @internal */ readonly rel: Reliability;
  /** @internal */ readonly messageLifetimeMs: number;
  /** @internal */ readonly confirmGraceMs: number;
  /** @internal */ readonly maxInvitees: number;
  /** @internal */ reportsFrames: boolean;
  /** @internal */ prepared: Required<PrepareOptions> | undefined;
  /** @internal */ stateValue: CallState = "idle";
  /** @internal */ call: Call | undefined;
  /** @internal */ ended: Ended[] = [];
  private outputs: Output[] = [];
  private readonly random: Random;

  constructor(cfg: MachineConfig) {
    for (const [name, id] of [["user", cfg.user], ["device", cfg.device]] as const) {
      const p = idProblem(id);
      if (p !== undefined) throw new InvalidArgumentError(`${name} ${JSON.stringify(id)}: ${p}`);
    }
    this.user = cfg.user;
    this.device = cfg.device;
    this.random = cfg.random;
    this.rel = cfg.reliability ?? DEFAULT_RELIABILITY;
    this.reliable = new Reliable(this.rel);
    this.messageLifetimeMs = cfg.messageLifetimeMs ?? 60_000;
    this.confirmGraceMs = cfg.confirmGraceMs ?? 30_000;
    this.maxInvitees = cfg.maxInvitees ?? 9;
    this.reportsFrames = cfg.reportsFrames ?? false;
  }

  // ---- queries --------------------------------------------------------------------------

  /** The current state. */
  get state(): CallState {
    return this.stateValue;
  }

  /** The current call, if any. */
  callInfo(): CallInfo | undefined {
    return this.call === undefined ? undefined : this.infoOf(this.call);
  }

  /** The roster of the current group call. */
  roster(): Roster | undefined {
    return this.call?.group?.roster;
  }

  /** How many sent envelopes wait for an ack. */
  pendingMessages(): number {
    return this.reliable.pendingCount();
  }

  /** Takes the outputs produced so far. */
  takeOutputs(): Output[] {
    const out = this.outputs;
    this.outputs = [];
    return out;
  }

  /** When the machine next needs {@link CallMachine.tick}; `undefined` when it does not. */
  pollTimeout(): number | undefined {
    const times: number[] = [];
    const r = this.reliable.nextTimeout();
    if (r !== undefined) times.push(r);
    const c = this.call;
    if (c !== undefined) {
      if (c.deadline !== undefined) times.push(c.deadline);
      for (const i of c.invitations) {
        if (i.busyUntil !== undefined) times.push(i.busyUntil);
        if (c.group !== undefined && !i.done && i.deadline !== undefined) times.push(i.deadline);
      }
      const g = grp.nextTimeout(this);
      if (g !== undefined) times.push(g);
    }
    return times.length === 0 ? undefined : Math.min(...times);
  }

  // ---- inputs ---------------------------------------------------------------------------

  /** Moves time on to `now`: retransmissions, expiries and timeouts. */
  tick(now: number): void {
    const due = this.reliable.poll(now);
    for (const env of due.retransmit) this.outputs.push({ type: "send", envelope: env });
    for (const env of due.expired) this.onUndelivered(env, now);
    const c = this.call;
    if (c === undefined) return;
    if (c.group !== undefined) {
      grp.onTimers(this, now);
      return;
    }
    if (c.invitations.some((i) => i.busyUntil !== undefined && now >= i.busyUntil)) one.onBusyGraceOver(this, now);
    const c2 = this.call;
    if (c2 !== undefined && c2.group === undefined && c2.deadline !== undefined && now >= c2.deadline) {
      if (c2.role === "caller") one.onCallingTimeout(this, now);
      else one.onInviteTimeout(this, now);
    }
  }

  /** A received envelope. */
  receive(env: Envelope, now: number): void {
    this.tick(now);
    this.onEnvelope(env, now);
    this.settle();
  }

  /** A received frame that did not decode (PROTOCOL §6): reported, otherwise ignored. */
  invalid(err: EnvelopeDecodeError, now: number): void {
    this.tick(now);
    this.error({ event: "normalError", code: ERROR_CODES.INVALID_ENVELOPE, message: err.message });
  }

  /** An event of the media engine. */
  media(ev: MediaEvent, now: number): void {
    this.tick(now);
    const c = this.call;
    if (c === undefined || c.id !== ev.callId) return;
    if (c.group !== undefined) grp.onMedia(this, ev, now);
    else one.onMedia(this, ev, now);
    this.settle();
  }

  /** The link came back: sends everything pending at once and restarts its backoff (PROTOCOL §7.2). */
  linkUp(now: number): void {
    this.tick(now);
    for (const env of this.reliable.flushAll(now)) this.outputs.push({ type: "send", envelope: env });
  }

  /** Ready to take and place calls. */
  prepare(opts: PrepareOptions): void {
    const timeout = opts.callTimeoutMs ?? 15_000;
    if (!(timeout >= 0 && timeout <= MAX_CALL_TIMEOUT_MS)) throw new InvalidArgumentError(`callTimeoutMs must be between 0 and ${MAX_CALL_TIMEOUT_MS}`);
    this.prepared = {
      roomId: opts.roomId,
      callTimeoutMs: timeout,
      firstFrameWait: opts.firstFrameWait ?? true,
      joinMediaOnRinging: opts.joinMediaOnRinging ?? false,
      extension: opts.extension ?? {},
    };
    if (this.stateValue === "idle") this.setState("prepared", "none");
  }

  /** No longer takes calls (invites are declined as busy); a call under way goes on. */
  unprepare(): void {
    this.prepared = undefined;
    if (this.stateValue === "prepared") this.setState("idle", "none");
  }

  /** Places a 1:1 call; answers its call id. */
  callUser(to: string, callType: CallType, extension: JsonObject, now: number): string {
    this.tick(now);
    const id = one.placeCall(this, to, callType, extension, now);
    this.settle();
    return id;
  }

  /** Places a group call inviting `users`; answers its call id. */
  callGroup(users: readonly string[], callType: CallType, extension: JsonObject, now: number): string {
    this.tick(now);
    const id = grp.placeGroupCall(this, users, callType, extension, now);
    this.settle();
    return id;
  }

  /** Answers the ringing call. */
  accept(now: number): void {
    this.tick(now);
    if (this.call?.group !== undefined) grp.accept(this, now);
    else one.accept(this, now);
    this.settle();
  }

  /** Declines the ringing call. */
  reject(reason: string | undefined, now: number): void {
    this.tick(now);
    if (this.call?.group !== undefined) grp.reject(this, reason, now);
    else one.reject(this, reason, now);
    this.settle();
  }

  /** Withdraws the call this device placed, before it was connected. */
  cancel(reason: string | undefined, now: number): void {
    this.tick(now);
    if (this.call?.group !== undefined) grp.leave(this, reason, "localCancelled", now);
    else one.cancel(this, reason, now);
    this.settle();
  }

  /** Ends an accepted call (in a group call: leaves it; the others go on). */
  hangup(reason: string | undefined, now: number): void {
    this.tick(now);
    if (this.call?.group !== undefined) grp.leave(this, reason, "localHangup", now);
    else one.hangup(this, reason, now);
    this.settle();
  }

  /** Group calls: invites more users into the call this device is in. */
  invite(users: readonly string[], now: number): void {
    this.tick(now);
    grp.invite(this, users, now);
    this.settle();
  }

  /** Group calls: ends the call for every member. */
  endForAll(reason: string | undefined, now: number): void {
    this.tick(now);
    grp.endForAll(this, reason, now);
    this.settle();
  }

  /** Group calls: joins again a call this device was in or declined (PROTOCOL §10.7). */
  join(callId: string, now: number): void {
    this.tick(now);
    grp.joinLate(this, callId, now);
    this.settle();
  }

  /** Sends in-call application data. */
  sendMessage(data: string, now: number): void {
    this.tick(now);
    this.inCall("sendMessage", { kind: "message", data }, now);
    this.settle();
  }

  /** Sends DTMF digits (`0-9 * # A-D`; `a-d` are upper-cased). */
  sendDtmf(digits: string, now: number): void {
    this.tick(now);
    const d = digits.toUpperCase();
    if (d.length === 0 || !/^[0-9*#A-D]+$/.test(d)) throw new InvalidArgumentError(`invalid DTMF digits ${JSON.stringify(digits)}: use 0-9, *, #, A-D`);
    this.inCall("sendDtmf", { kind: "dtmf", digits: d }, now);
    this.settle();
  }

  private inCall(action: string, body: Body, now: number): void {
    const c = this.call;
    if (c === undefined || !c.accepted || !(this.stateValue === "connecting" || this.stateValue === "connected")) {
      throw new InvalidStateError(action, this.stateValue, "messages and DTMF go only in an accepted call");
    }
    if (c.group !== undefined) {
      grp.sendToAll(this, body, now);
      return;
    }
    this.sendToPeer(body, this.messageLifetimeMs, now);
  }

  // ---- shared helpers (used by call.ts and group.ts) -------------------------------------

  /** @internal */ newId(): string {
    return uuidV4(this.random);
  }

  /** @internal */ emit(n: Notification): void {
    this.outputs.push({ type: "notify", notification: n });
  }

  /** @internal */ event(event: CallEventName, callId: string | undefined, reason?: string): void {
    this.emit({ type: "event", info: { event, ...(callId !== undefined ? { callId } : {}), ...(reason !== undefined ? { reason } : {}) } });
  }

  /** @internal */ error(e: CallErrorInfo): void {
    this.emit({ type: "error", error: e });
  }

  /** @internal */ mediaCommand(cmd: MediaCommand): void {
    this.outputs.push({ type: "media", command: cmd });
  }

  /** @internal */ infoOf(c: Call): CallInfo {
    const dev = peerDevice(c);
    return {
      callId: c.id,
      role: c.role,
      caller: c.role === "caller" ? this.user : remoteUser(c),
      remoteUser: remoteUser(c),
      ...(dev !== undefined ? { remoteDevice: dev } : {}),
      callType: c.callType,
      roomId: c.roomId,
      extension: c.extension,
      group: c.group !== undefined,
    };
  }

  /** @internal */ setState(state: CallState, reason: StateReason, eventReason?: string, info?: CallInfo, durationMs?: number): void {
    const previous = this.stateValue;
    this.stateValue = state;
    this.emit({
      type: "state",
      change: {
        state,
        previous,
        reason,
        ...(eventReason !== undefined ? { eventReason } : {}),
        ...(info !== undefined ? { call: info } : {}),
        ...(durationMs !== undefined ? { durationMs } : {}),
      },
    });
  }

  /** @internal */ guardIdle(action: string): Required<PrepareOptions> {
    const prep = this.prepared;
    if (prep === undefined) throw new NotPreparedError();
    if (this.call !== undefined) throw new BusyError(this.stateValue);
    if (this.stateValue !== "prepared") throw new InvalidStateError(action, this.stateValue);
    return prep;
  }

  /** @internal */ inviteLifetime(prep: Required<PrepareOptions>): number {
    return prep.callTimeoutMs === 0 ? MAX_CALL_TIMEOUT_MS : prep.callTimeoutMs;
  }

  /** @internal Sends (and, but for acks, tracks) one new envelope. */
  send(to: string, toDevice: string | undefined, callId: string, body: Body, lifetimeMs: number, now: number): Envelope {
    const env: Envelope = {
      v: PROTOCOL_VERSION,
      id: this.newId(),
      ts: now,
      from: this.user,
      fromDevice: this.device,
      to,
      ...(toDevice !== undefined ? { toDevice } : {}),
      callId,
      lifetimeMs: Math.max(1, Math.round(lifetimeMs)),
      body,
    };
    if (body.kind !== "ack") this.reliable.track(env, now, env.lifetimeMs);
    this.outputs.push({ type: "send", envelope: env });
    return env;
  }

  /** @internal Sends to the other party's device of a 1:1 call. */
  sendToPeer(body: Body, lifetimeMs: number, now: number): void {
    const c = this.call;
    if (c === undefined) return;
    this.send(remoteUser(c), peerDevice(c), c.id, body, lifetimeMs, now);
  }

  /** @internal */ rememberEnded(e: Ended): void {
    this.ended.push(e);
    while (this.ended.length > ENDED_MEMORY || (this.ended.length > 0 && e.at - this.ended[0]!.at > this.rel.dedupeWindowMs)) this.ended.shift();
  }

  /** @internal */ endedCall(callId: string): Ended | undefined {
    for (let i = this.ended.length - 1; i >= 0; i--) if (this.ended[i]!.id === callId) return this.ended[i];
    return undefined;
  }

  /** @internal Ends the current call: stops what it had pending (but stops), leaves the media, remembers it. */
  finishCall(reason: StateReason, eventReason: string | undefined, reply: LateReply, now: number, group?: Ended["group"]): void {
    const c = this.call;
    if (c === undefined) return;
    this.call = undefined;
    this.reliable.retain((e) => e.callId !== c.id || ["cancel", "reject", "hangup", "members"].includes(e.body.kind));
    if (c.group !== undefined) {
      for (const p of c.group.mesh.clear()) this.mediaCommand({ type: "removePeer", callId: c.id, peer: { user: p.user, device: p.device } });
    }
    if (c.mediaJoined) this.mediaCommand({ type: "leave", callId: c.id });
    const answered = c.role === "caller" ? peerDevice(c) : undefined;
    this.rememberEnded({
      id: c.id,
      role: c.role,
      remoteUser: remoteUser(c),
      ...(answered !== undefined ? { answered } : {}),
      reply,
      at: now,
      ...(group !== undefined ? { group } : {}),
    });
    const duration = c.connectedAt !== undefined ? now - c.connectedAt : undefined;
    this.setState(this.prepared !== undefined ? "prepared" : "idle", reason, eventReason, this.infoOf(c), duration);
  }

  private settle(): void {
    if (this.call?.group !== undefined) grp.syncMesh(this);
  }

  private onEnvelope(env: Envelope, now: number): void {
    if (env.to !== this.user || (env.toDevice !== undefined && env.toDevice !== this.device)) return;
    if (env.body.kind === "ack") {
      const acked = this.reliable.onAck(env.from, env.fromDevice, env.body.ackId);
      if (acked !== undefined && acked.body.kind === "invite") one.onInviteAcked(this, acked);
      return;
    }
    this.send(env.from, env.fromDevice, env.callId, { kind: "ack", ackId: env.id }, this.rel.ackLifetimeMs, now);
    if (this.reliable.isDuplicate(env, now)) return;
    if (env.body.kind === "invite") {
      one.onInvite(this, env, now);
      return;
    }
    const c = this.call;
    if (c !== undefined && c.id === env.callId && c.group !== undefined) {
      grp.onEnvelope(this, env, now);
      return;
    }
    const matches =
      c !== undefined &&
      c.id === env.callId &&
      (c.role === "caller" ? c.invitations.some((i) => i.user === env.from) : c.inviter?.user === env.from && c.inviter.device === env.fromDevice);
    if (matches) {
      if (c.role === "caller") one.onFromInvitee(this, env, now);
      else one.onFromInviter(this, env, now);
    } else {
      this.onOtherCall(env, now);
    }
  }

  private onOtherCall(env: Envelope, now: number): void {
    const ended = this.endedCall(env.callId);
    if (ended !== undefined) {
      if (ended.group !== undefined) grp.onLate(this, ended, env, now);
      else one.onLate(this, ended, env, now);
    } else if (env.body.kind === "cancel") {
      // A cancel before its invite (PROTOCOL §8.7): remembered, so the invite will not ring.
      this.rememberEnded({ id: env.callId, role: "callee", remoteUser: env.from, reply: { type: "hangup" }, at: now });
    }
  }

  private onUndelivered(env: Envelope, now: number): void {
    const current = this.call?.id === env.callId;
    if (current && (env.body.kind === "invite" || env.body.kind === "ringing")) return;
    this.error({ callId: env.callId, event: "sendMessageFail", code: ERROR_CODES.MESSAGE_UNDELIVERED, message: `${env.body.kind} to ${env.to} was not acknowledged in time` });
    this.event("messageFailed", env.callId, env.body.kind);
    if (current && this.call?.group !== undefined) grp.onUndelivered(this, env, now);
  }
}

/** Whether a state is one of a call under way. */
export { isActive };
