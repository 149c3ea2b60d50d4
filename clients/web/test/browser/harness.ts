/**
 * The node side of the browser tests: Debian's Chromium driven by `playwright-core` (headless,
 * fake camera and microphone, loopback ICE), a tiny http server on loopback serving a blank
 * page and the built modules (`dist/`) plus development tokens, a `callapi-signal-server` child
 * process and `softphone` child processes (the Rust peers, `--media webrtc`). Every child is
 * killed when the suite ends or the process exits; every wait has a timeout.
 */

import { type ChildProcess, execFile, spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { type BrowserContext, type Page, chromium } from "playwright-core";
import type { CallErrorInfo, CallState, CallType } from "../../src/index.js";
import { NETNS_ENV } from "./netns.js";
import type { ConnStats } from "./page.js";

/** clients/web (this file is dist/test/browser/harness.js). */
export const WEB_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
/** The repository. */
export const REPO_ROOT = path.resolve(WEB_ROOT, "../..");
/** The browser: Debian's chromium (`CALLAPI_CHROMIUM` overrides). */
export const CHROMIUM = process.env["CALLAPI_CHROMIUM"] ?? "/usr/bin/chromium";
/** How long one step (a state, a line, frames) may take. */
export const STEP_MS = 20_000;


/** Why the browser tests cannot run here (before any namespace is involved), or `undefined`. */
export function skipReason(): string | undefined {
  if (!existsSync(CHROMIUM)) {
    return `${CHROMIUM} not found: install Debian's chromium (apt-get install chromium; ./scripts/test does) or point CALLAPI_CHROMIUM at a Chromium`;
  }
  return undefined;
}

/**
 * Why this process may not run the suite, or `undefined`: it must be in the network namespace
 * run.ts made, with no interface but `lo`, so that every media path is on loopback.
 */
export function netnsReason(): string | undefined {
  if (process.env[NETNS_ENV] !== "1") {
    return "not in a network namespace of its own: run the suite with `npm run test:browser` (dist/test/browser/run.js starts it in one, so media stays on loopback)";
  }
  const others = Object.keys(os.networkInterfaces()).filter((name) => name !== "lo");
  if (others.length > 0) return `the suite's network namespace has interfaces besides lo: ${others.join(", ")}`;
  return undefined;
}

const children = new Set<ChildProcess>();
process.on("exit", () => {
  for (const c of children) c.kill("SIGKILL");
});

function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.on("exit", () => children.delete(child));
  return child;
}

/** The cargo-built binaries the tests start. */
export interface Binaries {
  readonly server: string;
  readonly softphone: string;
  /** The demo (`demo --callee-web` rings the softphone page). */
  readonly demo: string;
}

/**
 * Brings the debug builds of `callapi-signal-server` and `softphone` up to date with
 * `cargo build` when cargo is here (a no-op when they are fresh, as after the workspace's
 * tests). run.ts calls it before it enters the suite's network namespace.
 */
export function buildBinaries(): void {
  const cargo = spawnSync("cargo", ["--version"], { stdio: "ignore" });
  if (cargo.status === 0) {
    const build = spawnSync(
      "cargo",
      ["build", "--quiet", "-p", "callapi-signal-ws", "--bin", "callapi-signal-server", "-p", "callapi-examples", "--bin", "softphone", "--bin", "demo"],
      { cwd: REPO_ROOT, stdio: ["ignore", "inherit", "inherit"], timeout: 20 * 60_000 },
    );
    if (build.status !== 0) throw new Error(`cargo build of callapi-signal-server and softphone failed (status ${build.status}, ${build.error?.message ?? "see above"})`);
  }
}

/** The debug builds of `callapi-signal-server` and `softphone` in the workspace's target dir (`CARGO_TARGET_DIR` or `target/`). */
export function binaries(): Binaries {
  const dir = path.join(process.env["CARGO_TARGET_DIR"] ?? path.join(REPO_ROOT, "target"), "debug");
  const bins = { server: path.join(dir, "callapi-signal-server"), softphone: path.join(dir, "softphone"), demo: path.join(dir, "demo") };
  for (const bin of Object.values(bins)) {
    if (!existsSync(bin)) throw new Error(`${bin} is missing: build it with cargo build -p callapi-signal-ws --bin callapi-signal-server -p callapi-examples --bin softphone --bin demo`);
  }
  return bins;
}

