import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { eq } from "drizzle-orm";
import { activityLog, sandboxes, userPreferences } from "../../db/schema";
import { json, signUp, type TestUser } from "../helpers/app";
import { expectError } from "../helpers/expect";
import { securitySuite } from "../helpers/security";
import { useSandboxApp } from "../helpers/sandboxes";

// Real workloads: the local driver runs OpenCode under bubblewrap for the lifecycle tests.
setDefaultTimeout(120_000);

const app = useSandboxApp();

const create = async (u: TestUser, body: Record<string, unknown> = {}, headers: Record<string, string> = {}) =>
  app().request("/api/v1/sandboxes", { method: "POST", token: u.token, json: { name: "My Project", ...body }, headers });

const createOk = async (u: TestUser, body: Record<string, unknown> = {}) => {
  const res = await create(u, body);
  expect(res.status).toBe(201);
  return json(res);
};

const waitFor = async (u: TestUser, id: string, status: string) => {
  const res = await app().request(`/api/v1/sandboxes/${id}/wait?status=${status}&timeoutSeconds=25`, { token: u.token });
  expect(res.status).toBe(200);
  const body = await json(res);
  if (!body.reached) throw new Error(`sandbox ${id} did not reach ${status}: ${JSON.stringify(body.sandbox)}`);
  return body.sandbox;
};

const owned = (method: "GET" | "POST" | "PATCH" | "DELETE", suffix: string, body?: unknown) => ({
  name: `${method} /api/v1/sandboxes/:id${suffix}`,
  method,
  path: async (owner: TestUser) => `/api/v1/sandboxes/${(await createOk(owner)).id}${suffix}`,
  ...(body === undefined ? {} : { body }),
  ownedResource: true,
  verifyUntouched: async (owner: TestUser, path: string) => {
    const id = path.split("/")[4]!;
    const res = await app().request(`/api/v1/sandboxes/${id}`, { token: owner.token });
    expect(res.status).toBe(200);
    const s = await json(res);
    expect([s.status, s.name]).toEqual(["stopped", "My Project"]);
  },
});

securitySuite("sandboxes", app, [
  {
    name: "POST /api/v1/sandboxes",
    method: "POST",
    path: () => "/api/v1/sandboxes",
    body: { name: "x" },
    badInputs: [
      { body: { name: "" }, field: "name" },
      // Names show in lists: no line breaks, no "\u202eevil" that reads as "live".
      { body: { name: "a\nb" }, field: "name" },
      { body: { name: "\u202eevil" }, field: "name" },
      // Half an emoji (a client's slice cut a surrogate pair) reached the activity log's jsonb: a 500.
      { body: { name: "half \ud83d" }, field: "name" },
      { body: { name: "x", flavorId: "go" }, field: "flavorId" },
      { body: { name: "x", addonIds: ["gpu"] }, field: "addonIds" },
      { body: { name: "x", repositoryUrl: "http://github.com/a/b" }, field: "repositoryUrl" },
      { body: { name: "x", repositoryUrl: "https://user:pw@github.com/a/b" }, field: "repositoryUrl" },
      { body: { name: "x", env: { HOME: "/etc" } }, field: "env.HOME" },
      { body: { name: "x", env: { "1BAD": "v" } }, field: "env.1BAD" },
      { body: { name: "x", idleTimeoutMinutes: -1 }, field: "idleTimeoutMinutes" },
    ],
  },
  {
    name: "GET /api/v1/sandboxes",
    method: "GET",
    path: () => "/api/v1/sandboxes",
    badInputs: [
      { path: () => "/api/v1/sandboxes?status=sleeping", field: "status" },
      { path: () => "/api/v1/sandboxes?limit=1000", field: "limit" },
    ],
  },
  owned("GET", ""),
  { ...owned("PATCH", "", { name: "Renamed by intruder" }), badInputs: [{ path: async (o) => `/api/v1/sandboxes/${(await createOk(o)).id}`, body: { name: 5 }, field: "name" }] },
  owned("DELETE", ""),
  owned("POST", "/start"),
  owned("POST", "/stop"),
  owned("POST", "/restart"),
  { ...owned("GET", "/wait?status=running&timeoutSeconds=1"), badInputs: [{ path: async (o) => `/api/v1/sandboxes/${(await createOk(o)).id}/wait?status=gone`, field: "status" }] },
  owned("GET", "/logs"),
  owned("GET", "/agent/session"),
]);

