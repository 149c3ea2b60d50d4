/**
 * The signaling link. {@link Transport} is what `CallClient` needs: send envelopes, receive
 * envelopes (or decoding errors) and link states. {@link WebSocketTransport} implements the
 * callapi WebSocket backend (PROTOCOL "WebSocket transport") with the standard `WebSocket`
 * global: the token in the `token` query parameter, `hello`, in-band renewal on
 * `token_will_expire`, `ping` keepalive, close codes mapped to typed errors, and the reconnect
 * and token-retry schedules. All timing goes through a {@link Clock}.
 */

import { type Clock, SystemClock, type TimerHandle } from "./clock.js";
import { type Envelope, EnvelopeDecodeError, decodeEnvelope, encodeEnvelope } from "./envelope.js";
import { parseJson, toPlain } from "./json.js";
import { CryptoRandom, type Random } from "./random.js";
import { DEFAULT_SCHEDULE, type RetrySchedule, reconnectAttemptAt, tokenOffsets } from "./schedule.js";
import { CallApiError, ServerRefusedError, TokenExpiredError, TokenFetchError, TransientLinkError, UnauthorizedError } from "./errors.js";

/** The state of the signaling link. */
export type LinkState =
  | { readonly state: "disconnected" }
  | { readonly state: "connecting" }
  | { readonly state: "connected"; readonly user: string; readonly device: string; readonly expSec: number }
  | { readonly state: "reconnecting"; readonly attempt: number; readonly nextInMs: number; readonly error?: CallApiError }
  | { readonly state: "failed"; readonly error: CallApiError };

/** What a transport reports. */
export interface TransportHandlers {
  /** A received envelope. */
  envelope(env: Envelope): void;
  /** A received frame that is not a valid envelope. */
  invalid(err: EnvelopeDecodeError): void;
  /** The link state changed (a `connected` after a drop means: flush what is pending). */
  link(state: LinkState): void;
  /** The server refused something this device sent (an `error` control frame). */
  refused?(err: ServerRefusedError): void;
}

/** A best-effort pipe for envelopes. */
export interface Transport {
  /** Starts connecting; `handlers` get everything from now on. */
  start(handlers: TransportHandlers): void;
  /** Sends one envelope (dropped if the link is down: the reliable layer retransmits). */
  send(env: Envelope): void;
  /** Closes the link for good. */
  stop(): void;
}

/** The part of the standard `WebSocket` this library uses. */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

/** A `WebSocket` constructor. */
export type WebSocketFactory = (url: string) => WebSocketLike;

/** Where tokens come from: the application's backend. */
export type TokenProvider = () => Promise<string>;

/** Settings of {@link WebSocketTransport}. */
export interface WebSocketTransportOptions {
  /** `wss://host:port/v1/signal` (or `ws://`). */
  readonly url: string;
  /** This device's id (the `device` query parameter). */
  readonly device: string;
  /** Fetches a fresh token. */
  readonly tokens: TokenProvider;
  readonly clock?: Clock;
  readonly random?: Random;
  readonly schedule?: RetrySchedule;
  /** Defaults to `new WebSocket(url)` with the global `WebSocket`. */
  readonly webSocket?: WebSocketFactory;
  /** Keepalive ping interval (15 s); 2 intervals without a frame is a dropped link. */
  readonly pingIntervalMs?: number;
}

const OPEN = 1;

/** Maps a close code to the error it means (PROTOCOL "Close codes"), or `undefined` for a plain drop. */
export function closeError(code: number, reason: string): CallApiError | undefined {
  switch (code) {
    case 4001:
      return new TokenExpiredError();
    case 4003:
      return new UnauthorizedError(reason || "a renewal named another identity");
    case 1000:
    case 1001:
    case 1005:
    case 1006:
      return undefined;
    default:
      return new TransientLinkError(code, reason);
  }
}

type Phase =
  | { readonly p: "idle" }
  | { readonly p: "waiting"; readonly k: number; readonly timer: TimerHandle }
  | { readonly p: "fetching"; readonly k: number; readonly gen: number; tries: number; readonly offsets: number[]; readonly start: number; timer?: TimerHandle; inFlight: boolean }
  | { readonly p: "connecting"; readonly k: number; readonly ws: WebSocketLike; readonly timer: TimerHandle; opened: boolean }
  | { readonly p: "connected"; readonly ws: WebSocketLike };

/** See the file comment. */
export class WebSocketTransport implements Transport {
  private readonly clock: Clock;
  private readonly random: Random;
  private readonly schedule: RetrySchedule;
  private readonly factory: WebSocketFactory;
  private readonly pingMs: number;
  private handlers: TransportHandlers | undefined;
  private phase: Phase = { p: "idle" };
  private token: string | undefined;
  private tokenStale = false;
  private everConnected = false;
  private seriesStart = 0;
  private gen = 0;
  private stopped = false;
  private lastFrameAt = 0;
  private pingTimer: TimerHandle | undefined;
  private pingNonce = 0;
  private renewing = false;
  private lastState: LinkState = { state: "disconnected" };

