/**
 * The web softphone page served by `callapi-signal-server serve --web`: sign in (a development
 * token from `POST /dev/token` when the server offers it, else a pasted token), call one user or
 * several, answer or decline incoming calls, see the members and their states, local and remote
 * video, a DTMF pad, in-call messages, and the timing of the last call.
 *
 * Plain DOM, no framework. Every control has a stable `data-testid` (and an id) so tests can
 * drive the page; `document.body.dataset` mirrors the link and call states.
 *
 * Query parameters prefill the sign-in form: `?user=web&device=browser` (`&signin=1` signs in at
 * once, `&token=...` uses that token).
 */

import {
  BrowserMedia,
  CallClient,
  type CallEventInfo,
  type LinkState,
  type MediaPeer,
  type MemberChange,
  type StateChange,
  WebSocketTransport,
} from "@callapi/web";

/** Where the dev token endpoint is (the server's `DEV_TOKEN_PATH`). */
const DEV_TOKEN_PATH = "/dev/token";
const SIGNAL_PATH = "/v1/signal";
const DTMF_KEYS = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "0", "#"];

function el<T extends HTMLElement>(id: string): T {
  const e = document.getElementById(id);
  if (e === null) throw new Error(`the page has no #${id}`);
  return e as T;
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function show(id: string, visible: boolean): void {
  el(id).hidden = !visible;
}

function setError(id: string, e: unknown): void {
  const p = el<HTMLParagraphElement>(id);
  if (e === undefined) {
    p.hidden = true;
    p.textContent = "";
  } else {
    p.hidden = false;
    p.textContent = errorText(e);
  }
}

/** Whether the server offers `POST /dev/token` (it answers a GET there with 405, else 404). */
async function devTokensOffered(): Promise<boolean> {
  try {
    const r = await fetch(DEV_TOKEN_PATH, { method: "GET", cache: "no-store" });
    return r.status === 405;
  } catch {
    return false;
  }
}

/** A development token for `user` on `device`; the error says what the server refused. */
async function fetchDevToken(user: string, device: string): Promise<string> {
  const r = await fetch(DEV_TOKEN_PATH, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ user, device }),
    cache: "no-store",
  });
  const body = (await r.json().catch(() => ({}))) as { token?: string; message?: string };
  if (!r.ok || typeof body.token !== "string") {
    throw new Error(`the server refused a token (${r.status}): ${body.message ?? r.statusText}`);
  }
  return body.token;
}

/** The timing table of the last call: each step once, in ms since the call started. */
class Timing {
  private t0 = 0;
  private readonly seen = new Set<string>();

  start(step: string): void {
    this.t0 = performance.now();
    this.seen.clear();
    el("timing").querySelector("tbody")!.replaceChildren();
    this.mark(step);
  }

  mark(step: string): void {
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
    el("timing").querySelector("tbody")!.append(row);
  }
}

/** Local and remote video tiles. */
class Tiles {
  private readonly remote = new Map<string, HTMLElement>();

  local(stream: MediaStream | null): void {
    el<HTMLVideoElement>("local-video").srcObject = stream;
  }

  add(stream: MediaStream, peer: MediaPeer | undefined, label: string): void {
    const key = peer === undefined ? "peer" : `${peer.user}/${peer.device}`;
    let tile = this.remote.get(key);
    if (tile === undefined) {
      tile = document.createElement("figure");
      tile.className = "tile remote";
      tile.dataset.testid = "remote-tile";
      tile.dataset.peer = peer === undefined ? label : key;
      const video = document.createElement("video");
      video.autoplay = true;
      video.playsInline = true;
      video.dataset.testid = "remote-video";
      video.addEventListener("resize", () => {
        if (video.videoWidth > 0) video.dataset.playing = "true";
      });
      const caption = document.createElement("figcaption");
      caption.textContent = peer === undefined ? label : key;
      tile.append(video, caption);
      el("videos").append(tile);
      this.remote.set(key, tile);
    }
    const video = tile.querySelector("video")!;
    if (video.srcObject !== stream) video.srcObject = stream;
  }

