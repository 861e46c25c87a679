import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import fc from "fast-check";
import { createTestApp, json, signInAgain, signUp, type TestUser } from "../helpers/app";
import {
  operationsOf,
  printable,
  problemsOf,
  readAnswer,
  requestArb,
  tuplesFor,
  type FuzzRequest,
  type Listings,
  type Operation,
  type Pools,
} from "../helpers/fuzz-openapi";
import type { SchemaContext } from "../helpers/fuzz-schema";
import { startDeviceStandIn } from "../helpers/github-device-standin";

/**
 * Property-based fuzzing of every operation in Warren's own OpenAPI document (issue 11): valid
 * requests and mutations of them (wrong types, missing and extra fields, huge and unicode values,
 * lone surrogates, NUL, RTL, huge and negative numbers, other users' ids, unknown typeids,
 * SQL-ish strings, forged cursors, malformed JSON, wrong content types), sent in-process as a
 * real signed-up user. Properties: never a 5xx; every error in the envelope with a code that
 * matches its status; no secret or other user's data in any answer; and the other user's data,
 * read through the API before and after, unchanged.
 *
 * Bounded for a 2-core box: FUZZ_RUNS requests per operation (default 30) from FUZZ_SEED
 * (fixed by default, printed on failure). FUZZ_RUNS=500 FUZZ_SEED=$RANDOM goes wider.
 *
 * Sandboxes: the app's real local driver is configured (bubblewrap and OpenCode are present, so
 * start/stop/restart/delete are accepted with 202), but no operation worker runs in this file:
 * accepted transitions stay queued and no workload ever runs. That keeps the run cheap and
 * makes the agent proxy answer its guards (404 for ids that are not yours, 409 for sandboxes
 * that are not running) instead of reaching an OpenCode server. GitHub's device flow is a local
 * stand-in speaking its protocol (tests/helpers/github-device-standin.ts), never github.com.
 */

const RUNS = Number(process.env.FUZZ_RUNS ?? 30);
const SEED = Number(process.env.FUZZ_SEED ?? 20261121);
setDefaultTimeout(120_000);

const github = startDeviceStandIn();
const t = await createTestApp({
  env: {
    GITHUB_API_OVERRIDE_URL: github.url,
    COPILOT_OAUTH_CLIENT_ID: github.clientId,
    // Quotas are tested elsewhere; here they would only stop valid creates from reaching deeper code.
    MAX_SANDBOXES_PER_USER: "100000",
    MAX_RUNNING_SANDBOXES_PER_USER: "10000",
  },
});
afterAll(async () => {
  github.stop();
  await t.close();
}, 60_000);

const doc = (await (await t.request("/api/openapi.json")).json()) as Parameters<typeof operationsOf>[0];
const operations = operationsOf(doc);

// How each kind of operation is handled, stated rather than skipped (see readAnswer / the test).
const HANDLING: Record<Operation["kind"], string> = {
  plain: "fuzzed; full body read and checked",
  "event-stream": "fuzzed; on 200 only the status and content-type are read, then the stream is cancelled",
  "long-poll": "fuzzed; a valid timeout is lowered to 1 s (absent → 1 s) and the answers are awaited together",
  proxy: "fuzzed; no sandbox runs here, so only the proxy's own guards answer (401/404/409), never OpenCode",
};
const OTHER_AUTH = "fuzzed without its own credential (it does not take Warren's session): only its refusals and input handling are exercised";
console.error(
  `openapi fuzz: ${operations.length} operations, ${RUNS} runs each, FUZZ_SEED=${SEED}\n` +
    operations
      .filter((o) => o.kind !== "plain" || (o.secured && !o.sessionAuth))
      .map((o) => `  ${o.id}: ${o.kind !== "plain" ? HANDLING[o.kind] : OTHER_AUTH}`)
      .join("\n"),
);

// ---- The two users ---------------------------------------------------------------------------

type Actor = TestUser & { marker: string; apiKey: string; extra: Record<string, string[]> };

const MARKER = () => `mark${crypto.randomUUID().replaceAll("-", "")}`;

