/**
 * Issue 7's performance requirement, measured: for a user with 1,000,000 messages across 1,000
 * sessions, a page of sessions, message pages at any depth and a search each under 20 ms p99 at
 * 20 connections, against the real server process, with the baselines measured in the same run;
 * and the sync ingest rate (≥ 5,000 events/s, bench/chat-ingest.ts). See bench/README.md.
 *
 *   bun run bench:chat [--help]
 */
import { readFileSync, rmSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { drizzle } from "drizzle-orm/postgres-js";
import postgres from "postgres";
import * as schema from "../db/schema";
import type { ServiceContext } from "../src/context";
import type { Db } from "../src/database/client";
import { listMessages, listSessions, searchMessages } from "../src/services/chat/queries";
import { benchIngest, type IngestReport } from "./chat-ingest";
import { seedChat, type ChatSeedResult } from "./seed-chat";
import { cpuMsOf, postgresCpuMs, waitQuiet as waitQuietFor } from "./lib/machine";
import { startCluster } from "./lib/cluster";
import { cleanup, freePort, log, provenance, run, startProcess, stopProcess, workDir, writeResults } from "./lib/processes";
import { errorCount, wrk, type WrkResult } from "./lib/wrk";

const HELP = `Usage: bun run bench:chat [options]

Starts a throwaway PostgreSQL 15 cluster (scripts/pg-cluster.sh), applies Warren's migrations,
seeds it (bench/seed-chat.ts: 10,000 users, 100,000 sandboxes, a heavy user with 1,000 sandboxes
and 1,000,000 messages across 1,000 sessions, 200,000 messages of other users), EXPLAINs the
queries the chat routes send (captured from the real service functions), starts the real server
(bun src/index.ts, NODE_ENV=production) and the baseline server (bench/baseline-server.ts), signs
the heavy user in (bearer token), collects message cursors through the API itself, and runs wrk
against:

  sessions         GET /api/v1/chat/sessions?limit=50                       target: p99 < 20 ms
  sandbox-sessions GET /api/v1/sandboxes/<id>/chat/sessions?limit=50        target
  msgs-first       GET …/chat/sessions/<id>/messages, first page, 20 sessions target
  msgs-deep        the same with a cursor 900 messages deep (from the API)   target
  msgs-deep-desc   ?order=desc with a cursor 900 messages deep               target
  search-rare      GET /api/v1/chat/search?q=<identifier> (a few dozen hits) target
  search-word      ?q=webhook (~1% of messages)                              target
  search-phrase    ?q="stripe webhook" (phrase)                              target
  search-common    ?q=error (~12% of messages)                               target
  me               GET /api/v1/me (diagnostic: session resolution + a select)
  select           baseline: Bun.serve + one primary-key select with postgres.js
  hello            baseline: Bun.serve answering a constant

each for --duration seconds at --connections after --warmup seconds; then the sync ingest
(bench/chat-ingest.ts) into the same database. Prints a table, writes
bench/results/chat-<time>.json, and stops everything it started.

Options:
  --duration S        seconds measured per route (default 15)
  --warmup S          seconds of warm-up per route (default 3)
  --connections N     wrk connections (default 20)
  --threads N         wrk threads (default 2)
  --routes LIST       only these routes (comma-separated names from the list above)
  --heavy-messages N  the heavy user's messages (default 1000000; smaller for a quick run)
  --database-url URL  use this already seeded database (by an earlier --keep-cluster run or
                      bench/seed-chat.ts) instead of a new cluster: no migration, no seeding
  --no-ingest         skip the ingest measurement
  --keep-cluster      leave the cluster running at the end and print its URL
  --no-wait-quiet     do not wait for the box to go quiet before each run (by default each run
                      waits up to 30 s until the CPUs are under 20% busy, and records what it saw)
  -h, --help          this help

Needs wrk (apt-get install -y wrk) and the PostgreSQL server binaries (initdb, pg_ctl).
`;

const TARGET_P99_MS = 20;
const HEAVY_EMAIL = "heavy@bench.warren.test";
const PASSWORD = "bench password 1234";

const { values: opts } = parseArgs({
  options: {
    duration: { type: "string", default: "15" },
    warmup: { type: "string", default: "3" },
    connections: { type: "string", default: "20" },
    threads: { type: "string", default: "2" },
    routes: { type: "string" },
    "heavy-messages": { type: "string", default: "1000000" },
    "database-url": { type: "string" },
    "no-ingest": { type: "boolean", default: false },
    "keep-cluster": { type: "boolean", default: false },
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
    console.error(`bench:chat: --${name} must be a whole number ≥ ${min}, got ${JSON.stringify(v)}`);
    process.exit(2);
  }
  return n;
};
const DURATION = num("duration", opts.duration, 1);
const WARMUP = num("warmup", opts.warmup, 0);
const CONNECTIONS = num("connections", opts.connections, 1);
const THREADS = Math.min(num("threads", opts.threads, 1), CONNECTIONS);
const HEAVY_MESSAGES = num("heavy-messages", opts["heavy-messages"], 1000);
const ONLY = opts.routes ? new Set(opts.routes.split(",").map((s) => s.trim())) : null;

if (!Bun.which("wrk")) {
  console.error("bench:chat: wrk is not installed. Install it with: apt-get install -y wrk");
  process.exit(1);
}

/** The benchmark cluster's postmaster (set in main): other PostgreSQL servers on the box are not ours. */
let postmasterPid = 0;
/** The box is shared: wait (up to 30 s) until the rest of it is quiet, unless told not to. */
const waitQuiet = () => waitQuietFor(!opts["no-wait-quiet"]);

type Route = { route: string; what: string; kind: "target" | "diagnostic" | "baseline"; url: string; paths: string[]; token: string | null; pid: number };
type RunRecord = {
  route: string;
  what: string;
  kind: Route["kind"];
  connections: number;
  seconds: number;
  requests: number;
  rps: number;
  latencyMs: { p50: number; p90: number; p99: number; p999: number; max: number; mean: number };
  errors: WrkResult["errors"];
  busyBeforePct: number;
  /** Load average (1 min) when the run ended: other work on the box during the run. */
  loadAfter: number;
  cpuMsPerRequest: { server: number; postgres: number };
  ofSelectBaseline?: number;
  targetMet?: boolean;
};

async function measure(r: Route): Promise<RunRecord> {
  const busyBeforePct = await waitQuiet();
  const load = { url: r.url, paths: r.paths, auth: { token: r.token }, connections: CONNECTIONS, threads: THREADS };
  if (WARMUP > 0) await wrk({ ...load, seconds: WARMUP });
  const serverBefore = cpuMsOf(r.pid);
  const pgBefore = postgresCpuMs(postmasterPid);
  const w = await wrk({ ...load, seconds: DURATION });
  const per = (ms: number) => (w.requests ? Math.round((ms / w.requests) * 1000) / 1000 : 0);
  const ms = (us: number) => Math.round(us / 10) / 100;
  const rec: RunRecord = {
    route: r.route,
    what: r.what,
    kind: r.kind,
    connections: CONNECTIONS,
    seconds: DURATION,
    requests: w.requests,
    rps: Math.round(w.requests / (w.durationUs / 1e6)),
    latencyMs: { p50: ms(w.latencyUs.p50), p90: ms(w.latencyUs.p90), p99: ms(w.latencyUs.p99), p999: ms(w.latencyUs.p999), max: ms(w.latencyUs.max), mean: ms(w.latencyUs.mean) },
    errors: w.errors,
    busyBeforePct,
    loadAfter: Number(readFileSync("/proc/loadavg", "utf8").split(" ")[0]),
    cpuMsPerRequest: { server: per(cpuMsOf(r.pid) - serverBefore), postgres: per(postgresCpuMs(postmasterPid) - pgBefore) },
  };
  const errs = errorCount(w.errors);
  if (r.kind === "target") rec.targetMet = w.requests > 0 && rec.latencyMs.p99 < TARGET_P99_MS && errs === 0;
  log(
    `  ${r.route.padEnd(16)} ${String(rec.rps).padStart(6)} req/s  p50 ${rec.latencyMs.p50} ms  p99 ${rec.latencyMs.p99} ms` +
      (errs ? `  ERRORS ${JSON.stringify(w.errors)}` : "") +
      `  CPU ms/req: server ${rec.cpuMsPerRequest.server}, postgres ${rec.cpuMsPerRequest.postgres}  (box ${busyBeforePct}% busy before, load ${rec.loadAfter} after)`,
  );
  return rec;
}

// ---- EXPLAIN of the statements the real service functions send

type Captured = { query: string; params: unknown[] };
type PlanNode = { "Node Type": string; "Index Name"?: string; "Relation Name"?: string; Plans?: PlanNode[] };
type PlanSummary = { name: string; statement: number; sql: string; plan: string; executionMs: number; sharedHit: number; sharedRead: number; text: string };

function walk(node: PlanNode, out: PlanNode[] = []): PlanNode[] {
  out.push(node);
  for (const child of node.Plans ?? []) walk(child, out);
  return out;
}

async function explainServices(url: string, userId: string, calls: Record<string, (ctx: ServiceContext) => Promise<unknown>>): Promise<PlanSummary[]> {
  const client = postgres(url, { max: 1, onnotice: () => {} });
  let captured: Captured[] = [];
  const db = drizzle({ client, schema, logger: { logQuery: (query, params) => captured.push({ query, params }) } }) as unknown as Db;
  const ctx: ServiceContext = {
    db,
    actor: "user",
    userId,
    requestId: null,
    ipAddress: null,
    userAgent: null,
    logger: { info() {}, warn() {}, error() {}, debug() {}, child() { return this; } } as unknown as ServiceContext["logger"],
    now: () => new Date(),
  };
  const out: PlanSummary[] = [];
  try {
    for (const [name, call] of Object.entries(calls)) {
      captured = [];
      await call(ctx);
      // Only what EXPLAIN takes (statements, not settings such as SET or BEGIN).
      const statements = captured.filter((s) => /^\s*(with|select|insert|update|delete)\b/i.test(s.query));
      for (const [i, s] of statements.entries()) {
        const params = s.params.map((v) => (v instanceof Date ? v.toISOString() : v)) as never[];
        const json = await client.unsafe(`explain (analyze, buffers, format json) ${s.query}`, params);
        const text = await client.unsafe(`explain (analyze, buffers) ${s.query}`, params);
        const plan = (json[0] as unknown as { "QUERY PLAN": [{ Plan: PlanNode & { "Shared Hit Blocks"?: number; "Shared Read Blocks"?: number }; "Execution Time": number }] })["QUERY PLAN"][0];
        const nodes = walk(plan.Plan);
        out.push({
          name,
          statement: i + 1,
          sql: s.query.replace(/\s+/g, " "),
          plan: nodes.map((n) => n["Node Type"] + (n["Index Name"] ? ` using ${n["Index Name"]}` : n["Relation Name"] ? ` on ${n["Relation Name"]}` : "")).join(" → "),
          executionMs: Math.round(plan["Execution Time"] * 1000) / 1000,
          sharedHit: plan.Plan["Shared Hit Blocks"] ?? 0,
          sharedRead: plan.Plan["Shared Read Blocks"] ?? 0,
          text: (text as unknown as { "QUERY PLAN": string }[]).map((r) => r["QUERY PLAN"]).join("\n"),
        });
      }
    }
    return out;
  } finally {
    await client.end({ timeout: 2 });
  }
}

// ---- the API, as a client uses it

async function signIn(url: string): Promise<string> {
  const res = await fetch(`${url}/api/auth/sign-in/email`, {
    method: "POST",
    headers: { "content-type": "application/json", origin: url },
    body: JSON.stringify({ email: HEAVY_EMAIL, password: PASSWORD }),
  });
  const token = res.headers.get("set-auth-token");
  if (res.status !== 200 || !token) throw new Error(`sign-in failed: ${res.status} ${await res.text()}`);
  return token;
}

async function getJson<T>(url: string, token: string): Promise<T> {
  const res = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
  const body = (await res.json().catch(() => null)) as T;
  if (res.status !== 200) throw new Error(`GET ${url}: ${res.status} ${JSON.stringify(body)}`);
  return body;
}

type Page = { data: { id: string }[]; nextCursor: string | null };

/** The cursor the API itself hands out after `depth` messages of a session, walking pages of 100. */
async function cursorAt(base: string, token: string, sandboxId: string, sessionId: string, depth: number, order: "asc" | "desc") {
  let cursor: string | null = null;
  for (let seen = 0; seen < depth; seen += 100) {
    const page: Page = await getJson<Page>(
      `${base}/api/v1/sandboxes/${sandboxId}/chat/sessions/${sessionId}/messages?limit=100&order=${order}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`,
      token,
    );
    if (!page.nextCursor) throw new Error(`session ${sessionId} has fewer than ${depth} messages`);
    cursor = page.nextCursor;
  }
  return cursor!;
}

async function main() {
  const startedAt = new Date();
  const stamp = startedAt.toISOString().replace(/[:.]/g, "-");
  const { git, wrk: wrkVersion } = await provenance();

  let url = opts["database-url"];
  let seed: ChatSeedResult | null = null;
  if (!url) {
    const cluster = await startCluster({ keep: Boolean(opts["keep-cluster"]) });
    await cluster.admin`create database bench_chat`;
    url = cluster.dbUrl("bench_chat");
    log(`migrating (bun run db:migrate) …`);
    await run([process.execPath, "run", "db:migrate"], { DATABASE_URL: url });
    seed = await seedChat({
      databaseUrl: url,
      users: 10_000,
      sandboxes: 100_000,
      heavy: 1_000,
      heavySessions: 1_000,
      heavyMessages: HEAVY_MESSAGES,
      otherSessions: 4_000,
      otherMessages: 200_000,
      heavyEmail: HEAVY_EMAIL,
      password: PASSWORD,
      quiet: false,
    });
  }

  const sql = postgres(url, { max: 1, onnotice: () => {} });
  const [{ version: pgVersion } = { version: "" }] = await sql<{ version: string }[]>`select version()`;
  const [{ pid } = { pid: 0 }] = await sql<{ pid: number }[]>`select pg_backend_pid() as pid`;
  postmasterPid = Number(readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")[1]);
  const [heavy] = await sql<{ id: string }[]>`select id from users where email = ${HEAVY_EMAIL}`;
  if (!heavy) throw new Error(`no user ${HEAVY_EMAIL} in the database: seed it first (bench/seed-chat.ts)`);
  const [counts] = await sql<{ messages: number; sessions: number; all: number }[]>`
    select (select count(*)::int from chat_messages where user_id = ${heavy.id}) as messages,
           (select count(*)::int from chat_sessions where user_id = ${heavy.id}) as sessions,
           (select count(*)::int from chat_messages) as all`;
  // The main sandbox (most sessions) and 20 of the heavy user's longest sessions, spread at random.
  const [main] = await sql<{ sandbox_id: string; n: number }[]>`
    select sandbox_id, count(*)::int as n from chat_sessions where user_id = ${heavy.id} group by 1 order by 2 desc limit 1`;
  const sessions = await sql<{ id: string; sandbox_id: string; message_count: number }[]>`
    select id, sandbox_id, message_count from chat_sessions where user_id = ${heavy.id} and message_count >= 1000 order by md5(id) limit 20`;
  if (sessions.length === 0) throw new Error("the heavy user has no session with 1,000 messages");
  const rare = seed?.rareIdentifier ?? (await sql<{ w: string }[]>`
      select w from (select unnest(regexp_matches(text, '[a-z]+[A-Z][a-z]+V[0-9]+')) as w from chat_messages where user_id = ${heavy.id} limit 1) x`)[0]?.w ?? "invoiceHandlerV1";
  const terms = [
    { route: "search-rare", q: rare },
    { route: "search-word", q: "webhook" },
    { route: "search-phrase", q: '"stripe webhook"' },
    { route: "search-common", q: "error" },
  ];
  const hits: Record<string, number> = {};
  for (const t of terms) {
    const [r] = await sql<{ n: number }[]>`
      select count(*)::int as n from chat_messages where user_id = ${heavy.id} and search_vector @@ websearch_to_tsquery('simple', ${t.q})`;
    hits[t.route] = r!.n;
  }
  log(`heavy user: ${counts!.sessions.toLocaleString("en")} sessions, ${counts!.messages.toLocaleString("en")} messages (${counts!.all.toLocaleString("en")} in the table); search hits: ${terms.map((t) => `${t.q} ${hits[t.route]!.toLocaleString("en")}`).join(", ")}`);
  await sql.end();

  log(`EXPLAIN ANALYZE of the statements the service functions send …`);
  const s0 = sessions[0]!;
  const plans = await explainServices(url, heavy.id, {
    sessions: (ctx) => listSessions(ctx, { limit: 50 }),
    "sandbox-sessions": (ctx) => listSessions(ctx, { sandboxId: main!.sandbox_id, limit: 50 }),
    "msgs-first": (ctx) => listMessages(ctx, s0.id, { sandboxId: s0.sandbox_id, limit: 50, order: "asc" }),
    ...Object.fromEntries(terms.map((t) => [t.route, (ctx: ServiceContext) => searchMessages(ctx, { q: t.q, limit: 50 })])),
  });
  for (const p of plans) log(`  ${`${p.name} #${p.statement}`.padEnd(22)} ${p.executionMs.toFixed(3).padStart(8)} ms  ${String(p.sharedHit + p.sharedRead).padStart(6)} buffers  ${p.plan}`);

  log(`starting Warren (bun src/index.ts, NODE_ENV=production) and the baseline server …`);
  const port = freePort();
  const warrenUrl = `http://127.0.0.1:${port}`;
  const warren = await startProcess(
    "warren",
    [process.execPath, "src/index.ts"],
    {
      PATH: process.env.PATH ?? "",
      HOME: process.env.HOME ?? "/tmp",
      NODE_ENV: "production",
      HOST: "127.0.0.1",
      PORT: String(port),
      PUBLIC_URL: warrenUrl,
      AUTH_SECRET: Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("hex"),
      ENCRYPTION_KEYS: `k1:${Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64")}`,
      ENCRYPTION_ACTIVE_KEY: "k1",
      AUTH_RATE_LIMIT_MAX: "1000000",
      AUTH_SIGN_IN_RATE_LIMIT_MAX: "1000000",
      API_RATE_LIMIT_MAX: "1000000",
      LOG_LEVEL: "warn",
      DATABASE_URL: url,
      DATA_DIR: join(workDir(), "data"),
      PROVIDER_CATALOG_REFRESH_MINUTES: "0",
    },
    async () => (await fetch(`${warrenUrl}/ready`)).status === 200,
  );
  const basePort = freePort();
  const baseUrl = `http://127.0.0.1:${basePort}`;
  const baseline = await startProcess(
    "baseline",
    [process.execPath, "bench/baseline-server.ts"],
    { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", DATABASE_URL: url, PORT: String(basePort) },
    async () => (await fetch(`${baseUrl}/hello`)).status === 200,
  );

  const token = await signIn(warrenUrl);
  log(`collecting cursors through the API (pages of 100, 900 messages deep, 20 sessions, both orders) …`);
  const msgPath = (s: { id: string; sandbox_id: string }) => `/api/v1/sandboxes/${s.sandbox_id}/chat/sessions/${s.id}/messages`;
  const first = sessions.map((s) => msgPath(s));
  const deep: string[] = [];
  const deepDesc: string[] = [];
  for (const s of sessions) {
    deep.push(`${msgPath(s)}?cursor=${encodeURIComponent(await cursorAt(warrenUrl, token, s.sandbox_id, s.id, 900, "asc"))}`);
    deepDesc.push(`${msgPath(s)}?order=desc&cursor=${encodeURIComponent(await cursorAt(warrenUrl, token, s.sandbox_id, s.id, 900, "desc"))}`);
  }
  // Every path answers 200 with a full page before anything is measured.
  const checks: [string, (b: any) => boolean][] = [
    ["/api/v1/chat/sessions?limit=50", (b) => b.data.length === 50 && Boolean(b.nextCursor)],
    [`/api/v1/sandboxes/${main!.sandbox_id}/chat/sessions?limit=50`, (b) => b.data.length === 50 && Boolean(b.nextCursor)],
    [first[0]!, (b) => b.data.length === 50 && Boolean(b.nextCursor)],
    [deep[0]!, (b) => b.data.length === 50 && Boolean(b.nextCursor) && Boolean(b.prevCursor)],
    [deepDesc[0]!, (b) => b.data.length === 50 && Boolean(b.nextCursor)],
    ...terms.map((t) => [`/api/v1/chat/search?q=${encodeURIComponent(t.q)}`, (b: any) => b.data.length === Math.min(50, hits[t.route]!)] as [string, (b: any) => boolean]),
  ];
  for (const [path, ok] of checks) {
    const body = await getJson<any>(`${warrenUrl}${path}`, token);
    if (!ok(body)) throw new Error(`GET ${path}: unexpected page (${body.data?.length} rows)`);
  }

  const routes: Route[] = [
    { route: "sessions", what: "GET /api/v1/chat/sessions?limit=50", kind: "target", url: warrenUrl, paths: ["/api/v1/chat/sessions?limit=50"], token, pid: warren.proc.pid },
    { route: "sandbox-sessions", what: `GET /api/v1/sandboxes/:id/chat/sessions?limit=50 (${main!.n} sessions)`, kind: "target", url: warrenUrl, paths: [`/api/v1/sandboxes/${main!.sandbox_id}/chat/sessions?limit=50`], token, pid: warren.proc.pid },
    { route: "msgs-first", what: "GET …/messages, first page of 50, 20 sessions", kind: "target", url: warrenUrl, paths: first, token, pid: warren.proc.pid },
    { route: "msgs-deep", what: "GET …/messages?cursor= 900 deep, 20 sessions", kind: "target", url: warrenUrl, paths: deep, token, pid: warren.proc.pid },
    { route: "msgs-deep-desc", what: "GET …/messages?order=desc&cursor= 900 deep", kind: "target", url: warrenUrl, paths: deepDesc, token, pid: warren.proc.pid },
    ...terms.map((t) => ({
      route: t.route,
      what: `GET /api/v1/chat/search?q=${t.q} (${hits[t.route]!.toLocaleString("en")} hits)`,
      kind: "target" as const,
      url: warrenUrl,
      paths: [`/api/v1/chat/search?q=${encodeURIComponent(t.q)}`],
      token,
      pid: warren.proc.pid,
    })),
    { route: "me", what: "GET /api/v1/me", kind: "diagnostic", url: warrenUrl, paths: ["/api/v1/me"], token, pid: warren.proc.pid },
    { route: "select", what: "Bun.serve + postgres.js select by id", kind: "baseline", url: baseUrl, paths: sessions.map((s) => `/select?id=${s.sandbox_id}`), token: null, pid: baseline.proc.pid },
    { route: "hello", what: "Bun.serve constant", kind: "baseline", url: baseUrl, paths: ["/hello"], token: null, pid: baseline.proc.pid },
  ].filter((r) => !ONLY || ONLY.has(r.route) || r.kind === "baseline") as Route[];

  log(`wrk: ${THREADS} threads, ${CONNECTIONS} connections, ${WARMUP} s warm-up + ${DURATION} s per route`);
  const records: RunRecord[] = [];
  for (const r of routes) records.push(await measure(r));
  const base = records.find((r) => r.route === "select");
  for (const rec of records) if (base && base.rps > 0) rec.ofSelectBaseline = Math.round((rec.rps / base.rps) * 1000) / 1000;
  const serverLog = readFileSync(warren.logFile, "utf8").split("\n").filter(Boolean).slice(-50);
  for (const p of [warren.proc, baseline.proc]) await stopProcess(p);

  let ingest: (IngestReport & { busyBeforePct: number }) | null = null;
  if (!opts["no-ingest"]) {
    log(`sync ingest (bench/chat-ingest.ts: 4 streams at once, batches of 500) …`);
    const busyBeforePct = await waitQuiet();
    ingest = { ...(await benchIngest({ databaseUrl: url, sandboxes: 4, sessions: 10, turns: 25, growth: 8, batch: 500, quiet: false })), busyBeforePct };
    log(`  ${ingest.eventsPerSecond.toLocaleString("en")} events/s (${ingest.events.toLocaleString("en")} events in ${ingest.seconds} s, batch p50 ${ingest.batchMs.p50} ms, p99 ${ingest.batchMs.p99} ms, converged: ${ingest.converged})`);
  }
  await cleanup();

  // ---- report
  const fmt = (n: number) => n.toLocaleString("en");
  const header = ["route", "req/s", "p50 ms", "p99 ms", "× select", "CPU ms/req srv+pg", "busy before", `p99 < ${TARGET_P99_MS} ms`];
  const rows = records.map((r) => [
    r.route,
    fmt(r.rps),
    r.latencyMs.p50.toFixed(2),
    r.latencyMs.p99.toFixed(2),
    r.ofSelectBaseline?.toFixed(2) ?? "",
    `${r.cpuMsPerRequest.server.toFixed(2)}+${r.cpuMsPerRequest.postgres.toFixed(2)}`,
    `${r.busyBeforePct}%`,
    r.targetMet === undefined ? `(${r.kind})` : r.targetMet ? "yes" : "NO",
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
  console.log(`\n${CONNECTIONS} connections, ${DURATION} s per route\n${line(header)}\n${widths.map((w) => "-".repeat(w)).join("  ")}`);
  for (const r of rows) console.log(line(r));
  const targets = records.filter((r) => r.kind === "target");
  console.log(`\nissue 7 read target (p99 < ${TARGET_P99_MS} ms at ${CONNECTIONS} connections, no errors): ${targets.filter((r) => r.targetMet).length}/${targets.length} routes`);
  if (ingest) console.log(`issue 7 ingest target (≥ 5,000 events/s): ${fmt(ingest.eventsPerSecond)} events/s — ${ingest.eventsPerSecond >= 5000 ? "MET" : "NOT MET"}${ingest.converged ? "" : " (DID NOT CONVERGE)"}`);

  writeResults("chat", stamp, {
    benchmark: "chat (issue 7)",
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    command: `bun run bench:chat ${process.argv.slice(2).join(" ")}`.trim(),
    options: { duration: DURATION, warmup: WARMUP, connections: CONNECTIONS, threads: THREADS },
    target: { p99Ms: TARGET_P99_MS, connections: CONNECTIONS, ingestEventsPerSecond: 5000 },
    machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model, memoryGb: Math.round(totalmem() / 2 ** 30), bun: Bun.version, postgres: pgVersion, wrk: wrkVersion },
    git,
    data: { seed, heavyUserId: heavy.id, counts, mainSandbox: main, sessions: sessions.map((s) => s.id), searchHits: hits, terms },
    plans,
    runs: records,
    ingest,
    serverLogLines: serverLog,
  });
  rmSync(workDir(), { recursive: true, force: true });
}

try {
  await main();
} catch (err) {
  log(`bench:chat: ${(err as Error).stack ?? err}`);
  log(`server and baseline logs kept in ${workDir()}`);
  await cleanup();
  process.exit(1);
}
