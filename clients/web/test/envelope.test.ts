// The envelope codec (PROTOCOL §2–§6): every JSON example of PROTOCOL.md decodes and round-trips
// (as callapi-core/tests/protocol_doc_examples.rs checks them), and each decoding error of §6
// is reported with its code, in the documented order.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { EnvelopeDecodeError, EnvelopeEncodeError, KINDS, decodeEnvelope, encodeEnvelope, parseUuid, type DecodeErrorCode, type Envelope } from "../src/index.js";

const md = readFileSync(new URL("../../../../docs/PROTOCOL.md", import.meta.url), "utf8");

/** The bodies of all fenced blocks opened with exactly "```json", with their line. */
function jsonBlocks(text: string): [number, string][] {
  const out: [number, string][] = [];
  let cur: [number, string] | undefined;
  text.split("\n").forEach((line, i) => {
    const t = line.trim();
    if (cur === undefined) {
      if (t === "```json") cur = [i + 1, ""];
    } else if (t === "```") {
      out.push(cur);
      cur = undefined;
    } else cur[1] += line + "\n";
  });
  assert.equal(cur, undefined, "unterminated ```json block");
  return out;
}

function code(input: string | Uint8Array): DecodeErrorCode {
  try {
    decodeEnvelope(input);
  } catch (e) {
    assert.ok(e instanceof EnvelopeDecodeError, String(e));
    return e.code;
  }
  assert.fail("decoded");
}

const base = { v: 1, id: "0a6e4f1d-7c2b-4d8e-9f3a-1b2c3d4e5f60", ts: 1, from: "a", from_device: "a1", to: "b", call_id: "3f2b8c1e-9a4d-4c7b-8e21-5d6f7a8b9c0d", lifetime_ms: 1000 };
const j = (o: object): string => JSON.stringify(o);

test("every ```json example of PROTOCOL.md decodes, covers all twelve kinds, and survives encode/decode", () => {
  const blocks = jsonBlocks(md);
  assert.ok(blocks.length >= 25, `found ${blocks.length} examples`);
  const kinds = new Set<string>();
  for (const [line, text] of blocks) {
    let env: Envelope;
    try {
      env = decodeEnvelope(text);
    } catch (e) {
      assert.fail(`PROTOCOL.md example at line ${line} does not decode: ${String(e)}`);
    }
    kinds.add(env.body.kind);
    assert.deepEqual(decodeEnvelope(encodeEnvelope(env)), env, `round trip of line ${line}`);
  }
  assert.deepEqual([...kinds].sort(), [...KINDS].sort());
});

