import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Server } from "bun";
import { eq, sql } from "drizzle-orm";
import { containerAddons, sandboxes } from "../../db/schema";
import { queryRows } from "../../src/database/client";
import { pidsOfUid } from "../../src/orchestrator/processes";
import { checkAddonHealth } from "../../src/services/sandboxes/addon-health";
import { proxyWebSocket } from "../../src/routes/upstream-proxy";
import { json, signUp, type TestUser } from "../helpers/app";
import { expectError } from "../helpers/expect";
import { securitySuite } from "../helpers/security";
import { useSandboxApp } from "../helpers/sandboxes";

// Add-on services for real: the local driver (bubblewrap) starts an add-on's service inside the
// sandbox next to OpenCode, on a loopback port it allocates, and Warren's authenticated proxy
// reaches it over HTTP and WebSockets. code-server and websockify/noVNC are not installed on CI, so
// the service here is a small Bun HTTP+WebSocket server inserted into the catalogue by this test,
// standing in for them; everything else (catalogue row, requirement check, port allocation, start
// inside the sandbox, the proxy with auth, stop) is the real mechanism.
setDefaultTimeout(120_000);

const app = useSandboxApp();
const ADDON = "standin-web";
const MISSING = "standin-missing";
// Bound read-only into the sandbox as the add-on's tool directory (its /tmp is otherwise private).
const toolDir = mkdtempSync(join(tmpdir(), "warren-addon-tool-"));
let server: Server<unknown>;
let base: string;

const STANDIN = `
import { existsSync } from "node:fs";
import { hostname } from "node:os";
const port = Number(process.argv[2]);
// What /health does, switched through the proxy: ok, fail (503) or hang (never answers).
let health = "ok";
Bun.serve({
  hostname: "127.0.0.1",
  port,
  fetch(req, srv) {
    const url = new URL(req.url);
    if (req.headers.get("upgrade")?.toLowerCase() === "websocket") {
      return srv.upgrade(req, { data: null }) ? undefined : new Response("bad upgrade", { status: 400 });
    }
    if (url.pathname === "/health") {
      if (health === "fail") return new Response("not ready", { status: 503 });
      if (health === "hang") return new Promise((resolve) => setTimeout(() => resolve(new Response("late")), 60_000));
      return new Response("ok");
    }
    if (url.pathname.startsWith("/health-mode/")) {
      health = url.pathname.slice("/health-mode/".length);
      return new Response(health);
    }
    if (url.pathname === "/pid") return new Response(String(process.pid));
    if (url.pathname === "/crash") {
      setTimeout(() => process.exit(3), 20);
      return new Response("crashing");
    }
    if (url.pathname === "/whoami") {
      return Response.json({
        uid: process.getuid(),
        home: process.env.HOME,
        hostname: hostname(),
        addonPort: process.env.WARREN_ADDON_PORT,
        sawAgentPassword: "OPENCODE_SERVER_PASSWORD" in process.env,
        seesHostFile: existsSync(url.searchParams.get("probe") ?? "/nonexistent"),
        cookie: req.headers.get("cookie"),
        authorization: req.headers.get("authorization"),
        prefix: req.headers.get("x-forwarded-prefix"),
      });
    }
    if (req.method === "POST") return new Response(req.body, { status: 201, headers: { "x-echo": "yes" } });
    return Response.json({ path: url.pathname, search: url.search });
  },
  websocket: { message(ws, message) { ws.send("echo:" + message); } },
});
`;

