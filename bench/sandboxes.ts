/**
 * Issue 4's performance requirement, measured: GET /api/v1/sandboxes and GET /api/v1/sandboxes/:id
 * for a user with 100 sandboxes among 1,000 (scenario A) and 1,000 among 100,000 (scenario B),
 * p99 under 10 ms at 50 connections, against the real server process, with the baselines of
 * FIELD-NOTES ("Load testing") measured in the same run. See bench/README.md.
 *
 *   bun run bench:sandboxes [--help]
 */
import { newestFirst } from "../src/lib/pagination";
import { mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { cpus, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { Subprocess } from "bun";
import { and, eq, inArray, sql as dsql } from "drizzle-orm";
import { drizzle } from "drizzle-orm/postgres-js";
import postgres from "postgres";
import { sandboxAddons, sandboxes } from "../db/schema";
import { seedSandboxes, type SeedResult } from "./seed-sandboxes";

const HELP = `Usage: bun run bench:sandboxes [options]

Starts a throwaway PostgreSQL 15 cluster (scripts/pg-cluster.sh), creates one database per
scenario, applies Warren's migrations (bun run db:migrate), seeds it (bench/seed-sandboxes.ts),
starts the real server (bun src/index.ts, NODE_ENV=production) and a baseline server
(bench/baseline-server.ts), signs the heavy user in (bearer token) and runs wrk against:

  list     GET /api/v1/sandboxes?limit=50                     target: p99 < 10 ms
  get      GET /api/v1/sandboxes/<id>, 20 of the user's ids    target: p99 < 10 ms
  me       GET /api/v1/me          (diagnostic: session lookup + one select)
  health   GET /health             (diagnostic: Warren's middleware stack, no database)
  select   baseline: Bun.serve + one primary-key select with postgres.js
  hello    baseline: Bun.serve answering a constant (scenario A only)

each at --connections (after --warmup seconds), then each once more at 1 connection for the
unloaded latency. For each route it also counts the SQL statements one request sends (50
requests with log_statement=all, read back from the cluster's log). Prints a table, writes bench/results/sandboxes-<time>.json, and stops
everything it started (the cluster too, unless --keep-cluster).

Scenarios:  A = 100 users, 1,000 sandboxes, heavy user with 100
            B = 10,000 users, 100,000 sandboxes, heavy user with 1,000

Options:
  --scenarios LIST    a, b or a,b (default a,b)
  --duration S        seconds measured per route (default 20)
  --warmup S          seconds of warm-up per route, not measured (default 5)
  --connections N     wrk connections (default 50)
  --threads N         wrk threads (default 2)
  --unloaded S        seconds per route at 1 connection; 0 skips (default 5)
  --targets-only      only list, get and the select baseline (no me/health/hello, no unloaded runs)
  --keep-cluster      leave the cluster running at the end and print its URL
  --profile           after measuring, run the list and get routes once more (10 s each) against
                      a Warren started with bun --cpu-prof --cpu-prof-md; the profiles go next to
                      the JSON results
  --no-wait-quiet     do not wait for the machine to go quiet before each run (by default each run
                      waits up to 30 s until other processes use under 20% of the CPUs, and
                      records what it saw: this box is shared)
  -h, --help          this help

Needs wrk (apt-get install -y wrk) and the PostgreSQL server binaries (initdb, pg_ctl).
`;

const ROOT = join(import.meta.dir, "..");
const TARGET_P99_MS = 10;

const { values: opts } = parseArgs({
  options: {
    scenarios: { type: "string", default: "a,b" },
    duration: { type: "string", default: "20" },
    warmup: { type: "string", default: "5" },
    connections: { type: "string", default: "50" },
    threads: { type: "string", default: "2" },
    unloaded: { type: "string", default: "5" },
    "targets-only": { type: "boolean", default: false },
    "keep-cluster": { type: "boolean", default: false },
    profile: { type: "boolean", default: false },
    "no-wait-quiet": { type: "boolean", default: false },
    help: { type: "boolean", short: "h" },
  },
});
if (opts.help) {
  process.stdout.write(HELP);
  process.exit(0);
}
const num = (name: string, v: string | undefined, min: number) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) {
    console.error(`bench:sandboxes: --${name} must be a whole number ≥ ${min}, got ${JSON.stringify(v)}`);
    process.exit(2);
  }
  return n;
};
const DURATION = num("duration", opts.duration, 1);
const WARMUP = num("warmup", opts.warmup, 0);
const CONNECTIONS = num("connections", opts.connections, 1);
const THREADS = Math.min(num("threads", opts.threads, 1), CONNECTIONS);
const UNLOADED = opts["targets-only"] ? 0 : num("unloaded", opts.unloaded, 0);

