/**
 * The page side of the browser tests: loaded into Chromium by the harness's http server as an
 * ES module (with the built library, `dist/src`), it sets `window.harness`, which the tests
 * drive through `page.evaluate`. It records everything a `CallClient` reports and reads the
 * peer connections' `getStats`.
 *
 * Every `RTCPeerConnection` the library creates is recorded (for its stats). The suite runs in
 * a network namespace with only `lo` (run.ts), so every candidate the page gathers is a
 * loopback one; the tests check the selected pairs.
 */

import {
  BrowserMedia,
  CallClient,
  type CallErrorInfo,
  type CallEventInfo,
  type CallState,
  type CallType,
  type LinkState,
  type MemberChange,
  type StateChange,
  WebSocketTransport,
} from "../../src/index.js";

/** What `getStats` says about one peer connection. */
export interface ConnStats {
  /** `connectionState`. */
  readonly state: RTCPeerConnectionState;
  /** Inbound video frames decoded. */
  readonly framesDecoded: number;
  /** Outbound video frames encoded. */
  readonly framesEncoded: number;
  /** Inbound audio packets received. */
  readonly audioPacketsReceived: number;
  /** The selected candidate pair's local and remote addresses (empty before one is chosen). */
  readonly local: string;
  readonly remote: string;
}

/** What the tests can do in the page. */
export interface Harness {
  /** Starts a client: connects to `url` with tokens from the harness server, prepares, and resolves once the link is up. */
  start(opts: { user: string; device: string; url: string; timeoutMs: number }): Promise<void>;
  call(to: string | string[], callType: CallType): Promise<string>;
  accept(): Promise<void>;
  reject(reason?: string): Promise<void>;
  hangup(reason?: string): Promise<void>;
  invite(users: string[]): Promise<void>;
  endForAll(reason?: string): Promise<void>;
  /** The client's state. */
  state(): CallState;
  /** Every state change so far as `state:reason` (`prepared:none`, `calling:localVideoCall`, ...). */
  states(): string[];
  /** Every event name so far. */
  events(): string[];
  /** Every roster change so far as `user:state`. */
  members(): string[];
  /** Every error so far. */
  errors(): CallErrorInfo[];
  /** Resolves at the first state change (from the `from`-th on) to `state` (with `reason`, if given). */
  waitState(state: CallState, reason: string | undefined, timeoutMs: number, from?: number): Promise<StateChange>;
  /** Resolves at the first roster change of `user` to `state`. */
  waitMember(user: string, state: string, timeoutMs: number): Promise<MemberChange>;
  /** `getStats` of every peer connection that is not closed. */
  media(): Promise<ConnStats[]>;
  /**
   * Resolves once exactly `connections` peer connections are open and each has decoded and
   * encoded at least `frames` video frames (polled every 100 ms, at most `timeoutMs`).
   */
  waitMedia(connections: number, frames: number, timeoutMs: number): Promise<ConnStats[]>;
}

declare global {
  interface Window {
    harness?: Harness;
  }
}

const NativePeerConnection = window.RTCPeerConnection;
const connections: RTCPeerConnection[] = [];

/** `RTCPeerConnection`, recorded (for its stats). */
function RecordedPeerConnection(config?: RTCConfiguration): RTCPeerConnection {
  const pc = new NativePeerConnection(config);
  connections.push(pc);
  return pc;
}
RecordedPeerConnection.prototype = NativePeerConnection.prototype;
window.RTCPeerConnection = RecordedPeerConnection as unknown as typeof RTCPeerConnection;

async function connStats(pc: RTCPeerConnection): Promise<ConnStats> {
  const report = await pc.getStats();
  let framesDecoded = 0;
  let framesEncoded = 0;
  let audioPacketsReceived = 0;
  let pairId: string | undefined;
  const byId = new Map<string, Record<string, unknown>>();
  report.forEach((s: Record<string, unknown>) => {
    byId.set(String(s["id"]), s);
    if (s["type"] === "inbound-rtp" && s["kind"] === "video") framesDecoded += Number(s["framesDecoded"] ?? 0);
    if (s["type"] === "outbound-rtp" && s["kind"] === "video") framesEncoded += Number(s["framesEncoded"] ?? 0);
    if (s["type"] === "inbound-rtp" && s["kind"] === "audio") audioPacketsReceived += Number(s["packetsReceived"] ?? 0);
    if (s["type"] === "transport" && typeof s["selectedCandidatePairId"] === "string") pairId = s["selectedCandidatePairId"];
  });
  const pair = pairId === undefined ? undefined : byId.get(pairId);
  const address = (id: unknown): string => String(byId.get(String(id))?.["address"] ?? "");
  return {
    state: pc.connectionState,
    framesDecoded,
    framesEncoded,
    audioPacketsReceived,
    local: pair === undefined ? "" : address(pair["localCandidateId"]),
    remote: pair === undefined ? "" : address(pair["remoteCandidateId"]),
  };
}