test("the §2.2 example decodes to the documented members; encoding is compact with wire names", () => {
  const [, text] = jsonBlocks(md)[0]!;
  const env = decodeEnvelope(text);
  assert.equal(env.from, "alice");
  assert.equal(env.fromDevice, "a1");
  assert.equal(env.toDevice, undefined);
  assert.deepEqual(env.body, { kind: "invite", roomId: "alice-room", callType: "video", extension: { k: "v" } });
  const out = encodeEnvelope(env);
  assert.ok(!/\s/.test(out.replace(/"[^"]*"/g, "")), "no insignificant whitespace");
  assert.match(out, /"from_device":"a1"/);
  assert.match(out, /"lifetime_ms":15000/);
  // An empty extension is omitted; reject/cancel always carry busy/timeout; group only when set.
  assert.ok(!encodeEnvelope({ ...env, body: { kind: "invite", roomId: "r", callType: "audio", extension: {} } }).includes("extension"));
  assert.match(encodeEnvelope({ ...env, body: { kind: "reject", busy: false } }), /"busy":false/);
  assert.ok(!encodeEnvelope({ ...env, body: { kind: "ringing", group: false } }).includes("group"));
});

test("decode errors of §6, each with its code", () => {
  assert.equal(code("x".repeat(65_537)), "TooLarge");
  assert.equal(code(new Uint8Array([0x7b, 0xff, 0x7d])), "NotUtf8");
  assert.equal(code("[".repeat(128) + "]".repeat(128)), "TooDeep");
  assert.equal(code(j({ ...base, kind: "media", payload: JSON.parse("[".repeat(127) + "]".repeat(127)) })), "TooDeep", "128 levels inside a payload");
  assert.equal(decodeEnvelope(j({ ...base, kind: "media", payload: JSON.parse("[".repeat(126) + "]".repeat(126)) })).body.kind, "media", "127 levels are fine");
  assert.equal(code("[1]"), "Malformed");
  assert.equal(code("{not json"), "Malformed");
  assert.equal(code(j({ ...base, ts: "soon", kind: "ack", ack_id: base.id })), "Malformed");
  assert.equal(code(j({ ...base, kind: "reject", busy: "yes" })), "Malformed");
  assert.equal(code(j({ ...base, kind: "ringing", busy: "yes" })), "Malformed", "type checks apply to every known member");
  assert.equal(code(j({ ...base, kind: "invite", room_id: "r", call_type: "hologram" })), "Malformed");
  assert.equal(code(j({ ...base, from: "", kind: "hangup" })), "Malformed");
  assert.equal(code(j({ ...base, from: "a\u0085b", kind: "hangup" })), "Malformed");
  assert.equal(code(j({ ...base, from: "x".repeat(257), kind: "hangup" })), "Malformed");
  assert.equal(code(j({ ...base, id: "not-a-uuid", kind: "hangup" })), "Malformed");
  assert.equal(code(j({ ...base, v: 0, kind: "hangup" })), "Malformed");
  assert.equal(code(j({ ...base, v: -1, kind: "hangup" })), "Malformed");
  assert.equal(code(j({ ...base, kind: "hangup" }).replace('"ts":1', '"ts":1.0')), "Malformed", "an integer with a fraction");
  assert.equal(code(j({ ...base, kind: "hangup" }).replace('"ts":1', '"ts":1e3')), "Malformed", "an exponent");
  assert.equal(code(j({ ...base, kind: "hangup" }).replace('"ts":1', '"ts":18446744073709551616')), "Malformed", "beyond 64 bits");
  assert.equal(code(j({ ...base, kind: "hangup" }).replace('"from":"a"', '"from":"a","from":"z"')), "Malformed", "a defined member twice");
  assert.equal(code(j({ ...base, kind: "members", members: [{ user: "a", state: "left", seq: 1 }, { user: "a", state: "left", seq: 2 }] })), "Malformed", "two records for one user");
  assert.equal(code(j({ ...base, kind: "members", members: [{ user: "a", state: "gone", seq: 1 }] })), "Malformed");
  // Versions.
  assert.equal(code(j({ ...base, v: 2, kind: "hangup" })), "UnsupportedVersion");
  assert.equal(code(j({ ...base, v: 2, ts: "later", kind: "hangup" })), "UnsupportedVersion", "the version check comes first");
  assert.equal(code(j({ v: 3 })), "UnsupportedVersion", "even with required members missing");
  assert.equal(code(j({ ...base, kind: "hangup" }).replace('"v":1', '"v":2.0')), "UnsupportedVersion");
  assert.equal(code(j({ ...base, kind: "hangup" }).replace('"v":1', '"v":99999999999999999999999')), "UnsupportedVersion");
  // Missing members: v and kind first, then the kind's own, then the common ones.
  const miss = (o: object): [string | undefined, string | undefined] => {
    try {
      decodeEnvelope(j(o));
    } catch (e) {
      assert.ok(e instanceof EnvelopeDecodeError && e.code === "MissingField", String(e));
      return [e.kind, e.field];
    }
    return assert.fail("decoded");
  };
  assert.deepEqual(miss({ kind: "hangup" }), ["envelope", "v"]);
  assert.deepEqual(miss({ v: 1 }), ["envelope", "kind"]);
  assert.deepEqual(miss({ v: 1, kind: "message" }), ["message", "data"]);
  assert.deepEqual(miss({ v: 1, kind: "media", ts: 1 }), ["media", "payload"]);
  assert.deepEqual(miss({ v: 1, kind: "hangup" }), ["envelope", "id"]);
  assert.deepEqual(miss({ ...base, ts: null, kind: "hangup" }), ["envelope", "ts"], "a required null counts as missing");
  assert.equal(code(j({ ...base, kind: "wave" })), "UnknownKind");
  assert.equal(code(j({ ...base, kind: "hangup", type: null })), "ReservedMember");
  assert.equal(code('{"type":"hello","user":"alice","device":"a1","exp":1732353600}'), "MissingField", "a control frame is not an envelope");
});

test("optional members may be null; payload null is a payload; unknown members are ignored; UUID forms", () => {
  const env = decodeEnvelope(j({ ...base, to_device: null, kind: "media", payload: null, extra: { deep: [1, 2] } }));
  assert.equal(env.toDevice, undefined);
  assert.deepEqual(env.body, { kind: "media", payload: null });
  const up = decodeEnvelope(j({ ...base, id: "{0A6E4F1D-7C2B-4D8E-9F3A-1B2C3D4E5F60}", call_id: "3F2B8C1E9A4D4C7B8E215D6F7A8B9C0D", kind: "hangup" }));
  assert.equal(up.id, base.id);
  assert.equal(up.callId, base.call_id);
  assert.equal(parseUuid("urn:uuid:0A6E4F1D-7C2B-4D8E-9F3A-1B2C3D4E5F60"), base.id);
  assert.equal(parseUuid("0a6e4f1d7c2b4d8e9f3a1b2c3d4e5f6"), undefined);
});

test("encoding refuses envelopes over 64 KiB or 128 levels deep, and invalid ids", () => {
  const env = decodeEnvelope(j({ ...base, kind: "message", data: "x" }));
  assert.throws(() => encodeEnvelope({ ...env, body: { kind: "message", data: "x".repeat(70_000) } }), (e: unknown) => e instanceof EnvelopeEncodeError && e.code === "TooLarge" && e.message.includes("shrink"));
  assert.throws(() => encodeEnvelope({ ...env, body: { kind: "media", payload: JSON.parse("[".repeat(127) + "]".repeat(127)) } }), (e: unknown) => e instanceof EnvelopeEncodeError && e.code === "TooDeep");
  assert.doesNotThrow(() => encodeEnvelope({ ...env, body: { kind: "media", payload: JSON.parse("[".repeat(126) + "]".repeat(126)) } }));
  assert.throws(() => encodeEnvelope({ ...env, to: "" }), EnvelopeEncodeError);
});
