/**
 * Browser end-to-end tests: @callapi/web in Chromium (real WebRTC, fake camera and microphone)
 * against the Rust peers (`softphone --media webrtc`) through a real `callapi-signal-server`,
 * all on loopback. Each case asserts the call states on both sides (the page's `state` events,
 * the softphone's `state ...` lines) and video frames both ways (the page's `getStats`, the
 * softphone's `counters`). See harness.ts for what runs.
 */

import assert from "node:assert/strict";
import { after, afterEach, before, describe, test } from "node:test";
import { type ConnStats } from "./page.js";
import { type Binaries, STEP_MS, type Softphone, type WebPhone, World, binaries, netnsReason, skipReason } from "./harness.js";

const skip = skipReason() ?? netnsReason();
if (skip !== undefined) console.log(`# SKIP browser tests: ${skip}`);
// Built by run.ts before the suite's clock starts.
const bins: Binaries | undefined = skip === undefined ? binaries() : undefined;
/** One case's limit: every wait in it is bounded far below this. */
const CASE_MS = 60_000;

/** Every peer connection went over loopback addresses only. */
function assertLoopback(stats: readonly ConnStats[]): void {
  for (const s of stats) {
    for (const a of [s.local, s.remote]) assert.ok(a.startsWith("127.") || a === "::1", `a media path off loopback: ${JSON.stringify(s)}`);
  }
}

/** Every connection has video frames both ways. */
function assertFramesBothWays(stats: readonly ConnStats[]): void {
  for (const s of stats) {
    assert.ok(s.framesDecoded > 0 && s.framesEncoded > 0, `no video both ways: ${JSON.stringify(s)}`);
  }
}

/** The phone's counters: video frames sent and received overall (and, given `peers`, with each of them). */
async function assertPhoneFrames(phone: Softphone, peers: readonly string[] = []): Promise<void> {
  const c = await phone.counters();
  assert.ok(c.total.videoSent > 0 && c.total.videoReceived > 0, `${phone.name}: no video both ways: ${JSON.stringify(c.total)}`);
  assert.ok(c.firstRemoteFrame, `${phone.name}: no first remote frame`);
  for (const peer of peers) {
    const p = c.byPeer.get(peer);
    assert.ok(p !== undefined && p.videoSent > 0 && p.videoReceived > 0, `${phone.name}: no video both ways with ${peer}: ${JSON.stringify(p)}`);
  }
}

/** The phone's roster changes of `user` as `from:to`. */
function members(phone: Softphone, user: string): string[] {
  return phone.lines.flatMap((l) => {
    const m = new RegExp(`^member user=${user} from=(\\S+) to=(\\w+)`).exec(l);
    return m === null ? [] : [`${m[1]}:${m[2]}`];
  });
}

/** On failure: what every party printed. */
async function transcript(pages: readonly WebPhone[], phones: readonly Softphone[]): Promise<string> {
  const parts = await Promise.all(pages.map(async (p) => `--- ${p.name} states: ${(await p.states()).join(", ")}; events: ${(await p.events()).join(", ")}; members: ${(await p.members()).join(", ")}; errors: ${JSON.stringify(await p.errors())}`));
  return [...parts, ...phones.map((p) => p.transcript())].join("\n");
}