describe("create", () => {
  test("catalog defaults, a slug unique per user, and an activity entry", async () => {
    const u = await signUp(app());
    const a = await createOk(u, { name: "Été Project!" });
    expect(a).toMatchObject({ slug: "ete-project", resourceTierId: "starter", flavorId: "fullstack", addonIds: [], status: "stopped", desiredStatus: "stopped" });
    expect(a.id).toStartWith("sbx_");
    expect(a.agentEndpoint).toBe(`/api/v1/sandboxes/${a.id}/agent`);
    const b = await createOk(u, { name: "Été project" });
    expect(b.slug).toBe("ete-project-2");
    const other = await signUp(app());
    expect((await createOk(other, { name: "Été Project!" })).slug).toBe("ete-project");
    const entries = await app().database.db.select().from(activityLog).where(eq(activityLog.entityId, a.id));
    expect(entries.map((e) => e.action)).toEqual(["sandbox.create"]);
  });

  test("twenty concurrent creates with one name get twenty distinct slugs", async () => {
    const u = await signUp(app());
    const results = await Promise.all(Array.from({ length: 20 }, () => create(u, { name: "Race" })));
    expect(results.map((r) => r.status)).toEqual(Array(20).fill(201));
    const slugs = await Promise.all(results.map(async (r) => (await json(r)).slug));
    expect(new Set(slugs).size).toBe(20);
  });

  test("the user's preferences supply the defaults", async () => {
    const u = await signUp(app());
    await app().database.db.insert(userPreferences).values({ userId: u.id, defaultResourceTierId: "builder", defaultFlavorId: "python", defaultAddonIds: ["code-server"] });
    expect(await createOk(u)).toMatchObject({ resourceTierId: "builder", flavorId: "python", addonIds: ["code-server"] });
  });

  test("an Idempotency-Key returns the same sandbox on retry, and refuses a different body", async () => {
    const u = await signUp(app());
    const first = await create(u, { name: "Once" }, { "idempotency-key": "k-123" });
    expect(first.status).toBe(201);
    const again = await create(u, { name: "Once" }, { "idempotency-key": "k-123" });
    expect(again.status).toBe(200);
    expect((await json(again)).id).toBe((await json(first)).id);
    await expectError(await create(u, { name: "Twice" }, { "idempotency-key": "k-123" }), 409, "CONFLICT");
    const list = await json(await app().request("/api/v1/sandboxes?q=Once", { token: u.token }));
    expect(list.data).toHaveLength(1);
  });

  test("incompatible add-ons are refused naming the add-on and the rule", async () => {
    const u = await signUp(app());
    const error = await expectError(await create(u, { addonIds: ["gpu"] }), 400, "VALIDATION_FAILED");
    expect(error.message).toContain('add-on "gpu" requires a GPU');
    expect(error.details.fields[0].field).toBe("addonIds");
  });

  test("refused environment variable names say why, each under its own name", async () => {
    const u = await signUp(app());
    const error = await expectError(await create(u, { env: { PATH: "/evil", "1BAD": "v", MY_TOKEN: "kept" } }), 400, "VALIDATION_FAILED");
    const fields = Object.fromEntries(error.details.fields.map((f: { field: string; message: string }) => [f.field, f.message]));
    expect(fields).toEqual({
      "env.PATH": "is reserved by Warren",
      "env.1BAD": "names are letters, digits and underscores, not starting with a digit",
    });
    expect(error.message).toBe('Invalid body field "env.PATH": is reserved by Warren (and 1 more)');
  });

  test("the sandbox quota is 403 LIMIT_EXCEEDED with the numbers", async () => {
    const u = await signUp(app());
    const [row] = await app().database.db.select().from(sandboxes).limit(1);
    expect(row).toBeDefined();
    const max = 200;
    // Fill up to the quota through the database (a user's own rows), then the API refuses.
    const base = (await createOk(u)).id;
    const values = Array.from({ length: max - 1 }, (_, i) => ({ id: `${base}_${i}`, userId: u.id, name: `n${i}`, slug: `filler-${i}`, resourceTierId: "starter", flavorId: "fullstack" }));
    await app().database.db.insert(sandboxes).values(values);
    const error = await expectError(await create(u), 403, "LIMIT_EXCEEDED");
    expect(error.details).toEqual({ limit: "sandboxes", max, current: max });
  });
});

describe("list and get", () => {
  test("pages newest first, filters by status and name", async () => {
    const u = await signUp(app());
    for (const name of ["alpha", "beta", "gamma"]) await createOk(u, { name });
    const page1 = await json(await app().request("/api/v1/sandboxes?limit=2", { token: u.token }));
    expect(page1.data.map((s: { name: string }) => s.name)).toEqual(["gamma", "beta"]);
    const page2 = await json(await app().request(`/api/v1/sandboxes?limit=2&cursor=${page1.nextCursor}`, { token: u.token }));
    expect(page2.data.map((s: { name: string }) => s.name)).toEqual(["alpha"]);
    expect(page2.nextCursor).toBeNull();
    const q = await json(await app().request("/api/v1/sandboxes?q=ET", { token: u.token }));
    expect(q.data.map((s: { name: string }) => s.name)).toEqual(["beta"]);
    const stopped = await json(await app().request("/api/v1/sandboxes?status=running", { token: u.token }));
    expect(stopped.data).toEqual([]);
  });

  test("filters combine with the cursor; % and _ in q are literal; each caller sees only their own", async () => {
    const u = await signUp(app());
    const other = await signUp(app());
    for (const name of ["100%_done", "100xydone", "half_done", "plain"]) await createOk(u, { name });
    await createOk(other, { name: "100%_done elsewhere" });
    const names = async (token: string, query: string) => {
      const body = await json(await app().request(`/api/v1/sandboxes?${query}`, { token }));
      return { names: body.data.map((s: { name: string }) => s.name) as string[], next: body.nextCursor as string | null };
    };
    // The same query shapes several times (they run as prepared statements), for two users.
    for (let i = 0; i < 6; i++) {
      expect((await names(u.token, `q=${encodeURIComponent("100%_")}`)).names).toEqual(["100%_done"]);
      expect((await names(other.token, `q=${encodeURIComponent("100%_")}`)).names).toEqual(["100%_done elsewhere"]);
      expect((await names(u.token, "q=_done")).names).toEqual(["half_done", "100%_done"]);
    }
    const statuses = (await json(await app().request("/api/v1/sandboxes", { token: u.token }))).data.map((s: { status: string }) => s.status);
    // Sandboxes created without autoStart wait in one status; the filter and the cursor page through it.
    const status = statuses[0];
    expect(statuses.every((s: string) => s === status)).toBe(true);
    const all: string[] = [];
    let next: string | null = null;
    do {
      const page = await names(u.token, `status=${status}&q=done&limit=1${next ? `&cursor=${next}` : ""}`);
      all.push(...page.names);
      next = page.next;
    } while (next);
    expect(all).toEqual(["half_done", "100xydone", "100%_done"]);
  });
});