  constructor(private readonly opts: WebSocketTransportOptions) {
    this.clock = opts.clock ?? new SystemClock();
    this.random = opts.random ?? new CryptoRandom();
    this.schedule = opts.schedule ?? DEFAULT_SCHEDULE;
    this.pingMs = opts.pingIntervalMs ?? 15_000;
    this.factory =
      opts.webSocket ??
      ((url) => {
        const W = (globalThis as { WebSocket?: new (url: string) => WebSocketLike }).WebSocket;
        if (W === undefined) throw new CallApiError("no global WebSocket: pass options.webSocket");
        return new W(url);
      });
  }

  /** The current link state. */
  linkState(): LinkState {
    return this.lastState;
  }

  start(handlers: TransportHandlers): void {
    this.handlers = handlers;
    this.stopped = false;
    this.startSeries();
  }

  send(env: Envelope): void {
    if (this.phase.p !== "connected" || this.phase.ws.readyState !== OPEN) return;
    this.phase.ws.send(encodeEnvelope(env));
  }

  stop(): void {
    this.stopped = true;
    this.clearPhase();
    this.phase = { p: "idle" };
    this.publish({ state: "disconnected" });
  }

  /** Uses `token` from now on (renewing in-band if connected). */
  renew(token: string): void {
    this.token = token;
    this.tokenStale = false;
    if (this.phase.p === "connected") this.phase.ws.send(JSON.stringify({ type: "renew", token }));
  }

  private publish(s: LinkState): void {
    this.lastState = s;
    this.handlers?.link(s);
  }

  private clearPhase(): void {
    const ph = this.phase;
    if (ph.p === "waiting") this.clock.clearTimeout(ph.timer);
    if (ph.p === "fetching" && ph.timer !== undefined) this.clock.clearTimeout(ph.timer);
    if (ph.p === "connecting") {
      this.clock.clearTimeout(ph.timer);
      this.detach(ph.ws);
    }
    if (ph.p === "connected") this.detach(ph.ws);
    if (this.pingTimer !== undefined) this.clock.clearTimeout(this.pingTimer);
    this.pingTimer = undefined;
  }

  private detach(ws: WebSocketLike): void {
    ws.onopen = ws.onmessage = ws.onerror = null;
    ws.onclose = null;
    try {
      ws.close(1000);
    } catch {
      /* already closed */
    }
  }

  private startSeries(error?: CallApiError): void {
    this.seriesStart = this.clock.now();
    this.scheduleAttempt(0, error);
  }

  private scheduleAttempt(k: number, error?: CallApiError): void {
    if (this.stopped) return;
    const first = !this.everConnected && k === 0;
    const at = this.seriesStart + reconnectAttemptAt(this.schedule, k, first, this.random);
    const wait = Math.max(0, at - this.clock.now());
    if (first) this.publish({ state: "connecting" });
    else this.publish({ state: "reconnecting", attempt: k + 1, nextInMs: wait, ...(error !== undefined ? { error } : {}) });
    const timer = this.clock.setTimeout(() => this.attempt(k), wait);
    this.phase = { p: "waiting", k, timer };
  }

  private attempt(k: number): void {
    if (this.token !== undefined && !this.tokenStale) return this.connect(k, this.token);
    const first = !this.everConnected && k === 0;
    const gen = ++this.gen;
    const ph: Phase = { p: "fetching", k, gen, tries: 0, offsets: tokenOffsets(this.schedule, first, this.random), start: this.clock.now(), inFlight: false };
    this.phase = ph;
    this.nextFetch(ph);
  }

  /** Schedules the next try of a token fetch series, or moves to the next reconnect attempt. */
  private nextFetch(ph: Extract<Phase, { p: "fetching" }>): void {
    const at = ph.offsets[ph.tries];
    if (at === undefined) {
      this.scheduleAttempt(ph.k + 1, new TokenFetchError("no token after every try of the fetch"));
      return;
    }
    const wait = Math.max(0, ph.start + at - this.clock.now());
    ph.timer = this.clock.setTimeout(() => this.fetchTry(ph), wait);
  }

