/**
 * `npm run test:browser`: builds the Rust peers, then runs the browser suite (every
 * `dist/test/browser/*.test.js`) in a network namespace of its own (`unshare --net`, with only
 * `lo`, brought up), so the signaling server, the softphones, Chromium and every media path they
 * open exist only on that namespace's loopback. Where the suite cannot run (no Chromium, no
 * namespaces: not root), it says why and skips (exit 0); it never skips silently.
 *
 * The suite gets `SUITE_MS` in all; past that its process group is killed.
 */

import { spawn, spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { NETNS_ENV, buildBinaries, skipReason } from "./harness.js";

/** The whole suite's limit (it takes well under a minute). */
const SUITE_MS = 4 * 60_000;

const here = path.dirname(fileURLToPath(import.meta.url));

function skip(why: string): never {
  console.log(`# SKIP browser tests: ${why}`);
  process.exit(0);
}

/** Why no network namespace can be made here, or `undefined`. */
function netnsUnavailable(): string | undefined {
  const probe = spawnSync("unshare", ["--net", "--", "ip", "link", "set", "lo", "up"], { encoding: "utf8", timeout: 10_000 });
  if (probe.error !== undefined) return `cannot run unshare/ip (util-linux, iproute2): ${probe.error.message}`;
  if (probe.status !== 0) {
    return `cannot create a network namespace (unshare --net: ${probe.stderr.trim() || `status ${probe.status}`}); the suite needs root (CAP_SYS_ADMIN) so that its media stays on a loopback of its own`;
  }
  return undefined;
}

const missing = skipReason() ?? netnsUnavailable();
if (missing !== undefined) skip(missing);

buildBinaries();

const files = readdirSync(here)
  .filter((f) => f.endsWith(".test.js"))
  .sort()
  .map((f) => path.join(here, f));

// `unshare --fork --kill-child`: the suite is unshare's child, killed if unshare dies; `sh`
// brings `lo` up, then becomes `node --test`.
const child = spawn(
  "unshare",
  ["--net", "--fork", "--kill-child", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", process.execPath, "--test", "--test-concurrency=1", ...files],
  { stdio: "inherit", env: { ...process.env, [NETNS_ENV]: "1" }, detached: true },
);
const killAll = (): void => {
  if (child.pid !== undefined) {
    try {
      process.kill(-child.pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
};
const limit = setTimeout(() => {
  console.error(`browser tests: still running after ${SUITE_MS / 1000} s; killed`);
  killAll();
}, SUITE_MS);
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.on(sig, () => {
    killAll();
    process.exit(130);
  });
}
process.on("exit", killAll);
child.on("exit", (code, signal) => {
  clearTimeout(limit);
  process.exitCode = code ?? (signal !== null ? 1 : 0);
});