async function call(actor: Pick<TestUser, "token">, method: string, path: string, body?: unknown) {
  const res = await t.request(path, { method, token: actor.token, ...(body === undefined ? {} : { json: body }) });
  const text = await res.text();
  if (res.status >= 300) throw new Error(`seeding ${method} ${path} answered ${res.status}: ${text}`);
  return text ? JSON.parse(text) : undefined;
}

/** Gives a user one of everything the API lets them own, named with their marker. */
async function seed(u: TestUser): Promise<Actor> {
  const marker = MARKER();
  const apiKey = `sk-${MARKER()}`;
  const extra: Record<string, string[]> = {};
  await call(u, "PATCH", "/api/v1/me", { name: `User ${marker}` });
  await call(u, "PATCH", "/api/v1/me/preferences", { themeMode: "dark", autoRefreshInterval: 45, defaultResourceTierId: "micro" });
  await call(u, "PUT", "/api/v1/me/agent-config", { config: { model: "anthropic/claude-sonnet-4-5", note: marker }, agentsMd: `# ${marker}` });
  // File names are identifiers that error messages may echo back to whoever sent them: no marker.
  const file = `f-${crypto.randomUUID().slice(0, 8)}`;
  await call(u, "PUT", `/api/v1/me/agent-config/files/agent/${file}`, { content: `agent ${marker}` });
  await call(u, "PUT", `/api/v1/me/agent-config/files/command/${file}`, { content: `command ${marker}` });
  const provider = await call(u, "POST", "/api/v1/providers", { name: `Provider ${marker}`, baseUrl: "https://llm.example.com/v1", models: [{ id: "m1" }] });
  await call(u, "PUT", "/api/v1/providers/anthropic/credential", { apiKey });
  await call(u, "PUT", `/api/v1/providers/${provider.id}/credential`, { apiKey: `${apiKey}-custom` });
  await call(u, "PUT", "/api/v1/me/default-model", { providerId: provider.id, modelId: "m1" });
  const flow = await call(u, "POST", "/api/v1/providers/github-copilot/oauth/device");
  extra.flowId = [flow.id];
  const sandboxes = [];
  for (const n of [1, 2, 3, 4]) {
    sandboxes.push(await call(u, "POST", "/api/v1/sandboxes", { name: `Sandbox ${n} ${marker}`, description: marker, resourceTierId: "micro" }));
  }
  // Transitional states that stay put (no worker runs here): starting and deleting.
  await call(u, "POST", `/api/v1/sandboxes/${sandboxes[0].id}/start`);
  await call(u, "DELETE", `/api/v1/sandboxes/${sandboxes[1].id}`);
  // A second device, so there is a session that is not the current one.
  await signInAgain(t, u);
  return { ...u, marker, apiKey, extra };
}

// ---- Reading a user's world through the API -------------------------------------------------

/**
 * Exports are reads that write: each one is recorded in the user's activity log by design, so
 * snapshotting through them would change the very feed being compared. They are fuzzed like
 * every other operation but not read for the snapshot.
 */
const WRITING_READS = /\/export$/;
const readable = (op: Operation) => op.method === "GET" && op.sessionAuth && op.kind === "plain" && !WRITING_READS.test(op.template);

/** Query for a full read: the largest page, and single-valued enum switches (include=content). */
function fullQuery(op: Operation, limit = 100): string {
  const parts: string[] = [];
  for (const p of op.params.filter((x) => x.in === "query")) {
    if (p.name === "limit") parts.push(`limit=${limit}`);
    else if (p.schema?.enum?.length === 1) parts.push(`${p.name}=${encodeURIComponent(String(p.schema.enum[0]))}`);
  }
  return parts.length ? `?${parts.join("&")}` : "";
}

type World = { snapshot: Record<string, { status: number; body: unknown }>; listings: Listings; cursors: string[] };

/**
 * Everything a user can read: every parameterless GET (all pages), then, with `details`, every
 * GET with path parameters for each resource the lists name. Request ids are dropped from
 * error bodies (they differ on every read by design).
 */