type ScenarioSpec = { key: "A" | "B"; users: number; sandboxes: number; heavy: number };
const SCENARIOS: Record<string, ScenarioSpec> = {
  a: { key: "A", users: 100, sandboxes: 1_000, heavy: 100 },
  b: { key: "B", users: 10_000, sandboxes: 100_000, heavy: 1_000 },
};
const chosen = opts.scenarios!.split(",").map((s) => s.trim().toLowerCase());
for (const s of chosen) {
  if (!SCENARIOS[s]) {
    console.error(`bench:sandboxes: unknown scenario ${JSON.stringify(s)} (a or b)`);
    process.exit(2);
  }
}

if (!Bun.which("wrk")) {
  console.error("bench:sandboxes: wrk is not installed. Install it with: apt-get install -y wrk");
  process.exit(1);
}

const log = (msg: string) => process.stderr.write(`${msg}\n`);
const workDir = mkdtempSync(join(tmpdir(), "warren-bench-"));

// ---------------------------------------------------------------------------------------------
// Processes we start, stopped on the way out whatever happens.

const children = new Set<Subprocess>();
let clusterDir: string | null = null;
let cleaning: Promise<void> | null = null;

function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (const child of children) {
      if (child.exitCode === null) child.kill("SIGTERM");
      await Promise.race([child.exited, Bun.sleep(5000)]);
      if (child.exitCode === null) child.kill("SIGKILL");
    }
    children.clear();
    if (clusterDir && !opts["keep-cluster"]) {
      Bun.spawnSync(["bash", join(ROOT, "scripts/pg-cluster.sh"), "stop", clusterDir]);
      clusterDir = null;
    }
  })();
  return cleaning;
}
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    log(`\n${signal}: stopping everything this run started …`);
    void cleanup().then(() => process.exit(130));
  });
}

function freePort(): number {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = s.port;
  s.stop(true);
  return port;
}

async function run(cmd: string[], env: Record<string, string | undefined> = {}): Promise<string> {
  const proc = Bun.spawn(cmd, { cwd: ROOT, env: { ...process.env, ...env }, stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) throw new Error(`${cmd.join(" ")} exited with ${code}:\n${out}${err}`);
  return out;
}

/** Starts a long-running process with its output in a log file; resolves when `ready()` says so. */
async function startProcess(name: string, cmd: string[], env: Record<string, string>, ready: () => Promise<boolean>) {
  const logFile = join(workDir, `${name}.log`);
  const fd = openSync(logFile, "a");
  const proc = Bun.spawn(cmd, { cwd: ROOT, env, stdin: "ignore", stdout: fd, stderr: fd });
  children.add(proc);
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`${name} exited with ${proc.exitCode}:\n${readFileSync(logFile, "utf8")}`);
    if (await ready().catch(() => false)) return { proc, logFile };
    await Bun.sleep(100);
  }
  throw new Error(`${name} did not become ready in 60 s:\n${readFileSync(logFile, "utf8")}`);
}

async function stopProcess(proc: Subprocess) {
  if (proc.exitCode === null) proc.kill("SIGTERM");
  await Promise.race([proc.exited, Bun.sleep(15_000)]);
  if (proc.exitCode === null) proc.kill("SIGKILL");
  children.delete(proc);
}

// ---------------------------------------------------------------------------------------------
// wrk

type Latency = { min: number; mean: number; stdev: number; p50: number; p90: number; p99: number; p999: number; max: number };
type WrkResult = {
  requests: number;
  durationUs: number;
  bytes: number;
  errors: { connect: number; read: number; write: number; status: number; timeout: number };
  latencyUs: Latency;
};

