/**
 * The envelope (PROTOCOL §2–§6): its types, and encoding and decoding with the same checks and
 * error codes as the reference implementation.
 */

import { type JsonNode, type JsonObject, type JsonValue, JsonSyntaxError, parseJson, toPlain, tooDeep } from "./json.js";

/** The protocol major version this library speaks. */
export const PROTOCOL_VERSION = 1;
/** Largest encoded envelope, in bytes of UTF-8 (PROTOCOL §4). */
export const MAX_ENVELOPE_BYTES = 65_536;
/** Longest user or device id, in bytes of UTF-8 (PROTOCOL §2.1). */
export const MAX_ID_BYTES = 256;

/** `"video"` (video and audio) or `"audio"` (audio only). */
export type CallType = "video" | "audio";
/** Why a callee device stops: another device of its user answered or declined. */
export type Elsewhere = "answered" | "rejected";
/** The state of a member's record in a group call's roster (PROTOCOL §10.1). */
export type MemberState = "inviting" | "ringing" | "accepted" | "rejected" | "busy" | "timeout" | "cancelled" | "left";

/** One record of a group call's roster (PROTOCOL §10.1). */
export interface MemberRecord {
  /** The member user. */
  readonly user: string;
  /** Where the member is. */
  readonly state: MemberState;
  /** The record's counter. */
  readonly seq: number;
  /** For `accepted` and `left`: the member's device in the call. */
  readonly device?: string;
  /** For `rejected`, `cancelled`, `left`: the reason given. */
  readonly reason?: string;
  /** For `inviting` and `ringing`: when the invitation's lifetime ends (Unix ms). */
  readonly untilMs?: number;
}

/** What an envelope says: one variant per kind (PROTOCOL §3). */
export type Body =
  | { readonly kind: "invite"; readonly roomId: string; readonly callType: CallType; readonly extension: JsonObject; readonly members?: readonly MemberRecord[] }
  | { readonly kind: "ringing"; readonly group: boolean; readonly seq?: number }
  | { readonly kind: "accept"; readonly group: boolean; readonly seq?: number }
  | { readonly kind: "confirm"; readonly members?: readonly MemberRecord[] }
  | { readonly kind: "reject"; readonly reason?: string; readonly busy: boolean; readonly seq?: number }
  | { readonly kind: "cancel"; readonly reason?: string; readonly timeout: boolean; readonly elsewhere?: Elsewhere; readonly seq?: number }
  | { readonly kind: "hangup"; readonly reason?: string }
  | { readonly kind: "media"; readonly payload: JsonValue; readonly seq?: number; readonly toSeq?: number }
  | { readonly kind: "message"; readonly data: string }
  | { readonly kind: "dtmf"; readonly digits: string }
  | { readonly kind: "ack"; readonly ackId: string }
  | { readonly kind: "members"; readonly members: readonly MemberRecord[]; readonly ended: boolean };

/** The name of a kind. */
export type Kind = Body["kind"];

/** The twelve kinds of version 1. */
export const KINDS: readonly Kind[] = ["invite", "ringing", "accept", "confirm", "reject", "cancel", "hangup", "media", "message", "dtmf", "ack", "members"];

/** One signaling message (PROTOCOL §2). Ids are canonical lowercase UUIDs after decoding. */
export interface Envelope {
  /** Protocol major version. */
  readonly v: number;
  /** Unique id of this envelope (a retransmission keeps it). */
  readonly id: string;
  /** When the sender first sent it, Unix milliseconds. */
  readonly ts: number;
  /** The sending user. */
  readonly from: string;
  /** The sending device. */
  readonly fromDevice: string;
  /** The receiving user. */
  readonly to: string;
  /** Only this device of `to`, if set. */
  readonly toDevice?: string;
  /** The call. */
  readonly callId: string;
  /** How long after `ts` the envelope is worth delivering. */
  readonly lifetimeMs: number;
  /** The kind and its members. */
  readonly body: Body;
}

/** The error codes of PROTOCOL §6, named as the reference implementation names them. */
export type DecodeErrorCode = "TooLarge" | "NotUtf8" | "TooDeep" | "Malformed" | "UnsupportedVersion" | "MissingField" | "UnknownKind" | "ReservedMember";