async function readWorld(u: Pick<TestUser, "token">, extra: Record<string, string[]>, details = true): Promise<World> {
  const snapshot: World["snapshot"] = {};
  const listings: Listings = new Map();
  const cursors: string[] = [];
  const get = async (url: string) => {
    const res = await guarded(url, () => t.request(url, { token: u.token }));
    const text = await res.text();
    let body: any;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      body = text;
    }
    if (body?.error?.requestId) delete body.error.requestId;
    return { status: res.status, body };
  };
  for (const op of operations.filter((o) => readable(o) && !o.template.includes("{"))) {
    const pages: unknown[] = [];
    let url = `${op.template}${fullQuery(op)}`;
    for (let i = 0; i < 50; i++) {
      const r = await get(url);
      pages.push(r);
      const items = Array.isArray(r.body?.data) ? r.body.data : Array.isArray(r.body) ? r.body : undefined;
      if (items) listings.set(op.template, [...(listings.get(op.template) ?? []), ...items]);
      if (typeof r.body?.nextCursor !== "string") break;
      url = `${op.template}${fullQuery(op)}${fullQuery(op) ? "&" : "?"}cursor=${encodeURIComponent(r.body.nextCursor)}`;
    }
    snapshot[op.template] = pages.length === 1 ? (pages[0] as World["snapshot"][string]) : { status: 200, body: pages };
    if (op.params.some((p) => p.name === "limit")) {
      const first = await get(`${op.template}${fullQuery(op, 1)}`);
      if (typeof first.body?.nextCursor === "string") cursors.push(first.body.nextCursor);
    }
  }
  for (const op of operations.filter((o) => details && readable(o) && o.template.includes("{"))) {
    for (const tuple of tuplesFor(op.template, listings, extra)) {
      const url = op.template.replace(/\{([^}]+)\}/g, (_, n: string) => encodeURIComponent(tuple[n]!)) + fullQuery(op);
      snapshot[url] = await get(url);
    }
  }
  return { snapshot, listings, cursors };
}

/** Paths (key lists) whose values differ between two snapshots (arrays of different length: the array). */
function differences(a: unknown, b: unknown, path: string[] = [], out: string[][] = []): string[][] {
  if (a === b) return out;
  if (a && b && typeof a === "object" && typeof b === "object" && Array.isArray(a) === Array.isArray(b)) {
    if (Array.isArray(a) && a.length !== (b as unknown[]).length) out.push(path);
    else for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) differences((a as any)[k], (b as any)[k], [...path, k], out);
  } else out.push(path);
  return out;
}

/** Replaces the values at `paths` with a placeholder (fields that change on their own, like a "now"). */
function masked(snapshot: World["snapshot"], paths: string[][]): World["snapshot"] {
  const copy = structuredClone(snapshot) as any;
  for (const p of paths) {
    const parent = p.slice(0, -1).reduce((node, k) => node?.[k], copy);
    const last = p[p.length - 1];
    if (last !== undefined && parent && typeof parent === "object" && last in parent) parent[last] = "<changes by itself>";
  }
  return copy;
}

function poolsOf(world: World, extra: Record<string, string[]>, exclude: (item: Record<string, unknown>) => boolean): Pools {
  const listings: Listings = new Map([...world.listings].map(([k, items]) => [k, items.filter((i) => !exclude(i as Record<string, unknown>))]));
  return { tuples: new Map(operations.map((o) => [o.template, tuplesFor(o.template, listings, extra)])), cursors: world.cursors };
}

// ---- State shared by the tests -----------------------------------------------------------------

let fuzzer: Actor;
let victim: Actor;
let victimBefore: World["snapshot"];
/** The same, lists only: cheap enough to compare after every operation. */
let victimListsBefore: World["snapshot"];
/** Paths of the snapshots that changed between two reads with nothing in between (listed in the output). */
let volatile: string[][] = [];
let volatileLists: string[][] = [];
const victimWorldNow = async () => masked((await readWorld(victim, victim.extra)).snapshot, volatile);
const victimListsNow = async () => masked((await readWorld(victim, victim.extra, false)).snapshot, volatileLists);
let ctx: SchemaContext;
let pools: { own: Pools; victim: Pools };
let secrets: string[];
/** Statuses answered that the operation's OpenAPI entry does not list. */
const undocumented = new Map<string, Set<number>>();
let requestsSent = 0;
let accountsDeleted = 0;