async function wrk(url: string, paths: string[], token: string | null, seconds: number, connections: number, threads: number) {
  const cmd = ["wrk", "-t", String(threads), "-c", String(connections), "-d", `${seconds}s`, "--latency", "-s", join(ROOT, "bench/wrk/rotate.lua"), `${url}/`];
  const proc = Bun.spawn(cmd, { cwd: ROOT, env: { ...process.env, BENCH_TOKEN: token ?? "", BENCH_PATHS: paths.join("\n") }, stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) throw new Error(`${cmd.join(" ")} exited with ${code}:\n${out}${err}`);
  const line = out.split("\n").find((l) => l.startsWith("BENCH_JSON "));
  if (!line) throw new Error(`wrk printed no BENCH_JSON line:\n${out}`);
  const usage = proc.resourceUsage();
  const wrkCpuMs = usage ? Number(usage.cpuTime.user + usage.cpuTime.system) / 1000 : 0;
  return { ...(JSON.parse(line.slice("BENCH_JSON ".length)) as WrkResult), wrkCpuMs };
}

type RunRecord = {
  scenario: string;
  route: string;
  what: string;
  kind: "target" | "diagnostic" | "baseline";
  connections: number;
  threads: number;
  seconds: number;
  requests: number;
  rps: number;
  latencyMs: { p50: number; p90: number; p99: number; p999: number; max: number; mean: number };
  errors: WrkResult["errors"];
  /** CPU use of the whole box in the second before the run (0–100 %), while the bench itself was idle. */
  busyBeforePct: number;
  /** CPU time per request (ms) of the server under test, of all PostgreSQL processes, and of wrk. */
  cpuMsPerRequest: { server: number; postgres: number; wrk: number };
  /** Requests/s as a fraction of the select baseline of the same scenario and connection count. */
  ofSelectBaseline?: number;
  targetMet?: boolean;
};

/** CPU time (ms, user + system) of one process, or of every PostgreSQL process, from /proc. */
function cpuMsOf(pid: number): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    return ((Number(f[11]) + Number(f[12])) * 1000) / 100; // utime, stime in clock ticks (100/s)
  } catch {
    return 0;
  }
}
function postgresCpuMs(): number {
  let total = 0;
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, "utf8").trim() === "postgres") total += cpuMsOf(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return total;
}

/** Percentage of all CPUs busy over `ms`, from /proc/stat. */
async function cpuBusy(ms = 1000): Promise<number> {
  const read = () => {
    const f = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
    const idle = f[3]! + (f[4] ?? 0);
    return { idle, total: f.reduce((a, b) => a + b, 0) };
  };
  const a = read();
  await Bun.sleep(ms);
  const b = read();
  return Math.round((1 - (b.idle - a.idle) / Math.max(1, b.total - a.total)) * 100);
}

/** The box is shared: wait (up to 30 s) until the rest of it is quiet, and say what we saw. */
async function waitQuiet(): Promise<number> {
  let busy = await cpuBusy();
  if (opts["no-wait-quiet"]) return busy;
  const deadline = Date.now() + 30_000;
  let said = false;
  while (busy >= 20 && Date.now() < deadline) {
    if (!said) log(`  (machine busy: ${busy}% of the CPUs used by other processes; waiting up to 30 s for it to go quiet)`);
    said = true;
    busy = await cpuBusy();
  }
  if (busy >= 20) log(`  (still ${busy}% busy: measuring anyway, figures will be low)`);
  return busy;
}

type StatementCount = { route: string; requests: number; perRequest: number; shapes: { sql: string; perRequest: number }[] };

/**
 * Counts the statements Warren sends for one request of a route: log_statement=all for the
 * duration of 50 sequential requests, then the cluster log lines of application "warren".
 * Background jobs share the pool, so shapes seen less than once per request are theirs.
 */
async function countStatements(admin: postgres.Sql, route: string, url: string, token: string | null): Promise<StatementCount> {
  const logPath = join(clusterDir!, "server.log");
  const requests = 50;
  await admin`alter system set log_statement = 'all'`;
  await admin`select pg_reload_conf()`;
  await Bun.sleep(300);
  const from = statSync(logPath).size;
  for (let i = 0; i < requests; i++) {
    const res = await fetch(url, { headers: token ? { authorization: `Bearer ${token}` } : {} });
    await res.arrayBuffer();
  }
  await Bun.sleep(300);
  await admin`alter system reset log_statement`;
  await admin`select pg_reload_conf()`;
  const text = readFileSync(logPath).subarray(from).toString("utf8");
  const shapes = new Map<string, number>();
  let total = 0;
  for (const m of text.matchAll(/app=warren LOG:\s+(?:statement|execute [^:]*): (.*)/g)) {
    const shape = m[1]!.replace(/\s+/g, " ").slice(0, 200);
    shapes.set(shape, (shapes.get(shape) ?? 0) + 1);
    total++;
  }
  const round = (n: number) => Math.round(n * 100) / 100;
  return {
    route,
    requests,
    perRequest: round(total / requests),
    shapes: [...shapes].map(([sql, n]) => ({ sql, perRequest: round(n / requests) })).sort((a, b) => b.perRequest - a.perRequest),
  };
}