describe("browser end to end (Chromium against the Rust peers)", { skip: skip ?? false }, () => {
  let world: World;
  let pages: WebPhone[] = [];
  let phones: Softphone[] = [];

  before(async () => {
    world = await World.start(bins!);
  }, { timeout: CASE_MS });

  afterEach(async () => {
    pages = [];
    phones = [];
    await world.reset();
  });

  after(async () => {
    await world?.stop();
  });

  /** Runs `body`; on failure adds every party's transcript to the error. */
  async function explained(body: () => Promise<void>): Promise<void> {
    try {
      await body();
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      throw new Error(`${why}\n${await transcript(pages, phones).catch((t) => String(t))}`, { cause: e });
    }
  }

  test("a page calls a Rust peer", { timeout: CASE_MS }, () =>
    explained(async () => {
      const alice = await world.page("alice", "web");
      const bob = await world.softphone("bob", "b1");
      pages = [alice];
      phones = [bob];

      await alice.call("bob", "video");
      await bob.waitState("Calling", "RemoteVideoCall");
      await alice.waitState("calling");
      await bob.run("accept");
      await alice.waitState("connected");
      await bob.waitState("Connected");
      const stats = await alice.waitMedia(1);
      assertFramesBothWays(stats);
      assertLoopback(stats);
      await assertPhoneFrames(bob);

      await alice.hangup();
      await alice.waitState("prepared", "localHangup");
      await bob.waitState("Prepared", "RemoteHangup");
      assert.deepEqual(await alice.states(), ["prepared:none", "calling:localVideoCall", "connecting:remoteAccepted", "connected:recvRemoteFirstFrame", "prepared:localHangup"]);
      assert.deepEqual(bob.states(), ["Prepared:None", "Calling:RemoteVideoCall", "Connecting:LocalAccepted", "Connected:RecvRemoteFirstFrame", "Prepared:RemoteHangup"]);
      assert.deepEqual(await alice.media(), [], "the page's peer connection is closed after the call");
    }));

  test("a Rust peer calls the page", { timeout: CASE_MS }, () =>
    explained(async () => {
      const alice = await world.page("alice", "web");
      const bob = await world.softphone("bob", "b1");
      pages = [alice];
      phones = [bob];

      await bob.run("call alice video");
      await alice.waitState("calling", "remoteVideoCall");
      await bob.waitLine(/^event RemoteUserRecvCall /);
      await alice.accept();
      await alice.waitState("connected");
      await bob.waitState("Connected");
      const stats = await alice.waitMedia(1);
      assertFramesBothWays(stats);
      assertLoopback(stats);
      await assertPhoneFrames(bob);

      await bob.run("hangup");
      await alice.waitState("prepared", "remoteHangup");
      await bob.waitState("Prepared", "LocalHangup");
      assert.deepEqual(await alice.states(), ["prepared:none", "calling:remoteVideoCall", "connecting:localAccepted", "connected:recvRemoteFirstFrame", "prepared:remoteHangup"]);
      assert.deepEqual(bob.states(), ["Prepared:None", "Calling:LocalVideoCall", "Connecting:RemoteAccepted", "Connected:RecvRemoteFirstFrame", "Prepared:LocalHangup"]);
    }));

  test("two pages call each other", { timeout: CASE_MS }, () =>
    explained(async () => {
      const alice = await world.page("alice", "web-a");
      const carol = await world.page("carol", "web-c");
      pages = [alice, carol];

      await alice.call("carol", "video");
      await carol.waitState("calling", "remoteVideoCall");
      await carol.accept();
      await alice.waitState("connected");
      await carol.waitState("connected");
      for (const p of [alice, carol]) {
        const stats = await p.waitMedia(1);
        assertFramesBothWays(stats);
        assertLoopback(stats);
      }

      await carol.hangup();
      await carol.waitState("prepared", "localHangup");
      await alice.waitState("prepared", "remoteHangup");
      assert.deepEqual(await alice.states(), ["prepared:none", "calling:localVideoCall", "connecting:remoteAccepted", "connected:recvRemoteFirstFrame", "prepared:remoteHangup"]);
      assert.deepEqual(await carol.states(), ["prepared:none", "calling:remoteVideoCall", "connecting:localAccepted", "connected:recvRemoteFirstFrame", "prepared:localHangup"]);
    }));

  test("a group of a page and two Rust peers, one invited mid-call", { timeout: CASE_MS }, () =>
    explained(async () => {
      const alice = await world.page("alice", "web");
      const bob = await world.softphone("bob", "b1");
      const carol = await world.softphone("carol", "c1");
      pages = [alice];
      phones = [bob, carol];

      // alice and bob first.
      await alice.call(["bob"], "video");
      await bob.waitState("Calling", "RemoteVideoCall");
      await bob.run("accept");
      await alice.waitState("connected");
      await bob.waitState("Connected");
      await alice.waitMember("bob", "accepted");
      assertFramesBothWays(await alice.waitMedia(1));

      // carol is invited into the running call and meshes with both.
      await alice.invite(["carol"]);
      await carol.waitState("Calling", "RemoteVideoCall");
      await carol.run("accept");
      await carol.waitState("Connected");
      await alice.waitMember("carol", "accepted");
      await bob.waitLine(/^member user=carol from=\w+ to=Accepted /);
      await bob.waitLine(/^media peer=carol\/c1 event=FirstFrame\(Video\)/);
      await carol.waitLine(/^media peer=bob\/b1 event=FirstFrame\(Video\)/);
      await carol.waitLine(/^media peer=alice\/web event=FirstFrame\(Video\)/);
      const stats = await alice.waitMedia(2);
      assertFramesBothWays(stats);
      assertLoopback(stats);
      await assertPhoneFrames(bob, ["alice", "carol"]);
      await assertPhoneFrames(carol, ["alice", "bob"]);

      // alice ends it for everyone.
      await alice.endForAll("that's all");
      await alice.waitState("prepared");
      await bob.waitLine(/^state Prepared reason=\w+ prev=Connected /);
      await carol.waitLine(/^state Prepared reason=\w+ prev=Connected /);
      // The caller is in the call at the first accept; each callee connects on its own accept.
      assert.deepEqual(await alice.states(), ["prepared:none", "calling:localVideoCall", "connected:remoteAccepted", "prepared:localHangup"]);
      for (const phone of [bob, carol]) {
        assert.deepEqual(phone.states(), ["Prepared:None", "Calling:RemoteVideoCall", "Connecting:LocalAccepted", "Connected:LocalAccepted", "Prepared:CallEnded"], phone.name);
      }
      assert.deepEqual(await alice.members(), ["alice:accepted", "bob:inviting", "bob:ringing", "bob:accepted", "carol:inviting", "carol:ringing", "carol:accepted"]);
      assert.deepEqual(members(bob, "carol"), ["-:Inviting", "Inviting:Ringing", "Ringing:Accepted"]);
      assert.deepEqual(members(carol, "bob"), ["-:Accepted"], "carol joins with bob in the call already");
      assert.deepEqual(await alice.media(), [], "the page's peer connections are closed after the call");
    }));

  test("demo --callee-web: alice (Rust) calls whoever signs in on the softphone page", { timeout: CASE_MS }, () =>
    explained(async () => {
      const demo = world.demo(["--callee-web", "--hold", "2s", "--timeout", "50s"]);
      const { line } = await demo.waitLine(/^page: http:\/\//);
      const url = line.replace(/^page: /, "").trim();
      assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/\?user=web&device=browser&signin=1$/);
      const page = await world.open(url, "softphone page web");
      const incoming = page.getByTestId("incoming");
      await incoming.waitFor({ state: "visible", timeout: STEP_MS });
      assert.equal(await page.getByTestId("incoming-from").textContent(), "alice");
      await page.getByTestId("accept").click({ timeout: STEP_MS });
      await page.waitForFunction(() => document.body.dataset["callState"] === "connected", undefined, { timeout: STEP_MS });
      await demo.waitLine(/^demo: OK /, 0, STEP_MS);
      await page.waitForFunction(() => document.body.dataset["callState"] === "prepared", undefined, { timeout: STEP_MS });
      const out = demo.lines.join("\n");
      const video = (re: RegExp): number => Number(re.exec(out)?.[1] ?? 0);
      assert.ok(video(/alice → web: (\d+) video frames/) > 0 && video(/web → alice: (\d+) video frames/) > 0, `no video both ways:\n${out}`);
      const events = await page.getByTestId("events").innerText();
      const states = [...events.matchAll(/state (\w+) -> (\w+) \((\w+)/g)].map((m) => `${m[2]}:${m[3]}`);
      assert.deepEqual(states, ["prepared:none", "calling:remoteVideoCall", "connecting:localAccepted", "connected:recvRemoteFirstFrame", "prepared:remoteHangup"]);
      const alice = [...out.matchAll(/alice +(\w+) → (\w+) +\((\w+)\)/g)].map((m) => `${m[2]}:${m[3]}`);
      assert.deepEqual(alice, ["Prepared:None", "Calling:LocalVideoCall", "Connecting:RemoteAccepted", "Connected:RecvRemoteFirstFrame", "Prepared:LocalHangup"]);
    }));
});