beforeAll(async () => {
  victim = await seed(await signUp(t));
  fuzzer = await seed(await signUp(t));
  const victimWorld = await readWorld(victim, victim.extra);
  const again = await readWorld(victim, victim.extra);
  volatile = differences(victimWorld.snapshot, again.snapshot);
  victimBefore = masked(again.snapshot, volatile);
  const lists1 = (await readWorld(victim, victim.extra, false)).snapshot;
  const lists2 = (await readWorld(victim, victim.extra, false)).snapshot;
  volatileLists = differences(lists1, lists2);
  victimListsBefore = masked(lists2, volatileLists);
  console.error(`openapi fuzz: snapshot fields that change by themselves (masked): ${volatile.map((p) => p.join(" → ")).join(", ") || "none"}`);
  const ownWorld = await readWorld(fuzzer, fuzzer.extra);
  // The fuzzer must not end its own current session: that would turn every later request into a
  // 401 and test nothing. Its other session is fair game.
  const isCurrent = (i: Record<string, unknown>) => i.current === true;
  pools = { own: poolsOf(ownWorld, fuzzer.extra, isCurrent), victim: poolsOf(victimWorld, victim.extra, () => false) };
  const ids = (w: World) => [...w.listings.values()].flat().flatMap((i) => (typeof (i as { id?: unknown })?.id === "string" ? [(i as { id: string }).id] : []));
  ctx = { components: doc.components?.schemas ?? {}, knownStrings: [...new Set([...ids(ownWorld), ...ids(victimWorld), ...victim.extra.flowId!])] };
  // Nothing of the victim's but ids may ever reach the fuzzer; no API key is ever echoed.
  secrets = [victim.marker, victim.email, victim.apiKey, fuzzer.apiKey];
}, 120_000);

// ---- Sending -------------------------------------------------------------------------------------

/**
 * A request with no answer after this long is hanging, not slow (the request deadline is 30 s).
 * On PGlite a hang usually means a query issued outside an open transaction: the single
 * connection deadlocks, and every later request would hang too. So the first hang fails its
 * operation, and the tests after it fail at once naming it, instead of running for an hour.
 */
const HANG_MS = 20_000;
let hungBy: string | undefined;

async function send(req: FuzzRequest): Promise<Response> {
  if (hungBy) throw new Error(`not sent: an earlier request to ${hungBy} never answered and may hold the database`);
  const headers = new Headers(req.headers);
  if (req.auth === "bearer") headers.set("authorization", `Bearer ${fuzzer.token}`);
  if (req.auth === "cookie") headers.set("cookie", fuzzer.cookie);
  if (req.auth === "forged") headers.set("authorization", `Bearer ${fuzzer.token.split(".")[0]}.Zm9yZ2Vk`);
  requestsSent++;
  return guarded(req.op, () => t.app.request(req.url, { method: req.method, headers, ...(req.body !== undefined ? { body: req.body } : {}) }));
}

async function guarded(what: string, request: () => Response | Promise<Response>): Promise<Response> {
  let timer: Timer | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      hungBy = what;
      reject(new Error(`${what}: no answer within ${HANG_MS / 1000} s: the request hangs (on PGlite: a query outside its transaction?)`));
    }, HANG_MS);
  });
  try {
    return await Promise.race([Promise.resolve(request()), hang]);
  } finally {
    clearTimeout(timer);
  }
}

/** Long-polls wait for their timeout: lower a valid one to 1 s so that the run stays bounded. */
function boundLongPoll(op: Operation, req: FuzzRequest): FuzzRequest {
  if (op.kind !== "long-poll") return req;
  const names = op.params.filter((p) => p.in === "query" && /timeout/i.test(p.name)).map((p) => p.name);
  const url = new URL(req.url, "http://x");
  for (const n of names) {
    const v = url.searchParams.get(n);
    if (v === null || (/^\d+$/.test(v) && Number(v) > 1)) url.searchParams.set(n, "1");
  }
  return { ...req, url: `${url.pathname}${url.search}` };
}