  removeUser(user: string): void {
    for (const [key, tile] of this.remote) {
      if (key.startsWith(`${user}/`)) {
        tile.remove();
        this.remote.delete(key);
      }
    }
  }

  clear(): void {
    for (const tile of this.remote.values()) tile.remove();
    this.remote.clear();
    this.local(null);
  }
}

/** The members table: one row per user. */
class Members {
  private readonly rows = new Map<string, HTMLTableRowElement>();

  set(user: string, device: string | undefined, state: string): void {
    let row = this.rows.get(user);
    if (row === undefined) {
      row = document.createElement("tr");
      row.dataset.testid = "member";
      row.dataset.user = user;
      for (let i = 0; i < 3; i++) row.append(document.createElement("td"));
      el("members").querySelector("tbody")!.append(row);
      this.rows.set(user, row);
    }
    row.dataset.state = state;
    const [u, d, s] = [...row.cells];
    u!.textContent = user;
    if (device !== undefined) d!.textContent = device;
    s!.textContent = state;
  }

  clear(): void {
    for (const row of this.rows.values()) row.remove();
    this.rows.clear();
  }
}

function logLine(listId: string, text: string, testid: string): void {
  const li = document.createElement("li");
  li.dataset.testid = testid;
  li.textContent = text;
  const list = el(listId);
  list.append(li);
  while (list.children.length > 200) list.firstElementChild?.remove();
  list.scrollTop = list.scrollHeight;
}

function event(text: string): void {
  logLine("events", `${new Date().toISOString().slice(11, 23)} ${text}`, "event");
}

/** The signed-in phone. */
class Phone {
  private readonly timing = new Timing();
  private readonly tiles = new Tiles();
  private readonly members = new Members();
  private readonly client: CallClient;