/** Input that is not a valid envelope (PROTOCOL §6). `code` says which check refused it. */
export class EnvelopeDecodeError extends Error {
  /** For `MissingField`: the kind (`"envelope"` for the common members). */
  readonly kind?: string;
  /** For `MissingField`: the missing member. */
  readonly field?: string;
  /** For `UnsupportedVersion`: the envelope's `v`. */
  readonly version?: number;

  constructor(readonly code: DecodeErrorCode, message: string, extra: { kind?: string; field?: string; version?: number } = {}) {
    super(message);
    this.name = "EnvelopeDecodeError";
    if (extra.kind !== undefined) this.kind = extra.kind;
    if (extra.field !== undefined) this.field = extra.field;
    if (extra.version !== undefined) this.version = extra.version;
  }
}

/** An envelope that cannot be encoded; the message says what to shrink or fix. */
export class EnvelopeEncodeError extends Error {
  constructor(readonly code: "TooLarge" | "TooDeep" | "Invalid", message: string) {
    super(message);
    this.name = "EnvelopeEncodeError";
  }
}

const utf8 = new TextEncoder();

/** Bytes of `s` in UTF-8. */
export function utf8Length(s: string): number {
  return utf8.encode(s).length;
}

/** Why `id` is not a valid user or device id (PROTOCOL §2.1), or `undefined` if it is. */
export function idProblem(id: string): string | undefined {
  if (id.length === 0) return "id is empty: users and devices need a non-empty id";
  const len = utf8Length(id);
  if (len > MAX_ID_BYTES) return `id is ${len} bytes long, more than the ${MAX_ID_BYTES} allowed`;
  // Unicode general category Cc: U+0000–U+001F and U+007F–U+009F.
  if (/[\u0000-\u001f\u007f-\u009f]/.test(id)) return "id contains a control character";
  return undefined;
}

/**
 * Parses a UUID in any textual form RFC 9562 allows (hyphenated, 32 hex digits, `{braced}`,
 * `urn:uuid:`), any case; answers the canonical lowercase hyphenated form, or `undefined`.
 */
