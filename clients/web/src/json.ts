/**
 * A strict JSON reader for envelopes. `JSON.parse` silently keeps the last of two equal member
 * names and turns `1.0` and `1` into the same number; the protocol needs both told apart
 * (PROTOCOL §2, §6: a member given twice is malformed, an integer written with a fraction or an
 * exponent is a type error). This parser keeps each number's text and each object's members in
 * order, and converts to plain values only where the protocol does not look inside (payloads,
 * extensions).
 */

/** Any JSON value, as `JSON.parse` returns it. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** A JSON object of plain values. */
export type JsonObject = { [key: string]: JsonValue };

/** A parsed JSON value that keeps number texts and member order. */
export type JsonNode =
  | { readonly t: "obj"; readonly entries: ReadonlyArray<readonly [string, JsonNode]> }
  | { readonly t: "arr"; readonly items: readonly JsonNode[] }
  | { readonly t: "str"; readonly v: string }
  | { readonly t: "num"; readonly raw: string }
  | { readonly t: "bool"; readonly v: boolean }
  | { readonly t: "null" };

/** Invalid JSON text. */
export class JsonSyntaxError extends Error {
  constructor(message: string, readonly position: number) {
    super(`${message} at character ${position}`);
    this.name = "JsonSyntaxError";
  }
}

/** Nesting level (the outermost object or array is level 1) at which input is refused. */
export const DEPTH_LIMIT = 128;

/**
 * Whether the text reaches {@link DEPTH_LIMIT} levels of arrays/objects anywhere. Only
 * brackets outside strings count; invalid JSON is left for the parser to refuse.
 */
export function tooDeep(text: string): boolean {
  let depth = 0;
  let inString = false;
  let escaped = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (escaped) escaped = false;
      else if (c === 0x5c) escaped = true;
      else if (c === 0x22) inString = false;
      continue;
    }
    if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      depth++;
      if (depth >= DEPTH_LIMIT) return true;
    } else if (c === 0x5d || c === 0x7d) depth = Math.max(0, depth - 1);
  }
  return false;
}

const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;

class Parser {
  private i = 0;
  constructor(private readonly s: string) {}

  parseDocument(): JsonNode {
    this.ws();
    const v = this.value();
    this.ws();
    if (this.i < this.s.length) this.fail("trailing characters");
    return v;
  }

  private fail(msg: string): never {
    throw new JsonSyntaxError(msg, this.i);
  }

  private ws(): void {
    const s = this.s;
    while (this.i < s.length) {
      const c = s.charCodeAt(this.i);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) this.i++;
      else break;
    }
  }

  private value(): JsonNode {
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
        if (m === null || m[0].length === 0) this.fail(c === undefined ? "unexpected end of input" : `unexpected ${JSON.stringify(c)}`);
        this.i += m[0].length;
        return { t: "num", raw: m[0] };
      }
    }
  }

  private literal(word: string, node: JsonNode): JsonNode {
    if (this.s.startsWith(word, this.i)) {
      this.i += word.length;
      return node;
    }
    return this.fail("invalid literal");
  }

  private object(): JsonNode {
    this.i++;
    const entries: [string, JsonNode][] = [];
    this.ws();
    if (this.s[this.i] === "}") {
      this.i++;
      return { t: "obj", entries };
    }
    for (;;) {
      this.ws();
      if (this.s[this.i] !== '"') this.fail("expected a member name");
      const key = this.string();
      this.ws();
      if (this.s[this.i] !== ":") this.fail("expected ':'");
      this.i++;
      this.ws();
      entries.push([key, this.value()]);
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

  private array(): JsonNode {
    this.i++;
    const items: JsonNode[] = [];
    this.ws();
    if (this.s[this.i] === "]") {
      this.i++;
      return { t: "arr", items };
    }
    for (;;) {
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

  private hex4(): number {
    const h = this.s.slice(this.i, this.i + 4);
    if (!/^[0-9a-fA-F]{4}$/.test(h)) this.fail("invalid \\u escape");
    this.i += 4;
    return parseInt(h, 16);
  }

  private string(): string {
    const s = this.s;
    this.i++;
    let out = "";
    let start = this.i;
    for (;;) {
      if (this.i >= s.length) this.fail("unterminated string");
      const c = s.charCodeAt(this.i);
      if (c === 0x22) {
        out += s.slice(start, this.i);
        this.i++;
        return out;
      }
      if (c < 0x20) this.fail("control character in string");
      if (c !== 0x5c) {
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
          out += "\t";
          break;
        case "u": {
          const u = this.hex4();
          if (u >= 0xd800 && u <= 0xdbff) {
            if (s[this.i] !== "\\" || s[this.i + 1] !== "u") this.fail("lone leading surrogate");
            this.i += 2;
            const lo = this.hex4();
            if (lo < 0xdc00 || lo > 0xdfff) this.fail("invalid trailing surrogate");
            out += String.fromCharCode(u, lo);
          } else if (u >= 0xdc00 && u <= 0xdfff) {
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
}

/** Parses JSON text into a {@link JsonNode}; throws {@link JsonSyntaxError}. */
export function parseJson(text: string): JsonNode {
  return new Parser(text).parseDocument();
}

/** The plain value of a node (for a member given twice, the last one, as `JSON.parse`). */
export function toPlain(node: JsonNode): JsonValue {
  switch (node.t) {
    case "obj": {
      const o: JsonObject = {};
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