/** Resolves with the first entry of `log` (from `from` on) that `match` accepts, waiting for `subscribe`'s events, at most `timeoutMs`. */
function waitIn<T>(
  log: T[],
  match: (entry: T) => boolean,
  subscribe: (listener: () => void) => () => void,
  timeoutMs: number,
  what: () => string,
  from = 0,
): Promise<T> {
  const found = (): T | undefined => log.slice(from).find(match);
  const now = found();
  if (now !== undefined) return Promise.resolve(now);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what()}`));
    }, timeoutMs);
    const off = subscribe(() => {
      const hit = found();
      if (hit === undefined) return;
      clearTimeout(timer);
      off();
      resolve(hit);
    });
  });
}

let client: CallClient | undefined;
const stateLog: StateChange[] = [];
const eventLog: CallEventInfo[] = [];
const memberLog: MemberChange[] = [];
const errorLog: CallErrorInfo[] = [];
const linkLog: LinkState[] = [];

function started(): CallClient {
  if (client === undefined) throw new Error("harness.start() first");
  return client;
}

const harness: Harness = {
  async start({ user, device, url, timeoutMs }) {
    if (client !== undefined) throw new Error("this page's client is started already");
    const transport = new WebSocketTransport({
      url,
      device,
      tokens: async () => {
        const res = await fetch(`/token?user=${encodeURIComponent(user)}&device=${encodeURIComponent(device)}`);
        if (!res.ok) throw new Error(`token: HTTP ${res.status}`);
        return (await res.text()).trim();
      },
    });
    const c = new CallClient({ user, device, transport, media: new BrowserMedia() });
    client = c;
    c.on("state", (s) => stateLog.push(s));
    c.on("event", (e) => eventLog.push(e));
    c.on("member", (m) => memberLog.push(m));
    c.on("error", (e) => errorLog.push(e));
    c.on("link", (l) => linkLog.push(l));
    c.start();
    c.prepare({ roomId: `${user}-room` });
    await waitIn(
      linkLog,
      (l) => l.state === "connected",
      (listener) => c.on("link", listener),
      timeoutMs,
      () => `the link to connect (so far: ${linkLog.map((l) => l.state).join(", ")})`,
    );
  },
  call: (to, callType) => started().call(to, { callType }),
  accept: () => started().accept(),
  reject: (reason) => started().reject(reason),
  hangup: (reason) => started().hangup(reason),
  invite: (users) => started().invite(users),
  endForAll: (reason) => started().endForAll(reason),
  state: () => started().state,
  states: () => stateLog.map((s) => `${s.state}:${s.reason}`),
  events: () => eventLog.map((e) => e.event),
  members: () => memberLog.map((m) => `${m.user}:${m.state}`),
  errors: () => [...errorLog],
  waitState(state, reason, timeoutMs, from = 0) {
    const c = started();
    return waitIn(
      stateLog,
      (s) => s.state === state && (reason === undefined || s.reason === reason),
      (listener) => c.on("state", listener),
      timeoutMs,
      () => `state ${state}${reason === undefined ? "" : `:${reason}`} (so far: ${harness.states().join(", ")})`,
      from,
    );
  },
  waitMember(user, state, timeoutMs) {
    const c = started();
    return waitIn(
      memberLog,
      (m) => m.user === user && m.state === state,
      (listener) => c.on("member", listener),
      timeoutMs,
      () => `member ${user}:${state} (so far: ${harness.members().join(", ")})`,
    );
  },
  media: () => Promise.all(connections.filter((pc) => pc.connectionState !== "closed").map(connStats)),
  async waitMedia(count, frames, timeoutMs) {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const stats = await harness.media();
      const open = stats.filter((s) => s.state === "connected");
      if (stats.length === count && open.length === count && open.every((s) => s.framesDecoded >= frames && s.framesEncoded >= frames)) return stats;
      if (performance.now() >= deadline) {
        throw new Error(`timed out after ${timeoutMs} ms waiting for ${count} connections with ${frames} video frames each way: ${JSON.stringify(stats)}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  },
};

window.harness = harness;