async function check(op: Operation, req: FuzzRequest): Promise<string[]> {
  const res = await send(req);
  const answer = await readAnswer(op, res);
  const problems = problemsOf(op, res, answer, secrets);
  // The router's own answers (405, "No route for") mean the URL, once normalised (%2e%2e, //),
  // names another route: they say nothing about this operation's documentation.
  const routerAnswer = answer.status === 405 || (answer.status === 404 && answer.text.includes('"No route for'));
  if (!op.statuses.has(answer.status) && !routerAnswer) {
    const set = undocumented.get(op.id) ?? new Set<number>();
    set.add(answer.status);
    undocumented.set(op.id, set);
  }
  if (answer.status === 401 && op.sessionAuth && (req.auth === "bearer" || req.auth === "cookie")) {
    // A real session got 401: fine only if an earlier request ended it (and then sign in again).
    const me = await t.request("/api/v1/me", { token: fuzzer.token });
    if (me.status === 200) problems.push("a valid session was refused with 401");
    else {
      const res = await t.request("/api/auth/sign-in/email", {
        method: "POST",
        json: { email: fuzzer.email, password: fuzzer.password },
        headers: { origin: t.config.publicUrl },
      });
      if (res.status === 200) {
        fuzzer = { ...fuzzer, token: res.headers.get("set-auth-token")!, cookie: res.headers.getSetCookie().find((c) => c.startsWith("better-auth.session_token="))!.split(";")[0]! };
      } else {
        // The request deleted the fuzzer's own account (DELETE /me/account): carry on as a new user.
        fuzzer = await seed(await signUp(t));
        pools.own = poolsOf(await readWorld(fuzzer, fuzzer.extra), fuzzer.extra, (i) => i.current === true);
        accountsDeleted++;
      }
    }
  }
  return problems;
}

// ---- The properties ------------------------------------------------------------------------------

describe("OpenAPI fuzz: every operation", () => {
  test("the document lists the operations this file fuzzes", () => {
    expect(operations.length).toBeGreaterThan(40);
    expect(operations.map((o) => o.id)).toContain("POST /api/v1/sandboxes");
  });

  for (const op of operations) {
    test(`${op.id}: no 5xx, errors in the envelope, nothing leaked`, async () => {
      if (hungBy) throw new Error(`not run: a request to ${hungBy} never answered and may hold the database`);
      const background: Array<Promise<void>> = [];
      const late: string[] = [];
      const property = fc.asyncProperty(requestArb(op, ctx, pools, t.config.maxBodyBytes), async (generated) => {
        const req = boundLongPoll(op, generated);
        if (op.kind === "long-poll") {
          // Each waits up to 1 s: let them overlap, and judge them all before the test ends.
          background.push(check(op, req).then((p) => void (p.length && late.push(`${p.join("; ")}\n${printable(req)}`))));
          return true;
        }
        const problems = await check(op, req);
        if (problems.length) throw new Error(problems.join("; "));
        return true;
      });
      const out = await fc.check(property, { seed: SEED, numRuns: RUNS, endOnFailure: false });
      await Promise.all(background);
      if (out.failed) {
        const req = out.counterexample?.[0] as FuzzRequest | undefined;
        throw new Error(
          `${op.id} failed (reproduce with FUZZ_SEED=${SEED} FUZZ_RUNS=${RUNS}; fast-check path ${out.counterexamplePath}):\n` +
            `${String((out.errorInstance as Error)?.message ?? out.errorInstance)}\n${req ? printable(req) : ""}`,
        );
      }
      if (late.length) throw new Error(`${op.id} (FUZZ_SEED=${SEED}):\n${late.join("\n\n")}`);
      // After every operation that may write, the other user's world is exactly as it was.
      if (op.method !== "GET") expect(await victimListsNow()).toEqual(victimListsBefore);
    });
  }

  test("the other user's data is unchanged after the whole run", async () => {
    expect(await victimWorldNow()).toEqual(victimBefore);
    console.error(`openapi fuzz: ${requestsSent} requests sent; the fuzzer deleted its own account ${accountsDeleted} time(s) and carried on as a new user`);
  });

  test("every status answered is documented for its operation", () => {
    const report = [...undocumented].map(([id, s]) => `${id}: ${[...s].sort().join(", ")}`);
    expect(report).toEqual([]);
  });
});
