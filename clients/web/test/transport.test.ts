// WebSocketTransport against a fake WebSocket on a fake clock: the token in the query string,
// hello, envelopes vs control frames, keepalive, in-band renewal, close codes mapped to typed
// errors, the reconnect schedule (0, 3, 9, 27, 60, 120 s, then every 60 s) and the token-retry
// schedule (0, 1, 4 s, then the next reconnect attempt).

import { test } from "node:test";
import assert from "node:assert/strict";
import { DEFAULT_SCHEDULE, type Envelope, FakeClock, type LinkState, type RetrySchedule, SeededRandom, TokenExpiredError, TransientLinkError, UnauthorizedError, WebSocketTransport, type WebSocketLike, encodeEnvelope, reconnectAttemptAt } from "../src/index.js";

class FakeSocket implements WebSocketLike {
  readyState = 0;
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  readonly sent: string[] = [];
  closedByClient = false;
  constructor(readonly url: string, readonly at: number) {}
  send(data: string): void {
    this.sent.push(data);
  }
  close(): void {
    this.closedByClient = true;
    this.readyState = 3;
  }
  open(): void {
    this.readyState = 1;
    this.onopen?.({});
  }
  frame(text: string): void {
    this.onmessage?.({ data: text });
  }
  hello(): void {
    this.open();
    this.frame('{"type":"hello","user":"alice","device":"a1","exp":1732353600}');
  }
  serverClose(code: number, reason = ""): void {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
}

const NO_JITTER: RetrySchedule = { ...DEFAULT_SCHEDULE, jitterMs: 0 };
const flush = (): Promise<void> => new Promise((r) => setImmediate(r));

function setup(opts: { tokens?: () => Promise<string>; schedule?: RetrySchedule } = {}) {
  const clock = new FakeClock();
  const t0 = clock.now();
  const sockets: FakeSocket[] = [];
  let fetches = 0;
  const fetchTimes: number[] = [];
  const tokens =
    opts.tokens ??
    (() => {
      fetches++;
      fetchTimes.push(clock.now() - t0);
      return Promise.resolve(`tok${fetches}`);
    });
  const t = new WebSocketTransport({
    url: "wss://signal.example/v1/signal",
    device: "a1",
    tokens: () => {
      if (opts.tokens !== undefined) fetchTimes.push(clock.now() - t0);
      return tokens();
    },
    clock,
    random: new SeededRandom(1),
    schedule: opts.schedule ?? NO_JITTER,
    webSocket: (url) => {
      const s = new FakeSocket(url, clock.now() - t0);
      sockets.push(s);
      return s;
    },
  });
  const links: LinkState[] = [];
  const envelopes: Envelope[] = [];
  const invalid: string[] = [];
  const refused: string[] = [];
  t.start({ envelope: (e) => envelopes.push(e), invalid: (e) => invalid.push(e.code), link: (s) => links.push(s), refused: (e) => refused.push(e.code) });
  const step = async (ms: number): Promise<void> => {
    for (let i = 0; i < ms; i += 100) {
      clock.advance(Math.min(100, ms - i));
      await flush();
    }
  };
  return { clock, t0, t, sockets, links, envelopes, invalid, refused, fetchTimes, step };
}

const env: Envelope = { v: 1, id: "0a6e4f1d-7c2b-4d8e-9f3a-1b2c3d4e5f60", ts: 1, from: "bob", fromDevice: "b1", to: "alice", callId: "3f2b8c1e-9a4d-4c7b-8e21-5d6f7a8b9c0d", lifetimeMs: 1000, body: { kind: "hangup" } };

test("connects with the device and the token in the query; hello makes the link connected; envelopes pass both ways", async () => {
  const s = setup();
  await s.step(100);
  assert.equal(s.sockets.length, 1);
  assert.equal(s.sockets[0]!.url, "wss://signal.example/v1/signal?device=a1&token=tok1");
  assert.deepEqual(s.links.map((l) => l.state), ["connecting"]);
  s.sockets[0]!.hello();
  assert.deepEqual(s.links.at(-1), { state: "connected", user: "alice", device: "a1", expSec: 1732353600 });
  s.t.send({ ...env, from: "alice", fromDevice: "a1", to: "bob" });
  assert.equal(JSON.parse(s.sockets[0]!.sent[0]!).kind, "hangup");
  s.sockets[0]!.frame(encodeEnvelope(env));
  assert.equal(s.envelopes.length, 1);
  // An envelope carrying `type` is dropped as invalid, never taken for a control frame.
  s.sockets[0]!.frame(JSON.stringify({ ...JSON.parse(encodeEnvelope(env)), type: "renewed" }));
  assert.deepEqual(s.invalid, ["ReservedMember"]);
  // Unknown control frames are ignored; error frames are reported.
  s.sockets[0]!.frame('{"type":"surprise"}');
  s.sockets[0]!.frame('{"type":"error","code":"spoofed_from","message":"no","id":"0a6e4f1d-7c2b-4d8e-9f3a-1b2c3d4e5f60"}');
  assert.deepEqual(s.refused, ["spoofed_from"]);
  assert.equal(s.envelopes.length, 1);
  assert.deepEqual(s.invalid, ["ReservedMember"]);
});

test("reconnect schedule after a drop: attempts at 0, 3, 9, 27, 60, 120 s, then every 60 s", async () => {
  const s = setup();
  await s.step(100);
  s.sockets[0]!.hello();
  const dropAt = s.clock.now() - s.t0;
  s.sockets[0]!.serverClose(1006);
  assert.equal(s.links.at(-1)!.state, "reconnecting");
  // Each attempt opens a socket that the server refuses at once (no hello).
  for (let i = 0; i < 2500; i++) {
    await s.step(100);
    for (const x of s.sockets.slice(1)) if (x.readyState === 0) x.serverClose(1006);
  }
  const attempts = s.sockets.slice(1).map((x) => Math.round((x.at - dropAt) / 100) * 100);
  assert.deepEqual(attempts.slice(0, 8), [0, 3000, 9000, 27000, 60000, 120000, 180000, 240000]);
  assert.ok(!s.links.some((l) => l.state === "failed"));
});

test("the reconnect schedule with jitter stays within 2 s of each offset", () => {
  const r = new SeededRandom(42);
  [0, 3000, 9000, 27000, 60000, 120000, 180000, 240000].forEach((base, k) => {
    const at = reconnectAttemptAt(DEFAULT_SCHEDULE, k, false, r);
    assert.ok(at >= base && at < base + 2000, `attempt ${k}: ${at}`);
  });
  assert.equal(reconnectAttemptAt({ ...DEFAULT_SCHEDULE, firstAttemptJitter: false }, 0, true, r), 0);
});

test("token retry: fetches at 0, 1 and 4 s; when all fail, the next reconnect attempt (3 s) fetches again", async () => {
  let fail = true;
  const s = setup({ tokens: () => (fail ? Promise.reject(new Error("backend down")) : Promise.resolve("fresh")) });
  await s.step(3500);
  assert.deepEqual(s.fetchTimes, [0, 1000]);
  await s.step(1000);
  // All three failed at 4 s: reconnect attempt 2 (due at 3 s, so at once) starts its own fetch.
  assert.deepEqual(s.fetchTimes, [0, 1000, 4000, 4000]);
  assert.equal(s.sockets.length, 0);
  const r = s.links.at(-1)!;
  assert.equal(r.state, "reconnecting");
  fail = false;
  await s.step(10_000);
  // That fetch's second try (1 s after its start) gets a token.
  assert.deepEqual(s.fetchTimes, [0, 1000, 4000, 4000, 5000]);
  assert.equal(s.sockets.length, 1);
  assert.match(s.sockets[0]!.url, /token=fresh$/);
});

test("a hung token fetch is abandoned after 15 s", async () => {
  const s = setup({ tokens: () => new Promise<string>(() => undefined) });
  await s.step(16_500);
  assert.deepEqual(s.fetchTimes, [0, 15000], "try 2 (due at 1 s) starts when try 1 is abandoned");
});

test("close codes: 4001 refetches the token and reconnects; 4003 fails for good; 4029 is transient", async () => {
  const s = setup();
  await s.step(100);
  s.sockets[0]!.hello();
  s.sockets[0]!.serverClose(4001);
  const rec = s.links.at(-1)!;
  assert.ok(rec.state === "reconnecting" && rec.error instanceof TokenExpiredError);
  await s.step(100);
  assert.match(s.sockets[1]!.url, /token=tok2$/, "a new token was fetched");
  s.sockets[1]!.hello();
  s.sockets[1]!.serverClose(4029);
  const rec2 = s.links.at(-1)!;
  assert.ok(rec2.state === "reconnecting" && rec2.error instanceof TransientLinkError && rec2.error.code === 4029);
  await s.step(100);
  assert.match(s.sockets[2]!.url, /token=tok2$/, "the token is still good");
  s.sockets[2]!.hello();
  s.sockets[2]!.serverClose(4003, "another identity");
  const f = s.links.at(-1)!;
  assert.ok(f.state === "failed" && f.error instanceof UnauthorizedError);
  assert.match(f.error.message, /valid token/);
  await s.step(300_000);
  assert.equal(s.sockets.length, 3, "no reconnect after a permanent failure");
});

test("a socket refused before opening (a browser sees 1006) refetches the token before retrying", async () => {
  const s = setup();
  await s.step(100);
  s.sockets[0]!.serverClose(1006);
  await s.step(3100);
  assert.equal(s.sockets.length, 2);
  assert.match(s.sockets[1]!.url, /token=tok2$/);
});

test("in-band renewal: token_will_expire fetches a token and sends renew; the link stays", async () => {
  const s = setup();
  await s.step(100);
  s.sockets[0]!.hello();
  s.sockets[0]!.frame('{"type":"token_will_expire","exp":1732353600}');
  await s.step(100);
  assert.deepEqual(JSON.parse(s.sockets[0]!.sent.at(-1)!), { type: "renew", token: "tok2" });
  s.sockets[0]!.frame('{"type":"renewed","exp":1732357200}');
  assert.equal(s.links.at(-1)!.state, "connected");
  assert.equal(s.sockets.length, 1);
});

test("keepalive: a ping frame every 15 s; 30 s without any frame from the server is a dropped link", async () => {
  const s = setup();
  await s.step(100);
  s.sockets[0]!.hello();
  await s.step(15_000);
  assert.deepEqual(JSON.parse(s.sockets[0]!.sent.at(-1)!), { type: "ping", nonce: "1" });
  s.sockets[0]!.frame('{"type":"pong","nonce":"1"}');
  await s.step(15_000);
  assert.equal(s.links.at(-1)!.state, "connected", "a pong arrived within the window");
  await s.step(15_000);
  assert.equal(s.links.at(-1)!.state, "reconnecting");
  assert.ok(s.sockets[0]!.closedByClient);
});
