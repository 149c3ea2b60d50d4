/**
 * `CallClient`: the application's API. It wires a {@link CallMachine} (the protocol, sans-IO)
 * to a {@link Transport} (the signaling link), a {@link MediaEngine} and a {@link Clock}, and
 * turns the machine's notifications into typed events.
 */

import { type Clock, SystemClock, type TimerHandle } from "./clock.js";
import type { CallType } from "./envelope.js";
import type { JsonObject } from "./json.js";
import { CallMachine, type PrepareOptions } from "./machine.js";
import { type MediaEngine, type MediaEvent, NoMedia } from "./media-types.js";
import { CryptoRandom, type Random } from "./random.js";
import type { Reliability } from "./reliable.js";
import type { CallErrorInfo, CallEventInfo, CallInfo, CallState, InCallData, MemberChange, StateChange } from "./state.js";
import type { LinkState, Transport } from "./transport.js";
import type { MemberRecord } from "./envelope.js";
import type { ServerRefusedError } from "./errors.js";
import { Emitter } from "./emitter.js";

/** The events of a {@link CallClient}, by name. */
export interface CallClientEvents {
  /** The call state changed. */
  state: StateChange;
  /** Something happened in a call. */
  event: CallEventInfo;
  /** A call or signaling error. */
  error: CallErrorInfo;
  /** An in-call message arrived. */
  message: InCallData;
  /** DTMF digits arrived (`data` holds the digits). */
  dtmf: InCallData;
  /** A group call's roster changed. */
  member: MemberChange;
  /** The signaling link changed. */
  link: LinkState;
  /** The server refused a frame. */
  refused: ServerRefusedError;
}

/** Settings of a {@link CallClient}. */
export interface CallClientOptions {
  /** This user's id. */
  readonly user: string;
  /** This device's id. */
  readonly device: string;
  /** The signaling link, e.g. a `WebSocketTransport`. */
  readonly transport: Transport;
  /** The media stack (default: none, signaling only). */
  readonly media?: MediaEngine;
  readonly clock?: Clock;
  readonly random?: Random;
  readonly reliability?: Reliability;
  /** Lifetime of most envelopes (60 s). */
  readonly messageLifetimeMs?: number;
  /** Most invitees of one group call (9). */
  readonly maxInvitees?: number;
}

/** Options of {@link CallClient.call}. */
export interface CallOptions {
  /** `"video"` (default) or `"audio"`. */
  readonly callType?: CallType;
  /** Per-call application data, merged over the prepared extension. */
  readonly extension?: JsonObject;
}

/** See the file comment. */
export class CallClient extends Emitter<CallClientEvents> {
  /** The protocol machine (read-only use: state, roster, pending messages). */
  readonly machine: CallMachine;
  private readonly clock: Clock;
  private readonly transport: Transport;
  private readonly mediaEngine: MediaEngine;
  private timer: TimerHandle | undefined;
  private running = false;
  private readonly queue: (() => void)[] = [];
  private linkWasUp = false;

  constructor(opts: CallClientOptions) {
    super();
    this.clock = opts.clock ?? new SystemClock();
    this.transport = opts.transport;
    this.mediaEngine = opts.media ?? new NoMedia();
    this.machine = new CallMachine({
      user: opts.user,
      device: opts.device,
      random: opts.random ?? new CryptoRandom(),
      reportsFrames: this.mediaEngine.reportsFrames,
      ...(opts.reliability !== undefined ? { reliability: opts.reliability } : {}),
      ...(opts.messageLifetimeMs !== undefined ? { messageLifetimeMs: opts.messageLifetimeMs } : {}),
      ...(opts.maxInvitees !== undefined ? { maxInvitees: opts.maxInvitees } : {}),
    });
    this.mediaEngine.attach((ev: MediaEvent) => this.run((now) => this.machine.media(ev, now)));
  }

  /** Connects the signaling link. */
  start(): void {
    this.transport.start({
      envelope: (env) => this.run((now) => this.machine.receive(env, now)),
      invalid: (err) => this.run((now) => this.machine.invalid(err, now)),
      link: (state) => {
        this.emitEvent("link", state);
        if (state.state === "connected") {
          const again = this.linkWasUp;
          this.linkWasUp = true;
          if (again) this.run((now) => this.machine.linkUp(now));
        }
      },
      refused: (err) => this.emitEvent("refused", err),
    });
  }

