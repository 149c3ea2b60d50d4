// ../../clients/web/src/clock.ts
var SystemClock = class {
  timers = /* @__PURE__ */ new Map();
  next = 1;
  now() {
    return Date.now();
  }
  setTimeout(fn, ms) {
    const handle = this.next++;
    const t = globalThis.setTimeout(() => {
      this.timers.delete(handle);
      fn();
    }, Math.max(0, ms));
    this.timers.set(handle, t);
    return handle;
  }
  clearTimeout(handle) {
    const t = this.timers.get(handle);
    if (t !== void 0) {
      globalThis.clearTimeout(t);
      this.timers.delete(handle);
    }
  }
};

// ../../clients/web/src/json.ts
var JsonSyntaxError = class extends Error {
  constructor(message, position) {
    super(`${message} at character ${position}`);
    this.position = position;
    this.name = "JsonSyntaxError";
  }
};
var DEPTH_LIMIT = 128;
function tooDeep(text) {
  let depth = 0;
  let inString = false;
  let escaped = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (escaped) escaped = false;
      else if (c === 92) escaped = true;
      else if (c === 34) inString = false;
      continue;
    }
    if (c === 34) inString = true;
    else if (c === 91 || c === 123) {
      depth++;
      if (depth >= DEPTH_LIMIT) return true;
    } else if (c === 93 || c === 125) depth = Math.max(0, depth - 1);
  }
  return false;
}
var NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
var Parser = class {
  constructor(s) {
    this.s = s;
  }
  i = 0;
  parseDocument() {
    this.ws();
    const v = this.value();
    this.ws();
    if (this.i < this.s.length) this.fail("trailing characters");
    return v;
  }
  fail(msg) {
    throw new JsonSyntaxError(msg, this.i);
  }
  ws() {
    const s = this.s;
    while (this.i < s.length) {
      const c = s.charCodeAt(this.i);
      if (c === 32 || c === 9 || c === 10 || c === 13) this.i++;
      else break;
    }
  }
  value() {
    const s = this.s;
    const c = s[this.i];
    switch (c) {
      case "{":
        return this.object();
      case "[":
        return this.array();
      case '"':
        return { t: "str", v: this.string() };
      case "t":
        return this.literal("true", { t: "bool", v: true });
      case "f":
        return this.literal("false", { t: "bool", v: false });
      case "n":
        return this.literal("null", { t: "null" });
      default: {
        NUMBER.lastIndex = this.i;
        const m = NUMBER.exec(s);
        if (m === null || m[0].length === 0) this.fail(c === void 0 ? "unexpected end of input" : `unexpected ${JSON.stringify(c)}`);
        this.i += m[0].length;
        return { t: "num", raw: m[0] };
      }
    }
  }
  literal(word, node) {
    if (this.s.startsWith(word, this.i)) {
      this.i += word.length;
      return node;
    }
    return this.fail("invalid literal");
  }
  object() {
    this.i++;
    const entries = [];
    this.ws();
    if (this.s[this.i] === "}") {
      this.i++;
      return { t: "obj", entries };
    }
    for (; ; ) {
      this.ws();
      if (this.s[this.i] !== '"') this.fail("expected a member name");
      const key2 = this.string();
      this.ws();
      if (this.s[this.i] !== ":") this.fail("expected ':'");
      this.i++;
      this.ws();
      entries.push([key2, this.value()]);
      this.ws();
      const c = this.s[this.i];
      if (c === ",") {
        this.i++;
        continue;
      }
      if (c === "}") {
        this.i++;
        return { t: "obj", entries };
      }
      this.fail("expected ',' or '}'");
    }
  }
  array() {
    this.i++;
    const items = [];
    this.ws();
    if (this.s[this.i] === "]") {
      this.i++;
      return { t: "arr", items };
    }
    for (; ; ) {
      this.ws();
      items.push(this.value());
      this.ws();
      const c = this.s[this.i];
      if (c === ",") {
        this.i++;
        continue;
      }
      if (c === "]") {
        this.i++;
        return { t: "arr", items };
      }
      this.fail("expected ',' or ']'");
    }
  }
  hex4() {
    const h = this.s.slice(this.i, this.i + 4);
    if (!/^[0-9a-fA-F]{4}$/.test(h)) this.fail("invalid \\u escape");
    this.i += 4;
    return parseInt(h, 16);
  }
  string() {
    const s = this.s;
    this.i++;
    let out = "";
    let start = this.i;
    for (; ; ) {
      if (this.i >= s.length) this.fail("unterminated string");
      const c = s.charCodeAt(this.i);
      if (c === 34) {
        out += s.slice(start, this.i);
        this.i++;
        return out;
      }
      if (c < 32) this.fail("control character in string");
      if (c !== 92) {
        this.i++;
        continue;
      }
      out += s.slice(start, this.i);
      this.i++;
      const e = s[this.i++];
      switch (e) {
        case '"':
          out += '"';
          break;
        case "\\":
          out += "\\";
          break;
        case "/":
          out += "/";
          break;
        case "b":
          out += "\b";
          break;
        case "f":
          out += "\f";
          break;
        case "n":
          out += "\n";
          break;
        case "r":
          out += "\r";
          break;
        case "t":
          out += "	";
          break;
        case "u": {
          const u = this.hex4();
          if (u >= 55296 && u <= 56319) {
            if (s[this.i] !== "\\" || s[this.i + 1] !== "u") this.fail("lone leading surrogate");
            this.i += 2;
            const lo = this.hex4();
            if (lo < 56320 || lo > 57343) this.fail("invalid trailing surrogate");
            out += String.fromCharCode(u, lo);
          } else if (u >= 56320 && u <= 57343) {
            this.fail("lone trailing surrogate");
          } else {
            out += String.fromCharCode(u);
          }
          break;
        }
        default:
          this.fail("invalid escape");
      }
      start = this.i;
    }
  }
};
function parseJson(text) {
  return new Parser(text).parseDocument();
}
function toPlain(node) {
  switch (node.t) {
    case "obj": {
      const o = {};
      for (const [k, v] of node.entries) {
        Object.defineProperty(o, k, { value: toPlain(v), enumerable: true, writable: true, configurable: true });
      }
      return o;
    }
    case "arr":
      return node.items.map(toPlain);
    case "str":
      return node.v;
    case "num":
      return Number(node.raw);
    case "bool":
      return node.v;
    case "null":
      return null;
  }
}

