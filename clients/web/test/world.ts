// Test fixtures: an in-memory network of CallClients on one FakeClock, with per-envelope delay,
// loss and offline storage under the test's control (deterministic: no real time, no randomness
// but seeded ids).

import { CallClient, type CallEventName, type CallErrorInfo, type CallState, type Envelope, FakeClock, type InCallData, type MediaEngine, type MemberChange, type MemberState, SeededRandom, type StateReason, type Transport, type TransportHandlers, decodeEnvelope, encodeEnvelope } from "../src/index.js";

export const T0 = 1_732_350_000_000;

interface Stored {
  readonly text: string;
  readonly expires: number;
}

/** One device's end of the network. */
export class FakeTransport implements Transport {
  handlers: TransportHandlers | undefined;
  constructor(readonly net: FakeNetwork, readonly user: string, readonly device: string) {}
  start(h: TransportHandlers): void {
    this.handlers = h;
    h.link({ state: "connected", user: this.user, device: this.device, expSec: 0 });
  }
  send(env: Envelope): void {
    this.net.send(env);
  }
  stop(): void {
    this.handlers = undefined;
  }
}

/** Best-effort delivery with a fixed delay, a drop rule and offline storage, like the mock backend. */
export class FakeNetwork {
  readonly devices: FakeTransport[] = [];
  readonly online = new Map<FakeTransport, boolean>();
  readonly stored = new Map<FakeTransport, Stored[]>();
  /** One-way delay of an envelope (ms). */
  delay: (env: Envelope) => number = () => 10;
  /** Whether the network loses this envelope. */
  drop: (env: Envelope) => boolean = () => false;
  /** Keep envelopes for offline devices until their lifetime ends (as the WebSocket server does). */
  storeOffline = true;
  readonly log: Envelope[] = [];
  droppedCount = 0;

  constructor(readonly clock: FakeClock) {}

  attach(t: FakeTransport): void {
    this.devices.push(t);
    this.online.set(t, true);
  }

  targets(env: Envelope): FakeTransport[] {
    return this.devices.filter((d) => d.user === env.to && (env.toDevice === undefined || d.device === env.toDevice));
  }

  send(env: Envelope): void {
    const text = encodeEnvelope(env);
    this.log.push(env);
    if (this.drop(env)) {
      this.droppedCount++;
      return;
    }
    const d = this.delay(env);
    for (const t of this.targets(env)) {
      this.clock.setTimeout(() => this.arrive(t, text, env), d);
    }
  }

  /** Hands `env` to its addressees now (plus the delay), as a server replaying a copy would. */
  inject(env: Envelope): void {
    const text = encodeEnvelope(env);
    for (const t of this.targets(env)) this.clock.setTimeout(() => this.arrive(t, text, env), this.delay(env));
  }

  private arrive(t: FakeTransport, text: string, env: Envelope): void {
    if (this.online.get(t) === true) {
      t.handlers?.envelope(decodeEnvelope(text));
    } else if (this.storeOffline) {
      const list = this.stored.get(t) ?? [];
      if (!list.some((s) => s.text === text)) list.push({ text, expires: env.ts + env.lifetimeMs });
      this.stored.set(t, list);
    }
  }

  setOnline(t: FakeTransport, on: boolean): void {
    this.online.set(t, on);
    if (!on) return;
    const list = this.stored.get(t) ?? [];
    this.stored.delete(t);
    for (const s of list) {
      this.clock.setTimeout(() => {
        if (this.clock.now() <= s.expires) t.handlers?.envelope(decodeEnvelope(s.text));
      }, 10);
    }
  }
}