beforeAll(async () => {
  writeFileSync(join(toolDir, "standin.ts"), STANDIN);
  chmodSync(toolDir, 0o755);
  chmodSync(join(toolDir, "standin.ts"), 0o644);
  await app().database.db.insert(containerAddons).values([
    {
      id: ADDON,
      name: "Stand-in web service",
      category: "interface",
      service: { command: `exec /usr/bin/bun ${toolDir}/standin.ts {port}`, protocol: "http", readinessPath: "/health" },
      tools: [toolDir],
      requires: [{ command: "bun", package: "bun" }, { path: join(toolDir, "standin.ts"), package: "the stand-in script" }],
      installHint: "npm i -g bun",
      sortOrder: 90,
    },
    {
      id: MISSING,
      name: "Needs a missing tool",
      category: "devops",
      requires: [{ command: "warren-no-such-tool", package: "warren-standin-package" }],
      installHint: "apt-get install -y warren-standin-package",
      sortOrder: 91,
    },
  ]);
  // A real HTTP server around the app: WebSocket upgrades need one (app.request cannot upgrade).
  const { app: honoApp } = app();
  server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: (req, srv) => honoApp.fetch(req, srv), websocket: proxyWebSocket });
  base = `http://127.0.0.1:${server.port}`;
});

afterAll(async () => {
  await server?.stop(true);
  rmSync(toolDir, { recursive: true, force: true });
});

const createWith = async (u: TestUser, addonIds: string[]) => {
  const res = await app().request("/api/v1/sandboxes", { method: "POST", token: u.token, json: { name: "addons", addonIds } });
  expect(res.status).toBe(201);
  return json(res);
};

const waitFor = async (u: TestUser, id: string, status: string) => {
  const body = await json(await app().request(`/api/v1/sandboxes/${id}/wait?status=${status}&timeoutSeconds=60`, { token: u.token }));
  if (!body.reached) throw new Error(`sandbox ${id} did not reach ${status}: ${JSON.stringify(body.sandbox)}`);
  return body.sandbox;
};

const wsRoundTrip = (url: string, headers: Record<string, string>, message: string) =>
  new Promise<string>((resolve, reject) => {
    const BunWebSocket = WebSocket as unknown as new (url: string, options: Bun.WebSocketOptions) => WebSocket;
    const ws = new BunWebSocket(url, { headers });
    ws.onopen = () => ws.send(message);
    ws.onmessage = (e) => {
      resolve(String(e.data));
      ws.close();
    };
    ws.onerror = () => reject(new Error("websocket error"));
    ws.onclose = (e) => reject(new Error(`closed before a message (${e.code})`));
  });

securitySuite("sandbox add-ons", app, [
  {
    name: "GET /api/v1/sandboxes/:id/addons/:addonId/*",
    method: "GET",
    path: async (owner) => `/api/v1/sandboxes/${(await createWith(owner, [ADDON])).id}/addons/${ADDON}/whoami`,
    ownedResource: true,
    badInputs: [{ path: () => `/api/v1/sandboxes/${"x".repeat(65)}/addons/${ADDON}/whoami`, field: "id" }],
  },
  {
    name: "POST /api/v1/sandboxes/:id/addons/:addonId/*",
    method: "POST",
    body: { hello: "world" },
    path: async (owner) => `/api/v1/sandboxes/${(await createWith(owner, [ADDON])).id}/addons/${ADDON}/echo`,
    ownedResource: true,
    badInputs: [{ path: async (o) => `/api/v1/sandboxes/${(await createWith(o, [ADDON])).id}/addons/${"a".repeat(65)}/x`, field: "addonId" }],
  },
]);