// ../../clients/web/src/envelope.ts
var PROTOCOL_VERSION = 1;
var MAX_ENVELOPE_BYTES = 65536;
var MAX_ID_BYTES = 256;
var EnvelopeDecodeError = class extends Error {
  constructor(code, message, extra = {}) {
    super(message);
    this.code = code;
    this.name = "EnvelopeDecodeError";
    if (extra.kind !== void 0) this.kind = extra.kind;
    if (extra.field !== void 0) this.field = extra.field;
    if (extra.version !== void 0) this.version = extra.version;
  }
  /** For `MissingField`: the kind (`"envelope"` for the common members). */
  kind;
  /** For `MissingField`: the missing member. */
  field;
  /** For `UnsupportedVersion`: the envelope's `v`. */
  version;
};
var EnvelopeEncodeError = class extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
    this.name = "EnvelopeEncodeError";
  }
};
var utf8 = new TextEncoder();
function utf8Length(s) {
  return utf8.encode(s).length;
}
function idProblem(id) {
  if (id.length === 0) return "id is empty: users and devices need a non-empty id";
  const len = utf8Length(id);
  if (len > MAX_ID_BYTES) return `id is ${len} bytes long, more than the ${MAX_ID_BYTES} allowed`;
  if (/[\u0000-\u001f\u007f-\u009f]/.test(id)) return "id contains a control character";
  return void 0;
}
function parseUuid(s) {
  let t = s;
  if (t.length === 45 && t.slice(0, 9).toLowerCase() === "urn:uuid:") t = t.slice(9);
  else if (t.length === 38 && t.startsWith("{") && t.endsWith("}")) t = t.slice(1, -1);
  let hex;
  if (t.length === 36) {
    if (!/^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/.test(t)) return void 0;
    hex = t.replace(/-/g, "");
  } else if (t.length === 32 && s.length === 32) {
    if (!/^[0-9a-fA-F]{32}$/.test(t)) return void 0;
    hex = t;
  } else return void 0;
  hex = hex.toLowerCase();
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
function compareCallIds(a, b) {
  return a < b ? -1 : a > b ? 1 : 0;
}
var TypeProblem = class extends Error {
};
var U64_MAX = 18446744073709551615n;
function readU64(n, name) {
  if (n.t !== "num" || !/^(0|[1-9][0-9]*)$/.test(n.raw)) throw new TypeProblem(`${name}: expected a non-negative integer`);
  if (BigInt(n.raw) > U64_MAX) throw new TypeProblem(`${name}: integer out of range`);
  return Number(n.raw);
}
function readString(n, name) {
  if (n.t !== "str") throw new TypeProblem(`${name}: expected a string`);
  return n.v;
}
function readBool(n, name) {
  if (n.t !== "bool") throw new TypeProblem(`${name}: expected a boolean`);
  return n.v;
}
function readId(n, name) {
  const s = readString(n, name);
  const p = idProblem(s);
  if (p !== void 0) throw new TypeProblem(`${name}: ${p}`);
  return s;
}
function readUuid(n, name) {
  const s = readString(n, name);
  const u = parseUuid(s);
  if (u === void 0) throw new TypeProblem(`${name}: ${JSON.stringify(s)} is not a UUID`);
  return u;
}
function readEnum(n, name, values) {
  const s = readString(n, name);
  const found = values.find((v) => v === s);
  if (found === void 0) throw new TypeProblem(`${name}: unknown variant ${JSON.stringify(s)}, expected one of ${values.join(", ")}`);
  return found;
}
var MEMBER_STATES = ["inviting", "ringing", "accepted", "rejected", "busy", "timeout", "cancelled", "left"];
function members(n, name) {
  if (n.t !== "arr") throw new TypeProblem(`${name}: expected an array of member records`);
  const out = [];
  for (const item of n.items) {
    if (item.t !== "obj") throw new TypeProblem(`${name}: expected a member record object`);
    const seen = /* @__PURE__ */ new Set();
    let user;
    let state;
    let seq;
    let device;
    let reason;
    let untilMs;
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
    if (user === void 0) throw new TypeProblem("missing field `user` in a member record");
    if (state === void 0) throw new TypeProblem("missing field `state` in a member record");
    if (seq === void 0) throw new TypeProblem("missing field `seq` in a member record");
    out.push({ user, state, seq, ...device !== void 0 ? { device } : {}, ...reason !== void 0 ? { reason } : {}, ...untilMs !== void 0 ? { untilMs } : {} });
  }
  return out;
}
var READERS = {
  v: (w, n) => w.v = readU64(n, "v"),
  id: (w, n) => w.id = readUuid(n, "id"),
  ts: (w, n) => w.ts = readU64(n, "ts"),
  from: (w, n) => w.from = readId(n, "from"),
  from_device: (w, n) => w.from_device = readId(n, "from_device"),
  to: (w, n) => w.to = readId(n, "to"),
  to_device: (w, n) => w.to_device = readId(n, "to_device"),
  call_id: (w, n) => w.call_id = readUuid(n, "call_id"),
  kind: (w, n) => w.kind = readString(n, "kind"),
  lifetime_ms: (w, n) => w.lifetime_ms = readU64(n, "lifetime_ms"),
  room_id: (w, n) => w.room_id = readString(n, "room_id"),
  call_type: (w, n) => w.call_type = readEnum(n, "call_type", ["video", "audio"]),
  extension: (w, n) => {
    if (n.t !== "obj") throw new TypeProblem("extension: expected an object");
    w.extension = toPlain(n);
  },
  reason: (w, n) => w.reason = readString(n, "reason"),
  busy: (w, n) => w.busy = readBool(n, "busy"),
  timeout: (w, n) => w.timeout = readBool(n, "timeout"),
  elsewhere: (w, n) => w.elsewhere = readEnum(n, "elsewhere", ["answered", "rejected"]),
  data: (w, n) => w.data = readString(n, "data"),
  digits: (w, n) => w.digits = readString(n, "digits"),
  ack_id: (w, n) => w.ack_id = readUuid(n, "ack_id"),
  members: (w, n) => w.members = members(n, "members"),
  ended: (w, n) => w.ended = readBool(n, "ended"),
  group: (w, n) => w.group = readBool(n, "group"),
  seq: (w, n) => w.seq = readU64(n, "seq"),
  to_seq: (w, n) => w.to_seq = readU64(n, "to_seq")
};
function newerVersion(n) {
  if (n === void 0 || n.t !== "num") return void 0;
  if (/^(0|[1-9][0-9]*)$/.test(n.raw)) {
    const big = BigInt(n.raw);
    return big > BigInt(PROTOCOL_VERSION) ? Number(big > U64_MAX ? U64_MAX : big) : void 0;
  }
  const f = Number(n.raw);
  if (!Number.isFinite(f) || !Number.isInteger(f) || f <= 0) return void 0;
  return f > PROTOCOL_VERSION ? f : void 0;
}
function unsupported(v) {
  return new EnvelopeDecodeError("UnsupportedVersion", `envelope protocol version ${v} is newer than the supported ${PROTOCOL_VERSION}; upgrade @callapi/web`, { version: v });
}
function missing(kind, field) {
  return new EnvelopeDecodeError("MissingField", `envelope of kind ${JSON.stringify(kind)} lacks the required field ${JSON.stringify(field)}`, { kind, field });
}
function need(v, kind, field) {
  if (v === void 0) throw missing(kind, field);
  return v;
}
var fatalUtf8 = new TextDecoder("utf-8", { fatal: true });
function decodeEnvelope(input) {
  let text;
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
  let root;
  try {
    root = parseJson(text);
  } catch (e) {
    const msg = e instanceof JsonSyntaxError ? e.message : String(e);
    throw new EnvelopeDecodeError("Malformed", `malformed envelope: ${msg}`);
  }
  if (root.t !== "obj") throw new EnvelopeDecodeError("Malformed", "malformed envelope: an envelope must be a JSON object");
  const w = { hasPayload: false, reservedType: false };
  let vNode;
  try {
    const seen = /* @__PURE__ */ new Set();
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
      READERS[k](w, n);
    }
  } catch (e) {
    if (!(e instanceof TypeProblem)) throw e;
    const newer = newerVersion(vNode);
    if (newer !== void 0) throw unsupported(newer);
    throw new EnvelopeDecodeError("Malformed", `malformed envelope: ${e.message}`);
  }
  return fromWire(w);
}
function roster(records) {
  const users = /* @__PURE__ */ new Set();
  for (const r of records) {
    if (users.has(r.user)) throw new EnvelopeDecodeError("Malformed", `malformed envelope: roster has two records for user ${JSON.stringify(r.user)}`);
    users.add(r.user);
  }
  return records;
}
function opt(key2, v) {
  return v === void 0 ? {} : { [key2]: v };
}
function fromWire(w) {
  const E = "envelope";
  const v = need(w.v, E, "v");
  if (v > PROTOCOL_VERSION) throw unsupported(v);
  if (v === 0) throw new EnvelopeDecodeError("Malformed", "malformed envelope: protocol version 0 does not exist");
  const kind = need(w.kind, E, "kind");
  let body;
  switch (kind) {
    case "invite":
      body = {
        kind,
        roomId: need(w.room_id, "invite", "room_id"),
        callType: need(w.call_type, "invite", "call_type"),
        extension: w.extension ?? {},
        ...opt("members", w.members === void 0 ? void 0 : roster(w.members))
      };
      break;
    case "ringing":
    case "accept":
      body = { kind, group: w.group ?? false, ...opt("seq", w.seq) };
      break;
    case "confirm":
      body = { kind, ...opt("members", w.members === void 0 ? void 0 : roster(w.members)) };
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
  const env = {
    v,
    id: need(w.id, E, "id"),
    ts: need(w.ts, E, "ts"),
    from: need(w.from, E, "from"),
    fromDevice: need(w.from_device, E, "from_device"),
    to: need(w.to, E, "to"),
    ...opt("toDevice", w.to_device),
    callId: need(w.call_id, E, "call_id"),
    lifetimeMs: need(w.lifetime_ms, E, "lifetime_ms"),
    body
  };
  if (w.reservedType) {
    throw new EnvelopeDecodeError("ReservedMember", 'an envelope must not have a member named "type" (reserved for transport control frames); remove it');
  }
  return env;
}
function wireMembers(records) {
  return records.map((r) => {
    const o = { user: r.user, state: r.state, seq: r.seq };
    if (r.device !== void 0) o["device"] = r.device;
    if (r.reason !== void 0) o["reason"] = r.reason;
    if (r.untilMs !== void 0) o["until_ms"] = r.untilMs;
    return o;
  });
}
function toWireObject(env) {
  const o = { v: env.v, id: env.id, ts: env.ts, from: env.from, from_device: env.fromDevice, to: env.to };
  if (env.toDevice !== void 0) o["to_device"] = env.toDevice;
  o["call_id"] = env.callId;
  o["kind"] = env.body.kind;
  o["lifetime_ms"] = env.lifetimeMs;
  const b = env.body;
  switch (b.kind) {
    case "invite":
      o["room_id"] = b.roomId;
      o["call_type"] = b.callType;
      if (Object.keys(b.extension).length > 0) o["extension"] = b.extension;
      if (b.members !== void 0) o["members"] = wireMembers(b.members);
      break;
    case "ringing":
    case "accept":
      if (b.group) o["group"] = true;
      if (b.seq !== void 0) o["seq"] = b.seq;
      break;
    case "confirm":
      if (b.members !== void 0) o["members"] = wireMembers(b.members);
      break;
    case "members":
      o["members"] = wireMembers(b.members);
      if (b.ended) o["ended"] = true;
      break;
    case "reject":
      if (b.reason !== void 0) o["reason"] = b.reason;
      o["busy"] = b.busy;
      if (b.seq !== void 0) o["seq"] = b.seq;
      break;
    case "cancel":
      if (b.reason !== void 0) o["reason"] = b.reason;
      o["timeout"] = b.timeout;
      if (b.elsewhere !== void 0) o["elsewhere"] = b.elsewhere;
      if (b.seq !== void 0) o["seq"] = b.seq;
      break;
    case "hangup":
      if (b.reason !== void 0) o["reason"] = b.reason;
      break;
    case "media":
      o["payload"] = b.payload;
      if (b.seq !== void 0) o["seq"] = b.seq;
      if (b.toSeq !== void 0) o["to_seq"] = b.toSeq;
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
function encodeEnvelope(env) {
  for (const [name, id] of [["from", env.from], ["from_device", env.fromDevice], ["to", env.to], ["to_device", env.toDevice]]) {
    if (id === void 0) continue;
    const p = idProblem(id);
    if (p !== void 0) throw new EnvelopeEncodeError("Invalid", `${name}: ${p}`);
  }
  const text = JSON.stringify(toWireObject(env));
  const size = utf8Length(text);
  if (size > MAX_ENVELOPE_BYTES) {
    throw new EnvelopeEncodeError("TooLarge", `encoded envelope is ${size} bytes, more than the ${MAX_ENVELOPE_BYTES} allowed; shrink the payload, message or extension`);
  }
  if (tooDeep(text)) throw new EnvelopeEncodeError("TooDeep", "encoded envelope nests 128 levels or more; receivers refuse it; flatten the data");
  return text;
}

// ../../clients/web/src/reliable.ts
var DEFAULT_RELIABILITY = {
  initialRtoMs: 500,
  maxRtoMs: 4e3,
  dedupeWindowMs: 6e5,
  ackLifetimeMs: 1e4
};
var Reliable = class {
  constructor(cfg = DEFAULT_RELIABILITY) {
    this.cfg = cfg;
  }
  pending = [];
  seen = /* @__PURE__ */ new Set();
  seenOrder = [];
  /** Keeps `envelope` until acknowledged or `now + lifetimeMs`. */
  track(envelope, now, lifetimeMs) {
    this.pending.push({ envelope, nextAt: now + this.cfg.initialRtoMs, interval: this.cfg.initialRtoMs, expiresAt: now + lifetimeMs });
  }
  /**
   * An ack from `from`/`fromDevice` for `ackId`: answers the acknowledged envelope if it
   * satisfies one (§7.3: a device-addressed envelope only by that device; a user-addressed one
   * by any device of that user).
   */
  onAck(from, fromDevice, ackId) {
    const i = this.pending.findIndex(
      (p2) => p2.envelope.id === ackId && p2.envelope.to === from && (p2.envelope.toDevice === void 0 || p2.envelope.toDevice === fromDevice)
    );
    if (i < 0) return void 0;
    const [p] = this.pending.splice(i, 1);
    return p.envelope;
  }
  /** Whether `env` was processed already (§7.4); remembers it otherwise. */
  isDuplicate(env, now) {
    this.expireSeen(now);
    const key2 = `${env.from}\0${env.fromDevice}\0${env.id}`;
    if (this.seen.has(key2)) return true;
    this.seen.add(key2);
    this.seenOrder.push({ key: key2, at: now });
    return false;
  }
  expireSeen(now) {
    let drop = 0;
    while (drop < this.seenOrder.length && now - this.seenOrder[drop].at >= this.cfg.dedupeWindowMs) {
      this.seen.delete(this.seenOrder[drop].key);
      drop++;
    }
    if (drop > 0) this.seenOrder = this.seenOrder.slice(drop);
  }
  /** Takes out what is due at `now`: retransmissions (rescheduled) and expired envelopes. */
  poll(now) {
    const due = { retransmit: [], expired: [] };
    const keep = [];
    for (const p of this.pending) {
      if (now >= p.expiresAt) {
        due.expired.push(p.envelope);
        continue;
      }
      if (now >= p.nextAt) {
        p.interval = Math.min(p.interval * 2, this.cfg.maxRtoMs);
        p.nextAt = Math.min(now + p.interval, p.expiresAt);
        due.retransmit.push(p.envelope);
      }
      keep.push(p);
    }
    this.pending = keep;
    return due;
  }
  /** Everything pending, to send at once after a reconnect; restarts each backoff (§7.2). */
  flushAll(now) {
    for (const p of this.pending) {
      p.interval = this.cfg.initialRtoMs;
      p.nextAt = now + p.interval;
    }
    return this.pending.map((p) => p.envelope);
  }
  /** Keeps only the pending envelopes for which `keep` is true. */
  retain(keep) {
    this.pending = this.pending.filter((p) => keep(p.envelope));
  }
  /** When {@link Reliable.poll} next has something to do. */
  nextTimeout() {
    let best;
    for (const p of this.pending) {
      const t = Math.min(p.nextAt, p.expiresAt);
      if (best === void 0 || t < best) best = t;
    }
    return best;
  }
  /** How many envelopes wait for an ack. */
  pendingCount() {
    return this.pending.length;
  }
};

// ../../clients/web/src/random.ts
var CryptoRandom = class {
  bytes(n) {
    const out = new Uint8Array(n);
    globalThis.crypto.getRandomValues(out);
    return out;
  }
  float() {
    const b = this.bytes(4);
    return ((b[0] << 24 >>> 0) + (b[1] << 16) + (b[2] << 8) + b[3]) / 2 ** 32;
  }
};
function uuidV4(random) {
  const b = random.bytes(16);
  b[6] = b[6] & 15 | 64;
  b[8] = b[8] & 63 | 128;
  const hex = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

// ../../clients/web/src/session.ts
var BUSY_GRACE_MIN_MS = 250;
var BUSY_GRACE_MAX_MS = 2e3;
function newInvitation(user, now) {
  return { user, devices: /* @__PURE__ */ new Map(), sentAt: now, acked: false, ringingSeen: false, mediaOutbox: [] };
}
function ringingDevices(inv, except) {
  return [...inv.devices].filter(([d, s]) => s === "ringing" && d !== except).map(([d]) => d);
}
function alerting(inv) {
  return inv.answered !== void 0 ? [inv.answered] : ringingDevices(inv);
}
function remoteUser(call) {
  if (call.inviter !== void 0) return call.inviter.user;
  return call.invitations[0]?.user ?? "";
}
function peerDevice(call) {
  if (call.inviter !== void 0) return call.inviter.device;
  return call.invitations[0]?.answered;
}

// ../../clients/web/src/state.ts
var ERROR_CODES = {
  /** An envelope was not acknowledged within its lifetime. */
  MESSAGE_UNDELIVERED: 1001,
  /** A received frame was not a valid envelope (PROTOCOL §6). */
  INVALID_ENVELOPE: 1003,
  /** Joining the media failed. */
  JOIN_FAILED: 2001,
  /** The media failed during the call. */
  MEDIA_FAILED: 2002
};

// ../../clients/web/src/roster.ts
function compareBytes(a, b) {
  if (a === b) return 0;
  const ia = a[Symbol.iterator]();
  const ib = b[Symbol.iterator]();
  for (; ; ) {
    const x = ia.next();
    const y = ib.next();
    if (x.done === true) return y.done === true ? 0 : -1;
    if (y.done === true) return 1;
    const cx = x.value.codePointAt(0);
    const cy = y.value.codePointAt(0);
    if (cx !== cy) return cx < cy ? -1 : 1;
  }
}
var PRECEDENCE = {
  inviting: 0,
  ringing: 1,
  timeout: 2,
  cancelled: 3,
  busy: 4,
  rejected: 5,
  accepted: 6,
  left: 7
};
var isPending = (s) => s === "inviting" || s === "ringing";
var isTerminal = (s) => !isPending(s) && s !== "accepted";
function cmpOptString(a, b) {
  if (a === void 0) return b === void 0 ? 0 : -1;
  if (b === void 0) return 1;
  return compareBytes(a, b);
}
function cmpOptNum(a, b) {
  if (a === void 0) return b === void 0 ? 0 : -1;
  if (b === void 0) return 1;
  return a < b ? -1 : a > b ? 1 : 0;
}
function compareRecords(a, b) {
  if (a.seq !== b.seq) return a.seq < b.seq ? -1 : 1;
  const p = PRECEDENCE[a.state] - PRECEDENCE[b.state];
  if (p !== 0) return p < 0 ? -1 : 1;
  return cmpOptString(a.device, b.device) || cmpOptString(a.reason, b.reason) || cmpOptNum(a.untilMs, b.untilMs);
}
var Roster = class _Roster {
  members = [];
  endedFlag = false;
  /** A roster holding `records` (merged, so a repeated user keeps its greatest record). */
  static of(records, ended = false) {
    const r = new _Roster();
    r.merge(records, ended);
    return r;
  }
  /** The record of `user`. */
  get(user) {
    return this.members.find((m) => m.user === user);
  }
  /** All records, sorted by user. */
  records() {
    return this.members;
  }
  /** The records `accepted` with a device: the members in the call. */
  inCall() {
    return this.members.filter((m) => m.state === "accepted" && m.device !== void 0);
  }
  /** Whether the call was ended for everyone. */
  ended() {
    return this.endedFlag;
  }
  /** The greatest `seq` of any record. */
  maxSeq() {
    return this.members.reduce((m, r) => Math.max(m, r.seq), 0);
  }
  /** A copy. */
  clone() {
    const r = new _Roster();
    r.members = [...this.members];
    r.endedFlag = this.endedFlag;
    return r;
  }
  put(record) {
    const i = this.members.findIndex((m) => m.user === record.user);
    if (i >= 0) this.members[i] = record;
    else {
      this.members.push(record);
      this.members.sort((a, b) => compareBytes(a.user, b.user));
    }
  }
  /**
   * A local write of `user`'s record at `max(current.seq + 1, minSeq)` (or `max(minSeq, 1)`
   * for a new user). Writing what is already there changes nothing and answers `undefined`.
   */
  write(user, state, fields = {}, minSeq = 0) {
    const current = this.get(user);
    const make = (seq) => ({
      user,
      state,
      seq,
      ...fields.device !== void 0 ? { device: fields.device } : {},
      ...fields.reason !== void 0 ? { reason: fields.reason } : {},
      ...fields.untilMs !== void 0 ? { untilMs: fields.untilMs } : {}
    });
    if (current === void 0) {
      const record2 = make(Math.max(minSeq, 1));
      this.put(record2);
      return { record: record2 };
    }
    if (current.seq >= minSeq && current.state === state && current.device === fields.device && current.reason === fields.reason && current.untilMs === fields.untilMs) {
      return void 0;
    }
    const record = make(Math.max(current.seq + 1, minSeq));
    if (compareRecords(record, current) <= 0) return void 0;
    this.put(record);
    return { record, previous: current.state };
  }
  /** Writes a record at exactly its own `seq` if it supersedes the current one. */
  writeExact(record) {
    const current = this.get(record.user);
    if (current !== void 0 && compareRecords(record, current) <= 0) return void 0;
    this.put(record);
    return current === void 0 ? { record } : { record, previous: current.state };
  }
  /** Ends the call for everyone; true if it was not ended already. */
  setEnded() {
    const changed = !this.endedFlag;
    this.endedFlag = true;
    return changed;
  }
  /** Merges received records (the greater of each pair wins) and `ended`; answers the changes. */
  merge(records, ended) {
    const before = /* @__PURE__ */ new Map();
    for (const r of records) {
      const current = this.get(r.user);
      if (current !== void 0 && compareRecords(r, current) <= 0) continue;
      if (!before.has(r.user)) before.set(r.user, current?.state);
      this.put(r);
    }
    const changes = [...before.keys()].sort(compareBytes).map((user) => {
      const previous = before.get(user);
      const record = this.get(user);
      return previous === void 0 ? { record } : { record, previous };
    });
    const endedNow = ended && this.setEnded();
    return { changes, endedNow };
  }
  /** Whether this roster knows something `records`/`ended` lack (PROTOCOL §10.4). */
  lacks(records, ended) {
    if (this.endedFlag && !ended) return true;
    return this.members.some((mine) => {
      let theirs;
      for (const r of records) if (r.user === mine.user && (theirs === void 0 || compareRecords(r, theirs) > 0)) theirs = r;
      return theirs === void 0 || compareRecords(mine, theirs) > 0;
    });
  }
};

// ../../clients/web/src/mesh.ts
function offersTo(local, remote) {
  const u = compareBytes(local.user, remote.user);
  return u !== 0 ? u < 0 : compareBytes(local.device, remote.device) < 0;
}
var key = (p) => `${p.user}\0${p.device}`;
var MAX_HELD = 64;
var Mesh = class {
  own;
  peers = /* @__PURE__ */ new Map();
  held = [];
  /** This device's membership, while it is in the call's media. */
  ownSeq() {
    return this.own;
  }
  /** The membership of `peer`'s connection. */
  peerSeq(peer) {
    return this.peers.get(key(peer))?.seq;
  }
  /** The connected peers. */
  list() {
    return [...this.peers.values()];
  }
  /** Makes the connections those of `desired` (with `own` as this device's membership). */
  sync(own, desired) {
    const removed = [];
    const added = [];
    const ownChanged = own !== this.own;
    this.own = own;
    const want = new Map(own === void 0 ? [] : desired.map((p) => [key(p), p]));
    for (const [k, p] of this.peers) {
      const w = want.get(k);
      if (ownChanged || w === void 0 || w.seq !== p.seq) {
        removed.push(p);
        this.peers.delete(k);
      }
    }
    for (const [k, p] of want) {
      if (!this.peers.has(k)) {
        this.peers.set(k, p);
        added.push(p);
      }
    }
    return { added, removed };
  }
  /**
   * A `media` envelope from `peer`: `"deliver"` to its connection, `"stale"` to drop, or
   * `"held"` until the roster catches up.
   */
  arrive(peer, seq, toSeq, payload) {
    const p = this.peers.get(key(peer));
    if (this.own !== void 0 && p !== void 0 && p.seq === seq && this.own === toSeq) return "deliver";
    if (p !== void 0 && seq < p.seq || this.own !== void 0 && toSeq < this.own) return "stale";
    if (this.held.length >= MAX_HELD) this.held.shift();
    this.held.push({ peer, seq, toSeq, payload });
    return "held";
  }
  /** Held payloads that now belong to a connection (in arrival order); stale ones are dropped. */
  release() {
    const out = [];
    const keep = [];
    for (const h of this.held) {
      const p = this.peers.get(key(h.peer));
      if (this.own !== void 0 && p !== void 0 && p.seq === h.seq && this.own === h.toSeq) out.push({ peer: h.peer, payload: h.payload });
      else if (p !== void 0 && h.seq < p.seq || this.own !== void 0 && h.toSeq < this.own) continue;
      else keep.push(h);
    }
    this.held = keep;
    return out;
  }
  /** Forgets everything (the call ended). */
  clear() {
    const all = this.list();
    this.peers.clear();
    this.held = [];
    this.own = void 0;
    return all;
  }
};

// ../../clients/web/src/errors.ts
var CallApiError = class extends Error {
  constructor(message) {
    super(message);
    this.name = new.target.name;
  }
};
var InvalidStateError = class extends CallApiError {
  constructor(action, state, remedy) {
    super(`cannot ${action} while ${state}${remedy !== void 0 ? `: ${remedy}` : ""}`);
    this.action = action;
    this.state = state;
  }
};
var NotPreparedError = class extends CallApiError {
  constructor() {
    super("the device is not prepared: call prepare({ roomId }) first");
  }
};
var BusyError = class extends CallApiError {
  constructor(state) {
    super(`a call is already under way (${state}): hang it up before placing another`);
    this.state = state;
  }
};
var InvalidArgumentError = class extends CallApiError {
};
var UnauthorizedError = class extends CallApiError {
  constructor(detail) {
    super(`the signaling server refused these credentials (${detail}); get the user a valid token and start again`);
    this.detail = detail;
  }
};
var TokenExpiredError = class extends CallApiError {
  constructor() {
    super("the token expired without renewal; a new token is fetched and the link reconnects (make the token provider return fresh tokens)");
  }
};
var TransientLinkError = class extends CallApiError {
  constructor(code, detail) {
    super(`the signaling link closed (${code}${detail ? `: ${detail}` : ""}); reconnecting on the backoff schedule`);
    this.code = code;
    this.detail = detail;
  }
};
var TokenFetchError = class extends CallApiError {
  constructor(detail) {
    super(`the token provider failed (${detail}); check the backend that issues tokens — retrying on the token schedule`);
    this.detail = detail;
  }
};
var ServerRefusedError = class extends CallApiError {
  constructor(code, detail, envelopeId) {
    super(`the signaling server refused a frame (${code}): ${detail}`);
    this.code = code;
    this.detail = detail;
    this.envelopeId = envelopeId;
  }
};

// ../../clients/web/src/group.ts
var EXPIRY_SLACK_MS = 2e3;
function groupOf(m) {
  const c = m.call;
  return c?.group === void 0 ? void 0 : { c, g: c.group };
}
function notify(m, callId, changes) {
  for (const ch of changes) {
    const r = ch.record;
    m.emit({
      type: "member",
      change: {
        callId,
        user: r.user,
        ...ch.previous !== void 0 ? { previous: ch.previous } : {},
        state: r.state,
        seq: r.seq,
        ...r.device !== void 0 ? { device: r.device } : {},
        ...r.reason !== void 0 ? { reason: r.reason } : {}
      }
    });
  }
}
function write(m, user, state, fields, minSeq = 0) {
  const x = groupOf(m);
  if (x === void 0) return void 0;
  const ch = x.g.roster.write(user, state, fields, minSeq);
  if (ch !== void 0) notify(m, x.c.id, [ch]);
  return ch;
}
function writeExact(m, record) {
  const x = groupOf(m);
  if (x === void 0) return void 0;
  const ch = x.g.roster.writeExact(record);
  if (ch !== void 0) notify(m, x.c.id, [ch]);
  return ch;
}
function ownInCall(m) {
  const r = m.call?.group?.roster.get(m.user);
  return r !== void 0 && r.state === "accepted" && r.device === m.device;
}
function membersBody(g) {
  return { kind: "members", members: [...g.roster.records()], ended: g.roster.ended() };
}
function sendRoster(m, user, device, now) {
  const x = groupOf(m);
  if (x === void 0) return;
  m.send(user, device, x.c.id, membersBody(x.g), m.messageLifetimeMs, now);
}
function broadcast(m, now, except) {
  const x = groupOf(m);
  if (x === void 0) return;
  for (const r of x.g.roster.inCall()) {
    if (r.user === m.user && r.device === m.device) continue;
    if (except !== void 0 && r.user === except.user && r.device === except.device) continue;
    if (r.user === m.user) continue;
    sendRoster(m, r.user, r.device, now);
  }
}
function checkInvitees(m, users, roster2, already) {
  if (users.length === 0) throw new InvalidArgumentError("name at least one user to invite");
  const seen = /* @__PURE__ */ new Set();
  for (const u of users) {
    const p = idProblem(u);
    if (p !== void 0) throw new InvalidArgumentError(`user ${JSON.stringify(u)}: ${p}`);
    if (u === m.user) throw new InvalidArgumentError("cannot invite yourself");
    if (seen.has(u)) throw new InvalidArgumentError(`${u} is named twice`);
    seen.add(u);
    const r = roster2?.get(u);
    if (r !== void 0 && !isTerminal(r.state)) throw new InvalidArgumentError(`${u} is already ${r.state} in this call: only members who left, declined or missed it can be invited again`);
  }
  if (already + users.length > m.maxInvitees) throw new InvalidArgumentError(`at most ${m.maxInvitees} invitees per call`);
}
function placeGroupCall(m, users, callType, extension, now) {
  const prep = m.guardIdle("call");
  checkInvitees(m, users, void 0, 0);
  const id = m.newId();
  const roster2 = new Roster();
  roster2.write(m.user, "accepted", { device: m.device }, 1);
  const call = {
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
    group: { roster: roster2, creator: true, answered: false, joining: false, otherInviters: [], mesh: new Mesh() }
  };
  m.call = call;
  m.event("onCalling", id);
  notify(m, id, roster2.records().map((record) => ({ record })));
  m.setState("calling", callType === "video" ? "localVideoCall" : "localAudioCall", void 0, m.infoOf(call));
  inviteMembers(m, users, now);
  return id;
}
function invite(m, users, now) {
  const x = groupOf(m);
  if (x === void 0 || !ownInCall(m) || x.g.joining) throw new InvalidStateError("invite", m.state, "only a device in a group call can invite; place a group call with call([users])");
  const pending = x.c.invitations.filter((i) => !i.done).length;
  checkInvitees(m, users, x.g.roster, pending);
  inviteMembers(m, users, now);
}
function inviteMembers(m, users, now) {
  const { c, g } = groupOf(m);
  const lifetime = m.prepared !== void 0 ? m.inviteLifetime(m.prepared) : 15e3;
  const until = now + lifetime;
  for (const user of users) {
    const ch = write(m, user, "inviting", { untilMs: until });
    const inv = { ...newInvitation(user, now), base: ch?.record.seq ?? 1, deadline: until };
    const old = c.invitations.findIndex((i) => i.user === user);
    if (old >= 0) c.invitations.splice(old, 1);
    c.invitations.push(inv);
  }
  for (const user of users) {
    m.send(user, void 0, c.id, { kind: "invite", roomId: c.roomId, callType: c.callType, extension: c.extension, members: [...g.roster.records()] }, lifetime, now);
  }
  broadcast(m, now);
}
function onGroupInvite(m, env, b, now) {
  if (env.from === m.user) return;
  const mine = b.members.find((r) => r.user === m.user);
  const seq = mine?.seq;
  const c = m.call;
  if (c !== void 0 && c.id === env.callId) {
    const g = c.group;
    if (g !== void 0 && c.role === "callee" && m.state === "calling" && c.inviter !== void 0 && c.inviter.user !== env.from) {
      g.otherInviters.push({ user: env.from, device: env.fromDevice, ...seq !== void 0 ? { seq } : {} });
      notify(m, c.id, g.roster.merge(b.members, false).changes);
      m.send(env.from, env.fromDevice, c.id, { kind: "ringing", group: true, ...seq !== void 0 ? { seq } : {} }, Math.max(1, env.ts + env.lifetimeMs - now), now);
    }
    return;
  }
  const memo = m.endedCall(env.callId);
  if (memo !== void 0) {
    if (memo.group === void 0 && memo.remoteUser === env.from) return;
    if (memo.group?.cancelSeq !== void 0 && seq !== void 0 && seq <= memo.group.cancelSeq) return;
  }
  if (glareWeWin(m, env.callId, env.from, now)) return;
  if (m.state !== "prepared" || m.call !== void 0 || m.prepared === void 0) {
    busyReject(m, env, seq, now);
    return;
  }
  const remaining = env.ts + env.lifetimeMs - now;
  const roster2 = new Roster();
  const call = {
    id: env.callId,
    role: "callee",
    callType: b.callType,
    roomId: b.roomId,
    extension: b.extension,
    invitations: [],
    inviter: { user: env.from, device: env.fromDevice, expiry: now + remaining, mediaInbox: [], ...seq !== void 0 ? { seq } : {} },
    accepted: false,
    confirmed: false,
    firstFrame: false,
    firstFrameWait: false,
    mediaJoined: false,
    deadline: now + remaining,
    start: now,
    group: { roster: roster2, creator: false, answered: false, joining: false, otherInviters: [], mesh: new Mesh() }
  };
  m.call = call;
  notify(m, call.id, roster2.merge(b.members, false).changes);
  m.setState("calling", b.callType === "video" ? "remoteVideoCall" : "remoteAudioCall", void 0, m.infoOf(call));
  m.send(env.from, env.fromDevice, call.id, { kind: "ringing", group: true, ...seq !== void 0 ? { seq } : {} }, Math.max(1, remaining), now);
}
function accept(m, now) {
  const { c } = groupOf(m);
  if (c.role !== "callee" || c.inviter === void 0 || m.state !== "calling" || c.accepted) throw new InvalidStateError("accept", m.state, "only a ringing call can be accepted");
  const deadline = Math.max(c.inviter.expiry, now) + m.confirmGraceMs;
  c.accepted = true;
  c.deadline = deadline;
  m.event("localAccepted", c.id);
  m.setState("connecting", "localAccepted", void 0, m.infoOf(c));
  const seq = c.inviter.seq;
  m.send(c.inviter.user, c.inviter.device, c.id, { kind: "accept", group: true, ...seq !== void 0 ? { seq } : {} }, deadline - now, now);
}
function reject(m, reason, now) {
  const { c } = groupOf(m);
  if (c.role !== "callee" || c.inviter === void 0 || m.state !== "calling") throw new InvalidStateError("reject", m.state, "only a ringing call can be rejected");
  m.event("localRejected", c.id, reason);
  const seq = c.inviter.seq;
  m.send(c.inviter.user, c.inviter.device, c.id, { kind: "reject", ...reason !== void 0 ? { reason } : {}, busy: false, ...seq !== void 0 ? { seq } : {} }, m.messageLifetimeMs, now);
  finishGroup(m, "localRejected", reason, now);
}
function leave(m, reason, stateReason, now) {
  const x = groupOf(m);
  if (x === void 0) throw new InvalidStateError("leave", m.state, "there is no group call");
  const { c } = x;
  if (c.role === "callee" && m.state === "calling") return reject(m, reason, now);
  if (x.g.joining || c.role === "callee" && !c.confirmed) {
    if (c.inviter !== void 0 && c.accepted && !c.confirmed) {
      m.send(c.inviter.user, c.inviter.device, c.id, { kind: "reject", ...reason !== void 0 ? { reason } : {}, busy: false, ...c.inviter.seq !== void 0 ? { seq: c.inviter.seq } : {} }, m.messageLifetimeMs, now);
    }
  }
  const cancelling = stateReason === "localCancelled" || c.role === "caller" && m.state === "calling";
  m.event(cancelling ? "localCancelled" : "localHangup", c.id, reason);
  cancelOwnInvitations(m, reason, now);
  if (ownInCall(m)) write(m, m.user, "left", { device: m.device, ...reason !== void 0 ? { reason } : {} });
  broadcast(m, now);
  finishGroup(m, cancelling ? "localCancelled" : "localHangup", reason, now);
}
function endForAll(m, reason, now) {
  const x = groupOf(m);
  if (x === void 0 || !ownInCall(m)) throw new InvalidStateError("end the call", m.state, "only a member in a group call can end it for everyone");
  x.g.roster.setEnded();
  cancelOwnInvitations(m, reason, now);
  broadcast(m, now);
  m.event("localHangup", x.c.id, reason);
  finishGroup(m, "localHangup", reason, now);
}
function joinLate(m, callId, now) {
  const prep = m.guardIdle("join");
  const memo = m.endedCall(callId);
  if (memo?.group === void 0) throw new InvalidArgumentError(`no group call ${callId} is known here: only a call this device rang for or was in can be joined`);
  const roster2 = memo.group.roster.clone();
  if (roster2.ended()) throw new InvalidStateError("join", m.state, "that call was ended for everyone");
  const mine = roster2.get(m.user);
  if (mine !== void 0 && !isTerminal(mine.state)) throw new InvalidArgumentError(`your record in that call is ${mine.state}, not one you can join from`);
  const others = roster2.inCall().filter((r) => r.user !== m.user);
  if (others.length === 0) throw new InvalidStateError("join", m.state, "nobody is in that call any more");
  const first = others[0];
  const call = {
    id: callId,
    role: "callee",
    callType: memo.group.callType,
    roomId: memo.group.roomId,
    extension: {},
    invitations: [],
    inviter: { user: first.user, device: first.device, expiry: now, mediaInbox: [] },
    accepted: true,
    confirmed: false,
    firstFrame: false,
    firstFrameWait: false,
    mediaJoined: false,
    deadline: now + m.inviteLifetime(prep),
    start: now,
    group: { roster: roster2, creator: false, answered: false, joining: true, otherInviters: [], mesh: new Mesh() }
  };
  m.call = call;
  write(m, m.user, "accepted", { device: m.device });
  m.setState("connecting", "localAccepted", void 0, m.infoOf(call));
  broadcast(m, now);
}
function sendToAll(m, body, now) {
  const { c, g } = groupOf(m);
  for (const r of g.roster.inCall()) if (r.user !== m.user) m.send(r.user, r.device, c.id, body, m.messageLifetimeMs, now);
}
function cancelOwnInvitations(m, reason, now) {
  const x = groupOf(m);
  if (x === void 0) return;
  for (const inv of x.c.invitations) {
    if (inv.done) continue;
    sendCancel(m, inv, { reason, timeout: false }, now);
    endInvitation(m, inv, "cancelled", reason);
  }
}
function sendCancel(m, inv, how, now) {
  const c = m.call;
  const body = { kind: "cancel", ...how.reason !== void 0 ? { reason: how.reason } : {}, timeout: how.timeout, ...inv.base !== void 0 ? { seq: inv.base } : {} };
  const targets = alerting(inv);
  if (targets.length === 0) m.send(inv.user, void 0, c.id, body, m.messageLifetimeMs, now);
  else for (const d of targets) m.send(inv.user, d, c.id, body, m.messageLifetimeMs, now);
}
function ownsRecord(m, inv) {
  const r = m.call?.group?.roster.get(inv.user);
  return r !== void 0 && isPending(r.state) && inv.base !== void 0 && r.seq <= inv.base + 1;
}
function endInvitation(m, inv, outcome, reason) {
  inv.done = true;
  inv.outcome = outcome;
  inv.busyUntil = void 0;
  if (ownsRecord(m, inv)) {
    writeExact(m, { user: inv.user, state: outcome, seq: inv.base + 2, ...reason !== void 0 ? { reason } : {} });
  }
}
function settleSuperseded(m, now) {
  const x = groupOf(m);
  if (x === void 0) return;
  for (const inv of x.c.invitations) {
    if (inv.done || ownsRecord(m, inv)) continue;
    inv.done = true;
    inv.busyUntil = void 0;
    const r = x.g.roster.get(inv.user);
    if (r !== void 0) inv.outcome = r.state;
    for (const d of ringingDevices(inv)) {
      inv.devices.set(d, "cancelled");
      m.send(inv.user, d, x.c.id, { kind: "cancel", timeout: false, ...inv.base !== void 0 ? { seq: inv.base } : {} }, m.messageLifetimeMs, now);
    }
  }
}
function groupConnected(m, reason, now) {
  const c = m.call;
  if (c === void 0 || m.state === "connected") return;
  c.accepted = true;
  c.confirmed = true;
  c.deadline = void 0;
  c.connectedAt = now;
  m.setState("connected", reason, void 0, m.infoOf(c));
}
function finishGroup(m, reason, text, now) {
  const x = groupOf(m);
  if (x === void 0) return;
  const inv = x.c.inviter;
  m.finishCall(reason, text, { type: "hangup" }, now, {
    roster: x.g.roster.clone(),
    callType: x.c.callType,
    roomId: x.c.roomId,
    ...inv !== void 0 ? { inviter: { user: inv.user, device: inv.device } } : {}
  });
}
function checkGroupEnd(m, now) {
  const x = groupOf(m);
  if (x === void 0 || x.g.joining || !ownInCall(m)) return;
  const othersIn = x.g.roster.inCall().some((r) => r.user !== m.user);
  if (othersIn || x.c.invitations.some((i) => !i.done)) return;
  let reason;
  let text;
  if (x.g.answered) [reason, text] = ["everyoneLeft", "everyone left"];
  else {
    const outcomes = x.c.invitations.map((i) => i.outcome).filter((o) => o !== void 0);
    if (outcomes.includes("rejected")) [reason, text] = ["remoteRejected", "rejected"];
    else if (outcomes.length > 0 && outcomes.every((o) => o === "busy")) [reason, text] = ["remoteCallBusy", "busy"];
    else [reason, text] = ["callingTimeout", "no answer"];
  }
  write(m, m.user, "left", { device: m.device, reason: text });
  finishGroup(m, reason, text, now);
}
function onMembers(m, from, fromDevice, records, ended, now) {
  const { c, g } = groupOf(m);
  const roster2 = g.roster;
  const lacks = roster2.lacks(records, ended);
  const inBefore = roster2.inCall().map((r) => ({ user: r.user, device: r.device }));
  const { changes, endedNow } = roster2.merge(records, ended);
  notify(m, c.id, changes);
  const welcome = changes.some((ch) => ch.record.user === from && ch.record.state === "accepted" && ch.previous !== "accepted");
  const changed = changes.length > 0 || endedNow;
  const senderIn = roster2.get(from)?.state === "accepted";
  const ownIn = ownInCall(m);
  const joinedNow = g.joining && senderIn && ownIn && !roster2.ended();
  const joinLost = g.joining && !ownIn;
  if (joinedNow) g.joining = false;
  if (roster2.inCall().some((r) => r.user !== m.user)) g.answered = true;
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
      if (p.user === m.user || p.user === from && p.device === fromDevice) continue;
      const r = roster2.get(p.user);
      if (r?.state === "accepted" && r.device === p.device) continue;
      sendRoster(m, p.user, p.device, now);
    }
  }
  if (lacks || welcome) sendRoster(m, from, fromDevice, now);
  if (roster2.ended()) onGroupEnded(m, now);
  else {
    expireStale(m, now);
    checkGroupEnd(m, now);
  }
}
function onOwnRecordLost(m, now) {
  const { c, g } = groupOf(m);
  const elsewhere = g.roster.get(m.user)?.state === "accepted";
  cancelOwnInvitations(m, void 0, now);
  m.event(elsewhere ? "answeredElsewhere" : "remoteCancelled", c.id);
  finishGroup(m, elsewhere ? "answeredElsewhere" : "remoteCancelled", void 0, now);
}
function onGroupEnded(m, now) {
  const { c } = groupOf(m);
  cancelOwnInvitations(m, void 0, now);
  broadcast(m, now);
  m.event("remoteHangup", c.id, "ended");
  finishGroup(m, "callEnded", "ended", now);
}
function expireStale(m, now) {
  const x = groupOf(m);
  if (x === void 0) return;
  let changed = false;
  for (const r of [...x.g.roster.records()]) {
    if (!isPending(r.state) || r.untilMs === void 0 || now < r.untilMs + EXPIRY_SLACK_MS) continue;
    const own = x.c.invitations.find((i) => i.user === r.user && !i.done);
    if (own !== void 0) continue;
    const seq = r.state === "inviting" ? r.seq + 2 : r.seq + 1;
    if (writeExact(m, { user: r.user, state: "timeout", seq }) !== void 0) changed = true;
  }
  if (changed) broadcast(m, now);
}
function nextTimeout(m) {
  const x = groupOf(m);
  if (x === void 0) return void 0;
  let best;
  for (const r of x.g.roster.records()) {
    if (!isPending(r.state) || r.untilMs === void 0) continue;
    if (x.c.invitations.some((i) => i.user === r.user && !i.done)) continue;
    const t = r.untilMs + EXPIRY_SLACK_MS;
    if (best === void 0 || t < best) best = t;
  }
  return best;
}
function onTimers(m, now) {
  const x = groupOf(m);
  if (x === void 0) return;
  const { c } = x;
  let changed = false;
  for (const inv of c.invitations) {
    if (inv.done) continue;
    if (inv.busyUntil !== void 0 && now >= inv.busyUntil) {
      inv.busyUntil = void 0;
      if (ringingDevices(inv).length === 0 && inv.answered === void 0) {
        endInvitation(m, inv, "busy", inv.busyReason);
        changed = true;
      }
    }
    if (!inv.done && inv.deadline !== void 0 && now >= inv.deadline) {
      sendCancel(m, inv, { reason: void 0, timeout: true }, now);
      endInvitation(m, inv, "timeout");
      changed = true;
    }
  }
  if (changed) {
    broadcast(m, now);
    checkGroupEnd(m, now);
  }
  const c2 = m.call;
  if (c2 === void 0 || c2.group === void 0) return;
  if (c2.deadline !== void 0 && now >= c2.deadline) {
    if (c2.group.joining) {
      m.event("callingTimeout", c2.id);
      write(m, m.user, "left", { device: m.device, reason: "join failed" });
      finishGroup(m, "callingTimeout", "join failed", now);
      return;
    }
    if (c2.accepted && c2.inviter !== void 0) {
      const seq = c2.inviter.seq;
      m.send(c2.inviter.user, c2.inviter.device, c2.id, { kind: "reject", reason: "timeout", busy: false, ...seq !== void 0 ? { seq } : {} }, m.messageLifetimeMs, now);
    }
    m.event("remoteCallingTimeout", c2.id);
    finishGroup(m, "remoteCallingTimeout", void 0, now);
    return;
  }
  expireStale(m, now);
}
function onEnvelope(m, env, now) {
  const { c, g } = groupOf(m);
  const b = env.body;
  const dev = env.fromDevice;
  if (b.kind === "members") return onMembers(m, env.from, dev, b.members, b.ended, now);
  const inv = c.invitations.find((i) => i.user === env.from);
  if (inv !== void 0 && (b.kind === "ringing" || b.kind === "accept" || b.kind === "reject")) return onInviteeReply(m, inv, env, now);
  if (c.inviter !== void 0 && env.from === c.inviter.user && dev === c.inviter.device && !g.joining) {
    if (b.kind === "cancel") {
      if (b.seq !== void 0 && c.inviter.seq !== void 0 && b.seq < c.inviter.seq) return;
      if (m.state === "connected") return;
      const [reason, ev] = b.elsewhere === "answered" ? ["answeredElsewhere", "answeredElsewhere"] : b.elsewhere === "rejected" ? ["rejectedElsewhere", "rejectedElsewhere"] : b.timeout ? ["remoteCallingTimeout", "remoteCallingTimeout"] : ["remoteCancelled", "remoteCancelled"];
      m.event(ev, c.id, b.reason);
      finishGroup(m, reason, b.reason, now);
      const memo = m.endedCall(c.id);
      if (memo?.group !== void 0 && b.seq !== void 0) memo.group.cancelSeq = Math.max(memo.group.cancelSeq ?? 0, b.seq);
      return;
    }
    if (b.kind === "confirm") {
      if (!c.accepted || c.confirmed) return;
      c.confirmed = true;
      if (b.members !== void 0) notify(m, c.id, g.roster.merge(b.members, false).changes);
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
    if (!fromMember || b.seq === void 0 || b.toSeq === void 0) return;
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
function onInviteeReply(m, inv, env, now) {
  const { c, g } = groupOf(m);
  const b = env.body;
  const dev = env.fromDevice;
  const seq = b.kind === "ringing" || b.kind === "accept" || b.kind === "reject" ? b.seq : void 0;
  const earlier = seq !== void 0 && inv.base !== void 0 && seq < inv.base;
  const cancelDevice = (elsewhere) => {
    inv.devices.set(dev, "cancelled");
    m.send(inv.user, dev, c.id, { kind: "cancel", timeout: false, ...elsewhere !== void 0 ? { elsewhere } : {}, ...inv.base !== void 0 ? { seq: inv.base } : {} }, m.messageLifetimeMs, now);
  };
  if (b.kind === "ringing") {
    if (earlier || inv.done) {
      if (!(inv.answered === dev)) cancelDevice(inv.answered !== void 0 ? "answered" : void 0);
      return;
    }
    if (!b.group) {
      inv.devices.set(dev, "cancelled");
      m.send(inv.user, dev, c.id, { kind: "cancel", reason: "group_unsupported", timeout: false, ...inv.base !== void 0 ? { seq: inv.base } : {} }, m.messageLifetimeMs, now);
      if (ringingDevices(inv).length === 0) {
        endInvitation(m, inv, "rejected", "group_unsupported");
        broadcast(m, now);
        checkGroupEnd(m, now);
      }
      return;
    }
    if (inv.answered !== void 0 && inv.answered !== dev) return cancelDevice("answered");
    if (!inv.devices.has(dev)) inv.devices.set(dev, "ringing");
    const first = !inv.ringingSeen;
    inv.ringingSeen = true;
    if (first) m.event("remoteUserRecvCall", c.id);
    const r = g.roster.get(inv.user);
    if (r !== void 0 && r.state === "inviting" && r.seq === inv.base) {
      writeExact(m, { user: inv.user, state: "ringing", seq: inv.base + 1, ...r.untilMs !== void 0 ? { untilMs: r.untilMs } : {} });
      broadcast(m, now);
    }
    return;
  }
  if (b.kind === "accept") {
    if (inv.answered !== void 0) {
      if (inv.answered !== dev) cancelDevice("answered");
      return;
    }
    if (earlier || inv.done || !ownsRecord(m, inv)) return cancelDevice();
    inv.answered = dev;
    inv.devices.set(dev, "accepted");
    for (const d of ringingDevices(inv, dev)) {
      inv.devices.set(d, "cancelled");
      m.send(inv.user, d, c.id, { kind: "cancel", timeout: false, elsewhere: "answered", ...inv.base !== void 0 ? { seq: inv.base } : {} }, m.messageLifetimeMs, now);
    }
    inv.done = true;
    inv.outcome = "accepted";
    writeExact(m, { user: inv.user, state: "accepted", seq: inv.base + 2, device: dev });
    g.answered = true;
    m.send(inv.user, dev, c.id, { kind: "confirm", members: [...g.roster.records()] }, m.messageLifetimeMs, now);
    broadcast(m, now, { user: inv.user, device: dev });
    m.event("remoteAccepted", c.id);
    if (g.creator && m.state === "calling") groupConnected(m, "remoteAccepted", now);
    return;
  }
  if (b.kind !== "reject") return;
  if (inv.answered === dev) {
    const r = g.roster.get(inv.user);
    if (r?.state === "accepted" && r.device === dev) {
      write(m, inv.user, "left", { device: dev, ...b.reason !== void 0 ? { reason: b.reason } : {} }, inv.base + 3);
      broadcast(m, now);
      checkGroupEnd(m, now);
    }
    return;
  }
  if (earlier || inv.done || inv.answered !== void 0) return;
  if (b.busy) {
    inv.devices.set(dev, "busy");
    if (inv.busyUntil === void 0) {
      inv.busyUntil = now + Math.min(BUSY_GRACE_MAX_MS, Math.max(BUSY_GRACE_MIN_MS, now - inv.sentAt));
      if (b.reason !== void 0) inv.busyReason = b.reason;
    }
    return;
  }
  inv.devices.set(dev, "rejected");
  for (const d of ringingDevices(inv, dev)) {
    inv.devices.set(d, "cancelled");
    m.send(inv.user, d, c.id, { kind: "cancel", timeout: false, elsewhere: "rejected", ...inv.base !== void 0 ? { seq: inv.base } : {} }, m.messageLifetimeMs, now);
  }
  m.event("remoteRejected", c.id, b.reason);
  endInvitation(m, inv, "rejected", b.reason);
  broadcast(m, now);
  checkGroupEnd(m, now);
}
function onLate(m, ended, env, now) {
  const memo = ended.group;
  const b = env.body;
  switch (b.kind) {
    case "cancel":
      if (b.seq !== void 0) memo.cancelSeq = Math.max(memo.cancelSeq ?? 0, b.seq);
      return;
    case "ringing":
    case "accept":
      m.send(env.from, env.fromDevice, ended.id, { kind: "cancel", timeout: false, ...b.seq !== void 0 ? { seq: b.seq } : {} }, m.messageLifetimeMs, now);
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
function onUndelivered(m, env, now) {
  if (env.body.kind !== "members" || env.toDevice === void 0) return;
  const x = groupOf(m);
  const r = x?.g.roster.get(env.to);
  if (x === void 0 || r?.state !== "accepted" || r.device !== env.toDevice) return;
  write(m, env.to, "left", { device: env.toDevice, reason: "unreachable" });
  broadcast(m, now);
  sendRoster(m, env.to, env.toDevice, now);
  checkGroupEnd(m, now);
}
function onMedia(m, ev, now) {
  const { c, g } = groupOf(m);
  if (ev.type === "peerSignal") {
    const own = g.mesh.ownSeq();
    const peerSeq = g.mesh.peerSeq(ev.peer);
    if (own === void 0 || peerSeq === void 0) return;
    m.send(ev.peer.user, ev.peer.device, c.id, { kind: "media", payload: ev.payload, seq: own, toSeq: peerSeq }, m.messageLifetimeMs, now);
  } else if (ev.type === "failed") {
    m.error({ callId: c.id, event: "mediaError", code: 2004, message: ev.message });
  }
}
function syncMesh(m) {
  const x = groupOf(m);
  if (x === void 0) return;
  const { c, g } = x;
  const inMedia = ownInCall(m) && m.state === "connected" && c.confirmed;
  const own = inMedia ? g.roster.get(m.user).seq : void 0;
  const desired = g.roster.inCall().filter((r) => r.user !== m.user).map((r) => ({ user: r.user, device: r.device, seq: r.seq }));
  const change = g.mesh.sync(own, desired);
  for (const p of change.removed) m.mediaCommand({ type: "removePeer", callId: c.id, peer: { user: p.user, device: p.device } });
  const me = { user: m.user, device: m.device };
  for (const p of change.added) m.mediaCommand({ type: "addPeer", callId: c.id, callType: c.callType, peer: { user: p.user, device: p.device }, offerer: offersTo(me, p) });
  for (const h of g.mesh.release()) m.mediaCommand({ type: "peerSignal", callId: c.id, peer: h.peer, payload: h.payload });
}

// ../../clients/web/src/call.ts
function placeCall(m, to, callType, extension, now) {
  const prep = m.guardIdle("call");
  if (to === m.user) throw new InvalidArgumentError("cannot call yourself: pass another user's id");
  const merged = { ...prep.extension, ...extension };
  const id = m.newId();
  const lifetime = m.inviteLifetime(prep);
  const call = {
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
    start: now
  };
  m.call = call;
  m.event("onCalling", id);
  m.setState("calling", callType === "video" ? "localVideoCall" : "localAudioCall", void 0, m.infoOf(call));
  m.send(to, void 0, id, { kind: "invite", roomId: prep.roomId, callType, extension: merged }, lifetime, now);
  joinMedia(m);
  return id;
}
function onInvite(m, env, now) {
  const b = env.body;
  if (b.kind !== "invite") return;
  if (env.ts + env.lifetimeMs < now) {
    m.event("inviteExpired", env.callId);
    return;
  }
  if (b.members !== void 0) {
    onGroupInvite(m, env, b, now);
    return;
  }
  if (m.call?.id === env.callId || m.ended.some((e) => e.id === env.callId && e.remoteUser === env.from) || env.from === m.user) return;
  if (glareWeWin(m, env.callId, env.from, now)) return;
  if (m.state !== "prepared" || m.call !== void 0 || m.prepared === void 0) {
    busyReject(m, env, void 0, now);
    return;
  }
  const prep = m.prepared;
  const remaining = env.ts + env.lifetimeMs - now;
  const call = {
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
    start: now
  };
  m.call = call;
  m.setState("calling", b.callType === "video" ? "remoteVideoCall" : "remoteAudioCall", void 0, m.infoOf(call));
  m.sendToPeer({ kind: "ringing", group: false }, Math.max(1, remaining), now);
  if (prep.joinMediaOnRinging) joinMedia(m);
}
function busyReject(m, env, seq, now) {
  m.event("busyAutoRejected", env.callId);
  m.send(env.from, env.fromDevice, env.callId, { kind: "reject", reason: "busy", busy: true, ...seq !== void 0 ? { seq } : {} }, m.messageLifetimeMs, now);
}
function callingInvitee(m, user) {
  const c = m.call;
  if (c === void 0 || c.role !== "caller" || m.state !== "calling" || c.accepted) return false;
  if (c.group !== void 0) return c.group.creator && !c.group.answered && c.invitations.some((i) => i.user === user && !i.done);
  return c.invitations.some((i) => i.user === user);
}
function glareWeWin(m, callId, from, now) {
  const own = m.call?.id;
  if (own === void 0 || own === callId || !callingInvitee(m, from)) return false;
  if (compareCallIds(callId, own) > 0) return true;
  m.event("glare", own);
  if (m.call?.group !== void 0) {
    cancelOwnInvitations(m, "glare", now);
    finishGroup(m, "glare", void 0, now);
  } else {
    callerStop(m, "glare", false, void 0, now);
    m.finishCall("glare", void 0, { type: "cancel", timeout: false }, now);
  }
  return false;
}
function accept2(m, now) {
  const c = m.call;
  if (c === void 0 || c.inviter === void 0 || m.state !== "calling") throw new InvalidStateError("accept", m.state, "only a ringing call can be accepted");
  const deadline = Math.max(c.inviter.expiry, now) + m.confirmGraceMs;
  c.accepted = true;
  c.deadline = deadline;
  m.event("localAccepted", c.id);
  m.setState("connecting", "localAccepted", void 0, m.infoOf(c));
  m.sendToPeer({ kind: "accept", group: false }, deadline - now, now);
  joinMedia(m);
  checkConnected(m, now);
}
function reject2(m, reason, now) {
  const c = m.call;
  if (c === void 0 || c.role !== "callee" || m.state !== "calling") throw new InvalidStateError("reject", m.state, "only a ringing call can be rejected");
  m.event("localRejected", c.id, reason);
  m.sendToPeer({ kind: "reject", ...reason !== void 0 ? { reason } : {}, busy: false }, m.messageLifetimeMs, now);
  m.finishCall("localRejected", reason, { type: "hangup" }, now);
}
function cancel(m, reason, now) {
  const c = m.call;
  if (c === void 0 || c.role !== "caller" || !(m.state === "calling" || m.state === "connecting")) {
    throw new InvalidStateError("cancel", m.state, "only the caller cancels, before the call is connected; use hangup() after");
  }
  m.event("localCancelled", c.id, reason);
  callerStop(m, reason, false, void 0, now);
  m.finishCall("localCancelled", reason, { type: "cancel", timeout: false }, now);
}
function hangup(m, reason, now) {
  const c = m.call;
  if (c === void 0) throw new InvalidStateError("hang up", m.state, "there is no call");
  if (m.state === "calling" && c.role === "caller") return cancel(m, reason, now);
  if (m.state === "calling") return reject2(m, reason, now);
  if (c.role === "caller" && m.state === "connecting") return cancel(m, reason, now);
  m.event("localHangup", c.id, reason);
  m.sendToPeer({ kind: "hangup", ...reason !== void 0 ? { reason } : {} }, m.messageLifetimeMs, now);
  m.finishCall("localHangup", reason, { type: "hangup" }, now);
}
function callerStop(m, reason, timeout, elsewhere, now) {
  const c = m.call;
  if (c === void 0) return;
  const body = { kind: "cancel", ...reason !== void 0 ? { reason } : {}, timeout, ...elsewhere !== void 0 ? { elsewhere } : {} };
  for (const inv of c.invitations) {
    const targets = alerting(inv);
    if (targets.length === 0) m.send(inv.user, void 0, c.id, body, m.messageLifetimeMs, now);
    else for (const d of targets) m.send(inv.user, d, c.id, body, m.messageLifetimeMs, now);
  }
}
function onInviteAcked(m, acked) {
  const c = m.call;
  if (c === void 0 || c.id !== acked.callId) return;
  const inv = c.invitations.find((i) => i.user === acked.to);
  if (inv !== void 0) inv.acked = true;
}
function cancelElsewhere(m, user, device, why, now) {
  const c = m.call;
  if (c === void 0) return;
  const inv = c.invitations.find((i) => i.user === user);
  if (inv !== void 0) inv.devices.set(device, "cancelled");
  m.send(user, device, c.id, { kind: "cancel", timeout: false, elsewhere: why }, m.messageLifetimeMs, now);
}
function onFromInvitee(m, env, now) {
  const c = m.call;
  const inv = c.invitations.find((i) => i.user === env.from);
  const dev = env.fromDevice;
  const b = env.body;
  switch (b.kind) {
    case "ringing": {
      if (inv.answered !== void 0 && inv.answered !== dev) return cancelElsewhere(m, inv.user, dev, "answered", now);
      if (!inv.devices.has(dev)) inv.devices.set(dev, "ringing");
      const first = !inv.ringingSeen;
      inv.ringingSeen = true;
      if (inv.mediaPeer === void 0) {
        inv.mediaPeer = dev;
        for (const payload of inv.mediaOutbox.splice(0)) m.send(inv.user, dev, c.id, { kind: "media", payload }, m.messageLifetimeMs, now);
      }
      if (first) m.event("remoteUserRecvCall", c.id);
      return;
    }
    case "accept": {
      if (inv.answered !== void 0) {
        if (inv.answered !== dev) cancelElsewhere(m, inv.user, dev, "answered", now);
        return;
      }
      if (m.state !== "calling") return m.event("stateMismatch", c.id);
      return callerAccepted(m, inv.user, dev, now);
    }
    case "reject": {
      if (inv.answered !== void 0 || m.state !== "calling") return;
      if (b.busy) {
        inv.devices.set(dev, "busy");
        if (inv.busyUntil === void 0) {
          const rtt = now - inv.sentAt;
          inv.busyUntil = now + Math.min(BUSY_GRACE_MAX_MS, Math.max(BUSY_GRACE_MIN_MS, rtt));
          if (b.reason !== void 0) inv.busyReason = b.reason;
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
function deliverData(m, env) {
  const b = env.body;
  if (b.kind === "message") m.emit({ type: "message", message: { callId: env.callId, from: env.from, fromDevice: env.fromDevice, data: b.data } });
  else if (b.kind === "dtmf") m.emit({ type: "dtmf", dtmf: { callId: env.callId, from: env.from, fromDevice: env.fromDevice, data: b.digits } });
}
function callerAccepted(m, user, dev, now) {
  const c = m.call;
  const inv = c.invitations.find((i) => i.user === user);
  c.accepted = true;
  c.confirmed = true;
  inv.answered = dev;
  inv.devices.set(dev, "accepted");
  const others = ringingDevices(inv, dev);
  const restart = inv.mediaPeer !== void 0 && inv.mediaPeer !== dev;
  const outbox = inv.mediaPeer === void 0 ? inv.mediaOutbox.splice(0) : [];
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
  m.setState("connecting", "remoteAccepted", void 0, m.infoOf(c));
  checkConnected(m, now);
}
function onFromInviter(m, env, now) {
  const c = m.call;
  const b = env.body;
  switch (b.kind) {
    case "cancel": {
      const [reason, ev] = b.elsewhere === "answered" ? ["answeredElsewhere", "answeredElsewhere"] : b.elsewhere === "rejected" ? ["rejectedElsewhere", "rejectedElsewhere"] : b.timeout ? ["remoteCallingTimeout", "remoteCallingTimeout"] : ["remoteCancelled", "remoteCancelled"];
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
      else c.inviter.mediaInbox.push(b.payload);
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
function onBusyGraceOver(m, now) {
  const c = m.call;
  if (c === void 0) return;
  const inv = c.invitations.find((i) => i.busyUntil !== void 0 && now >= i.busyUntil);
  if (inv === void 0) return;
  inv.busyUntil = void 0;
  const reason = inv.busyReason;
  inv.busyReason = void 0;
  if (c.accepted || m.state !== "calling" || ringingDevices(inv).length > 0) return;
  m.event("remoteCallBusy", c.id, reason);
  m.finishCall("remoteCallBusy", reason, { type: "cancel", timeout: false }, now);
}
function onCallingTimeout(m, now) {
  const c = m.call;
  const reached = c.invitations.some((i) => i.acked || i.ringingSeen);
  if (!reached && !c.accepted) {
    m.error({ callId: c.id, event: "sendMessageFail", code: ERROR_CODES.MESSAGE_UNDELIVERED, message: "the invitation was not delivered within its lifetime" });
    m.event("messageFailed", c.id);
    callerStop(m, void 0, true, void 0, now);
    m.finishCall("messageFailed", void 0, { type: "cancel", timeout: true }, now);
    return;
  }
  m.event("callingTimeout", c.id);
  callerStop(m, void 0, true, void 0, now);
  m.finishCall("callingTimeout", void 0, { type: "cancel", timeout: true }, now);
}
function onInviteTimeout(m, now) {
  const c = m.call;
  m.event("remoteCallingTimeout", c.id);
  if (c.accepted) m.sendToPeer({ kind: "hangup", reason: "timeout" }, m.messageLifetimeMs, now);
  m.finishCall("remoteCallingTimeout", void 0, { type: "hangup" }, now);
}
function onLate2(m, ended, env, now) {
  if (env.from !== ended.remoteUser) return;
  const k = env.body.kind;
  let body;
  if ((k === "ringing" || k === "accept") && ended.role === "caller") {
    if (ended.answered !== void 0) {
      body = ended.answered === env.fromDevice ? { kind: "hangup" } : { kind: "cancel", timeout: false, elsewhere: "answered" };
    } else {
      const r = ended.reply;
      body = r.type === "cancel" ? { kind: "cancel", timeout: r.timeout, ...r.elsewhere !== void 0 ? { elsewhere: r.elsewhere } : {} } : { kind: "cancel", timeout: false };
    }
  } else if (k === "confirm" && ended.role === "callee") {
    body = { kind: "hangup" };
  } else return;
  m.send(env.from, env.fromDevice, ended.id, body, m.messageLifetimeMs, now);
}
function joinMedia(m) {
  const c = m.call;
  if (c === void 0 || c.mediaJoined || c.group !== void 0) return;
  c.mediaJoined = true;
  const remote = c.role === "caller" ? c.invitations[0].user : c.inviter.user;
  m.mediaCommand({ type: "join", request: { callId: c.id, roomId: c.roomId, role: c.role, callType: c.callType, localUser: m.user, remoteUser: remote } });
  m.event("joinMediaStart", c.id);
  if (c.inviter !== void 0) for (const payload of c.inviter.mediaInbox.splice(0)) m.mediaCommand({ type: "remoteSignal", callId: c.id, payload });
}
function checkConnected(m, now) {
  const c = m.call;
  if (m.state !== "connecting" || c === void 0) return;
  if (!(c.accepted && c.confirmed && (c.firstFrame || !c.firstFrameWait))) return;
  c.connectedAt = now;
  c.deadline = void 0;
  const reason = c.firstFrameWait ? "recvRemoteFirstFrame" : c.role === "caller" ? "remoteAccepted" : "localAccepted";
  if (c.role === "caller") m.sendToPeer({ kind: "confirm" }, m.messageLifetimeMs, now);
  m.setState("connected", reason, void 0, m.infoOf(c));
}
function onMedia2(m, ev, now) {
  const c = m.call;
  switch (ev.type) {
    case "signal": {
      if (c.role === "caller") {
        const inv = c.invitations[0];
        if (inv.mediaPeer === void 0) inv.mediaOutbox.push(ev.payload);
        else m.send(inv.user, inv.mediaPeer, c.id, { kind: "media", payload: ev.payload }, m.messageLifetimeMs, now);
      } else {
        m.send(c.inviter.user, c.inviter.device, c.id, { kind: "media", payload: ev.payload }, m.messageLifetimeMs, now);
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
function endLocally(m, why, reason, now) {
  const c = m.call;
  if (c === void 0) return;
  if (c.role === "caller" && m.state === "calling") callerStop(m, why, false, void 0, now);
  else if (m.state === "calling") m.sendToPeer({ kind: "reject", reason: why, busy: false }, m.messageLifetimeMs, now);
  else m.sendToPeer({ kind: "hangup", reason: why }, m.messageLifetimeMs, now);
  m.finishCall(reason, why, { type: "hangup" }, now);
}

// ../../clients/web/src/machine.ts
var MAX_CALL_TIMEOUT_MS = 3e5;
var ENDED_MEMORY = 64;
var CallMachine = class {
  /** @internal */
  user;
  /** @internal */
  device;
  /** @internal */
  reliable;
  /** @internal */
  rel;
  /** @internal */
  messageLifetimeMs;
  /** @internal */
  confirmGraceMs;
  /** @internal */
  maxInvitees;
  /** @internal */
  reportsFrames;
  /** @internal */
  prepared;
  /** @internal */
  stateValue = "idle";
  /** @internal */
  call;
  /** @internal */
  ended = [];
  outputs = [];
  random;
  constructor(cfg) {
    for (const [name, id] of [["user", cfg.user], ["device", cfg.device]]) {
      const p = idProblem(id);
      if (p !== void 0) throw new InvalidArgumentError(`${name} ${JSON.stringify(id)}: ${p}`);
    }
    this.user = cfg.user;
    this.device = cfg.device;
    this.random = cfg.random;
    this.rel = cfg.reliability ?? DEFAULT_RELIABILITY;
    this.reliable = new Reliable(this.rel);
    this.messageLifetimeMs = cfg.messageLifetimeMs ?? 6e4;
    this.confirmGraceMs = cfg.confirmGraceMs ?? 3e4;
    this.maxInvitees = cfg.maxInvitees ?? 9;
    this.reportsFrames = cfg.reportsFrames ?? false;
  }
  // ---- queries --------------------------------------------------------------------------
  /** The current state. */
  get state() {
    return this.stateValue;
  }
  /** The current call, if any. */
  callInfo() {
    return this.call === void 0 ? void 0 : this.infoOf(this.call);
  }
  /** The roster of the current group call. */
  roster() {
    return this.call?.group?.roster;
  }
  /** How many sent envelopes wait for an ack. */
  pendingMessages() {
    return this.reliable.pendingCount();
  }
  /** Takes the outputs produced so far. */
  takeOutputs() {
    const out = this.outputs;
    this.outputs = [];
    return out;
  }
  /** When the machine next needs {@link CallMachine.tick}; `undefined` when it does not. */
  pollTimeout() {
    const times = [];
    const r = this.reliable.nextTimeout();
    if (r !== void 0) times.push(r);
    const c = this.call;
    if (c !== void 0) {
      if (c.deadline !== void 0) times.push(c.deadline);
      for (const i of c.invitations) {
        if (i.busyUntil !== void 0) times.push(i.busyUntil);
        if (c.group !== void 0 && !i.done && i.deadline !== void 0) times.push(i.deadline);
      }
      const g = nextTimeout(this);
      if (g !== void 0) times.push(g);
    }
    return times.length === 0 ? void 0 : Math.min(...times);
  }
  // ---- inputs ---------------------------------------------------------------------------
  /** Moves time on to `now`: retransmissions, expiries and timeouts. */
  tick(now) {
    const due = this.reliable.poll(now);
    for (const env of due.retransmit) this.outputs.push({ type: "send", envelope: env });
    for (const env of due.expired) this.onUndelivered(env, now);
    const c = this.call;
    if (c === void 0) return;
    if (c.group !== void 0) {
      onTimers(this, now);
      return;
    }
    if (c.invitations.some((i) => i.busyUntil !== void 0 && now >= i.busyUntil)) onBusyGraceOver(this, now);
    const c2 = this.call;
    if (c2 !== void 0 && c2.group === void 0 && c2.deadline !== void 0 && now >= c2.deadline) {
      if (c2.role === "caller") onCallingTimeout(this, now);
      else onInviteTimeout(this, now);
    }
  }
  /** A received envelope. */
  receive(env, now) {
    this.tick(now);
    this.onEnvelope(env, now);
    this.settle();
  }
  /** A received frame that did not decode (PROTOCOL §6): reported, otherwise ignored. */
  invalid(err, now) {
    this.tick(now);
    this.error({ event: "normalError", code: ERROR_CODES.INVALID_ENVELOPE, message: err.message });
  }
  /** An event of the media engine. */
  media(ev, now) {
    this.tick(now);
    const c = this.call;
    if (c === void 0 || c.id !== ev.callId) return;
    if (c.group !== void 0) onMedia(this, ev, now);
    else onMedia2(this, ev, now);
    this.settle();
  }
  /** The link came back: sends everything pending at once and restarts its backoff (PROTOCOL §7.2). */
  linkUp(now) {
    this.tick(now);
    for (const env of this.reliable.flushAll(now)) this.outputs.push({ type: "send", envelope: env });
  }
  /** Ready to take and place calls. */
  prepare(opts) {
    const timeout = opts.callTimeoutMs ?? 15e3;
    if (!(timeout >= 0 && timeout <= MAX_CALL_TIMEOUT_MS)) throw new InvalidArgumentError(`callTimeoutMs must be between 0 and ${MAX_CALL_TIMEOUT_MS}`);
    this.prepared = {
      roomId: opts.roomId,
      callTimeoutMs: timeout,
      firstFrameWait: opts.firstFrameWait ?? true,
      joinMediaOnRinging: opts.joinMediaOnRinging ?? false,
      extension: opts.extension ?? {}
    };
    if (this.stateValue === "idle") this.setState("prepared", "none");
  }
  /** No longer takes calls (invites are declined as busy); a call under way goes on. */
  unprepare() {
    this.prepared = void 0;
    if (this.stateValue === "prepared") this.setState("idle", "none");
  }
  /** Places a 1:1 call; answers its call id. */
  callUser(to, callType, extension, now) {
    this.tick(now);
    const id = placeCall(this, to, callType, extension, now);
    this.settle();
    return id;
  }
  /** Places a group call inviting `users`; answers its call id. */
  callGroup(users, callType, extension, now) {
    this.tick(now);
    const id = placeGroupCall(this, users, callType, extension, now);
    this.settle();
    return id;
  }
  /** Answers the ringing call. */
  accept(now) {
    this.tick(now);
    if (this.call?.group !== void 0) accept(this, now);
    else accept2(this, now);
    this.settle();
  }
  /** Declines the ringing call. */
  reject(reason, now) {
    this.tick(now);
    if (this.call?.group !== void 0) reject(this, reason, now);
    else reject2(this, reason, now);
    this.settle();
  }
  /** Withdraws the call this device placed, before it was connected. */
  cancel(reason, now) {
    this.tick(now);
    if (this.call?.group !== void 0) leave(this, reason, "localCancelled", now);
    else cancel(this, reason, now);
    this.settle();
  }
  /** Ends an accepted call (in a group call: leaves it; the others go on). */
  hangup(reason, now) {
    this.tick(now);
    if (this.call?.group !== void 0) leave(this, reason, "localHangup", now);
    else hangup(this, reason, now);
    this.settle();
  }
  /** Group calls: invites more users into the call this device is in. */
  invite(users, now) {
    this.tick(now);
    invite(this, users, now);
    this.settle();
  }
  /** Group calls: ends the call for every member. */
  endForAll(reason, now) {
    this.tick(now);
    endForAll(this, reason, now);
    this.settle();
  }
  /** Group calls: joins again a call this device was in or declined (PROTOCOL §10.7). */
  join(callId, now) {
    this.tick(now);
    joinLate(this, callId, now);
    this.settle();
  }
  /** Sends in-call application data. */
  sendMessage(data, now) {
    this.tick(now);
    this.inCall("sendMessage", { kind: "message", data }, now);
    this.settle();
  }
  /** Sends DTMF digits (`0-9 * # A-D`; `a-d` are upper-cased). */
  sendDtmf(digits, now) {
    this.tick(now);
    const d = digits.toUpperCase();
    if (d.length === 0 || !/^[0-9*#A-D]+$/.test(d)) throw new InvalidArgumentError(`invalid DTMF digits ${JSON.stringify(digits)}: use 0-9, *, #, A-D`);
    this.inCall("sendDtmf", { kind: "dtmf", digits: d }, now);
    this.settle();
  }
  inCall(action, body, now) {
    const c = this.call;
    if (c === void 0 || !c.accepted || !(this.stateValue === "connecting" || this.stateValue === "connected")) {
      throw new InvalidStateError(action, this.stateValue, "messages and DTMF go only in an accepted call");
    }
    if (c.group !== void 0) {
      sendToAll(this, body, now);
      return;
    }
    this.sendToPeer(body, this.messageLifetimeMs, now);
  }
  // ---- shared helpers (used by call.ts and group.ts) -------------------------------------
  /** @internal */
  newId() {
    return uuidV4(this.random);
  }
  /** @internal */
  emit(n) {
    this.outputs.push({ type: "notify", notification: n });
  }
  /** @internal */
  event(event2, callId, reason) {
    this.emit({ type: "event", info: { event: event2, ...callId !== void 0 ? { callId } : {}, ...reason !== void 0 ? { reason } : {} } });
  }
  /** @internal */
  error(e) {
    this.emit({ type: "error", error: e });
  }
  /** @internal */
  mediaCommand(cmd) {
    this.outputs.push({ type: "media", command: cmd });
  }
  /** @internal */
  infoOf(c) {
    const dev = peerDevice(c);
    return {
      callId: c.id,
      role: c.role,
      caller: c.role === "caller" ? this.user : remoteUser(c),
      remoteUser: remoteUser(c),
      ...dev !== void 0 ? { remoteDevice: dev } : {},
      callType: c.callType,
      roomId: c.roomId,
      extension: c.extension,
      group: c.group !== void 0
    };
  }
  /** @internal */
  setState(state, reason, eventReason, info, durationMs) {
    const previous = this.stateValue;
    this.stateValue = state;
    this.emit({
      type: "state",
      change: {
        state,
        previous,
        reason,
        ...eventReason !== void 0 ? { eventReason } : {},
        ...info !== void 0 ? { call: info } : {},
        ...durationMs !== void 0 ? { durationMs } : {}
      }
    });
  }
  /** @internal */
  guardIdle(action) {
    const prep = this.prepared;
    if (prep === void 0) throw new NotPreparedError();
    if (this.call !== void 0) throw new BusyError(this.stateValue);
    if (this.stateValue !== "prepared") throw new InvalidStateError(action, this.stateValue);
    return prep;
  }
  /** @internal */
  inviteLifetime(prep) {
    return prep.callTimeoutMs === 0 ? MAX_CALL_TIMEOUT_MS : prep.callTimeoutMs;
  }
  /** @internal Sends (and, but for acks, tracks) one new envelope. */
  send(to, toDevice, callId, body, lifetimeMs, now) {
    const env = {
      v: PROTOCOL_VERSION,
      id: this.newId(),
      ts: now,
      from: this.user,
      fromDevice: this.device,
      to,
      ...toDevice !== void 0 ? { toDevice } : {},
      callId,
      lifetimeMs: Math.max(1, Math.round(lifetimeMs)),
      body
    };
    if (body.kind !== "ack") this.reliable.track(env, now, env.lifetimeMs);
    this.outputs.push({ type: "send", envelope: env });
    return env;
  }
  /** @internal Sends to the other party's device of a 1:1 call. */
  sendToPeer(body, lifetimeMs, now) {
    const c = this.call;
    if (c === void 0) return;
    this.send(remoteUser(c), peerDevice(c), c.id, body, lifetimeMs, now);
  }
  /** @internal */
  rememberEnded(e) {
    this.ended.push(e);
    while (this.ended.length > ENDED_MEMORY || this.ended.length > 0 && e.at - this.ended[0].at > this.rel.dedupeWindowMs) this.ended.shift();
  }
  /** @internal */
  endedCall(callId) {
    for (let i = this.ended.length - 1; i >= 0; i--) if (this.ended[i].id === callId) return this.ended[i];
    return void 0;
  }
  /** @internal Ends the current call: stops what it had pending (but stops), leaves the media, remembers it. */
  finishCall(reason, eventReason, reply, now, group) {
    const c = this.call;
    if (c === void 0) return;
    this.call = void 0;
    this.reliable.retain((e) => e.callId !== c.id || ["cancel", "reject", "hangup", "members"].includes(e.body.kind));
    if (c.group !== void 0) {
      for (const p of c.group.mesh.clear()) this.mediaCommand({ type: "removePeer", callId: c.id, peer: { user: p.user, device: p.device } });
    }
    if (c.mediaJoined) this.mediaCommand({ type: "leave", callId: c.id });
    const answered = c.role === "caller" ? peerDevice(c) : void 0;
    this.rememberEnded({
      id: c.id,
      role: c.role,
      remoteUser: remoteUser(c),
      ...answered !== void 0 ? { answered } : {},
      reply,
      at: now,
      ...group !== void 0 ? { group } : {}
    });
    const duration = c.connectedAt !== void 0 ? now - c.connectedAt : void 0;
    this.setState(this.prepared !== void 0 ? "prepared" : "idle", reason, eventReason, this.infoOf(c), duration);
  }
  settle() {
    if (this.call?.group !== void 0) syncMesh(this);
  }
  onEnvelope(env, now) {
    if (env.to !== this.user || env.toDevice !== void 0 && env.toDevice !== this.device) return;
    if (env.body.kind === "ack") {
      const acked = this.reliable.onAck(env.from, env.fromDevice, env.body.ackId);
      if (acked !== void 0 && acked.body.kind === "invite") onInviteAcked(this, acked);
      return;
    }
    this.send(env.from, env.fromDevice, env.callId, { kind: "ack", ackId: env.id }, this.rel.ackLifetimeMs, now);
    if (this.reliable.isDuplicate(env, now)) return;
    if (env.body.kind === "invite") {
      onInvite(this, env, now);
      return;
    }
    const c = this.call;
    if (c !== void 0 && c.id === env.callId && c.group !== void 0) {
      onEnvelope(this, env, now);
      return;
    }
    const matches = c !== void 0 && c.id === env.callId && (c.role === "caller" ? c.invitations.some((i) => i.user === env.from) : c.inviter?.user === env.from && c.inviter.device === env.fromDevice);
    if (matches) {
      if (c.role === "caller") onFromInvitee(this, env, now);
      else onFromInviter(this, env, now);
    } else {
      this.onOtherCall(env, now);
    }
  }
  onOtherCall(env, now) {
    const ended = this.endedCall(env.callId);
    if (ended !== void 0) {
      if (ended.group !== void 0) onLate(this, ended, env, now);
      else onLate2(this, ended, env, now);
    } else if (env.body.kind === "cancel") {
      this.rememberEnded({ id: env.callId, role: "callee", remoteUser: env.from, reply: { type: "hangup" }, at: now });
    }
  }
  onUndelivered(env, now) {
    const current = this.call?.id === env.callId;
    if (current && (env.body.kind === "invite" || env.body.kind === "ringing")) return;
    this.error({ callId: env.callId, event: "sendMessageFail", code: ERROR_CODES.MESSAGE_UNDELIVERED, message: `${env.body.kind} to ${env.to} was not acknowledged in time` });
    this.event("messageFailed", env.callId, env.body.kind);
    if (current && this.call?.group !== void 0) onUndelivered(this, env, now);
  }
};

// ../../clients/web/src/media-types.ts
var NoMedia = class {
  reportsFrames = false;
  attach() {
  }
  handle() {
  }
};

// ../../clients/web/src/emitter.ts
var Emitter = class {
  handlers = /* @__PURE__ */ new Map();
  /** Calls `handler` for every `event`; answers the function that stops it. */
  on(event2, handler) {
    let set = this.handlers.get(event2);
    if (set === void 0) {
      set = /* @__PURE__ */ new Set();
      this.handlers.set(event2, set);
    }
    set.add(handler);
    return () => this.off(event2, handler);
  }
  /** Calls `handler` for the next `event` only. */
  once(event2, handler) {
    const off = this.on(event2, (p) => {
      off();
      handler(p);
    });
    return off;
  }
  /** Removes a handler. */
  off(event2, handler) {
    this.handlers.get(event2)?.delete(handler);
  }
  /** Calls every handler of `event`. A throwing handler does not stop the others (its error is rethrown asynchronously). */
  emitEvent(event2, payload) {
    const set = this.handlers.get(event2);
    if (set === void 0) return;
    for (const h of [...set]) {
      try {
        h(payload);
      } catch (e) {
        queueMicrotask(() => {
          throw e;
        });
      }
    }
  }
};

// ../../clients/web/src/client.ts
var CallClient = class extends Emitter {
  /** The protocol machine (read-only use: state, roster, pending messages). */
  machine;
  clock;
  transport;
  mediaEngine;
  timer;
  running = false;
  queue = [];
  linkWasUp = false;
  constructor(opts) {
    super();
    this.clock = opts.clock ?? new SystemClock();
    this.transport = opts.transport;
    this.mediaEngine = opts.media ?? new NoMedia();
    this.machine = new CallMachine({
      user: opts.user,
      device: opts.device,
      random: opts.random ?? new CryptoRandom(),
      reportsFrames: this.mediaEngine.reportsFrames,
      ...opts.reliability !== void 0 ? { reliability: opts.reliability } : {},
      ...opts.messageLifetimeMs !== void 0 ? { messageLifetimeMs: opts.messageLifetimeMs } : {},
      ...opts.maxInvitees !== void 0 ? { maxInvitees: opts.maxInvitees } : {}
    });
    this.mediaEngine.attach((ev) => this.run((now) => this.machine.media(ev, now)));
  }
  /** Connects the signaling link. */
  start() {
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
      refused: (err) => this.emitEvent("refused", err)
    });
  }
  /** Closes the link and stops every timer. */
  stop() {
    this.transport.stop();
    if (this.timer !== void 0) this.clock.clearTimeout(this.timer);
    this.timer = void 0;
  }
  /** The call state. */
  get state() {
    return this.machine.state;
  }
  /** The current call. */
  callInfo() {
    return this.machine.callInfo();
  }
  /** The current group call's roster. */
  roster() {
    return this.machine.roster()?.records();
  }
  /** Makes the device ready to take and place calls (a device that is not is busy). */
  prepare(opts) {
    this.run(() => this.machine.prepare(opts));
  }
  /** Takes no more calls (invites are declined as busy). */
  unprepare() {
    this.run(() => this.machine.unprepare());
  }
  /** Calls one user (1:1) or several (a group call); resolves with the call id once the invites are out. */
  async call(to, opts = {}) {
    const callType = opts.callType ?? "video";
    const ext = opts.extension ?? {};
    return this.run((now) => typeof to === "string" ? this.machine.callUser(to, callType, ext, now) : this.machine.callGroup(to, callType, ext, now));
  }
  /** Answers the ringing call. */
  async accept() {
    this.run((now) => this.machine.accept(now));
  }
  /** Declines the ringing call. */
  async reject(reason) {
    this.run((now) => this.machine.reject(reason, now));
  }
  /** Withdraws a call this device placed, before it connected. */
  async cancel(reason) {
    this.run((now) => this.machine.cancel(reason, now));
  }
  /** Ends the call at whatever stage (cancel, reject or hangup; in a group call: leave). */
  async hangup(reason) {
    this.run((now) => this.machine.hangup(reason, now));
  }
  /** Invites more users into the group call this device is in. */
  async invite(users) {
    this.run((now) => this.machine.invite(typeof users === "string" ? [users] : users, now));
  }
  /** Leaves the group call (the others go on). */
  async leave(reason) {
    this.run((now) => this.machine.hangup(reason, now));
  }
  /** Ends the group call for everyone. */
  async endForAll(reason) {
    this.run((now) => this.machine.endForAll(reason, now));
  }
  /** Joins again a group call this device was in, declined or missed. */
  async join(callId) {
    this.run((now) => this.machine.join(callId, now));
  }
  /** Sends application data to the other party (every other member in a group call). */
  async sendMessage(data) {
    this.run((now) => this.machine.sendMessage(data, now));
  }
  /** Sends DTMF digits (`0-9 * # A-D`). */
  async sendDtmf(digits) {
    this.run((now) => this.machine.sendDtmf(digits, now));
  }
  /** Runs one machine input, then performs its outputs; inputs arriving meanwhile wait their turn. */
  run(fn) {
    if (this.running) {
      let result;
      this.queue.push(() => {
        result = fn(this.clock.now());
      });
      return result;
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
  drain() {
    for (; ; ) {
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
      if (next === void 0) return;
      try {
        next();
      } catch (e) {
        queueMicrotask(() => {
          throw e;
        });
      }
    }
  }
  reschedule() {
    if (this.timer !== void 0) this.clock.clearTimeout(this.timer);
    this.timer = void 0;
    const at = this.machine.pollTimeout();
    if (at === void 0) return;
    this.timer = this.clock.setTimeout(() => {
      this.timer = void 0;
      this.run((now) => this.machine.tick(now));
    }, Math.max(0, at - this.clock.now()));
  }
};

// ../../clients/web/src/schedule.ts
var DEFAULT_SCHEDULE = {
  tokenFetchAtMs: [0, 1e3, 4e3],
  reconnectAtMs: [0, 3e3, 9e3, 27e3, 6e4, 12e4],
  reconnectEveryMs: 6e4,
  jitterMs: 2e3,
  firstAttemptJitter: true,
  attemptTimeoutMs: 15e3
};
function jitter(s, random) {
  return s.jitterMs <= 0 ? 0 : Math.floor(random.float() * s.jitterMs);
}
function reconnectAttemptAt(s, k, first, random) {
  const listed = s.reconnectAtMs[k];
  const base = listed !== void 0 ? listed : (s.reconnectAtMs[s.reconnectAtMs.length - 1] ?? 0) + s.reconnectEveryMs * (k + 1 - s.reconnectAtMs.length);
  if (first && !s.firstAttemptJitter) return base;
  return base + jitter(s, random);
}
function tokenOffsets(s, first, random) {
  return s.tokenFetchAtMs.map((at, k) => k === 0 && first && !s.firstAttemptJitter ? at : at + jitter(s, random));
}

// ../../clients/web/src/transport.ts
var OPEN = 1;
function closeError(code, reason) {
  switch (code) {
    case 4001:
      return new TokenExpiredError();
    case 4003:
      return new UnauthorizedError(reason || "a renewal named another identity");
    case 1e3:
    case 1001:
    case 1005:
    case 1006:
      return void 0;
    default:
      return new TransientLinkError(code, reason);
  }
}
var WebSocketTransport = class {
  constructor(opts) {
    this.opts = opts;
    this.clock = opts.clock ?? new SystemClock();
    this.random = opts.random ?? new CryptoRandom();
    this.schedule = opts.schedule ?? DEFAULT_SCHEDULE;
    this.pingMs = opts.pingIntervalMs ?? 15e3;
    this.factory = opts.webSocket ?? ((url) => {
      const W = globalThis.WebSocket;
      if (W === void 0) throw new CallApiError("no global WebSocket: pass options.webSocket");
      return new W(url);
    });
  }
  clock;
  random;
  schedule;
  factory;
  pingMs;
  handlers;
  phase = { p: "idle" };
  token;
  tokenStale = false;
  everConnected = false;
  seriesStart = 0;
  gen = 0;
  stopped = false;
  lastFrameAt = 0;
  pingTimer;
  pingNonce = 0;
  renewing = false;
  lastState = { state: "disconnected" };
  /** The current link state. */
  linkState() {
    return this.lastState;
  }
  start(handlers) {
    this.handlers = handlers;
    this.stopped = false;
    this.startSeries();
  }
  send(env) {
    if (this.phase.p !== "connected" || this.phase.ws.readyState !== OPEN) return;
    this.phase.ws.send(encodeEnvelope(env));
  }
  stop() {
    this.stopped = true;
    this.clearPhase();
    this.phase = { p: "idle" };
    this.publish({ state: "disconnected" });
  }
  /** Uses `token` from now on (renewing in-band if connected). */
  renew(token) {
    this.token = token;
    this.tokenStale = false;
    if (this.phase.p === "connected") this.phase.ws.send(JSON.stringify({ type: "renew", token }));
  }
  publish(s) {
    this.lastState = s;
    this.handlers?.link(s);
  }
  clearPhase() {
    const ph = this.phase;
    if (ph.p === "waiting") this.clock.clearTimeout(ph.timer);
    if (ph.p === "fetching" && ph.timer !== void 0) this.clock.clearTimeout(ph.timer);
    if (ph.p === "connecting") {
      this.clock.clearTimeout(ph.timer);
      this.detach(ph.ws);
    }
    if (ph.p === "connected") this.detach(ph.ws);
    if (this.pingTimer !== void 0) this.clock.clearTimeout(this.pingTimer);
    this.pingTimer = void 0;
  }
  detach(ws) {
    ws.onopen = ws.onmessage = ws.onerror = null;
    ws.onclose = null;
    try {
      ws.close(1e3);
    } catch {
    }
  }
  startSeries(error) {
    this.seriesStart = this.clock.now();
    this.scheduleAttempt(0, error);
  }
  scheduleAttempt(k, error) {
    if (this.stopped) return;
    const first = !this.everConnected && k === 0;
    const at = this.seriesStart + reconnectAttemptAt(this.schedule, k, first, this.random);
    const wait = Math.max(0, at - this.clock.now());
    if (first) this.publish({ state: "connecting" });
    else this.publish({ state: "reconnecting", attempt: k + 1, nextInMs: wait, ...error !== void 0 ? { error } : {} });
    const timer = this.clock.setTimeout(() => this.attempt(k), wait);
    this.phase = { p: "waiting", k, timer };
  }
  attempt(k) {
    if (this.token !== void 0 && !this.tokenStale) return this.connect(k, this.token);
    const first = !this.everConnected && k === 0;
    const gen = ++this.gen;
    const ph = { p: "fetching", k, gen, tries: 0, offsets: tokenOffsets(this.schedule, first, this.random), start: this.clock.now(), inFlight: false };
    this.phase = ph;
    this.nextFetch(ph);
  }
  /** Schedules the next try of a token fetch series, or moves to the next reconnect attempt. */
  nextFetch(ph) {
    const at = ph.offsets[ph.tries];
    if (at === void 0) {
      this.scheduleAttempt(ph.k + 1, new TokenFetchError("no token after every try of the fetch"));
      return;
    }
    const wait = Math.max(0, ph.start + at - this.clock.now());
    ph.timer = this.clock.setTimeout(() => this.fetchTry(ph), wait);
  }
  fetchTry(ph) {
    if (this.phase !== ph) return;
    ph.tries++;
    ph.inFlight = true;
    const tryNo = ph.tries;
    ph.timer = this.clock.setTimeout(() => {
      if (this.phase !== ph || ph.tries !== tryNo) return;
      ph.inFlight = false;
      this.nextFetch(ph);
    }, this.schedule.attemptTimeoutMs);
    let p;
    try {
      p = this.opts.tokens();
    } catch (e) {
      p = Promise.reject(e);
    }
    p.then(
      (token) => {
        if (this.phase !== ph || ph.tries !== tryNo || !ph.inFlight) return;
        if (ph.timer !== void 0) this.clock.clearTimeout(ph.timer);
        this.token = token;
        this.tokenStale = false;
        this.connect(ph.k, token);
      },
      () => {
        if (this.phase !== ph || ph.tries !== tryNo || !ph.inFlight) return;
        if (ph.timer !== void 0) this.clock.clearTimeout(ph.timer);
        ph.inFlight = false;
        this.nextFetch(ph);
      }
    );
  }
  url(token) {
    const sep = this.opts.url.includes("?") ? "&" : "?";
    return `${this.opts.url}${sep}device=${encodeURIComponent(this.opts.device)}&token=${encodeURIComponent(token)}`;
  }
  connect(k, token) {
    let ws;
    try {
      ws = this.factory(this.url(token));
    } catch (e) {
      this.scheduleAttempt(k + 1, new TransientLinkError(0, e instanceof Error ? e.message : String(e)));
      return;
    }
    const timer = this.clock.setTimeout(() => {
      if (this.phase.p !== "connecting" || this.phase.ws !== ws) return;
      this.detach(ws);
      this.scheduleAttempt(k + 1, new TransientLinkError(0, "no hello within the attempt timeout"));
    }, this.schedule.attemptTimeoutMs);
    const ph = { p: "connecting", k, ws, timer, opened: false };
    this.phase = ph;
    ws.onopen = () => {
      ph.opened = true;
    };
    ws.onerror = () => {
    };
    ws.onmessage = (ev) => this.onFrame(ws, ev.data);
    ws.onclose = (ev) => this.onClose(ws, ev.code, ev.reason);
  }
  onClose(ws, code, reason) {
    const ph = this.phase;
    const err = closeError(code, reason);
    if (ph.p === "connecting" && ph.ws === ws) {
      this.clock.clearTimeout(ph.timer);
      if (!ph.opened || err instanceof TokenExpiredError) this.tokenStale = true;
      if (err instanceof UnauthorizedError) return this.fail(err);
      this.scheduleAttempt(ph.k + 1, err ?? new TransientLinkError(code, reason || "closed before hello"));
      return;
    }
    if (ph.p === "connected" && ph.ws === ws) this.dropped(err);
  }
  dropped(err) {
    this.clearPhase();
    this.phase = { p: "idle" };
    if (err instanceof TokenExpiredError) this.tokenStale = true;
    if (err instanceof UnauthorizedError) return this.fail(err);
    this.startSeries(err);
  }
  fail(err) {
    this.clearPhase();
    this.phase = { p: "idle" };
    this.stopped = true;
    this.publish({ state: "failed", error: err });
  }
  onFrame(ws, data) {
    const ph = this.phase;
    if (!((ph.p === "connecting" || ph.p === "connected") && ph.ws === ws)) return;
    this.lastFrameAt = this.clock.now();
    if (typeof data !== "string") return;
    let decodeErr;
    try {
      const env = decodeEnvelope(data);
      if (ph.p === "connected") this.handlers?.envelope(env);
      return;
    } catch (e) {
      if (!(e instanceof EnvelopeDecodeError)) throw e;
      decodeErr = e;
    }
    let frame;
    if (decodeErr.code === "MissingField" || decodeErr.code === "UnknownKind" || decodeErr.code === "Malformed") {
      try {
        const v = toPlain(parseJson(data));
        if (v !== null && typeof v === "object" && !Array.isArray(v) && typeof v["type"] === "string") frame = v;
      } catch {
        frame = void 0;
      }
    }
    if (frame === void 0) {
      if (ph.p === "connected") this.handlers?.invalid(decodeErr);
      return;
    }
    this.onControl(ws, frame);
  }
  onControl(ws, f) {
    const ph = this.phase;
    switch (f["type"]) {
      case "hello": {
        if (ph.p !== "connecting") return;
        this.clock.clearTimeout(ph.timer);
        this.phase = { p: "connected", ws };
        this.everConnected = true;
        this.lastFrameAt = this.clock.now();
        this.schedulePing();
        this.publish({ state: "connected", user: String(f["user"] ?? ""), device: String(f["device"] ?? ""), expSec: typeof f["exp"] === "number" ? f["exp"] : 0 });
        return;
      }
      case "token_will_expire":
        if (ph.p === "connected" && !this.renewing) this.renewInBand(ws);
        return;
      case "renewed":
        this.renewing = false;
        return;
      case "pong":
        return;
      case "error": {
        const code = String(f["code"] ?? "");
        if (code === "bad_token") this.renewing = false;
        const id = typeof f["id"] === "string" ? f["id"] : void 0;
        this.handlers?.refused?.(new ServerRefusedError(code, String(f["message"] ?? ""), id));
        return;
      }
      default:
        return;
    }
  }
  /** Fetches a token on the token schedule and sends `renew` on the live link. */
  renewInBand(ws) {
    this.renewing = true;
    const offsets = tokenOffsets(this.schedule, false, this.random);
    const start = this.clock.now();
    const tryAt = (i) => {
      const at = offsets[i];
      if (at === void 0) {
        this.renewing = false;
        return;
      }
      this.clock.setTimeout(() => {
        if (this.phase.p !== "connected" || this.phase.ws !== ws) return;
        this.opts.tokens().then(
          (token) => {
            if (this.phase.p !== "connected" || this.phase.ws !== ws) return;
            this.token = token;
            this.tokenStale = false;
            ws.send(JSON.stringify({ type: "renew", token }));
          },
          () => tryAt(i + 1)
        );
      }, Math.max(0, start + at - this.clock.now()));
    };
    tryAt(0);
  }
  schedulePing() {
    this.pingTimer = this.clock.setTimeout(() => {
      const ph = this.phase;
      if (ph.p !== "connected") return;
      if (this.clock.now() - this.lastFrameAt >= 2 * this.pingMs) {
        this.dropped(new TransientLinkError(0, "no frame from the server for two ping intervals"));
        return;
      }
      ph.ws.send(JSON.stringify({ type: "ping", nonce: String(++this.pingNonce) }));
      this.schedulePing();
    }, this.pingMs);
  }
};

// ../../clients/web/src/media.ts
function descriptionPayload(d) {
  return { type: d.type ?? "offer", sdp: d.sdp ?? "" };
}
function candidatePayload(c) {
  return { candidate: c.candidate ?? "", sdpMid: c.sdpMid ?? null, sdpMLineIndex: c.sdpMLineIndex ?? null, usernameFragment: c.usernameFragment ?? null };
}
function parsePayload(p) {
  if (p === null || typeof p !== "object" || Array.isArray(p)) return void 0;
  const t = p["type"];
  const sdp = p["sdp"];
  if ((t === "offer" || t === "answer") && typeof sdp === "string") return { description: { type: t, sdp } };
  const cand = p["candidate"];
  if (typeof cand === "string") {
    const mid = p["sdpMid"];
    const idx = p["sdpMLineIndex"];
    const uf = p["usernameFragment"];
    return {
      candidate: {
        candidate: cand,
        sdpMid: typeof mid === "string" ? mid : null,
        sdpMLineIndex: typeof idx === "number" ? idx : null,
        ...typeof uf === "string" ? { usernameFragment: uf } : {}
      }
    };
  }
  return void 0;
}
var BrowserMedia = class {
  constructor(opts = {}) {
    this.opts = opts;
  }
  reportsFrames = true;
  sink = () => {
  };
  conns = /* @__PURE__ */ new Map();
  local = /* @__PURE__ */ new Map();
  attach(sink) {
    this.sink = sink;
  }
  handle(cmd) {
    switch (cmd.type) {
      case "join":
        void this.open(cmd.request.callId, cmd.request.callType === "video", cmd.request.role === "caller", void 0);
        return;
      case "addPeer":
        void this.open(cmd.callId, cmd.callType === "video", cmd.offerer, cmd.peer);
        return;
      case "remoteSignal":
        void this.remote(cmd.callId, void 0, cmd.payload);
        return;
      case "peerSignal":
        void this.remote(cmd.callId, cmd.peer, cmd.payload);
        return;
      case "removePeer":
        this.close(this.key(cmd.callId, cmd.peer));
        return;
      case "leave":
        for (const k of [...this.conns.keys()]) if (k.startsWith(`${cmd.callId}\0`)) this.close(k);
        void this.local.get(cmd.callId)?.then((s) => s.getTracks().forEach((t) => t.stop()));
        this.local.delete(cmd.callId);
        return;
    }
  }
  key(callId, peer) {
    return `${callId}\0${peer === void 0 ? "" : `${peer.user}\0${peer.device}`}`;
  }
  stream(callId, video) {
    let s = this.local.get(callId);
    if (s === void 0) {
      s = navigator.mediaDevices.getUserMedia({ audio: true, video });
      this.local.set(callId, s);
      void s.then((st) => this.opts.onLocalStream?.(callId, st), () => void 0);
    }
    return s;
  }
  signal(callId, peer, payload) {
    this.sink(peer === void 0 ? { type: "signal", callId, payload } : { type: "peerSignal", callId, peer, payload });
  }
  fail(callId, peer, e, atJoin) {
    this.sink({ type: "failed", callId, message: e instanceof Error ? e.message : String(e), atJoin, ...peer !== void 0 ? { peer } : {} });
  }
  open(callId, video, offerer, peer) {
    const k = this.key(callId, peer);
    if (this.conns.has(k)) return Promise.resolve();
    const pc = new RTCPeerConnection({ iceServers: this.opts.iceServers ?? [] });
    const conn = { pc, offerer, remoteSet: false, pending: [], framed: false, queue: Promise.resolve() };
    this.conns.set(k, conn);
    pc.onicecandidate = (ev) => {
      if (ev.candidate !== null) this.signal(callId, peer, candidatePayload(ev.candidate.toJSON()));
    };
    pc.ontrack = (ev) => {
      const stream = ev.streams[0] ?? new MediaStream([ev.track]);
      this.opts.onRemoteStream?.(callId, stream, peer);
      const kind = ev.track.kind === "video" ? "video" : "audio";
      ev.track.onunmute = () => {
        if (conn.framed && kind !== "video") return;
        conn.framed = true;
        this.sink({ type: "firstRemoteFrame", callId, kind, ...peer !== void 0 ? { peer } : {} });
      };
    };
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === "failed") this.fail(callId, peer, new Error("peer connection failed"), false);
    };
    conn.queue = this.start(k, conn, callId, video, peer);
    return conn.queue;
  }
  /** Captures the local stream, adds its tracks and, as the offerer, sends the offer. */
  async start(k, conn, callId, video, peer) {
    const { pc, offerer } = conn;
    try {
      const local = await this.stream(callId, video);
      if (this.conns.get(k) !== conn) return;
      for (const t of local.getTracks()) pc.addTrack(t, local);
      if (offerer) {
        const offer = await pc.createOffer();
        await pc.setLocalDescription(offer);
        this.signal(callId, peer, descriptionPayload(offer));
      }
    } catch (e) {
      this.fail(callId, peer, e, true);
    }
  }
  remote(callId, peer, payload) {
    const k = this.key(callId, peer);
    const conn = this.conns.get(k);
    const p = parsePayload(payload);
    if (conn === void 0 || p === void 0) return Promise.resolve();
    conn.queue = conn.queue.then(() => this.conns.get(k) === conn ? this.apply(conn, callId, peer, p) : void 0);
    return conn.queue;
  }
  /** Applies one remote payload to its connection (after everything queued before it). */
  async apply(conn, callId, peer, p) {
    try {
      if ("description" in p) {
        const isOffer = p.description.type === "offer";
        if (isOffer === conn.offerer) return;
        await conn.pc.setRemoteDescription(p.description);
        conn.remoteSet = true;
        for (const c of conn.pending.splice(0)) await conn.pc.addIceCandidate(c);
        if (isOffer) {
          const answer = await conn.pc.createAnswer();
          await conn.pc.setLocalDescription(answer);
          this.signal(callId, peer, descriptionPayload(answer));
        }
      } else if (conn.remoteSet) await conn.pc.addIceCandidate(p.candidate);
      else conn.pending.push(p.candidate);
    } catch (e) {
      this.fail(callId, peer, e, false);
    }
  }
  close(k) {
    const c = this.conns.get(k);
    if (c === void 0) return;
    this.conns.delete(k);
    c.pc.close();
  }
};

// src/softphone.ts
var DEV_TOKEN_PATH = "/dev/token";
var SIGNAL_PATH = "/v1/signal";
var DTMF_KEYS = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "0", "#"];
function el(id) {
  const e = document.getElementById(id);
  if (e === null) throw new Error(`the page has no #${id}`);
  return e;
}
function errorText(e) {
  return e instanceof Error ? e.message : String(e);
}
function show(id, visible) {
  el(id).hidden = !visible;
}
function setError(id, e) {
  const p = el(id);
  if (e === void 0) {
    p.hidden = true;
    p.textContent = "";
  } else {
    p.hidden = false;
    p.textContent = errorText(e);
  }
}
async function devTokensOffered() {
  try {
    const r = await fetch(DEV_TOKEN_PATH, { method: "GET", cache: "no-store" });
    return r.status === 405;
  } catch {
    return false;
  }
}
async function fetchDevToken(user, device) {
  const r = await fetch(DEV_TOKEN_PATH, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ user, device }),
    cache: "no-store"
  });
  const body = await r.json().catch(() => ({}));
  if (!r.ok || typeof body.token !== "string") {
    throw new Error(`the server refused a token (${r.status}): ${body.message ?? r.statusText}`);
  }
  return body.token;
}
var Timing = class {
  t0 = 0;
  seen = /* @__PURE__ */ new Set();
  start(step) {
    this.t0 = performance.now();
    this.seen.clear();
    el("timing").querySelector("tbody").replaceChildren();
    this.mark(step);
  }
  mark(step) {
    if (this.seen.has(step)) return;
    this.seen.add(step);
    const row = document.createElement("tr");
    row.dataset.step = step;
    const name = document.createElement("td");
    name.textContent = step;
    const ms = document.createElement("td");
    ms.className = "num";
    ms.textContent = (performance.now() - this.t0).toFixed(0);
    row.append(name, ms);
    el("timing").querySelector("tbody").append(row);
  }
};
var Tiles = class {
  remote = /* @__PURE__ */ new Map();
  local(stream) {
    el("local-video").srcObject = stream;
  }
  add(stream, peer, label) {
    const key2 = peer === void 0 ? "peer" : `${peer.user}/${peer.device}`;
    let tile = this.remote.get(key2);
    if (tile === void 0) {
      tile = document.createElement("figure");
      tile.className = "tile remote";
      tile.dataset.testid = "remote-tile";
      tile.dataset.peer = peer === void 0 ? label : key2;
      const video2 = document.createElement("video");
      video2.autoplay = true;
      video2.playsInline = true;
      video2.dataset.testid = "remote-video";
      video2.addEventListener("resize", () => {
        if (video2.videoWidth > 0) video2.dataset.playing = "true";
      });
      const caption = document.createElement("figcaption");
      caption.textContent = peer === void 0 ? label : key2;
      tile.append(video2, caption);
      el("videos").append(tile);
      this.remote.set(key2, tile);
    }
    const video = tile.querySelector("video");
    if (video.srcObject !== stream) video.srcObject = stream;
  }
  removeUser(user) {
    for (const [key2, tile] of this.remote) {
      if (key2.startsWith(`${user}/`)) {
        tile.remove();
        this.remote.delete(key2);
      }
    }
  }
  clear() {
    for (const tile of this.remote.values()) tile.remove();
    this.remote.clear();
    this.local(null);
  }
};
var Members = class {
  rows = /* @__PURE__ */ new Map();
  set(user, device, state) {
    let row = this.rows.get(user);
    if (row === void 0) {
      row = document.createElement("tr");
      row.dataset.testid = "member";
      row.dataset.user = user;
      for (let i = 0; i < 3; i++) row.append(document.createElement("td"));
      el("members").querySelector("tbody").append(row);
      this.rows.set(user, row);
    }
    row.dataset.state = state;
    const [u, d, s] = [...row.cells];
    u.textContent = user;
    if (device !== void 0) d.textContent = device;
    s.textContent = state;
  }
  clear() {
    for (const row of this.rows.values()) row.remove();
    this.rows.clear();
  }
};
function logLine(listId, text, testid) {
  const li = document.createElement("li");
  li.dataset.testid = testid;
  li.textContent = text;
  const list = el(listId);
  list.append(li);
  while (list.children.length > 200) list.firstElementChild?.remove();
  list.scrollTop = list.scrollHeight;
}
function event(text) {
  logLine("events", `${(/* @__PURE__ */ new Date()).toISOString().slice(11, 23)} ${text}`, "event");
}
var Phone = class {
  constructor(user, device, tokens) {
    this.user = user;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const transport = new WebSocketTransport({ url: `${scheme}://${location.host}${SIGNAL_PATH}`, device, tokens });
    const media = new BrowserMedia({
      onLocalStream: (_callId, stream) => this.tiles.local(stream),
      onRemoteStream: (_callId, stream, peer) => this.tiles.add(stream, peer, this.client.callInfo()?.remoteUser ?? "remote")
    });
    this.client = new CallClient({ user, device, transport, media });
    this.client.on("link", (l) => this.onLink(l));
    this.client.on("state", (s) => this.onState(s));
    this.client.on("event", (e) => this.onEvent(e));
    this.client.on("member", (m) => this.onMember(m));
    this.client.on("message", (m) => logLine("message-log", `${m.from}: ${m.data}`, "message"));
    this.client.on("dtmf", (d) => {
      el("dtmf-received").textContent += d.data;
      event(`dtmf from ${d.from}: ${d.data}`);
    });
    this.client.on("error", (e) => event(`error ${e.code}: ${e.message}`));
    this.client.on("refused", (e) => event(`server refused: ${errorText(e)}`));
    el("whoami").textContent = `${user} / ${device}`;
    document.body.dataset.user = user;
    this.wire();
    this.client.start();
    this.client.prepare({ roomId: `${user}-room` });
    addEventListener("pagehide", () => this.client.stop());
  }
  timing = new Timing();
  tiles = new Tiles();
  members = new Members();
  client;
  wire() {
    el("call-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const to = el("callee").value.split(",").map((s) => s.trim()).filter((s) => s !== "");
      const callType = el("call-type").value === "audio" ? "audio" : "video";
      this.command(() => {
        this.timing.start("call placed");
        this.members.clear();
        return this.client.call(to.length === 1 ? to[0] : to, { callType });
      });
    });
    el("hangup").addEventListener("click", () => this.command(() => this.client.hangup()));
    el("accept").addEventListener("click", () => this.command(() => this.client.accept()));
    el("reject").addEventListener("click", () => this.command(() => this.client.reject("declined")));
    const pad = el("dtmf");
    for (const key2 of DTMF_KEYS) {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = key2;
      b.id = `dtmf-${key2 === "*" ? "star" : key2 === "#" ? "hash" : key2}`;
      b.dataset.testid = b.id;
      b.addEventListener("click", () => this.command(() => this.client.sendDtmf(key2)));
      pad.append(b);
    }
    el("message-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const input = el("message-input");
      const text = input.value;
      if (text === "") return;
      this.command(async () => {
        await this.client.sendMessage(text);
        logLine("message-log", `${this.user} (me): ${text}`, "message");
        input.value = "";
      });
    });
  }
  /** Runs a command; its error is shown under the call form. */
  command(fn) {
    setError("call-error", void 0);
    let p;
    try {
      p = fn();
    } catch (e) {
      p = Promise.reject(e);
    }
    p.catch((e) => {
      setError("call-error", e);
      event(`command failed: ${errorText(e)}`);
    });
  }
  onLink(l) {
    const text = l.state === "reconnecting" ? `reconnecting (attempt ${l.attempt})` : l.state;
    el("link-state").textContent = text;
    el("link-state").dataset.state = l.state;
    document.body.dataset.link = l.state;
    event(`link ${text}${"error" in l && l.error !== void 0 ? `: ${errorText(l.error)}` : ""}`);
  }
  onState(s) {
    el("call-state").textContent = s.state;
    el("call-state").dataset.state = s.state;
    document.body.dataset.callState = s.state;
    event(`state ${s.previous} -> ${s.state} (${s.reason}${s.eventReason !== void 0 ? `: ${s.eventReason}` : ""})`);
    const call = s.call;
    const incoming = s.state === "calling" && call?.role === "callee";
    if (incoming && s.previous !== "calling") {
      this.timing.start("invite received");
      this.members.clear();
      el("incoming-from").textContent = call.group ? `${call.caller} (group call)` : call.caller;
      el("incoming-type").textContent = call.callType;
    }
    show("incoming", incoming);
    const inCall = s.state === "calling" || s.state === "connecting" || s.state === "connected";
    el("hangup").disabled = !inCall;
    el("call").disabled = inCall;
    if (s.state === "connecting") this.timing.mark("connecting");
    if (s.state === "connected") this.timing.mark("connected");
    if (call !== void 0 && !call.group) {
      const remote = s.state === "connected" ? "connected" : s.state === "connecting" ? "accepted" : s.state === "calling" ? "ringing" : "left";
      this.members.set(call.remoteUser, call.remoteDevice, inCall ? remote : `ended (${s.reason})`);
    }
    if (!inCall && (s.previous === "calling" || s.previous === "connecting" || s.previous === "connected")) {
      this.timing.mark(`ended (${s.reason})`);
      this.tiles.clear();
      el("dtmf-received").textContent = "";
    }
  }
  onEvent(e) {
    event(`event ${e.event}${e.reason !== void 0 ? ` (${e.reason})` : ""}`);
    const steps = {
      onCalling: "invite sent",
      remoteUserRecvCall: "ringing at callee",
      localAccepted: "accepted (here)",
      remoteAccepted: "accepted (remote)",
      recvRemoteFirstFrame: "first remote frame"
    };
    const step = steps[e.event];
    if (step !== void 0) this.timing.mark(step);
  }
  onMember(m) {
    event(`member ${m.user}: ${m.previous ?? "new"} -> ${m.state}`);
    this.members.set(m.user, m.device, m.state);
    if (m.state === "left" || m.state === "rejected" || m.state === "busy" || m.state === "timeout" || m.state === "cancelled") {
      this.tiles.removeUser(m.user);
    }
  }
};
async function main() {
  const q = new URLSearchParams(location.search);
  const userInput = el("user");
  const deviceInput = el("device");
  const tokenInput = el("token");
  userInput.value = q.get("user") ?? "";
  deviceInput.value = q.get("device") ?? deviceInput.value;
  tokenInput.value = q.get("token") ?? "";
  const offered = await devTokensOffered();
  document.body.dataset.devTokens = String(offered);
  el("token-hint").textContent = offered ? "This server hands out development tokens: leave the token empty to get one." : "This server offers no development tokens: paste a token minted with its secret.";
  let signedIn = false;
  const signIn = async () => {
    if (signedIn) return;
    setError("signin-error", void 0);
    const user = userInput.value.trim();
    const device = deviceInput.value.trim();
    const pasted = tokenInput.value.trim();
    try {
      if (pasted === "" && !offered) throw new Error("paste a token: this server offers no development tokens");
      let first = pasted !== "" ? pasted : await fetchDevToken(user, device);
      const tokens = async () => {
        if (first !== void 0) {
          const t = first;
          if (pasted === "") first = void 0;
          return t;
        }
        return fetchDevToken(user, device);
      };
      signedIn = true;
      show("signin", false);
      show("phone", true);
      new Phone(user, device, tokens);
    } catch (e) {
      setError("signin-error", e);
    }
  };
  el("signin-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    void signIn();
  });
  document.body.dataset.ready = "true";
  if (q.get("signin") === "1" && userInput.value !== "") await signIn();
}
void main();