/** A device under test with everything it reported. */
export class Dev {
  readonly states: [CallState, StateReason][] = [];
  readonly stateTimes: number[] = [];
  readonly reasons: (string | undefined)[] = [];
  readonly events: CallEventName[] = [];
  readonly eventReasons: (string | undefined)[] = [];
  readonly errors: CallErrorInfo[] = [];
  readonly messages: InCallData[] = [];
  readonly dtmf: InCallData[] = [];
  readonly members: MemberChange[] = [];
  constructor(readonly world: World, readonly client: CallClient, readonly transport: FakeTransport) {
    client.on("state", (s) => {
      if (s.state === "idle" || (s.state === "prepared" && s.reason === "none")) return;
      this.states.push([s.state, s.reason]);
      this.stateTimes.push(world.elapsed());
      this.reasons.push(s.eventReason);
    });
    client.on("event", (e) => {
      if (e.event === "joinMediaStart") return;
      this.events.push(e.event);
      this.eventReasons.push(e.reason);
    });
    client.on("error", (e) => this.errors.push(e));
    client.on("message", (m) => this.messages.push(m));
    client.on("dtmf", (m) => this.dtmf.push(m));
    client.on("member", (m) => this.members.push(m));
  }
  get user(): string {
    return this.transport.user;
  }
  /** Envelopes this device sent, acks left out, retransmissions once. */
  sent(): Envelope[] {
    const seen = new Set<string>();
    return this.world.net.log.filter((e) => e.from === this.user && e.fromDevice === this.transport.device && e.body.kind !== "ack" && !seen.has(e.id) && seen.add(e.id) !== undefined);
  }
  /** Every envelope this device put on the network (acks and retransmissions included). */
  allSent(): Envelope[] {
    return this.world.net.log.filter((e) => e.from === this.user && e.fromDevice === this.transport.device);
  }
  sentKinds(): string[] {
    return this.sent().map((e) => e.body.kind);
  }
  /** The time of the first state change to `state`/`reason`, ms since the world started. */
  timeOf(state: CallState, reason: StateReason): number {
    const i = this.states.findIndex(([s, r]) => s === state && r === reason);
    if (i < 0) throw new Error(`never ${state}/${reason}: ${JSON.stringify(this.states)}`);
    return this.stateTimes[i]!;
  }
  /** The roster as (user, state) pairs, sorted by user. */
  roster(): [string, MemberState][] {
    return (this.client.roster() ?? []).map((r) => [r.user, r.state]);
  }
  /** The changes of `user`'s record: (previous, state). */
  changesOf(user: string): [MemberState | undefined, MemberState][] {
    return this.members.filter((m) => m.user === user).map((m) => [m.previous, m.state]);
  }
  get state(): CallState {
    return this.client.state;
  }
  callId(): string {
    const c = this.client.callInfo();
    if (c === undefined) throw new Error("no call");
    return c.callId;
  }
  online(on: boolean): void {
    this.world.net.setOnline(this.transport, on);
  }
}

export interface AddOptions {
  readonly prepare?: boolean;
  readonly media?: MediaEngine;
  readonly callTimeoutMs?: number;
  readonly joinMediaOnRinging?: boolean;
}

/** Clients wired together on one clock and one network. */
export class World {
  readonly clock = new FakeClock(T0);
  readonly net = new FakeNetwork(this.clock);
  private seed: number;
  constructor(seed = 1) {
    this.seed = seed * 7919;
  }
  elapsed(): number {
    return this.clock.now() - T0;
  }
  add(user: string, device: string, opts: AddOptions = {}): Dev {
    const transport = new FakeTransport(this.net, user, device);
    this.net.attach(transport);
    const client = new CallClient({ user, device, transport, clock: this.clock, random: new SeededRandom(++this.seed), ...(opts.media !== undefined ? { media: opts.media } : {}) });
    const dev = new Dev(this, client, transport);
    client.start();
    if (opts.prepare ?? true) {
      client.prepare({ roomId: `${user}-room`, ...(opts.callTimeoutMs !== undefined ? { callTimeoutMs: opts.callTimeoutMs } : {}), ...(opts.joinMediaOnRinging !== undefined ? { joinMediaOnRinging: opts.joinMediaOnRinging } : {}) });
    }
    return dev;
  }
  run(ms: number): void {
    this.clock.advance(ms);
  }
  /** Runs until no timer is left (or `maxMs` passed); answers whether it went quiet. */
  runUntilQuiet(maxMs: number): boolean {
    const end = this.clock.now() + maxMs;
    for (;;) {
      const next = this.clock.nextAt();
      if (next === undefined) return true;
      if (next > end) {
        this.clock.advanceTo(end);
        return false;
      }
      this.clock.advanceTo(next);
    }
  }
}