/** A child process whose stdout lines are kept, and waited for. */
export class LineProcess {
  readonly lines: string[] = [];
  private stderr = "";
  private readonly listeners = new Set<() => void>();
  private exited: string | undefined;

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
  ) {
    track(child);
    if (child.stdout !== null) {
      createInterface({ input: child.stdout }).on("line", (line) => {
        this.lines.push(line);
        for (const l of [...this.listeners]) l();
      });
    }
    child.stderr?.on("data", (d: Buffer) => {
      this.stderr = (this.stderr + d.toString()).slice(-8000);
    });
    child.on("exit", (code, signal) => {
      this.exited = `exited (code ${code}, signal ${signal})`;
      for (const l of [...this.listeners]) l();
    });
  }

  /** The first line from index `from` on that matches `re`, with its index; waits at most `timeoutMs`. */
  waitLine(re: RegExp, from = 0, timeoutMs = STEP_MS): Promise<{ line: string; index: number }> {
    const find = (): { line: string; index: number } | undefined => {
      for (let i = from; i < this.lines.length; i++) {
        const line = this.lines[i]!;
        if (re.test(line)) return { line, index: i };
      }
      return undefined;
    };
    const hit = find();
    if (hit !== undefined) return Promise.resolve(hit);
    return new Promise((resolve, reject) => {
      const fail = (why: string): void => {
        done();
        reject(new Error(`${this.name}: ${why} waiting for ${re}\n${this.transcript()}`));
      };
      const timer = setTimeout(() => fail(`timed out after ${timeoutMs} ms`), timeoutMs);
      const listener = (): void => {
        const h = find();
        if (h !== undefined) {
          done();
          resolve(h);
        } else if (this.exited !== undefined) fail(this.exited);
      };
      const done = (): void => {
        clearTimeout(timer);
        this.listeners.delete(listener);
      };
      this.listeners.add(listener);
    });
  }

  /** Its output so far, for failure messages. */
  transcript(): string {
    return `--- ${this.name} stdout ---\n${this.lines.join("\n")}\n--- ${this.name} stderr (tail) ---\n${this.stderr}`;
  }

  /** Ends it (SIGTERM, then SIGKILL after `graceMs`). */
  async stop(graceMs = 3000): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const gone = new Promise<void>((r) => this.child.once("exit", () => r()));
    this.child.kill("SIGTERM");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), graceMs);
    await gone;
    clearTimeout(timer);
  }
}

/** A `softphone` (the Rust peer), driven over stdin. */
export class Softphone extends LineProcess {
  /** Sends one command line. */
  send(command: string): void {
    this.child.stdin?.write(`${command}\n`);
  }

  /** Sends `command` and resolves with its `ok ...` line (or rejects with its `error ...`). */
  async run(command: string, timeoutMs = STEP_MS): Promise<string> {
    const word = command.split(/\s+/)[0]!;
    const from = this.lines.length;
    this.send(command);
    const { line } = await this.waitLine(new RegExp(`^(ok|error) ${word}\\b`), from, timeoutMs);
    if (line.startsWith("error")) throw new Error(`${this.name}: ${command}: ${line}\n${this.transcript()}`);
    return line;
  }

  /** Every `state ...` line so far as `State:Reason` (`Calling:RemoteVideoCall`, ...). */
  states(): string[] {
    return this.lines.flatMap((l) => {
      const m = /^state (\w+) reason=(\w+)/.exec(l);
      return m === null ? [] : [`${m[1]}:${m[2]}`];
    });
  }

  /** Resolves at the first `state <state>` line (with `reason=<reason>`, if given). */
  waitState(state: string, reason?: string, timeoutMs = STEP_MS): Promise<{ line: string; index: number }> {
    return this.waitLine(new RegExp(`^state ${state} reason=${reason ?? "\\w+"}\\b`), 0, timeoutMs);
  }

  /**
   * The `counters` command: the totals and, in group calls, the figures with each member's
   * device (by user).
   */
  async counters(): Promise<{ total: MediaCounts; firstRemoteFrame: boolean; byPeer: Map<string, MediaCounts> }> {
    const from = this.lines.length;
    const ok = await this.run("counters");
    const byPeer = new Map<string, MediaCounts>();
    for (const line of this.lines.slice(from)) {
      const m = /^counters peer=([^/\s]+)\/\S+ (.*)$/.exec(line);
      if (m !== null) byPeer.set(m[1]!, parseCounts(m[2]!));
    }
    return { total: parseCounts(ok), firstRemoteFrame: / first_remote_frame=yes\b/.test(ok), byPeer };
  }
}

/** A `counters` line's figures. */
export interface MediaCounts {
  readonly videoSent: number;
  readonly videoReceived: number;
  readonly audioSent: number;
  readonly audioReceived: number;
}

function parseCounts(line: string): MediaCounts {
  const n = (key: string): number => {
    const m = new RegExp(`\\b${key}=(\\d+)`).exec(line);
    if (m === null) throw new Error(`no ${key}= in ${JSON.stringify(line)}`);
    return Number(m[1]);
  };
  return { videoSent: n("video_sent"), videoReceived: n("video_received"), audioSent: n("audio_sent"), audioReceived: n("audio_received") };
}

