/**
 * `npm run screenshot`: docs/softphone.png, the web softphone page in a group call. Starts
 * `callapi-signal-server serve --web --dev-tokens`, two Rust peers (`softphone --media webrtc`,
 * bob and carol) and headless Chromium (Debian's, through playwright-core, fake camera), all in
 * a network namespace of its own (as the browser tests); the page signs in as alice, calls bob
 * and carol, both accept, and once both remote tiles play video, a message and a DTMF digit
 * are sent and the page is captured. Every wait is bounded; every child is ended.
 */

import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { CHROMIUM, CHROMIUM_ARGS, LineProcess, REPO_ROOT, STEP_MS, Softphone, binaries, buildBinaries, skipReason } from "../test/browser/harness.js";
import { NETNS_ENV, netnsUnavailable, runInNetns } from "../test/browser/netns.js";

const OUT = path.join(REPO_ROOT, "docs", "softphone.png");

async function capture(): Promise<void> {
  const bins = binaries();
  const tmp = await mkdtemp(path.join(os.tmpdir(), "callapi-screenshot-"));
  const secretFile = path.join(tmp, "secret.txt");
  await writeFile(secretFile, "screenshot-secret-0123456789abcdef\n", { mode: 0o600 });
  const procs: LineProcess[] = [];
  const env = { ...process.env, RUST_LOG: "warn" };
  const browser = await chromium.launchPersistentContext(path.join(tmp, "profile"), {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1280, height: 900 },
    timeout: 60_000,
  });
  try {
    const server = new LineProcess(
      "callapi-signal-server",
      spawn(bins.server, ["serve", "--listen", "127.0.0.1:0", "--secret-file", secretFile, "--web", "--dev-tokens"], { stdio: ["ignore", "pipe", "pipe"], env }),
    );
    procs.push(server);
    const { line } = await server.waitLine(/^listening on ws:\/\//);
    const signal = line.replace(/^listening on /, "").trim();
    const http = signal.replace(/^ws:/, "http:").replace(/\/v1\/signal$/, "");
    const phones: Softphone[] = [];
    for (const [user, device] of [["bob", "bob-phone"], ["carol", "carol-laptop"]] as const) {
      const phone = new Softphone(
        `softphone ${user}`,
        spawn(bins.softphone, ["--server", signal, "--secret-file", secretFile, "--user", user, "--device", device, "--media", "webrtc", "--media-bind", "127.0.0.1"], { stdio: ["pipe", "pipe", "pipe"], env }),
      );
      procs.push(phone);
      phones.push(phone);
      await phone.waitLine(/^link connected/);
      await phone.waitLine(/^state Prepared /);
    }

    const page = await browser.newPage();
    page.on("pageerror", (e) => console.error(`[page] ${e.message}`));
    await page.goto(`${http}/?user=alice&device=browser&signin=1`, { timeout: STEP_MS });
    await page.waitForFunction(() => document.body.dataset["link"] === "connected", undefined, { timeout: STEP_MS });
    await page.getByTestId("callee").fill("bob,carol");
    await page.getByTestId("call").click();
    for (const phone of phones) {
      await phone.waitState("Calling", "RemoteVideoCall");
      await phone.run("accept");
    }
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="remote-video"][data-playing="true"]').length === 2, undefined, { timeout: STEP_MS });
    await page.getByTestId("message-input").fill("hello from the browser");
    await page.getByTestId("message-send").click();
    await page.getByTestId("dtmf-5").click();
    await phones[0]!.waitLine(/^msg from=alice /);
    await phones[0]!.run("msg hi alice, bob here");
    await page.getByTestId("message-log").getByText("hi alice, bob here").waitFor({ timeout: STEP_MS });
    // Let the fake camera's picture move on a little past the first frames.
    await page.waitForFunction(() => Array.from(document.querySelectorAll<HTMLVideoElement>('[data-testid="remote-video"]')).every((v) => v.currentTime > 2), undefined, { timeout: STEP_MS });
    await page.screenshot({ path: OUT, fullPage: true });
    console.log(`wrote ${path.relative(process.cwd(), OUT)}`);
  } finally {
    await browser.close();
    await Promise.all(procs.map((p) => p.stop()));
    await rm(tmp, { recursive: true, force: true });
  }
}

if (process.env[NETNS_ENV] === "1") {
  await capture();
} else {
  const missing = skipReason() ?? netnsUnavailable();
  if (missing !== undefined) {
    console.error(`screenshot: ${missing}`);
    process.exit(1);
  }
  buildBinaries();
  process.exitCode = await runInNetns([fileURLToPath(import.meta.url)], 3 * 60_000);
}
