/**
 * `npm run test:browser`: builds the Rust peers, then runs the browser suite (every
 * `dist/test/browser/*.test.js`) in a network namespace of its own (netns.ts), so every media
 * path stays on that namespace's loopback. Where the suite cannot run (no Chromium, no
 * namespaces: not root), it says why and skips (exit 0); it never skips silently.
 *
 * The suite gets `SUITE_MS` in all; past that it is killed.
 */

import { readdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { buildBinaries, skipReason } from "./harness.js";
import { netnsUnavailable, runInNetns } from "./netns.js";

/** The whole suite's limit (it takes well under a minute). */
const SUITE_MS = 4 * 60_000;

const here = path.dirname(fileURLToPath(import.meta.url));

const missing = skipReason() ?? netnsUnavailable();
if (missing !== undefined) {
  console.log(`# SKIP browser tests: ${missing}`);
  process.exit(0);
}

buildBinaries();

const files = readdirSync(here)
  .filter((f) => f.endsWith(".test.js"))
  .sort()
  .map((f) => path.join(here, f));
process.exitCode = await runInNetns(["--test", "--test-concurrency=1", ...files], SUITE_MS);