const BLANK_PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>callapi browser test</title>
<script type="module" src="/dist/test/browser/page.js"></script></head><body></body></html>`;

/** Serves `/` (the blank page), `/dist/**.js` (the built modules) and `/token` (development tokens). */
async function serveHarness(mintToken: (user: string, device: string) => Promise<string>): Promise<{ server: http.Server; url: string }> {
  const dist = path.join(WEB_ROOT, "dist");
  const server = http.createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? "/", "http://127.0.0.1");
      try {
        if (url.pathname === "/") {
          res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(BLANK_PAGE);
        } else if (url.pathname === "/favicon.ico") {
          res.writeHead(204).end();
        } else if (url.pathname === "/token") {
          const token = await mintToken(url.searchParams.get("user") ?? "", url.searchParams.get("device") ?? "");
          res.writeHead(200, { "content-type": "text/plain", "cache-control": "no-store" }).end(token);
        } else if (url.pathname.startsWith("/dist/") && /\.js(\.map)?$/.test(url.pathname)) {
          const file = path.resolve(WEB_ROOT, `.${path.posix.normalize(url.pathname)}`);
          if (!file.startsWith(dist + path.sep)) throw Object.assign(new Error("outside dist"), { status: 404 });
          const body = await readFile(file);
          res.writeHead(200, { "content-type": "text/javascript; charset=utf-8" }).end(body);
        } else {
          res.writeHead(404).end();
        }
      } catch (e) {
        const status = (e as { code?: string; status?: number }).code === "ENOENT" ? 404 : ((e as { status?: number }).status ?? 500);
        res.writeHead(status, { "content-type": "text/plain" }).end(String(e));
      }
    })();
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

/** The Chromium flags: headless with fake devices, host candidates on loopback, no mDNS names. */
export const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-background-networking",
  "--use-fake-device-for-media-stream",
  "--use-fake-ui-for-media-stream",
  "--allow-loopback-in-peer-connection",
  "--disable-features=WebRtcHideLocalIpsWithMdns",
  "--autoplay-policy=no-user-gesture-required",
];

/** Everything one suite run uses. */
export class World {
  private pages: Page[] = [];
  private phones: Softphone[] = [];
  private procs: LineProcess[] = [];

  private constructor(
    private readonly tmp: string,
    private readonly bins: Binaries,
    private readonly secretFile: string,
    private readonly signal: LineProcess,
    /** The signaling server's `ws://127.0.0.1:PORT/v1/signal`. */
    readonly signalUrl: string,
    private readonly http: http.Server,
    private readonly httpUrl: string,
    private readonly browser: BrowserContext,
  ) {}