  /** Closes the link and stops every timer. */
  stop(): void {
    this.transport.stop();
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** The call state. */
  get state(): CallState {
    return this.machine.state;
  }

  /** The current call. */
  callInfo(): CallInfo | undefined {
    return this.machine.callInfo();
  }

  /** The current group call's roster. */
  roster(): readonly MemberRecord[] | undefined {
    return this.machine.roster()?.records();
  }

  /** Makes the device ready to take and place calls (a device that is not is busy). */
  prepare(opts: PrepareOptions): void {
    this.run(() => this.machine.prepare(opts));
  }

  /** Takes no more calls (invites are declined as busy). */
  unprepare(): void {
    this.run(() => this.machine.unprepare());
  }

  /** Calls one user (1:1) or several (a group call); resolves with the call id once the invites are out. */
  async call(to: string | readonly string[], opts: CallOptions = {}): Promise<string> {
    const callType = opts.callType ?? "video";
    const ext = opts.extension ?? {};
    return this.run((now) => (typeof to === "string" ? this.machine.callUser(to, callType, ext, now) : this.machine.callGroup(to, callType, ext, now)));
  }

  /** Answers the ringing call. */
  async accept(): Promise<void> {
    this.run((now) => this.machine.accept(now));
  }

  /** Declines the ringing call. */
  async reject(reason?: string): Promise<void> {
    this.run((now) => this.machine.reject(reason, now));
  }

  /** Withdraws a call this device placed, before it connected. */
  async cancel(reason?: string): Promise<void> {
    this.run((now) => this.machine.cancel(reason, now));
  }

  /** Ends the call at whatever stage (cancel, reject or hangup; in a group call: leave). */
  async hangup(reason?: string): Promise<void> {
    this.run((now) => this.machine.hangup(reason, now));
  }

  /** Invites more users into the group call this device is in. */
  async invite(users: string | readonly string[]): Promise<void> {
    this.run((now) => this.machine.invite(typeof users === "string" ? [users] : users, now));
  }

  /** Leaves the group call (the others go on). */
  async leave(reason?: string): Promise<void> {
    this.run((now) => this.machine.hangup(reason, now));
  }

  /** Ends the group call for everyone. */
  async endForAll(reason?: string): Promise<void> {
    this.run((now) => this.machine.endForAll(reason, now));
  }

  /** Joins again a group call this device was in, declined or missed. */
  async join(callId: string): Promise<void> {
    this.run((now) => this.machine.join(callId, now));
  }

  /** Sends application data to the other party (every other member in a group call). */
  async sendMessage(data: string): Promise<void> {
    this.run((now) => this.machine.sendMessage(data, now));
  }

  /** Sends DTMF digits (`0-9 * # A-D`). */
  async sendDtmf(digits: string): Promise<void> {
    this.run((now) => this.machine.sendDtmf(digits, now));
  }

  /** Runs one machine input, then performs its outputs; inputs arriving meanwhile wait their turn. */
  private run<T>(fn: (now: number) => T): T {
    if (this.running) {
      let result: T | undefined;
      this.queue.push(() => {
        result = fn(this.clock.now());
      });
      return result as T;
    }
    this.running = true;
    try {
      const result = fn(this.clock.now());
      this.drain();
      return result;
    } finally {
      this.running = false;
      this.reschedule();
    }
  }

  private drain(): void {
    for (;;) {
      for (const out of this.machine.takeOutputs()) {
        switch (out.type) {
          case "send":
            this.transport.send(out.envelope);
            break;
          case "media":
            this.mediaEngine.handle(out.command);
            break;
          case "notify": {
            const n = out.notification;
            if (n.type === "state") this.emitEvent("state", n.change);
            else if (n.type === "event") this.emitEvent("event", n.info);
            else if (n.type === "error") this.emitEvent("error", n.error);
            else if (n.type === "message") this.emitEvent("message", n.message);
            else if (n.type === "dtmf") this.emitEvent("dtmf", n.dtmf);
            else this.emitEvent("member", n.change);
            break;
          }
        }
      }
      const next = this.queue.shift();
      if (next === undefined) return;
      try {
        next();
      } catch (e) {
        queueMicrotask(() => {
          throw e;
        });
      }
    }
  }

  private reschedule(): void {
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    const at = this.machine.pollTimeout();
    if (at === undefined) return;
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      this.run((now) => this.machine.tick(now));
    }, Math.max(0, at - this.clock.now()));
  }
}