describe("lifecycle with the local driver", () => {
  test("start, reach OpenCode through the proxy, stop, delete: no process left", async () => {
    const u = await signUp(app());
    const s = await createOk(u, { resourceTierId: "micro", env: { PROJECT_MODE: "test" } });
    expect(s.envNames).toEqual(["PROJECT_MODE"]);
    const started = await app().request(`/api/v1/sandboxes/${s.id}/start`, { method: "POST", token: u.token });
    expect(started.status).toBe(202);
    expect((await json(started)).status).toBe("starting");
    const running = await waitFor(u, s.id, "running");
    expect(running.limits).toMatchObject({ memoryMb: 1024 });
    expect(running.expiresAt).not.toBeNull();

    const sessions = await app().request(`/api/v1/sandboxes/${s.id}/agent/session`, { token: u.token });
    expect(sessions.status).toBe(200);
    expect(Array.isArray(await sessions.json())).toBe(true);

    await expectError(await app().request(`/api/v1/sandboxes/${s.id}/start`, { method: "POST", token: u.token }), 409, "INVALID_STATE");
    const reshape = await app().request(`/api/v1/sandboxes/${s.id}`, { method: "PATCH", token: u.token, json: { resourceTierId: "power" } });
    expect((await expectError(reshape, 409, "INVALID_STATE")).details.status).toBe("running");

    const logs = await json(await app().request(`/api/v1/sandboxes/${s.id}/logs?tail=50`, { token: u.token }));
    expect(Array.isArray(logs.lines)).toBe(true);

    expect((await app().request(`/api/v1/sandboxes/${s.id}/stop`, { method: "POST", token: u.token })).status).toBe(202);
    const stopped = await waitFor(u, s.id, "stopped");
    expect(stopped.statusReason).toBe("user");
    await expectError(await app().request(`/api/v1/sandboxes/${s.id}/agent/session`, { token: u.token }), 409, "INVALID_STATE");

    const del = await app().request(`/api/v1/sandboxes/${s.id}`, { method: "DELETE", token: u.token });
    expect(del.status).toBe(202);
    expect((await app().request(`/api/v1/sandboxes/${s.id}`, { method: "DELETE", token: u.token })).status).toBeOneOf([202, 404]);
    for (let i = 0; i < 100 && (await app().request(`/api/v1/sandboxes/${s.id}`, { token: u.token })).status !== 404; i++) await Bun.sleep(100);
    await expectError(await app().request(`/api/v1/sandboxes/${s.id}`, { token: u.token }), 404, "NOT_FOUND");
    expect((await app().driver.inspect(s.id)).state).toBe("missing");
    const actions = (await app().database.db.select().from(activityLog).where(eq(activityLog.entityId, s.id))).map((e) => e.action);
    expect(actions).toEqual(expect.arrayContaining(["sandbox.create", "sandbox.start", "sandbox.running", "sandbox.stop", "sandbox.stopped", "sandbox.delete", "sandbox.deleted"]));
  });

  test("a hundred concurrent start calls: one wins, one workload runs", async () => {
    const u = await signUp(app());
    const s = await createOk(u, { resourceTierId: "micro" });
    const results = await Promise.all(
      Array.from({ length: 100 }, () => app().request(`/api/v1/sandboxes/${s.id}/start`, { method: "POST", token: u.token })),
    );
    const statuses = results.map((r) => r.status).sort();
    expect(statuses.filter((x) => x === 202)).toHaveLength(1);
    expect(statuses.filter((x) => x === 409)).toHaveLength(99);
    await waitFor(u, s.id, "running");
    const mine = (await app().driver.listManaged()).filter((w) => w.sandboxId === s.id && w.state === "running");
    expect(mine).toHaveLength(1);
    await app().request(`/api/v1/sandboxes/${s.id}/stop`, { method: "POST", token: u.token });
    await waitFor(u, s.id, "stopped");
  });
});