export function parseUuid(s: string): string | undefined {
  let t = s;
  if (t.length === 45 && t.slice(0, 9).toLowerCase() === "urn:uuid:") t = t.slice(9);
  else if (t.length === 38 && t.startsWith("{") && t.endsWith("}")) t = t.slice(1, -1);
  let hex: string;
  if (t.length === 36) {
    if (!/^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/.test(t)) return undefined;
    hex = t.replace(/-/g, "");
  } else if (t.length === 32 && s.length === 32) {
    if (!/^[0-9a-fA-F]{32}$/.test(t)) return undefined;
    hex = t;
  } else return undefined;
  hex = hex.toLowerCase();
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** Compares two canonical call ids as 128-bit unsigned values (PROTOCOL §2.1). */
export function compareCallIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

// ---------------------------------------------------------------------------------------------
// Decoding

class TypeProblem extends Error {}

const U64_MAX = 18446744073709551615n;

function readU64(n: JsonNode, name: string): number {
  if (n.t !== "num" || !/^(0|[1-9][0-9]*)$/.test(n.raw)) throw new TypeProblem(`${name}: expected a non-negative integer`);
  if (BigInt(n.raw) > U64_MAX) throw new TypeProblem(`${name}: integer out of range`);
  return Number(n.raw);
}

function readString(n: JsonNode, name: string): string {
  if (n.t !== "str") throw new TypeProblem(`${name}: expected a string`);
  return n.v;
}

function readBool(n: JsonNode, name: string): boolean {
  if (n.t !== "bool") throw new TypeProblem(`${name}: expected a boolean`);
  return n.v;
}

function readId(n: JsonNode, name: string): string {
  const s = readString(n, name);
  const p = idProblem(s);
  if (p !== undefined) throw new TypeProblem(`${name}: ${p}`);
  return s;
}

function readUuid(n: JsonNode, name: string): string {
  const s = readString(n, name);
  const u = parseUuid(s);
  if (u === undefined) throw new TypeProblem(`${name}: ${JSON.stringify(s)} is not a UUID`);
  return u;
}

function readEnum<T extends string>(n: JsonNode, name: string, values: readonly T[]): T {
  const s = readString(n, name);
  const found = values.find((v) => v === s);
  if (found === undefined) throw new TypeProblem(`${name}: unknown variant ${JSON.stringify(s)}, expected one of ${values.join(", ")}`);
  return found;
}

const MEMBER_STATES: readonly MemberState[] = ["inviting", "ringing", "accepted", "rejected", "busy", "timeout", "cancelled", "left"];

function members(n: JsonNode, name: string): MemberRecord[] {
  if (n.t !== "arr") throw new TypeProblem(`${name}: expected an array of member records`);
  const out: MemberRecord[] = [];
  for (const item of n.items) {
    if (item.t !== "obj") throw new TypeProblem(`${name}: expected a member record object`);
    const seen = new Set<string>();
    let user: string | undefined;
    let state: MemberState | undefined;
    let seq: number | undefined;
    let device: string | undefined;
    let reason: string | undefined;
    let untilMs: number | undefined;
    for (const [k, v] of item.entries) {
      if (!["user", "state", "seq", "device", "reason", "until_ms"].includes(k)) continue;
      if (seen.has(k)) throw new TypeProblem(`duplicate field \`${k}\` in a member record`);
      seen.add(k);
      if (v.t === "null") continue;
      if (k === "user") user = readId(v, "user");
      else if (k === "state") state = readEnum(v, "state", MEMBER_STATES);
      else if (k === "seq") seq = readU64(v, "seq");
      else if (k === "device") device = readId(v, "device");
      else if (k === "reason") reason = readString(v, "reason");
      else untilMs = readU64(v, "until_ms");
    }
    if (user === undefined) throw new TypeProblem("missing field `user` in a member record");
    if (state === undefined) throw new TypeProblem("missing field `state` in a member record");
    if (seq === undefined) throw new TypeProblem("missing field `seq` in a member record");
    out.push({ user, state, seq, ...(device !== undefined ? { device } : {}), ...(reason !== undefined ? { reason } : {}), ...(untilMs !== undefined ? { untilMs } : {}) });
  }
  return out;
}

/** The members of the wire shape, with their values read. */
interface Wire {
  v?: number;
  id?: string;
  ts?: number;
  from?: string;
  from_device?: string;
  to?: string;
  to_device?: string;
  call_id?: string;
  kind?: string;
  lifetime_ms?: number;
  room_id?: string;
  call_type?: CallType;
  extension?: JsonObject;
  reason?: string;
  busy?: boolean;
  timeout?: boolean;
  elsewhere?: Elsewhere;
  payload?: JsonValue;
  hasPayload: boolean;
  data?: string;
  digits?: string;
  ack_id?: string;
  members?: MemberRecord[];
  ended?: boolean;
  group?: boolean;
  seq?: number;
  to_seq?: number;
  reservedType: boolean;
}

type Reader = (w: Wire, n: JsonNode) => void;

const READERS: Record<string, Reader> = {
  v: (w, n) => (w.v = readU64(n, "v")),
  id: (w, n) => (w.id = readUuid(n, "id")),
  ts: (w, n) => (w.ts = readU64(n, "ts")),
  from: (w, n) => (w.from = readId(n, "from")),
  from_device: (w, n) => (w.from_device = readId(n, "from_device")),
  to: (w, n) => (w.to = readId(n, "to")),
  to_device: (w, n) => (w.to_device = readId(n, "to_device")),
  call_id: (w, n) => (w.call_id = readUuid(n, "call_id")),
  kind: (w, n) => (w.kind = readString(n, "kind")),
  lifetime_ms: (w, n) => (w.lifetime_ms = readU64(n, "lifetime_ms")),
  room_id: (w, n) => (w.room_id = readString(n, "room_id")),
  call_type: (w, n) => (w.call_type = readEnum(n, "call_type", ["video", "audio"] as const)),
  extension: (w, n) => {
    if (n.t !== "obj") throw new TypeProblem("extension: expected an object");
    w.extension = toPlain(n) as JsonObject;
  },
  reason: (w, n) => (w.reason = readString(n, "reason")),
  busy: (w, n) => (w.busy = readBool(n, "busy")),
  timeout: (w, n) => (w.timeout = readBool(n, "timeout")),
  elsewhere: (w, n) => (w.elsewhere = readEnum(n, "elsewhere", ["answered", "rejected"] as const)),
  data: (w, n) => (w.data = readString(n, "data")),
  digits: (w, n) => (w.digits = readString(n, "digits")),
  ack_id: (w, n) => (w.ack_id = readUuid(n, "ack_id")),
  members: (w, n) => (w.members = members(n, "members")),
  ended: (w, n) => (w.ended = readBool(n, "ended")),
  group: (w, n) => (w.group = readBool(n, "group")),
  seq: (w, n) => (w.seq = readU64(n, "seq")),
  to_seq: (w, n) => (w.to_seq = readU64(n, "to_seq")),
};

/** A `v` greater than ours, from any JSON number (also one too large for 64 bits, or `2.0`). */
function newerVersion(n: JsonNode | undefined): number | undefined {
  if (n === undefined || n.t !== "num") return undefined;
  if (/^(0|[1-9][0-9]*)$/.test(n.raw)) {
    const big = BigInt(n.raw);
    return big > BigInt(PROTOCOL_VERSION) ? Number(big > U64_MAX ? U64_MAX : big) : undefined;
  }
  const f = Number(n.raw);
  if (!Number.isFinite(f) || !Number.isInteger(f) || f <= 0) return undefined;
  return f > PROTOCOL_VERSION ? f : undefined;
}

function unsupported(v: number): EnvelopeDecodeError {
  return new EnvelopeDecodeError("UnsupportedVersion", `envelope protocol version ${v} is newer than the supported ${PROTOCOL_VERSION}; upgrade @callapi/web`, { version: v });
}

function missing(kind: string, field: string): EnvelopeDecodeError {
  return new EnvelopeDecodeError("MissingField", `envelope of kind ${JSON.stringify(kind)} lacks the required field ${JSON.stringify(field)}`, { kind, field });
}

function need<T>(v: T | undefined, kind: string, field: string): T {
  if (v === undefined) throw missing(kind, field);
  return v;
}

const fatalUtf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Decodes one envelope from a frame's text or bytes, with the checks of PROTOCOL §6 in their
 * order. Throws {@link EnvelopeDecodeError}; never anything else.
 */
export function decodeEnvelope(input: string | Uint8Array): Envelope {
  let text: string;
  if (typeof input === "string") {
    if (input.length > MAX_ENVELOPE_BYTES * 3 || utf8Length(input) > MAX_ENVELOPE_BYTES) {
      const size = utf8Length(input);
      throw new EnvelopeDecodeError("TooLarge", `envelope is ${size} bytes, more than the ${MAX_ENVELOPE_BYTES} allowed`);
    }
    if (/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(input)) {
      throw new EnvelopeDecodeError("NotUtf8", "envelope is not valid UTF-8");
    }
    text = input;
  } else {
    if (input.length > MAX_ENVELOPE_BYTES) {
      throw new EnvelopeDecodeError("TooLarge", `envelope is ${input.length} bytes, more than the ${MAX_ENVELOPE_BYTES} allowed`);
    }
    try {
      text = fatalUtf8.decode(input);
    } catch {
      throw new EnvelopeDecodeError("NotUtf8", "envelope is not valid UTF-8");
    }
  }
  if (tooDeep(text)) throw new EnvelopeDecodeError("TooDeep", "envelope JSON is nested too deeply (128 levels or more)");
  if (!/^[ \t\n\r]*\{/.test(text)) throw new EnvelopeDecodeError("Malformed", "malformed envelope: an envelope must be a JSON object");
  let root: JsonNode;
  try {
    root = parseJson(text);
  } catch (e) {
    const msg = e instanceof JsonSyntaxError ? e.message : String(e);
    throw new EnvelopeDecodeError("Malformed", `malformed envelope: ${msg}`);
  }
  if (root.t !== "obj") throw new EnvelopeDecodeError("Malformed", "malformed envelope: an envelope must be a JSON object");
  const w: Wire = { hasPayload: false, reservedType: false };
  let vNode: JsonNode | undefined;
  try {
    const seen = new Set<string>();
    for (const [k, n] of root.entries) {
      const known = k === "type" || k === "payload" || Object.prototype.hasOwnProperty.call(READERS, k);
      if (!known) continue;
      if (seen.has(k)) throw new TypeProblem(`duplicate field \`${k}\``);
      seen.add(k);
      if (k === "v") vNode = n;
      if (k === "type") {
        w.reservedType = true;
        continue;
      }
      if (k === "payload") {
        w.hasPayload = true;
        w.payload = toPlain(n);
        continue;
      }
      if (n.t === "null") continue;
      READERS[k]!(w, n);
    }
  } catch (e) {
    if (!(e instanceof TypeProblem)) throw e;
    // A newer major version may change member types: report the version, not the type error.
    const newer = newerVersion(vNode);
    if (newer !== undefined) throw unsupported(newer);
    throw new EnvelopeDecodeError("Malformed", `malformed envelope: ${e.message}`);
  }
  return fromWire(w);
}

function roster(records: MemberRecord[]): MemberRecord[] {
  const users = new Set<string>();
  for (const r of records) {
    if (users.has(r.user)) throw new EnvelopeDecodeError("Malformed", `malformed envelope: roster has two records for user ${JSON.stringify(r.user)}`);
    users.add(r.user);
  }
  return records;
}

function opt<K extends string, T>(key: K, v: T | undefined): { [P in K]?: T } {
  return (v === undefined ? {} : { [key]: v }) as { [P in K]?: T };
}

function fromWire(w: Wire): Envelope {
  const E = "envelope";
  const v = need(w.v, E, "v");
  if (v > PROTOCOL_VERSION) throw unsupported(v);
  if (v === 0) throw new EnvelopeDecodeError("Malformed", "malformed envelope: protocol version 0 does not exist");
  const kind = need(w.kind, E, "kind");
  let body: Body;
  switch (kind) {
    case "invite":
      body = {
        kind,
        roomId: need(w.room_id, "invite", "room_id"),
        callType: need(w.call_type, "invite", "call_type"),
        extension: w.extension ?? {},
        ...opt("members", w.members === undefined ? undefined : roster(w.members)),
      };
      break;
    case "ringing":
    case "accept":
      body = { kind, group: w.group ?? false, ...opt("seq", w.seq) };
      break;
    case "confirm":
      body = { kind, ...opt("members", w.members === undefined ? undefined : roster(w.members)) };
      break;
    case "reject":
      body = { kind, ...opt("reason", w.reason), busy: w.busy ?? false, ...opt("seq", w.seq) };
      break;
    case "cancel":
      body = { kind, ...opt("reason", w.reason), timeout: w.timeout ?? false, ...opt("elsewhere", w.elsewhere), ...opt("seq", w.seq) };
      break;
    case "hangup":
      body = { kind, ...opt("reason", w.reason) };
      break;
    case "media":
      if (!w.hasPayload) throw missing("media", "payload");
      body = { kind, payload: w.payload ?? null, ...opt("seq", w.seq), ...opt("toSeq", w.to_seq) };
      break;
    case "message":
      body = { kind, data: need(w.data, "message", "data") };
      break;
    case "dtmf":
      body = { kind, digits: need(w.digits, "dtmf", "digits") };
      break;
    case "ack":
      body = { kind, ackId: need(w.ack_id, "ack", "ack_id") };
      break;
    case "members":
      body = { kind, members: roster(need(w.members, "members", "members")), ended: w.ended ?? false };
      break;
    default:
      throw new EnvelopeDecodeError("UnknownKind", `unknown envelope kind ${JSON.stringify(kind)}`);
  }
  const env: Envelope = {
    v,
    id: need(w.id, E, "id"),
    ts: need(w.ts, E, "ts"),
    from: need(w.from, E, "from"),
    fromDevice: need(w.from_device, E, "from_device"),
    to: need(w.to, E, "to"),
    ...opt("toDevice", w.to_device),
    callId: need(w.call_id, E, "call_id"),
    lifetimeMs: need(w.lifetime_ms, E, "lifetime_ms"),
    body,
  };
  // Checked last, so that a transport's control frame (no envelope members) fails earlier.
  if (w.reservedType) {
    throw new EnvelopeDecodeError("ReservedMember", 'an envelope must not have a member named "type" (reserved for transport control frames); remove it');
  }
  return env;
}

// ---------------------------------------------------------------------------------------------
// Encoding

function wireMembers(records: readonly MemberRecord[]): JsonValue[] {
  return records.map((r) => {
    const o: JsonObject = { user: r.user, state: r.state, seq: r.seq };
    if (r.device !== undefined) o["device"] = r.device;
    if (r.reason !== undefined) o["reason"] = r.reason;
    if (r.untilMs !== undefined) o["until_ms"] = r.untilMs;
    return o;
  });
}

/** The envelope as the plain JSON object of the wire (PROTOCOL §2), members in a fixed order. */
export function toWireObject(env: Envelope): JsonObject {
  const o: JsonObject = { v: env.v, id: env.id, ts: env.ts, from: env.from, from_device: env.fromDevice, to: env.to };
  if (env.toDevice !== undefined) o["to_device"] = env.toDevice;
  o["call_id"] = env.callId;
  o["kind"] = env.body.kind;
  o["lifetime_ms"] = env.lifetimeMs;
  const b = env.body;
  switch (b.kind) {
    case "invite":
      o["room_id"] = b.roomId;
      o["call_type"] = b.callType;
      if (Object.keys(b.extension).length > 0) o["extension"] = b.extension;
      if (b.members !== undefined) o["members"] = wireMembers(b.members);
      break;
    case "ringing":
    case "accept":
      if (b.group) o["group"] = true;
      if (b.seq !== undefined) o["seq"] = b.seq;
      break;
    case "confirm":
      if (b.members !== undefined) o["members"] = wireMembers(b.members);
      break;
    case "members":
      o["members"] = wireMembers(b.members);
      if (b.ended) o["ended"] = true;
      break;
    case "reject":
      if (b.reason !== undefined) o["reason"] = b.reason;
      o["busy"] = b.busy;
      if (b.seq !== undefined) o["seq"] = b.seq;
      break;
    case "cancel":
      if (b.reason !== undefined) o["reason"] = b.reason;
      o["timeout"] = b.timeout;
      if (b.elsewhere !== undefined) o["elsewhere"] = b.elsewhere;
      if (b.seq !== undefined) o["seq"] = b.seq;
      break;
    case "hangup":
      if (b.reason !== undefined) o["reason"] = b.reason;
      break;
    case "media":
      o["payload"] = b.payload;
      if (b.seq !== undefined) o["seq"] = b.seq;
      if (b.toSeq !== undefined) o["to_seq"] = b.toSeq;
      break;
    case "message":
      o["data"] = b.data;
      break;
    case "dtmf":
      o["digits"] = b.digits;
      break;
    case "ack":
      o["ack_id"] = b.ackId;
      break;
  }
  return o;
}

/**
 * Encodes an envelope as compact JSON text. Throws {@link EnvelopeEncodeError} when it would be
 * larger than 64 KiB or nest 128 levels (receivers refuse both), or has an invalid id.
 */
export function encodeEnvelope(env: Envelope): string {
  for (const [name, id] of [["from", env.from], ["from_device", env.fromDevice], ["to", env.to], ["to_device", env.toDevice]] as const) {
    if (id === undefined) continue;
    const p = idProblem(id);
    if (p !== undefined) throw new EnvelopeEncodeError("Invalid", `${name}: ${p}`);
  }
  const text = JSON.stringify(toWireObject(env));
  const size = utf8Length(text);
  if (size > MAX_ENVELOPE_BYTES) {
    throw new EnvelopeEncodeError("TooLarge", `encoded envelope is ${size} bytes, more than the ${MAX_ENVELOPE_BYTES} allowed; shrink the payload, message or extension`);
  }
  if (tooDeep(text)) throw new EnvelopeEncodeError("TooDeep", "encoded envelope nests 128 levels or more; receivers refuse it; flatten the data");
  return text;
}