async function measure(
  ctx: { scenario: string },
  spec: { route: string; what: string; kind: RunRecord["kind"]; url: string; paths: string[]; token: string | null; pid: number },
  connections: number,
  threads: number,
  seconds: number,
  warmup: number,
): Promise<RunRecord> {
  const busyBeforePct = await waitQuiet();
  if (warmup > 0) await wrk(spec.url, spec.paths, spec.token, warmup, connections, threads);
  const serverBefore = cpuMsOf(spec.pid);
  const pgBefore = postgresCpuMs();
  const r = await wrk(spec.url, spec.paths, spec.token, seconds, connections, threads);
  const per = (ms: number) => (r.requests ? Math.round((ms / r.requests) * 1000) / 1000 : 0);
  const cpuMsPerRequest = { server: per(cpuMsOf(spec.pid) - serverBefore), postgres: per(postgresCpuMs() - pgBefore), wrk: per(r.wrkCpuMs) };
  const ms = (us: number) => Math.round(us / 10) / 100;
  const rec: RunRecord = {
    scenario: ctx.scenario,
    route: spec.route,
    what: spec.what,
    kind: spec.kind,
    connections,
    threads,
    seconds,
    requests: r.requests,
    rps: Math.round(r.requests / (r.durationUs / 1e6)),
    latencyMs: {
      p50: ms(r.latencyUs.p50),
      p90: ms(r.latencyUs.p90),
      p99: ms(r.latencyUs.p99),
      p999: ms(r.latencyUs.p999),
      max: ms(r.latencyUs.max),
      mean: ms(r.latencyUs.mean),
    },
    errors: r.errors,
    busyBeforePct,
    cpuMsPerRequest,
  };
  const errs = r.errors.connect + r.errors.read + r.errors.write + r.errors.status + r.errors.timeout;
  if (spec.kind === "target") rec.targetMet = rec.latencyMs.p99 < TARGET_P99_MS && errs === 0;
  log(
    `  ${spec.route.padEnd(7)} c=${String(connections).padEnd(3)} ${String(rec.rps).padStart(6)} req/s  p50 ${rec.latencyMs.p50} ms  p99 ${rec.latencyMs.p99} ms` +
      (errs ? `  ERRORS ${JSON.stringify(r.errors)}` : "") +
      `  CPU ms/req: server ${cpuMsPerRequest.server}, postgres ${cpuMsPerRequest.postgres}, wrk ${cpuMsPerRequest.wrk}  (box ${busyBeforePct}% busy before)`,
  );
  return rec;
}

// ---------------------------------------------------------------------------------------------
// EXPLAIN ANALYZE of the queries the two routes send, built with Drizzle exactly as
// src/services/sandboxes (manage.ts listSandboxes, queries.ts findOwned/addonIdsOf, touchSandbox) builds them.

type PlanNode = { "Node Type": string; "Index Name"?: string; "Relation Name"?: string; Plans?: PlanNode[] };
type PlanSummary = { query: string; sql: string; plan: string; indexes: string[]; seqScans: string[]; sorts: number; executionMs: number; generic: boolean; text: string };

function walk(node: PlanNode, out: PlanNode[] = []): PlanNode[] {
  out.push(node);
  for (const child of node.Plans ?? []) walk(child, out);
  return out;
}

