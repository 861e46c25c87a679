// What a sandbox's own disk (src/orchestrator/local-disk.ts) adds to a local start and stop, on
// real loop devices (root): `bun bench/sandbox-disk.ts [--runs 20] [--gb 10]`. The rest of a start
// (bubblewrap, OpenCode answering) is seconds and untouched by it.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger } from "../src/lib/logger";
import { SandboxDisks, unmountAllUnder } from "../src/orchestrator/local-disk";

if (process.argv.includes("--help") || process.argv.includes("-h")) {
  console.log("Usage: bun bench/sandbox-disk.ts [--runs N] [--gb G]\n\nTimes, on real loop devices (needs root), what a local sandbox's own disk adds: first start\n(mkfs + mount), later starts (mount), stop (unmount) and the start after its tier grew.\nPrints medians and maxima; leaves no mount or image behind.");
  process.exit(0);
}
const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const runs = arg("runs", 20);
const gb = arg("gb", 10);
const root = mkdtempSync(join(tmpdir(), "warren-bench-disk-"));
const disks = new SandboxDisks({ quota: "auto", logger: createLogger("warn") });

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const max = (xs: number[]) => Math.max(...xs);

const first: number[] = [];
const again: number[] = [];
const stop: number[] = [];
const growth: number[] = [];
try {
  for (let i = 0; i < runs; i++) {
    const dir = join(root, `sbx_${i}`);
    mkdirSync(dir, { mode: 0o700 });
    first.push(await timed(() => disks.attach(dir, gb, dir)));
    // A few thousand small files, so the check before a growth has something to walk.
    for (let f = 0; f < 2_000; f++) writeFileSync(join(dir, "disk", `f${f}`), "x");
    stop.push(await timed(() => disks.detach(dir)));
    again.push(await timed(() => disks.attach(dir, gb, dir)));
    await disks.detach(dir);
    growth.push(await timed(() => disks.attach(dir, gb + 1, dir)));
    await disks.detach(dir);
  }
  const row = (what: string, xs: number[]) => console.log(`${what.padEnd(52)} median ${median(xs).toFixed(1).padStart(7)} ms   max ${max(xs).toFixed(1).padStart(7)} ms`);
  console.log(`${runs} runs, ${gb} GB disks`);
  row("first start: sparse file + mkfs.ext4 + mount", first);
  row("later start: mount", again);
  row("stop: unmount", stop);
  row(`start after a tier grew: e2fsck + resize2fs + mount`, growth);
} finally {
  unmountAllUnder(root);
  rmSync(root, { recursive: true, force: true });
}