  private fetchTry(ph: Extract<Phase, { p: "fetching" }>): void {
    if (this.phase !== ph) return;
    ph.tries++;
    ph.inFlight = true;
    const tryNo = ph.tries;
    ph.timer = this.clock.setTimeout(() => {
      // This try hangs: abandon it; its late result is ignored.
      if (this.phase !== ph || ph.tries !== tryNo) return;
      ph.inFlight = false;
      this.nextFetch(ph);
    }, this.schedule.attemptTimeoutMs);
    let p: Promise<string>;
    try {
      p = this.opts.tokens();
    } catch (e) {
      p = Promise.reject(e);
    }
    p.then(
      (token) => {
        if (this.phase !== ph || ph.tries !== tryNo || !ph.inFlight) return;
        if (ph.timer !== undefined) this.clock.clearTimeout(ph.timer);
        this.token = token;
        this.tokenStale = false;
        this.connect(ph.k, token);
      },
      () => {
        if (this.phase !== ph || ph.tries !== tryNo || !ph.inFlight) return;
        if (ph.timer !== undefined) this.clock.clearTimeout(ph.timer);
        ph.inFlight = false;
        this.nextFetch(ph);
      },
    );
  }

  private url(token: string): string {
    const sep = this.opts.url.includes("?") ? "&" : "?";
    return `${this.opts.url}${sep}device=${encodeURIComponent(this.opts.device)}&token=${encodeURIComponent(token)}`;
  }

  private connect(k: number, token: string): void {
    let ws: WebSocketLike;
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
    const ph: Extract<Phase, { p: "connecting" }> = { p: "connecting", k, ws, timer, opened: false };
    this.phase = ph;
    ws.onopen = () => {
      ph.opened = true;
    };
    ws.onerror = () => {};
    ws.onmessage = (ev) => this.onFrame(ws, ev.data);
    ws.onclose = (ev) => this.onClose(ws, ev.code, ev.reason);
  }

  private onClose(ws: WebSocketLike, code: number, reason: string): void {
    const ph = this.phase;
    const err = closeError(code, reason);
    if (ph.p === "connecting" && ph.ws === ws) {
      this.clock.clearTimeout(ph.timer);
      // A browser cannot read a refused upgrade's status (it sees 1006): fetch a fresh token first.
      if (!ph.opened || err instanceof TokenExpiredError) this.tokenStale = true;
      if (err instanceof UnauthorizedError) return this.fail(err);
      this.scheduleAttempt(ph.k + 1, err ?? new TransientLinkError(code, reason || "closed before hello"));
      return;
    }
    if (ph.p === "connected" && ph.ws === ws) this.dropped(err);
  }

  private dropped(err: CallApiError | undefined): void {
    this.clearPhase();
    this.phase = { p: "idle" };
    if (err instanceof TokenExpiredError) this.tokenStale = true;
    if (err instanceof UnauthorizedError) return this.fail(err);
    this.startSeries(err);
  }

  private fail(err: CallApiError): void {
    this.clearPhase();
    this.phase = { p: "idle" };
    this.stopped = true;
    this.publish({ state: "failed", error: err });
  }

  private onFrame(ws: WebSocketLike, data: unknown): void {
    const ph = this.phase;
    if (!((ph.p === "connecting" || ph.p === "connected") && ph.ws === ws)) return;
    this.lastFrameAt = this.clock.now();
    if (typeof data !== "string") return;
    // An envelope first (PROTOCOL "Frames"); only a frame that is no envelope and has a string `type` is control.
    let decodeErr: EnvelopeDecodeError | undefined;
    try {
      const env = decodeEnvelope(data);
      if (ph.p === "connected") this.handlers?.envelope(env);
      return;
    } catch (e) {
      if (!(e instanceof EnvelopeDecodeError)) throw e;
      decodeErr = e;
    }
    let frame: Record<string, unknown> | undefined;
    if (decodeErr.code === "MissingField" || decodeErr.code === "UnknownKind" || decodeErr.code === "Malformed") {
      try {
        const v = toPlain(parseJson(data));
        if (v !== null && typeof v === "object" && !Array.isArray(v) && typeof v["type"] === "string") frame = v;
      } catch {
        frame = undefined;
      }
    }
    if (frame === undefined) {
      if (ph.p === "connected") this.handlers?.invalid(decodeErr);
      return;
    }
    this.onControl(ws, frame);
  }

  private onControl(ws: WebSocketLike, f: Record<string, unknown>): void {
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
        const id = typeof f["id"] === "string" ? f["id"] : undefined;
        this.handlers?.refused?.(new ServerRefusedError(code, String(f["message"] ?? ""), id));
        return;
      }
      default:
        return; // a newer server's frame: ignored
    }
  }

  /** Fetches a token on the token schedule and sends `renew` on the live link. */
  private renewInBand(ws: WebSocketLike): void {
    this.renewing = true;
    const offsets = tokenOffsets(this.schedule, false, this.random);
    const start = this.clock.now();
    const tryAt = (i: number): void => {
      const at = offsets[i];
      if (at === undefined) {
        this.renewing = false; // keep the link on the old token; 4001 at exp reconnects
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
          () => tryAt(i + 1),
        );
      }, Math.max(0, start + at - this.clock.now()));
    };
    tryAt(0);
  }

  private schedulePing(): void {
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
}