async function explainAll(url: string, heavyUserId: string, ids: string[]): Promise<PlanSummary[]> {
  const client = postgres(url, { max: 1, onnotice: () => {} });
  const db = drizzle({ client });
  try {
    const page = await client<{ id: string }[]>`select id from sandboxes where user_id = ${heavyUserId} order by created_at desc nulls last, id desc nulls last limit 50`;
    const now = new Date();
    const queries = {
      list: db
        .select()
        .from(sandboxes)
        .where(and(eq(sandboxes.userId, heavyUserId)))
        // The service's own order (src/lib/pagination.ts), so the plan shown is the one it gets.
        .orderBy(...newestFirst(sandboxes))
        .limit(51)
        .toSQL(),
      "list add-ons": db
        .select({ sandboxId: sandboxAddons.sandboxId, addonId: sandboxAddons.addonId })
        .from(sandboxAddons)
        .where(inArray(sandboxAddons.sandboxId, page.map((r) => r.id)))
        .toSQL(),
      get: db.select().from(sandboxes).where(and(eq(sandboxes.id, ids[0]!), eq(sandboxes.userId, heavyUserId))).toSQL(),
      "get add-ons": db
        .select({ sandboxId: sandboxAddons.sandboxId, addonId: sandboxAddons.addonId })
        .from(sandboxAddons)
        .where(inArray(sandboxAddons.sandboxId, [ids[0]!]))
        .toSQL(),
      "get touch": db
        .update(sandboxes)
        .set({ lastActivityAt: now })
        .where(
          and(
            eq(sandboxes.id, ids[0]!),
            inArray(sandboxes.status, ["running"]),
            dsql`(${sandboxes.lastActivityAt} is null or ${sandboxes.lastActivityAt} < ${new Date(now.getTime() - 30_000)})`,
          ),
        )
        .toSQL(),
    };
    const out: PlanSummary[] = [];
    for (const [name, q] of Object.entries(queries)) {
      // postgres.js prepares statements, and after five executions PostgreSQL may switch a prepared
      // statement to its generic plan: both plans are checked.
      for (const generic of [false, true]) {
        const params = q.params.map((v) => (v instanceof Date ? v.toISOString() : v)) as never[];
        let rows: { json: unknown[]; text: unknown[] } | null = null;
        // Inside a transaction that is always rolled back: EXPLAIN ANALYZE runs the touch UPDATE.
        const ROLLBACK = new Error("rollback");
        await client
          .begin(async (tx) => {
            if (generic) await tx`set local plan_cache_mode = force_generic_plan`;
            const json = await tx.unsafe(`explain (analyze, buffers, format json) ${q.sql}`, params);
            const text = await tx.unsafe(`explain (analyze, buffers) ${q.sql}`, params);
            rows = { json, text };
            throw ROLLBACK;
          })
          .catch((err: unknown) => {
            if (err !== ROLLBACK) throw err;
          });
        if (!rows) throw new Error(`EXPLAIN of ${name} returned nothing`);
        const plan = ((rows as { json: unknown[] }).json[0] as { "QUERY PLAN": [{ Plan: PlanNode; "Execution Time": number }] })["QUERY PLAN"][0];
        const nodes = walk(plan.Plan);
        out.push({
          query: name,
          sql: q.sql,
          generic,
          plan: nodes.map((n) => n["Node Type"] + (n["Index Name"] ? ` using ${n["Index Name"]}` : n["Relation Name"] ? ` on ${n["Relation Name"]}` : "")).join(" → "),
          indexes: [...new Set(nodes.flatMap((n) => (n["Index Name"] ? [n["Index Name"]] : [])))],
          seqScans: nodes.filter((n) => n["Node Type"] === "Seq Scan").map((n) => n["Relation Name"] ?? "?"),
          sorts: nodes.filter((n) => n["Node Type"] === "Sort" || n["Node Type"] === "Incremental Sort").length,
          executionMs: Math.round(plan["Execution Time"] * 1000) / 1000,
          text: ((rows as { text: unknown[] }).text as unknown as { "QUERY PLAN": string }[]).map((r) => r["QUERY PLAN"]).join("\n"),
        });
      }
    }
    return out;
  } finally {
    await client.end({ timeout: 2 });
  }
}

// ---------------------------------------------------------------------------------------------

async function signIn(url: string, email: string, password: string): Promise<string> {
  const res = await fetch(`${url}/api/auth/sign-in/email`, {
    method: "POST",
    headers: { "content-type": "application/json", origin: url },
    body: JSON.stringify({ email, password }),
  });
  const token = res.headers.get("set-auth-token");
  if (res.status !== 200 || !token) throw new Error(`sign-in failed: ${res.status} ${await res.text()}`);
  return token;
}

