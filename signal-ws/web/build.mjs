// Builds the page into dist/: softphone.js (src/softphone.ts and @callapi/web bundled from their
// TypeScript sources by esbuild), index.html and softphone.css copied. The output depends only on
// the sources and the locked esbuild version (no timestamps, no absolute paths, no source map),
// so `git diff --exit-code dist` after a build tells whether the committed files are current.
import { build } from "esbuild";
import { copyFile, mkdir } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, "dist");
await mkdir(dist, { recursive: true });
await build({
  absWorkingDir: here,
  entryPoints: ["src/softphone.ts"],
  outfile: "dist/softphone.js",
  bundle: true,
  format: "esm",
  target: "es2022",
  platform: "browser",
  tsconfig: "tsconfig.json",
  legalComments: "none",
  charset: "utf8",
  logLevel: "warning",
});
await copyFile(join(here, "src/index.html"), join(dist, "index.html"));
await copyFile(join(here, "src/softphone.css"), join(dist, "softphone.css"));