describe("add-on services", () => {
  test("the orchestrator reports each add-on's availability on this host", async () => {
    const u = await signUp(app());
    const status = await json(await app().request("/api/v1/orchestrator", { token: u.token }));
    const byId = Object.fromEntries(status.addons.map((a: { id: string }) => [a.id, a]));
    expect(byId[ADDON]).toEqual({ id: ADDON, available: true, reason: null, install: null });
    expect(byId[MISSING].available).toBe(false);
    expect(byId[MISSING].reason).toContain("warren-no-such-tool");
    expect(byId[MISSING].reason).toContain("warren-standin-package");
    expect(byId[MISSING].install).toBe("apt-get install -y warren-standin-package");
    // The seeded catalogue is described too (what it needs depends on this host).
    expect(Object.keys(byId)).toEqual(expect.arrayContaining(["gui", "code-server", "databases", "cloud"]));
  });

  test("a service runs inside the sandbox, is reached through the owner's proxy over HTTP and WebSocket, and stops with it", async () => {
    const owner = await signUp(app());
    const other = await signUp(app());
    const s = await createWith(owner, [ADDON]);
    const endpoint = `/api/v1/sandboxes/${s.id}/addons/${ADDON}/`;
    expect(s.addons).toEqual([{ id: ADDON, kind: "service", endpoint, status: "stopped", healthCheckedAt: null, message: null }]);
    await expectError(await app().request(`${endpoint}whoami`, { token: owner.token }), 409, "INVALID_STATE");

    expect((await app().request(`/api/v1/sandboxes/${s.id}/start`, { method: "POST", token: owner.token })).status).toBe(202);
    const running = await waitFor(owner, s.id, "running");
    expect(running.addons).toEqual([{ id: ADDON, kind: "service", endpoint, status: "running", healthCheckedAt: running.startedAt, message: null }]);
    // The list view agrees with the single view.
    const list = await json(await app().request("/api/v1/sandboxes", { token: owner.token }));
    expect(list.data.find((x: { id: string }) => x.id === s.id).addons).toEqual(running.addons);
    // Never a raw port or loopback address in what users see.
    expect(JSON.stringify(running)).not.toContain("127.0.0.1");

    // Inside the sandbox: its own uid, HOME and hostname; Warren's data directory is hidden; the
    // agent's password is not in the service's environment; the caller's credentials never arrive.
    const state = JSON.parse(readFileSync(join(app().dataDir, "sandboxes", s.id, "state.json"), "utf8"));
    const probe = join(app().dataDir, "sandboxes", s.id, "state.json");
    const who = await json(await app().request(`${endpoint}whoami?probe=${encodeURIComponent(probe)}`, { token: owner.token, headers: { cookie: owner.cookie } }));
    expect(who).toMatchObject({ uid: state.uid, home: "/home/sandbox", hostname: "sandbox", sawAgentPassword: false, seesHostFile: false, cookie: null, authorization: null, prefix: endpoint });
    expect(who.addonPort).toBe(String(state.addonPorts[ADDON]));
    expect(pidsOfUid(state.uid).some((pid) => readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("standin.ts"))).toBe(true);

    // HTTP: any method, bodies streamed both ways, the path and query passed on.
    const echo = await app().request(`${endpoint}echo`, { method: "POST", token: owner.token, json: { hello: "world" } });
    expect(echo.status).toBe(201);
    expect(echo.headers.get("x-echo")).toBe("yes");
    expect(await echo.json()).toEqual({ hello: "world" });
    expect(await json(await app().request(`${endpoint}some/page?x=1`, { token: owner.token }))).toEqual({ path: "/some/page", search: "?x=1" });
    // HEAD: the service's answer, saying the length its GET has (it said 0 before).
    const head = await app().request(`${endpoint}some/page?x=1`, { method: "HEAD", token: owner.token });
    expect(head.status).toBe(200);
    expect(head.headers.get("content-length")).toBe(String(JSON.stringify({ path: "/some/page", search: "?x=1" }).length));
    // Without the trailing slash: redirected, so the service's relative links resolve.
    const bare = await app().request(endpoint.slice(0, -1), { token: owner.token });
    expect(bare.status).toBe(308);
    expect(bare.headers.get("location")).toBe(endpoint);

    // WebSocket through Warren's real HTTP server, for the owner only.
    const wsUrl = `${base.replace("http", "ws")}${endpoint}socket`;
    expect(await wsRoundTrip(wsUrl, { authorization: `Bearer ${owner.token}` }, "hello")).toBe("echo:hello");
    expect(await wsRoundTrip(wsUrl, { cookie: owner.cookie }, "by cookie")).toBe("echo:by cookie");
    await expect(wsRoundTrip(wsUrl, { authorization: `Bearer ${other.token}` }, "intruder")).rejects.toThrow();
    await expect(wsRoundTrip(wsUrl, {}, "anonymous")).rejects.toThrow();
    const intruderUpgrade = await fetch(`${base}${endpoint}socket`, { headers: { authorization: `Bearer ${other.token}`, upgrade: "websocket", connection: "Upgrade", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==", "sec-websocket-version": "13" } });
    expect(intruderUpgrade.status).toBe(404);
    // The owner's own cookie, sent by a page on an untrusted origin (cross-site WebSocket hijacking).
    const hijack = await fetch(`${base}${endpoint}socket`, { headers: { cookie: owner.cookie, origin: "https://evil.example.com", upgrade: "websocket", connection: "Upgrade", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==", "sec-websocket-version": "13" } });
    await expectError(hijack, 412, "PRECONDITION_FAILED");
    expect(await wsRoundTrip(wsUrl, { cookie: owner.cookie, origin: app().config.publicUrl }, "trusted page")).toBe("echo:trusted page");

    // Another user: 404; no session: 401; an add-on the sandbox does not have: 404.
    await expectError(await app().request(`${endpoint}whoami`, { token: other.token }), 404, "NOT_FOUND");
    await expectError(await app().request(`${endpoint}whoami`), 401, "UNAUTHENTICATED");
    await expectError(await app().request(`/api/v1/sandboxes/${s.id}/addons/gui/`, { token: owner.token }), 404, "NOT_FOUND");

    // Stopped: 409, and nothing of the sandbox runs any more (the service included).
    expect((await app().request(`/api/v1/sandboxes/${s.id}/stop`, { method: "POST", token: owner.token })).status).toBe(202);
    const stopped = await waitFor(owner, s.id, "stopped");
    expect(stopped.addons[0].status).toBe("stopped");
    await expectError(await app().request(`${endpoint}whoami`, { token: owner.token }), 409, "INVALID_STATE");
    expect(pidsOfUid(state.uid)).toEqual([]);
    await expect(fetch(`http://127.0.0.1:${state.addonPorts[ADDON]}/health`)).rejects.toThrow();
  });

  test("a service that crashes is started again by the sandbox's supervisor, and the logs say so", async () => {
    const owner = await signUp(app());
    const s = await createWith(owner, [ADDON]);
    const endpoint = `/api/v1/sandboxes/${s.id}/addons/${ADDON}/`;
    expect((await app().request(`/api/v1/sandboxes/${s.id}/start`, { method: "POST", token: owner.token })).status).toBe(202);
    await waitFor(owner, s.id, "running");
    const before = await (await app().request(`${endpoint}pid`, { token: owner.token })).text();

    expect(await (await app().request(`${endpoint}crash`, { token: owner.token })).text()).toBe("crashing");
    // Back within the first back-off (1 s) plus its start-up, as a new process; the proxy answers
    // 502 meanwhile.
    let after = before;
    for (let i = 0; i < 100 && after === before; i++) {
      const res = await app().request(`${endpoint}pid`, { token: owner.token });
      if (res.status === 200) after = await res.text();
      if (after === before) await Bun.sleep(100);
    }
    expect(after).toMatch(/^\d+$/);
    expect(after).not.toBe(before);
    const logs = await json(await app().request(`/api/v1/sandboxes/${s.id}/logs?tail=50`, { token: owner.token }));
    const lines = JSON.stringify(logs);
    expect(lines).toContain(`warren: add-on ${ADDON} exited with status 3; restarting in 1s`);
    // The sandbox itself never left running.
    expect((await json(await app().request(`/api/v1/sandboxes/${s.id}`, { token: owner.token }))).status).toBe("running");

    const state = JSON.parse(readFileSync(join(app().dataDir, "sandboxes", s.id, "state.json"), "utf8"));
    expect((await app().request(`/api/v1/sandboxes/${s.id}/stop`, { method: "POST", token: owner.token })).status).toBe(202);
    await waitFor(owner, s.id, "stopped");
    expect(pidsOfUid(state.uid)).toEqual([]);
  });

  test("a sandbox whose add-on needs something missing on the host is refused with 503 naming it", async () => {
    const u = await signUp(app());
    const s = await createWith(u, [MISSING]);
    expect(s.addons).toEqual([{ id: MISSING, kind: "tools", endpoint: null, status: "stopped", healthCheckedAt: null, message: null }]);
    const error = await expectError(await app().request(`/api/v1/sandboxes/${s.id}/start`, { method: "POST", token: u.token }), 503, "SERVICE_UNAVAILABLE");
    expect(error.message).toContain("warren-standin-package");
    expect(error.details.addons).toEqual([
      { id: MISSING, reason: expect.stringContaining("warren-no-such-tool"), install: "apt-get install -y warren-standin-package" },
    ]);
    // Nothing changed: still stopped, no operation queued, no workload.
    expect((await json(await app().request(`/api/v1/sandboxes/${s.id}`, { token: u.token }))).status).toBe("stopped");
    expect((await app().driver.inspect(s.id)).state).toBe("missing");
    // A tools-only add-on has no service to proxy to.
    await expectError(await app().request(`/api/v1/sandboxes/${s.id}/addons/${MISSING}/`, { token: u.token }), 404, "NOT_FOUND");
  });

  test("a service's status follows its health checks: running, unhealthy with the reason, running again, stopped", async () => {
    const owner = await signUp(app());
    const s = await createWith(owner, [ADDON]);
    const endpoint = `/api/v1/sandboxes/${s.id}/addons/${ADDON}/`;
    const view = async () => json(await app().request(`/api/v1/sandboxes/${s.id}`, { token: owner.token }));
    const addon = async () => (await view()).addons[0];
    // xmin changes with every write of the row, whatever the write sets.
    const stamp = async () => {
      const [r] = await queryRows<{ xmin: string; updated_at: unknown }>(app().database.db, sql`select xmin::text as xmin, updated_at from sandboxes where id = ${s.id}`);
      return r!;
    };
    // A job's change reaches cached pages when its notification arrives (milliseconds; a request
    // that writes waits for its own): the views below are read once it has.
    const check = async (at: number) => {
      app().clock.offsetMs = at;
      try {
        return await checkAddonHealth(app().rt);
      } finally {
        app().clock.offsetMs = 0;
        await app().pages.settle();
      }
    };
    const setHealth = async (mode: string) => expect(await (await app().request(`${endpoint}health-mode/${mode}`, { token: owner.token })).text()).toBe(mode);

    expect((await app().request(`/api/v1/sandboxes/${s.id}/start`, { method: "POST", token: owner.token })).status).toBe(202);
    const started = await waitFor(owner, s.id, "running");
    // The driver's start waited for the service to answer: running from the first view.
    expect(started.addons[0]).toMatchObject({ status: "running", healthCheckedAt: started.startedAt, message: null });

    // A check that finds nothing new writes nothing: not the row, not updated_at.
    const before = await stamp();
    const quiet = await check(1_000);
    expect(quiet.checked).toBeGreaterThanOrEqual(1);
    expect(quiet.changed).not.toContain(s.id);
    expect(await stamp()).toEqual(before);
    expect((await view()).updatedAt).toBe(started.updatedAt);

    // The service answers 503: one failed check is not enough (no flapping)…
    await setHealth("fail");
    expect((await check(2_000)).changed).toContain(s.id);
    expect((await stamp()).xmin).not.toBe(before.xmin); // (the failure count was written: the stamp sees writes)
    expect(await addon()).toMatchObject({ status: "running", message: null });
    // …two in a row are: unhealthy, with when and why, and updated_at still what the user changed.
    const t0 = Date.now();
    await check(3_000);
    const t1 = Date.now();
    const unhealthy = await view();
    expect(unhealthy.addons[0]).toEqual({ id: ADDON, kind: "service", endpoint, status: "unhealthy", healthCheckedAt: expect.any(String), message: "GET /health answered HTTP 503" });
    // The time of the check that found it unhealthy (on the runtime's clock, moved 3 s ahead).
    const checkedAt = Date.parse(unhealthy.addons[0].healthCheckedAt);
    expect(checkedAt).toBeGreaterThanOrEqual(t0 + 3_000);
    expect(checkedAt).toBeLessThanOrEqual(t1 + 3_000);
    expect(unhealthy.updatedAt).toBe(started.updatedAt);
    expect(unhealthy.status).toBe("running");
    // The list says the same as the single view, and neither shows an address or a port.
    const list = await json(await app().request("/api/v1/sandboxes", { token: owner.token }));
    expect(list.data.find((x: { id: string }) => x.id === s.id).addons).toEqual(unhealthy.addons);
    expect(JSON.stringify(unhealthy)).not.toContain("127.0.0.1");
    // Still failing the same way: nothing to record.
    const steady = await stamp();
    expect((await check(4_000)).changed).not.toContain(s.id);
    expect(await stamp()).toEqual(steady);

    // No answer at all (the probe's 2 s limit): still unhealthy, the reason now says so.
    await setHealth("hang");
    expect((await check(5_000)).changed).toContain(s.id);
    expect(await addon()).toMatchObject({ status: "unhealthy", message: "did not answer GET /health within 2 s" });

    // It answers again: running at the next check.
    await setHealth("ok");
    await check(6_000);
    expect(await addon()).toMatchObject({ status: "running", message: null });

    // A sandbox settled to running without a checked start (the reconciler's way) is starting
    // until a check has seen the service answer.
    await app().database.db.update(sandboxes).set({ addonHealth: {} }).where(eq(sandboxes.id, s.id));
    await app().pages.settle();
    expect(await addon()).toMatchObject({ status: "starting", healthCheckedAt: null, message: null });
    await check(7_000);
    expect(await addon()).toMatchObject({ status: "running", message: null });

    // A transition between a check's read and its write (here a restart, as the operation worker
    // records it) wins: a check never writes what it saw onto a newer run.
    await setHealth("fail");
    const driver = app().rt.driver;
    const racing = Object.create(driver);
    racing.inspect = async (id: string) => {
      const info = await driver.inspect(id);
      await app().database.db.update(sandboxes).set({ version: sql`${sandboxes.version} + 1`, addonHealth: {} }).where(eq(sandboxes.id, id));
      return info;
    };
    expect((await checkAddonHealth({ ...app().rt, driver: racing })).skipped).toContain(s.id);
    await app().pages.settle();
    expect(await addon()).toMatchObject({ status: "starting", healthCheckedAt: null });
    await setHealth("ok");
    await check(8_000);
    expect(await addon()).toMatchObject({ status: "running", message: null });

    // Stopped: stopped, and the next run starts from a clean slate.
    expect((await app().request(`/api/v1/sandboxes/${s.id}/stop`, { method: "POST", token: owner.token })).status).toBe(202);
    const stopped = await waitFor(owner, s.id, "stopped");
    expect(stopped.addons[0]).toEqual({ id: ADDON, kind: "service", endpoint, status: "stopped", healthCheckedAt: null, message: null });
    expect((await app().database.db.select({ h: sandboxes.addonHealth }).from(sandboxes).where(eq(sandboxes.id, s.id)))[0]!.h).toEqual({});
    expect((await check(9_000)).changed).not.toContain(s.id);
  });
});