  /** Starts everything but the pages and phones. */
  static async start(bins: Binaries): Promise<World> {
    const tmp = await mkdtemp(path.join(os.tmpdir(), "callapi-browser-"));
    const secretFile = path.join(tmp, "secret.txt");
    await writeFile(secretFile, "browser-test-secret-0123456789abcdef\n", { mode: 0o600 });
    const signal = new LineProcess(
      "callapi-signal-server",
      spawn(bins.server, ["serve", "--listen", "127.0.0.1:0", "--secret-file", secretFile], {
        stdio: ["ignore", "pipe", "pipe"],
        env: { ...process.env, RUST_LOG: "warn" },
      }),
    );
    const { line } = await signal.waitLine(/^listening on ws:\/\//);
    const signalUrl = line.replace(/^listening on /, "").trim();
    const mint = (user: string, device: string): Promise<string> =>
      new Promise((resolve, reject) => {
        execFile(bins.server, ["token", "--secret-file", secretFile, "--user", user, "--device", device, "--ttl", "1h"], { timeout: 10_000 }, (err, stdout) =>
          err === null ? resolve(stdout.trim()) : reject(err),
        );
      });
    const { server, url } = await serveHarness(mint);
    const browser = await chromium.launchPersistentContext(path.join(tmp, "chromium-profile"), {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      timeout: 60_000,
    });
    return new World(tmp, bins, secretFile, signal, signalUrl, server, url, browser);
  }

  /** A page with a started client of `user` on `device`. */
  async page(user: string, device: string): Promise<WebPhone> {
    const page = await this.browser.newPage();
    this.pages.push(page);
    page.on("pageerror", (e) => console.error(`[page ${user}] ${e.message}`));
    page.on("console", (m) => {
      if (m.type() === "error" || m.type() === "warning") console.error(`[page ${user} console.${m.type()}] ${m.text()}`);
    });
    await page.goto(`${this.httpUrl}/`, { timeout: STEP_MS });
    await page.waitForFunction(() => window.harness !== undefined, undefined, { timeout: STEP_MS });
    await page.evaluate((o) => window.harness!.start(o), { user, device, url: this.signalUrl, timeoutMs: STEP_MS });
    return new WebPhone(`page ${user}`, page);
  }

  /** A page at `url` (another server's page, such as the softphone page), its errors printed as `name`'s. */
  async open(url: string, name: string): Promise<Page> {
    const page = await this.browser.newPage();
    this.pages.push(page);
    page.on("pageerror", (e) => console.error(`[${name}] ${e.message}`));
    page.on("console", (m) => {
      if (m.type() === "error" || m.type() === "warning") console.error(`[${name} console.${m.type()}] ${m.text()}`);
    });
    await page.goto(url, { timeout: STEP_MS });
    return page;
  }

  /** `demo` with `args`, its output kept (ended with the test). */
  demo(args: string[]): LineProcess {
    const demo = new LineProcess("demo", spawn(this.bins.demo, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, RUST_LOG: "warn" } }));
    this.procs.push(demo);
    return demo;
  }

  /** A Rust peer: `softphone --media webrtc` of `user` on `device`, once its link is up and it is prepared. */
  async softphone(user: string, device: string): Promise<Softphone> {
    const phone = new Softphone(
      `softphone ${user}`,
      spawn(
        this.bins.softphone,
        ["--server", this.signalUrl, "--secret-file", this.secretFile, "--user", user, "--device", device, "--media", "webrtc", "--media-bind", "127.0.0.1"],
        { stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, RUST_LOG: "warn" } },
      ),
    );
    this.phones.push(phone);
    await phone.waitLine(/^link connected/);
    await phone.waitLine(/^state Prepared /);
    return phone;
  }

  /** Closes the pages and ends the phones of one test. */
  async reset(): Promise<void> {
    await Promise.all(this.pages.map((p) => p.close()));
    await Promise.all([...this.phones, ...this.procs].map((p) => p.stop()));
    this.pages = [];
    this.phones = [];
    this.procs = [];
  }

  /** Ends everything. */
  async stop(): Promise<void> {
    await this.reset();
    await this.browser.close();
    await new Promise<void>((r) => this.http.close(() => r()));
    await this.signal.stop();
    await rm(this.tmp, { recursive: true, force: true });
  }
}

/** A page's client, driven through `window.harness` (see page.ts). */
export class WebPhone {
  constructor(
    readonly name: string,
    readonly page: Page,
  ) {}

  call(to: string | string[], callType: CallType = "video"): Promise<string> {
    return this.page.evaluate(([to, t]) => window.harness!.call(to, t), [to, callType] as const);
  }
  accept(): Promise<void> {
    return this.page.evaluate(() => window.harness!.accept());
  }
  hangup(reason?: string): Promise<void> {
    return this.page.evaluate((r) => window.harness!.hangup(r), reason);
  }
  invite(users: string[]): Promise<void> {
    return this.page.evaluate((u) => window.harness!.invite(u), users);
  }
  endForAll(reason?: string): Promise<void> {
    return this.page.evaluate((r) => window.harness!.endForAll(r), reason);
  }
  /** Every state change so far as `state:reason`. */
  states(): Promise<string[]> {
    return this.page.evaluate(() => window.harness!.states());
  }
  /** Every roster change so far as `user:state`. */
  members(): Promise<string[]> {
    return this.page.evaluate(() => window.harness!.members());
  }
  /** Every event name so far. */
  events(): Promise<string[]> {
    return this.page.evaluate(() => window.harness!.events());
  }
  /** Every error so far. */
  errors(): Promise<CallErrorInfo[]> {
    return this.page.evaluate(() => window.harness!.errors());
  }
  /** Resolves at the first change to `state` (with `reason`, if given). */
  async waitState(state: CallState, reason?: string, timeoutMs = STEP_MS): Promise<void> {
    await this.page.evaluate(([s, r, t]) => window.harness!.waitState(s, r, t).then(() => undefined), [state, reason, timeoutMs] as const);
  }
  /** Resolves at the first roster change of `user` to `state`. */
  async waitMember(user: string, state: string, timeoutMs = STEP_MS): Promise<void> {
    await this.page.evaluate(([u, s, t]) => window.harness!.waitMember(u, s, t).then(() => undefined), [user, state, timeoutMs] as const);
  }
  /** Resolves once exactly `connections` peer connections are up, each with `frames` video frames decoded and encoded. */
  waitMedia(connections: number, frames = 10, timeoutMs = STEP_MS): Promise<ConnStats[]> {
    return this.page.evaluate(([c, f, t]) => window.harness!.waitMedia(c, f, t), [connections, frames, timeoutMs] as const);
  }
  /** `getStats` of every peer connection not closed. */
  media(): Promise<ConnStats[]> {
    return this.page.evaluate(() => window.harness!.media());
  }
}
