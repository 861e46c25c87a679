/**
 * Summarises a CPU profile written by `bun --cpu-prof` (Chrome .cpuprofile format) by layer, for
 * reading where a route's time goes:
 *
 *   bun bench/profile-summary.ts bench/results/profile-<time>/B-list/CPU.*.cpuprofile
 *
 * Self time of every sample goes to the nearest frame that belongs to a package or to Warren's own
 * code (native frames such as JSON.stringify or a socket write count for whoever called them).
 * Inclusive time per route handler is not shown: after an await the stack starts again from the
 * event loop, so a profiler cannot tell which middleware a continuation belongs to.
 */
import { readFileSync } from "node:fs";

type Node = { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] };
type Profile = { nodes: Node[]; samples: number[]; timeDeltas: number[]; startTime: number; endTime: number };

const LAYERS: [RegExp, string][] = [
  [/node_modules\/(better-auth|@better-auth|better-call|jose|@noble|defu|rou3)\//, "Better Auth (session lookup)"],
  [/node_modules\/drizzle-orm\//, "Drizzle (query building, row mapping)"],
  [/node_modules\/postgres\//, "postgres.js (protocol, socket)"],
  [/node_modules\/(hono|@hono)\//, "Hono (routing, middleware, c.json)"],
  [/node_modules\/zod\//, "zod (request validation)"],
  [/node_modules\/pino/, "pino (logging)"],
  [/node_modules\/typeid-js|node_modules\/uuidv7/, "typeid (request ids)"],
  [/\/src\//, "Warren src/"],
  [/node_modules\//, "other packages"],
];

export function summarise(file: string): string {
  const p = JSON.parse(readFileSync(file, "utf8")) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const layerOf = new Map<number, string>();
  const layer = (id: number): string => {
    const cached = layerOf.get(id);
    if (cached) return cached;
    const url = byId.get(id)!.callFrame.url;
    let found = LAYERS.find(([re]) => re.test(url))?.[1];
    if (!found) {
      const up = parent.get(id);
      const name = byId.get(id)!.callFrame.functionName;
      found = up === undefined ? (name === "(garbage collector)" ? "garbage collector" : "Bun native, no JS caller (HTTP I/O, GC, promise jobs)") : layer(up);
    }
    layerOf.set(id, found);
    return found;
  };
  const counts = new Map<string, number>();
  for (const s of p.samples) {
    counts.set(layer(s), (counts.get(layer(s)) ?? 0) + 1);
  }
  const total = p.samples.length;
  const wallS = (p.endTime - p.startTime) / 1e6;
  const pct = (n: number) => `${((n / total) * 100).toFixed(1).padStart(5)}%`;
  const lines = [`${file}`, `  ${total} samples over ${wallS.toFixed(1)} s of wall time`, "  self time by layer:"];
  for (const [name, n] of [...counts].sort((a, b) => b[1] - a[1])) lines.push(`    ${pct(n)}  ${name}`);
  return lines.join("\n");
}

if (import.meta.main) {
  const files = process.argv.slice(2);
  if (files.length === 0 || files.includes("--help") || files.includes("-h")) {
    console.log("Usage: bun bench/profile-summary.ts FILE.cpuprofile …  (see bench/README.md)");
    process.exit(files.length ? 0 : 2);
  }
  for (const f of files) console.log(summarise(f));
}
