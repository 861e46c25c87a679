/**
 * Issue 11's load runner: every hot route of Warren against the real server process on loopback,
 * authenticated the way apps are (bearer token, and a browser's session cookie), with the two
 * baselines measured in the same run; a light user against the heavy user (scale); the server's
 * RSS during the run and, with --soak, over a long mixed load. See bench/README.md.
 *
 *   bun run bench:api [--small] [--soak MINUTES] [--help]
 */
import { readFileSync, rmSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import postgres from "postgres";
import { startCluster } from "./lib/cluster";
import { loadAverage, rssMb, rssRange, sampleRss } from "./lib/machine";
import { cleanup, log, numberOption, parseCli, provenance, run, runMain, workDir, writeResults } from "./lib/processes";
import { expectOk, signIn, startBaseline, startWarren, type SignedIn } from "./lib/server";
import { errorCount, measure, table, wrk, type Credential, type Measured, type RouteSpec } from "./lib/wrk";
import { seedActivity } from "./seed-activity";
import { seedChat } from "./seed-chat";

const HELP = `Usage: bun run bench:api [options]

Issue 11's benchmark of Warren's hot routes. Starts a throwaway PostgreSQL cluster
(scripts/pg-cluster.sh), applies the migrations, seeds the population (bench/seed-chat.ts, which
seeds users and sandboxes through bench/seed-sandboxes.ts, then bench/seed-activity.ts), starts the
real server (bun src/index.ts, NODE_ENV=production) and the baseline server
(bench/baseline-server.ts), signs a heavy and a light user in (bearer token and session cookie)
and runs wrk against, for each user:

  me             GET /api/v1/me                                    bearer
  me-cookie      GET /api/v1/me                                    session cookie
  sbx-list       GET /api/v1/sandboxes?limit=50                    bearer
  sbx-list-ck    GET /api/v1/sandboxes?limit=50                    session cookie
  sbx-get        GET /api/v1/sandboxes/<id>, up to 20 ids          bearer
  chat-sessions  GET /api/v1/chat/sessions?limit=50                bearer
  chat-messages  GET /api/v1/chat/sessions/<id>/messages?limit=50  bearer, up to 20 sessions
  activity       GET /api/v1/me/activity?limit=50                  bearer
  prefs-get      GET /api/v1/me/preferences                        bearer
  prefs-patch    PATCH /api/v1/me/preferences, themeMode dark/light alternating   bearer
  select         baseline: Bun.serve + one primary-key select with postgres.js
  page           baseline: Bun.serve + postgres.js, the heavy user's newest 50 sandboxes as JSON
                 (what a 50-row page costs on this stack without Warren: the list routes' floor)
  hello          baseline: Bun.serve answering a constant

each for --duration seconds at --connections after --warmup seconds. Targets (issue 11): every
authenticated read at ≥ 40% of the select baseline's req/s, p99 < 25 ms; the light user's and the
heavy user's p99 within 1.5× of each other. Warren's RSS (/proc/PID/status VmRSS) is sampled every
second through the run. With --soak M, a mixed load of all the heavy user's routes then runs for M
minutes, RSS reported every 30 s. Prints the tables, writes bench/results/api-<time>.json, and
stops everything it started.

Population:
  full     10,000 users, 100,000 sandboxes, 1,020,000 chat messages, 1,000,000 activity entries;
           the heavy user: 1,000 sandboxes, 1,000,000 messages in 1,000 sessions, 100,000 entries
  --small  1,000 users, 10,000 sandboxes, 52,000 messages, 100,000 entries; heavy user: 1,000
           sandboxes, 50,000 messages in 100 sessions, 10,000 entries

Options:
  --small             the small population and shorter runs (--duration 5 --warmup 2 unless given)
  --duration S        seconds measured per route (default 15)
  --warmup S          seconds of warm-up per route, not measured (default 3)
  --connections N     wrk connections (default 50)
  --threads N         wrk threads (default 2)
  --routes LIST       only these routes (names above, comma-separated; the baselines always run)
  --no-light          skip the light user (no scale comparison)
  --soak MINUTES      after the measurements, a mixed load for this long (default 0 = none; the
                      issue asks for 10), RSS every 30 s
  --rounds N          run each route N times per user, heavy and light alternating, and report the
                      run with the median p99 (default 1; a single run's p99 on this shared box
                      moves by up to 2x between runs; every run goes to the JSON as allRuns)
  --keep-cluster      leave the cluster running at the end and print its URL
  --no-wait-quiet     do not wait for the box to go quiet before each run (by default each run
                      waits up to 30 s until the CPUs are under 20% busy, and records what it saw)
  -h, --help          this help

Needs wrk (apt-get install -y wrk) and the PostgreSQL server binaries (initdb, pg_ctl).
`;

const TARGET_OF_SELECT = 0.4;
const TARGET_P99_MS = 25;
const TARGET_SCALE = 1.5;
const HEAVY_EMAIL = "heavy@bench.warren.test";
const PASSWORD = "bench password 1234";

const opts = parseCli("bench:api", {
  small: { type: "boolean", default: false },
  duration: { type: "string" },
  warmup: { type: "string" },
  connections: { type: "string", default: "50" },
  threads: { type: "string", default: "2" },
  routes: { type: "string" },
  "no-light": { type: "boolean", default: false },
  soak: { type: "string", default: "0" },
  rounds: { type: "string", default: "1" },
  "keep-cluster": { type: "boolean", default: false },
  "no-wait-quiet": { type: "boolean", default: false },
  help: { type: "boolean", short: "h" },
});
if (opts.help) {
  process.stdout.write(HELP);
  process.exit(0);
}
const num = (name: string, v: string | undefined, min: number) => numberOption("bench:api", name, v, min, name === "soak");
const SMALL = opts.small!;
const DURATION = num("duration", opts.duration ?? (SMALL ? "5" : "15"), 1);
const WARMUP = num("warmup", opts.warmup ?? (SMALL ? "2" : "3"), 0);
const CONNECTIONS = num("connections", opts.connections, 1);
const THREADS = Math.min(num("threads", opts.threads, 1), CONNECTIONS);
const SOAK_MINUTES = num("soak", opts.soak, 0);
const ROUNDS = num("rounds", opts.rounds, 1);
const ROUTE_NAMES = ["me", "me-cookie", "sbx-list", "sbx-list-ck", "sbx-get", "chat-sessions", "chat-messages", "activity", "prefs-get", "prefs-patch"];
const ONLY = opts.routes ? new Set(opts.routes.split(",").map((s) => s.trim())) : null;
for (const r of ONLY ?? []) {
  if (!ROUTE_NAMES.includes(r)) {
    console.error(`bench:api: unknown route ${JSON.stringify(r)} (one of ${ROUTE_NAMES.join(", ")})`);
    process.exit(2);
  }
}
const POPULATION = SMALL
  ? { users: 1_000, sandboxes: 10_000, heavy: 1_000, heavySessions: 100, heavyMessages: 50_000, otherSessions: 200, otherMessages: 2_000, entries: 100_000, heavyEntries: 10_000 }
  : { users: 10_000, sandboxes: 100_000, heavy: 1_000, heavySessions: 1_000, heavyMessages: 1_000_000, otherSessions: 2_000, otherMessages: 20_000, entries: 1_000_000, heavyEntries: 100_000 };

if (!Bun.which("wrk")) {
  console.error("bench:api: wrk is not installed. Install it with: apt-get install -y wrk");
  process.exit(1);
}

type Subject = { label: "heavy" | "light"; userId: string; email: string; auth: SignedIn; sandboxIds: string[]; sessionIds: string[]; rows: Record<string, number> };

/** The routes of one user, in the order they run. */
function routesOf(s: Subject, url: string, pid: number): RouteSpec[] {
  const bearer: Credential = { token: s.auth.token };
  const cookie: Credential = { cookie: s.auth.cookie };
  const patch = (mode: string) => `PATCH /api/v1/me/preferences ${JSON.stringify({ themeMode: mode })}`;
  const all: RouteSpec[] = [
    { route: "me", what: "GET /api/v1/me (bearer)", kind: "target", url, paths: ["/api/v1/me"], auth: bearer, pid },
    { route: "me-cookie", what: "GET /api/v1/me (cookie)", kind: "target", url, paths: ["/api/v1/me"], auth: cookie, pid },
    { route: "sbx-list", what: "GET /api/v1/sandboxes?limit=50 (bearer)", kind: "target", url, paths: ["/api/v1/sandboxes?limit=50"], auth: bearer, pid },
    { route: "sbx-list-ck", what: "GET /api/v1/sandboxes?limit=50 (cookie)", kind: "target", url, paths: ["/api/v1/sandboxes?limit=50"], auth: cookie, pid },
    { route: "sbx-get", what: `GET /api/v1/sandboxes/:id (${s.sandboxIds.length} ids)`, kind: "target", url, paths: s.sandboxIds.map((id) => `/api/v1/sandboxes/${id}`), auth: bearer, pid },
    { route: "chat-sessions", what: "GET /api/v1/chat/sessions?limit=50", kind: "target", url, paths: ["/api/v1/chat/sessions?limit=50"], auth: bearer, pid },
    {
      route: "chat-messages",
      what: `GET /api/v1/chat/sessions/:id/messages?limit=50 (${s.sessionIds.length} sessions)`,
      kind: "target",
      url,
      paths: s.sessionIds.map((id) => `/api/v1/chat/sessions/${id}/messages?limit=50`),
      auth: bearer,
      pid,
    },
    { route: "activity", what: "GET /api/v1/me/activity?limit=50", kind: "target", url, paths: ["/api/v1/me/activity?limit=50"], auth: bearer, pid },
    { route: "prefs-get", what: "GET /api/v1/me/preferences", kind: "target", url, paths: ["/api/v1/me/preferences"], auth: bearer, pid },
    // A write: reported against the same figures, but the read target does not apply to it.
    { route: "prefs-patch", what: "PATCH /api/v1/me/preferences (themeMode dark/light)", kind: "diagnostic", url, paths: [patch("dark"), patch("light")], auth: bearer, pid },
  ];
  return all.filter((r) => !ONLY || ONLY.has(r.route));
}

/** One request of each route, as wrk will send it: 200 or the run stops here. */
async function checkRoutes(routes: RouteSpec[]) {
  for (const r of routes) {
    for (const line of r.paths.slice(0, 3)) {
      const m = /^([A-Z]+) (\S+) ?(.*)$/.exec(line);
      const [method, path, body] = m ? [m[1]!, m[2]!, m[3] || undefined] : ["GET", line, undefined];
      const headers: Record<string, string> = {};
      if (r.auth.token) headers.authorization = `Bearer ${r.auth.token}`;
      if (r.auth.cookie) headers.cookie = r.auth.cookie;
      if (body) headers["content-type"] = "application/json";
      const res = await fetch(`${r.url}${path}`, { method, headers, body });
      const text = await res.text();
      if (res.status !== 200) throw new Error(`${r.route}: ${method} ${path} answered ${res.status}: ${text.slice(0, 300)}`);
    }
  }
}

async function subjectOf(sql: postgres.Sql, label: Subject["label"], userId: string, email: string, url: string): Promise<Subject> {
  const sandboxIds = (await sql<{ id: string }[]>`select id from sandboxes where user_id = ${userId} order by md5(id) limit 20`).map((r) => r.id);
  const sessionIds = (await sql<{ id: string }[]>`select id from chat_sessions where user_id = ${userId} order by md5(id) limit 20`).map((r) => r.id);
  const [rows] = await sql<{ sandboxes: number; sessions: number; messages: number; activity: number }[]>`
    select (select count(*)::int from sandboxes where user_id = ${userId}) as sandboxes,
           (select count(*)::int from chat_sessions where user_id = ${userId}) as sessions,
           (select count(*)::int from chat_messages where user_id = ${userId}) as messages,
           (select count(*)::int from activity_log where user_id = ${userId}) as activity`;
  if (sandboxIds.length === 0 || sessionIds.length === 0) throw new Error(`${label} user ${email} has no sandbox or no chat session`);
  return { label, userId, email, auth: await signIn(url, email, PASSWORD), sandboxIds, sessionIds, rows: rows! };
}

async function main() {
  const startedAt = new Date();
  const stamp = startedAt.toISOString().replace(/[:.]/g, "-");
  const prov = await provenance();
  const cluster = await startCluster({ keep: opts["keep-cluster"]! });
  const dbName = "bench_api";
  const url = cluster.dbUrl(dbName);
  await cluster.admin.unsafe(`create database ${dbName}`);
  log(`migrating (bun run db:migrate) …`);
  await run([process.execPath, "run", "db:migrate"], { DATABASE_URL: url });

  const seedStarted = performance.now();
  const chatSeed = await seedChat({ databaseUrl: url, ...POPULATION, heavyEmail: HEAVY_EMAIL, password: PASSWORD, quiet: false });
  const activitySeed = await seedActivity({ databaseUrl: url, entries: POPULATION.entries, heavyEntries: POPULATION.heavyEntries, heavyEmail: HEAVY_EMAIL, quiet: false });
  const seedSeconds = Math.round((performance.now() - seedStarted) / 100) / 10;
  log(`seeded in ${seedSeconds} s`);

  log(`starting Warren (bun src/index.ts, NODE_ENV=production) and the baseline server …`);
  const warren = await startWarren("warren-api", url);
  const baseline = await startBaseline("baseline-api", url);
  const rss = sampleRss(warren.proc.pid, 1000);
  const rssAtStart = rssMb(warren.proc.pid);

  const sql = postgres(url, { max: 1, onnotice: () => {} });
  const subjects: Subject[] = [await subjectOf(sql, "heavy", chatSeed.heavyUserId, HEAVY_EMAIL, warren.url)];
  if (!opts["no-light"]) {
    // The light user: about 10 sandboxes and at least one chat session.
    const [light] = await sql<{ id: string; email: string }[]>`
      select u.id, u.email from users u
      join (select user_id, count(*) as n from sandboxes group by user_id) s on s.user_id = u.id
      where u.id <> ${chatSeed.heavyUserId} and exists (select 1 from chat_sessions c where c.user_id = u.id)
      order by abs(s.n - 10), u.id limit 1`;
    if (!light) throw new Error("no light user with a chat session in the population");
    subjects.push(await subjectOf(sql, "light", light.id, light.email, warren.url));
  }
  await sql.end();
  for (const s of subjects) log(`  ${s.label} user ${s.email}: ${JSON.stringify(s.rows)}`);

  const baseRoutes: RouteSpec[] = [
    { route: "select", what: "Bun.serve + postgres.js select by id", kind: "baseline", url: baseline.url, paths: subjects[0]!.sandboxIds.map((id) => `/select?id=${id}`), auth: {}, pid: baseline.proc.pid },
    { route: "hello", what: "Bun.serve constant", kind: "baseline", url: baseline.url, paths: ["/hello"], auth: {}, pid: baseline.proc.pid },
    { route: "page", what: "Bun.serve + postgres.js, 50 sandboxes as JSON", kind: "baseline", url: baseline.url, paths: [`/page?user=${encodeURIComponent(subjects[0]!.userId)}&limit=50`], auth: {}, pid: baseline.proc.pid },
  ];
  await expectOk(`${baseline.url}${baseRoutes[0]!.paths[0]}`, null);
  const perUser = subjects.map((s) => ({ subject: s, routes: routesOf(s, warren.url, warren.proc.pid) }));
  for (const u of perUser) await checkRoutes(u.routes);

  const m = { connections: CONNECTIONS, threads: THREADS, seconds: DURATION, warmup: WARMUP, postmasterPid: cluster.postmasterPid, waitForQuiet: !opts["no-wait-quiet"] };
  log(`wrk: ${THREADS} threads, ${CONNECTIONS} connections, ${WARMUP} s warm-up + ${DURATION} s per route`);
  type Row = Measured & { user: string; ofSelect?: number; ofHello?: number; targetMet?: boolean };
  const rows: Row[] = [];
  const allRuns: (Measured & { user: string; round: number })[] = [];
  // The box is shared and its load drifts: the baselines run three times (start, middle, end) and
  // the best of each is the reference, so a ratio is never flattered by a baseline measured while
  // something else ran. Each route runs for the heavy and the light user back to back, so both see
  // the same box.
  const baselineRuns: (Measured & { round: number })[] = [];
  const baselines = async (round: number) => {
    log(`baselines (round ${round} of 3):`);
    for (const r of baseRoutes) baselineRuns.push({ ...(await measure(r, m)), round });
  };
  await baselines(1);
  const names = perUser[0]!.routes.map((r) => r.route);
  for (const [i, name] of names.entries()) {
    if (i === Math.floor(names.length / 2)) await baselines(2);
    const runs = new Map<string, Measured[]>();
    for (let round = 1; round <= ROUNDS; round++) {
      for (const u of perUser) {
        const r = u.routes.find((x) => x.route === name)!;
        const label = `${u.subject.label}:${name}${ROUNDS > 1 ? ` (round ${round} of ${ROUNDS})` : ""}`;
        const run = await measure({ ...r, route: label }, m);
        runs.set(u.subject.label, [...(runs.get(u.subject.label) ?? []), run]);
        allRuns.push({ ...run, route: name, user: u.subject.label, round });
      }
    }
    // With --rounds, the run with the median p99 stands for the user's route (all runs go to the JSON).
    for (const [user, list] of runs) {
      const median = [...list].sort((a, b) => a.latencyMs.p99 - b.latencyMs.p99)[Math.floor((list.length - 1) / 2)]!;
      rows.push({ ...median, route: name, user });
    }
  }
  await baselines(3);
  const rssSamples = rss.stop();

  const best = (route: string) => baselineRuns.filter((b) => b.route === route).reduce((a, b) => (b.rps > a.rps ? b : a));
  const select = best("select");
  const hello = best("hello");
  const page = best("page");
  rows.unshift({ ...select, user: "-" }, { ...hello, user: "-" }, { ...page, user: "-" });
  for (const r of rows) {
    r.ofSelect = Math.round((r.rps / Math.max(1, select.rps)) * 1000) / 1000;
    r.ofHello = Math.round((r.rps / Math.max(1, hello.rps)) * 1000) / 1000;
    if (r.kind === "target") r.targetMet = r.ofSelect >= TARGET_OF_SELECT && r.latencyMs.p99 < TARGET_P99_MS && errorCount(r.errors) === 0;
  }
  const scale = perUser.length > 1
    ? perUser[0]!.routes.map((r) => {
        const heavy = rows.find((x) => x.user === "heavy" && x.route === r.route)!;
        const light = rows.find((x) => x.user === "light" && x.route === r.route)!;
        const ratio = Math.round((heavy.latencyMs.p99 / Math.max(0.01, light.latencyMs.p99)) * 100) / 100;
        return { route: r.route, heavyP99: heavy.latencyMs.p99, lightP99: light.latencyMs.p99, ratio, within: ratio <= TARGET_SCALE && ratio >= 1 / TARGET_SCALE };
      })
    : [];

  // ---- soak
  type SoakPoint = { atS: number; mb: number; rps: number; p99Ms: number; errors: number };
  let soak: { minutes: number; rssEvery30s: SoakPoint[]; flat: boolean; growthPct: number } | null = null;
  if (SOAK_MINUTES > 0) {
    const heavyRoutes = perUser[0]!.routes;
    const mixed = heavyRoutes.filter((r) => r.auth.token).flatMap((r) => r.paths.slice(0, 5));
    log(`soak: ${SOAK_MINUTES} min of mixed load (${mixed.length} requests in rotation over ${heavyRoutes.length} routes, bearer), RSS every 30 s`);
    const chunks = Math.max(1, Math.round((SOAK_MINUTES * 60) / 30));
    const points: SoakPoint[] = [];
    for (let i = 1; i <= chunks; i++) {
      const w = await wrk({ url: warren.url, paths: mixed, auth: { token: perUser[0]!.subject.auth.token }, seconds: 30, connections: CONNECTIONS, threads: THREADS });
      const mb = rssMb(warren.proc.pid) ?? 0;
      points.push({ atS: i * 30, mb, rps: Math.round(w.requests / (w.durationUs / 1e6)), p99Ms: Math.round(w.latencyUs.p99 / 10) / 100, errors: errorCount(w.errors) });
      log(`  ${String(i * 30).padStart(5)} s  RSS ${mb} MB  ${points.at(-1)!.rps} req/s  p99 ${points.at(-1)!.p99Ms} ms${points.at(-1)!.errors ? `  ERRORS ${points.at(-1)!.errors}` : ""}`);
    }
    // Flat: the last third's median within 10% of the first third's. Medians, not peaks: RSS saws
    // up and down by ~20% with garbage collection, and one sample at a sawtooth's top says nothing.
    const third = Math.max(1, Math.floor(points.length / 3));
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const early = median(points.slice(0, third).map((p) => p.mb));
    const late = median(points.slice(-third).map((p) => p.mb));
    const growthPct = Math.round(((late - early) / Math.max(1, early)) * 1000) / 10;
    soak = { minutes: SOAK_MINUTES, rssEvery30s: points, flat: growthPct <= 10, growthPct };
  }
  const serverLog = readFileSync(warren.logFile, "utf8").split("\n").filter(Boolean);
  await cleanup();

  // ---- report
  const fmt = (n: number) => n.toLocaleString("en");
  const header = ["user", "route", "req/s", "p50 ms", "p99 ms", "× select", "× hello", "CPU ms/req srv+pg", "busy before", "target"];
  const body = rows.map((r) => [
    r.user,
    r.route,
    fmt(r.rps),
    r.latencyMs.p50.toFixed(2),
    r.latencyMs.p99.toFixed(2),
    r.ofSelect!.toFixed(2),
    r.ofHello!.toFixed(2),
    `${r.cpuMsPerRequest.server.toFixed(2)}+${r.cpuMsPerRequest.postgres.toFixed(2)}`,
    `${r.busyBeforePct}%`,
    r.kind === "baseline" ? "(baseline)" : r.kind === "diagnostic" ? "(write)" : (r.targetMet ? "yes" : "NO") + (errorCount(r.errors) ? ` ${errorCount(r.errors)} errors` : ""),
  ]);
  console.log(`\n${CONNECTIONS} connections, ${DURATION} s per route${ROUNDS > 1 ? `, ${ROUNDS} rounds per user (the run with the median p99 shown)` : ""}; target: ≥ ${TARGET_OF_SELECT} × select (the best of 3 baseline rounds) and p99 < ${TARGET_P99_MS} ms\n`);
  console.log(table(header, body));
  console.log(`\nbaselines, 3 rounds (the best is the reference; their spread is the box's drift): ${["select", "hello", "page"].map((name) => `${name} ${baselineRuns.filter((b) => b.route === name).map((b) => `${fmt(b.rps)} (busy ${b.busyBeforePct}%)`).join(" / ")} req/s`).join("; ")}`);
  const targets = rows.filter((r) => r.kind === "target");
  console.log(`issue 11 target (reads ≥ ${TARGET_OF_SELECT} × select, p99 < ${TARGET_P99_MS} ms, no errors): ${targets.filter((r) => r.targetMet).length}/${targets.length} runs met`);
  console.log(
    `the floor of a 50-row page (page baseline, no Warren): ${fmt(page.rps)} req/s = ${(page.rps / Math.max(1, select.rps)).toFixed(2)} × select, p99 ${page.latencyMs.p99.toFixed(2)} ms` +
      (page.rps / Math.max(1, select.rps) < TARGET_OF_SELECT ? ": below the target before any Warren code runs, so a 50-row page read and rendered per request cannot meet it here (the list routes are served from the page cache)" : ""),
  );
  if (scale.length) {
    console.log(`\nscale: heavy user (${JSON.stringify(subjects[0]!.rows)}) vs light user (${JSON.stringify(subjects[1]!.rows)}), target p99 ratio ≤ ${TARGET_SCALE}×\n`);
    console.log(table(["route", "heavy p99", "light p99", "ratio", "within"], scale.map((s) => [s.route, s.heavyP99.toFixed(2), s.lightP99.toFixed(2), s.ratio.toFixed(2), s.within ? "yes" : "NO"]), 1));
  }
  const range = rssRange(rssSamples);
  console.log(`\nWarren RSS: ${rssAtStart} MB after start; ${range.minMb}–${range.maxMb} MB over the measured runs (${range.samples} samples, 1/s)`);
  if (soak) console.log(`soak ${soak.minutes} min: RSS ${soak.rssEvery30s.map((p) => p.mb).join(", ")} MB; ${soak.flat ? "flat" : "NOT flat"} (last third's median ${soak.growthPct >= 0 ? "+" : ""}${soak.growthPct}% vs the first third's)`);

  writeResults("api", stamp, {
    benchmark: "api hot routes (issue 11)",
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    command: `bun run bench:api ${process.argv.slice(2).join(" ")}`.trim(),
    options: { small: SMALL, duration: DURATION, warmup: WARMUP, connections: CONNECTIONS, threads: THREADS, soakMinutes: SOAK_MINUTES },
    targets: { ofSelect: TARGET_OF_SELECT, p99Ms: TARGET_P99_MS, scale: TARGET_SCALE },
    machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model, memoryGb: Math.round(totalmem() / 2 ** 30), bun: Bun.version, postgres: cluster.version, wrk: prov.wrk, loadAfter: loadAverage() },
    git: prov.git,
    population: { ...POPULATION, seedSeconds, chat: chatSeed, activity: activitySeed },
    subjects: subjects.map((s) => ({ label: s.label, email: s.email, rows: s.rows })),
    runs: rows,
    rounds: ROUNDS,
    allRuns,
    baselineRounds: baselineRuns,
    scale,
    memory: { rssAtStartMb: rssAtStart, ...range, samplesMb: rssSamples },
    soak,
    serverLogLines: serverLog.slice(-50),
  });
  rmSync(workDir(), { recursive: true, force: true });
}

await runMain("bench:api", main);