  constructor(
    private readonly user: string,
    device: string,
    tokens: () => Promise<string>,
  ) {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const transport = new WebSocketTransport({ url: `${scheme}://${location.host}${SIGNAL_PATH}`, device, tokens });
    const media = new BrowserMedia({
      onLocalStream: (_callId, stream) => this.tiles.local(stream),
      onRemoteStream: (_callId, stream, peer) => this.tiles.add(stream, peer, this.client.callInfo()?.remoteUser ?? "remote"),
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

  private wire(): void {
    el<HTMLFormElement>("call-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const to = el<HTMLInputElement>("callee")
        .value.split(",")
        .map((s) => s.trim())
        .filter((s) => s !== "");
      const callType = el<HTMLSelectElement>("call-type").value === "audio" ? "audio" : "video";
      this.command(() => {
        this.timing.start("call placed");
        this.members.clear();
        return this.client.call(to.length === 1 ? to[0]! : to, { callType });
      });
    });
    el("hangup").addEventListener("click", () => this.command(() => this.client.hangup()));
    el("accept").addEventListener("click", () => this.command(() => this.client.accept()));
    el("reject").addEventListener("click", () => this.command(() => this.client.reject("declined")));
    const pad = el("dtmf");
    for (const key of DTMF_KEYS) {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = key;
      b.id = `dtmf-${key === "*" ? "star" : key === "#" ? "hash" : key}`;
      b.dataset.testid = b.id;
      b.addEventListener("click", () => this.command(() => this.client.sendDtmf(key)));
      pad.append(b);
    }
    el<HTMLFormElement>("message-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const input = el<HTMLInputElement>("message-input");
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
  private command(fn: () => Promise<unknown>): void {
    setError("call-error", undefined);
    let p: Promise<unknown>;
    try {
      p = fn();
    } catch (e) {
      p = Promise.reject(e);
    }
    p.catch((e: unknown) => {
      setError("call-error", e);
      event(`command failed: ${errorText(e)}`);
    });
  }

  private onLink(l: LinkState): void {
    const text = l.state === "reconnecting" ? `reconnecting (attempt ${l.attempt})` : l.state;
    el("link-state").textContent = text;
    el("link-state").dataset.state = l.state;
    document.body.dataset.link = l.state;
    event(`link ${text}${"error" in l && l.error !== undefined ? `: ${errorText(l.error)}` : ""}`);
  }

  private onState(s: StateChange): void {
    el("call-state").textContent = s.state;
    el("call-state").dataset.state = s.state;
    document.body.dataset.callState = s.state;
    event(`state ${s.previous} -> ${s.state} (${s.reason}${s.eventReason !== undefined ? `: ${s.eventReason}` : ""})`);
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
    el<HTMLButtonElement>("hangup").disabled = !inCall;
    el<HTMLButtonElement>("call").disabled = inCall;
    if (s.state === "connecting") this.timing.mark("connecting");
    if (s.state === "connected") this.timing.mark("connected");
    if (call !== undefined && !call.group) {
      const remote = s.state === "connected" ? "connected" : s.state === "connecting" ? "accepted" : s.state === "calling" ? "ringing" : "left";
      this.members.set(call.remoteUser, call.remoteDevice, inCall ? remote : `ended (${s.reason})`);
    }
    if (!inCall && (s.previous === "calling" || s.previous === "connecting" || s.previous === "connected")) {
      this.timing.mark(`ended (${s.reason})`);
      this.tiles.clear();
      el("dtmf-received").textContent = "";
    }
  }

  private onEvent(e: CallEventInfo): void {
    event(`event ${e.event}${e.reason !== undefined ? ` (${e.reason})` : ""}`);
    const steps: Partial<Record<string, string>> = {
      onCalling: "invite sent",
      remoteUserRecvCall: "ringing at callee",
      localAccepted: "accepted (here)",
      remoteAccepted: "accepted (remote)",
      recvRemoteFirstFrame: "first remote frame",
    };
    const step = steps[e.event];
    if (step !== undefined) this.timing.mark(step);
  }

  private onMember(m: MemberChange): void {
    event(`member ${m.user}: ${m.previous ?? "new"} -> ${m.state}`);
    this.members.set(m.user, m.device, m.state);
    if (m.state === "left" || m.state === "rejected" || m.state === "busy" || m.state === "timeout" || m.state === "cancelled") {
      this.tiles.removeUser(m.user);
    }
  }
}

async function main(): Promise<void> {
  const q = new URLSearchParams(location.search);
  const userInput = el<HTMLInputElement>("user");
  const deviceInput = el<HTMLInputElement>("device");
  const tokenInput = el<HTMLTextAreaElement>("token");
  userInput.value = q.get("user") ?? "";
  deviceInput.value = q.get("device") ?? deviceInput.value;
  tokenInput.value = q.get("token") ?? "";
  const offered = await devTokensOffered();
  document.body.dataset.devTokens = String(offered);
  el("token-hint").textContent = offered
    ? "This server hands out development tokens: leave the token empty to get one."
    : "This server offers no development tokens: paste a token minted with its secret.";
  let signedIn = false;
  const signIn = async (): Promise<void> => {
    if (signedIn) return;
    setError("signin-error", undefined);
    const user = userInput.value.trim();
    const device = deviceInput.value.trim();
    const pasted = tokenInput.value.trim();
    try {
      if (pasted === "" && !offered) throw new Error("paste a token: this server offers no development tokens");
      // A first token now, so a bad user or device id is reported here, not as a failed link.
      let first: string | undefined = pasted !== "" ? pasted : await fetchDevToken(user, device);
      const tokens = async (): Promise<string> => {
        if (first !== undefined) {
          const t = first;
          if (pasted === "") first = undefined;
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
  el<HTMLFormElement>("signin-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    void signIn();
  });
  document.body.dataset.ready = "true";
  if (q.get("signin") === "1" && userInput.value !== "") await signIn();
}

void main();
