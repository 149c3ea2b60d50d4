/**
 * A network namespace of its own for the browser suite and the screenshot script: `unshare
 * --net` (only `lo`, brought up), so the servers, the softphones, Chromium and every media path
 * they open exist only on that namespace's loopback.
 */

import { type ChildProcess, spawn, spawnSync } from "node:child_process";

/** Set (to "1") in the namespace {@link spawnInNetns} starts. */
export const NETNS_ENV = "CALLAPI_BROWSER_NETNS";

/** Why no network namespace can be made here, or `undefined`. */
export function netnsUnavailable(): string | undefined {
  const probe = spawnSync("unshare", ["--net", "--", "ip", "link", "set", "lo", "up"], { encoding: "utf8", timeout: 10_000 });
  if (probe.error !== undefined) return `cannot run unshare/ip (util-linux, iproute2): ${probe.error.message}`;
  if (probe.status !== 0) {
    return `cannot create a network namespace (unshare --net: ${probe.stderr.trim() || `status ${probe.status}`}); it needs root (CAP_SYS_ADMIN), so that media stays on a loopback of its own`;
  }
  return undefined;
}

/**
 * Runs `node <args>` in a new network namespace (`unshare --fork --kill-child`: killed if
 * unshare dies; `sh` brings `lo` up, then becomes node), in a process group of its own, with
 * {@link NETNS_ENV} set; killed after `limitMs`. Resolves with its exit code.
 */
export function runInNetns(args: string[], limitMs: number): Promise<number> {
  const child: ChildProcess = spawn(
    "unshare",
    ["--net", "--fork", "--kill-child", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", process.execPath, ...args],
    { stdio: "inherit", env: { ...process.env, [NETNS_ENV]: "1" }, detached: true },
  );
  const killAll = (): void => {
    if (child.pid === undefined) return;
    try {
      process.kill(-child.pid, "SIGKILL");
    } catch {
      // already gone
    }
  };
  const limit = setTimeout(() => {
    console.error(`still running after ${limitMs / 1000} s; killed`);
    killAll();
  }, limitMs);
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    process.on(sig, () => {
      killAll();
      process.exit(130);
    });
  }
  process.on("exit", killAll);
  return new Promise((resolve) => {
    child.on("exit", (code, signal) => {
      clearTimeout(limit);
      resolve(code ?? (signal !== null ? 1 : 0));
    });
  });
}