async function expectOk(url: string, token: string | null, check?: (body: unknown) => string | null) {
  const res = await fetch(url, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  const body = (await res.json().catch(() => null)) as unknown;
  if (res.status !== 200) throw new Error(`GET ${url}: ${res.status} ${JSON.stringify(body)}`);
  const problem = check?.(body);
  if (problem) throw new Error(`GET ${url}: ${problem}`);
}

async function main() {
  const startedAt = new Date();
  const stamp = startedAt.toISOString().replace(/[:.]/g, "-");
  const gitCommit = (await run(["git", "rev-parse", "HEAD"]).catch(() => "")).trim();
  const gitDirty = (await run(["git", "status", "--porcelain", "--", "src", "db"]).catch(() => "")).trim().length > 0;
  const wrkVersion = (Bun.spawnSync(["wrk", "-v"]).stdout.toString() + Bun.spawnSync(["wrk", "-v"]).stderr.toString()).split("\n")[0]!.trim();

  log(`starting a throwaway PostgreSQL cluster (scripts/pg-cluster.sh) …`);
  const exports = await run(["bash", join(ROOT, "scripts/pg-cluster.sh"), "start"]);
  clusterDir = /PG_CLUSTER_DIR=(\S+)/.exec(exports)?.[1] ?? null;
  const clusterUrl = /TEST_DATABASE_URL=(\S+)/.exec(exports)?.[1];
  if (!clusterDir || !clusterUrl) throw new Error(`unexpected pg-cluster.sh output:\n${exports}`);
  const admin = postgres(clusterUrl, { max: 1, onnotice: () => {} });
  const [{ version: pgVersion } = { version: "" }] = await admin<{ version: string }[]>`select version()`;
  // The application name in every log line, so that Warren's statements can be counted apart.
  await admin`alter system set log_line_prefix = '%m [%p] app=%a '`;
  await admin`select pg_reload_conf()`;
  const dbUrl = (name: string) => clusterUrl.replace(/\/[^/]*$/, `/${name}`);

  const records: RunRecord[] = [];
  const scenarios: unknown[] = [];
  const encryptionKeys = `k1:${Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64")}`;
  const authSecret = Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("hex");

  try {
    for (const key of chosen) {
      const spec = SCENARIOS[key]!;
      const dbName = `bench_${key}`;
      const url = dbUrl(dbName);
      log(`\n=== scenario ${spec.key}: heavy user with ${spec.heavy.toLocaleString("en")} sandboxes among ${spec.sandboxes.toLocaleString("en")} (${spec.users.toLocaleString("en")} users)`);
      await admin.unsafe(`create database ${dbName}`);
      log(`migrating (bun run db:migrate) …`);
      await run([process.execPath, "run", "db:migrate"], { DATABASE_URL: url });
      const seed: SeedResult = await seedSandboxes({
        databaseUrl: url,
        users: spec.users,
        sandboxes: spec.sandboxes,
        heavy: spec.heavy,
        heavyEmail: "heavy@bench.warren.test",
        password: "bench password 1234",
        replace: false,
        quiet: false,
      });

      const seeded = postgres(url, { max: 1, onnotice: () => {} });
      const ids = (await seeded<{ id: string }[]>`select id from sandboxes where user_id = ${seed.heavyUserId} order by md5(id) limit 20`).map((r) => r.id);
      await seeded.end();

      log(`EXPLAIN ANALYZE of the routes' queries …`);
      const plans = await explainAll(url, seed.heavyUserId, ids);
      for (const p of plans) {
        log(`  ${(p.query + (p.generic ? " (generic)" : "")).padEnd(24)} ${p.executionMs.toFixed(3).padStart(7)} ms  ${p.plan}${p.seqScans.length ? "  SEQ SCAN" : ""}`);
      }

      log(`starting Warren (bun src/index.ts, NODE_ENV=production) and the baseline server …`);
      const port = freePort();
      const warrenUrl = `http://127.0.0.1:${port}`;
      const warrenEnv: Record<string, string> = {
        PATH: process.env.PATH ?? "",
        HOME: process.env.HOME ?? "/tmp",
        NODE_ENV: "production",
        HOST: "127.0.0.1",
        PORT: String(port),
        PUBLIC_URL: warrenUrl,
        AUTH_SECRET: authSecret,
        ENCRYPTION_KEYS: encryptionKeys,
        ENCRYPTION_ACTIVE_KEY: "k1",
        AUTH_RATE_LIMIT_MAX: "1000000",
        AUTH_SIGN_IN_RATE_LIMIT_MAX: "1000000",
        LOG_LEVEL: "warn",
        DATABASE_URL: url,
        // No network fetch of the model catalog in the middle of a measurement.
        PROVIDER_CATALOG_REFRESH_MINUTES: "0",
      };
      const warren = await startProcess(
        `warren-${key}`,
        [process.execPath, "src/index.ts"],
        warrenEnv,
        async () => (await fetch(`${warrenUrl}/ready`)).status === 200,
      );
      const basePort = freePort();
      const baseUrl = `http://127.0.0.1:${basePort}`;
      const baseline = await startProcess(
        `baseline-${key}`,
        [process.execPath, "bench/baseline-server.ts"],
        { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", DATABASE_URL: url, PORT: String(basePort) },
        async () => (await fetch(`${baseUrl}/hello`)).status === 200,
      );

      const token = await signIn(warrenUrl, seed.heavyEmail, seed.password);
      await expectOk(`${warrenUrl}/api/v1/sandboxes?limit=50`, token, (b) => {
        const page = b as { data: unknown[]; nextCursor: string | null };
        return page.data.length === 50 && page.nextCursor ? null : `expected 50 rows and a next cursor, got ${page.data.length}`;
      });
      for (const id of ids) await expectOk(`${warrenUrl}/api/v1/sandboxes/${id}`, token);
      await expectOk(`${baseUrl}/select?id=${ids[0]}`, null);

      const routes = [
        { route: "list", what: "GET /api/v1/sandboxes?limit=50", kind: "target" as const, url: warrenUrl, paths: ["/api/v1/sandboxes?limit=50"], token, pid: warren.proc.pid },
        { route: "get", what: `GET /api/v1/sandboxes/:id (${ids.length} ids)`, kind: "target" as const, url: warrenUrl, paths: ids.map((id) => `/api/v1/sandboxes/${id}`), token, pid: warren.proc.pid },
        ...(opts["targets-only"]
          ? []
          : [
              { route: "me", what: "GET /api/v1/me", kind: "diagnostic" as const, url: warrenUrl, paths: ["/api/v1/me"], token, pid: warren.proc.pid },
              { route: "health", what: "GET /health", kind: "diagnostic" as const, url: warrenUrl, paths: ["/health"], token: null, pid: warren.proc.pid },
            ]),
        { route: "select", what: "Bun.serve + postgres.js select by id", kind: "baseline" as const, url: baseUrl, paths: ids.map((id) => `/select?id=${id}`), token: null, pid: baseline.proc.pid },
        ...(!opts["targets-only"] && spec.key === "A"
          ? [{ route: "hello", what: "Bun.serve constant", kind: "baseline" as const, url: baseUrl, paths: ["/hello"], token: null, pid: baseline.proc.pid }]
          : []),
      ];
      log(`counting SQL statements per request (log_statement=all, 50 requests per route) …`);
      const statements: StatementCount[] = [];
      for (const r of routes.filter((r) => r.url === warrenUrl)) {
        const c = await countStatements(admin, r.route, `${r.url}${r.paths[0]}`, r.token);
        statements.push(c);
        log(`  ${r.route.padEnd(7)} ${c.perRequest} statements/request: ${c.shapes.filter((x) => x.perRequest >= 0.5).map((x) => `${x.perRequest}× ${x.sql.slice(0, 70)}`).join(" | ")}`);
      }
      const ctx = { scenario: spec.key };
      const scenarioRecords: RunRecord[] = [];
      log(`wrk: ${THREADS} threads, ${CONNECTIONS} connections, ${WARMUP} s warm-up + ${DURATION} s per route`);
      for (const r of routes) scenarioRecords.push(await measure(ctx, r, CONNECTIONS, THREADS, DURATION, WARMUP));
      if (UNLOADED > 0) {
        log(`wrk: 1 connection (unloaded latency), ${UNLOADED} s per route`);
        for (const r of routes) scenarioRecords.push(await measure(ctx, r, 1, 1, UNLOADED, 1));
      }
      for (const rec of scenarioRecords) {
        const base = scenarioRecords.find((b) => b.route === "select" && b.connections === rec.connections);
        if (base && base.rps > 0) rec.ofSelectBaseline = Math.round((rec.rps / base.rps) * 1000) / 1000;
      }
      records.push(...scenarioRecords);
      await stopProcess(warren.proc);
      await stopProcess(baseline.proc);
      const profiles: Record<string, string> = {};
      if (opts.profile) {
        for (const r of routes.filter((r) => r.kind === "target")) {
          const dir = join(ROOT, "bench/results", `profile-${stamp}`, `${spec.key}-${r.route}`);
          mkdirSync(dir, { recursive: true });
          log(`profiling ${r.route} (bun --cpu-prof, 10 s at ${CONNECTIONS} connections) → ${dir}`);
          const p = await startProcess(
            `warren-${key}-profile-${r.route}`,
            [process.execPath, "--cpu-prof", "--cpu-prof-md", `--cpu-prof-dir=${dir}`, "src/index.ts"],
            warrenEnv,
            async () => (await fetch(`${warrenUrl}/ready`)).status === 200,
          );
          const t = await signIn(warrenUrl, seed.heavyEmail, seed.password);
          await wrk(warrenUrl, r.paths, t, 2, CONNECTIONS, THREADS);
          await wrk(warrenUrl, r.paths, t, 10, CONNECTIONS, THREADS);
          await stopProcess(p.proc);
          profiles[r.route] = dir;
        }
      }
      const warnings = readFileSync(warren.logFile, "utf8").split("\n").filter(Boolean);
      scenarios.push({
        ...spec,
        database: dbName,
        seed,
        heavyIds: ids,
        plans,
        statements,
        profiles,
        serverLogLines: warnings.slice(-50),
      });
    }
  } finally {
    await admin.end({ timeout: 2 }).catch(() => {});
    if (opts["keep-cluster"] && clusterDir) log(`cluster kept: ${clusterUrl} (stop it with: bash scripts/pg-cluster.sh stop ${clusterDir})`);
    await cleanup();
  }

  // ---- report
  const fmt = (n: number) => n.toLocaleString("en");
  const statementsPerRoute = new Map<string, number>();
  for (const sc of scenarios as { key: string; statements: StatementCount[] }[]) {
    for (const c of sc.statements) statementsPerRoute.set(`${sc.key}/${c.route}`, c.perRequest);
  }
  const header = ["scenario", "route", "conns", "req/s", "p50 ms", "p99 ms", "× select", "SQL/req", "CPU ms/req srv+pg", "busy before", "p99 < 10 ms"];
  const rows = records.map((r) => [
    r.scenario,
    r.route,
    String(r.connections),
    fmt(r.rps),
    r.latencyMs.p50.toFixed(2),
    r.latencyMs.p99.toFixed(2),
    r.ofSelectBaseline !== undefined ? r.ofSelectBaseline.toFixed(2) : "",
    statementsPerRoute.get(`${r.scenario}/${r.route}`)?.toFixed(2) ?? "",
    `${r.cpuMsPerRequest.server.toFixed(2)}+${r.cpuMsPerRequest.postgres.toFixed(2)}`,
    `${r.busyBeforePct}%`,
    r.targetMet === undefined ? (r.kind === "baseline" ? "(baseline)" : "(diagnostic)") : r.connections === CONNECTIONS ? (r.targetMet ? "yes" : "NO") : "",
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
  console.log(`\n${line(header)}\n${widths.map((w) => "-".repeat(w)).join("  ")}`);
  for (const r of rows) console.log(line(r));
  const targets = records.filter((r) => r.kind === "target" && r.connections === CONNECTIONS);
  const met = targets.every((r) => r.targetMet);
  console.log(`\nissue 4 target (p99 < ${TARGET_P99_MS} ms at ${CONNECTIONS} connections, no errors): ${met ? "MET" : "NOT MET"} (${targets.filter((r) => r.targetMet).length}/${targets.length} runs)`);

  const resultsDir = join(ROOT, "bench/results");
  mkdirSync(resultsDir, { recursive: true });
  const file = join(resultsDir, `sandboxes-${stamp}.json`);
  writeFileSync(
    file,
    JSON.stringify(
      {
        benchmark: "sandboxes (issue 4)",
        startedAt: startedAt.toISOString(),
        finishedAt: new Date().toISOString(),
        command: `bun run bench:sandboxes ${process.argv.slice(2).join(" ")}`.trim(),
        options: { duration: DURATION, warmup: WARMUP, connections: CONNECTIONS, threads: THREADS, unloaded: UNLOADED, scenarios: chosen },
        target: { p99Ms: TARGET_P99_MS, connections: CONNECTIONS, met },
        machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model, memoryGb: Math.round(totalmem() / 2 ** 30), bun: Bun.version, postgres: pgVersion, wrk: wrkVersion },
        git: { commit: gitCommit, srcOrDbDirty: gitDirty },
        warren: { poolSize: 10, logLevel: "warn", nodeEnv: "production" },
        runs: records,
        scenarios,
      },
      null,
      2,
    ),
  );
  console.log(`results: ${file}`);
  rmSync(workDir, { recursive: true, force: true });
}

try {
  await main();
} catch (err) {
  log(`bench:sandboxes: ${(err as Error).stack ?? err}`);
  log(`server and baseline logs kept in ${workDir}`);
  await cleanup();
  process.exit(1);
}
