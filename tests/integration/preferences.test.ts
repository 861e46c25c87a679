import { describe, expect, test } from "bun:test";
import { and, eq } from "drizzle-orm";
import { activityLog, userPreferences } from "../../db/schema";
import { json, signInAgain, signUp, useTestApp, type TestUser } from "../helpers/app";
import { expectError } from "../helpers/expect";
import { securitySuite } from "../helpers/security";

const app = useTestApp();
const PATH = "/api/v1/me/preferences";

const FULL = {
  themeMode: "dark",
  themePreset: "solarized",
  autoRefreshInterval: 60,
  inAppNotifications: false,
  systemNotifications: true,
  defaultResourceTierId: "builder",
  defaultFlavorId: "python",
  defaultAddonIds: ["code-server", "databases"],
  defaultAgentId: "plan",
  defaultProviderId: null,
  defaultModelId: null,
};

const secondDevice = (u: TestUser) => signInAgain(app(), u);

const patch = (token: string, body: unknown, headers: Record<string, string> = {}) =>
  app().request(PATH, { method: "PATCH", token, json: body, headers });

securitySuite("preferences", app, [
  { name: "GET /api/v1/me/preferences", method: "GET", path: () => PATH },
  {
    name: "PUT /api/v1/me/preferences",
    method: "PUT",
    path: () => PATH,
    body: FULL,
    badInputs: [
      { body: { ...FULL, themePreset: undefined }, field: "themePreset" },
      { body: { ...FULL, themeMode: "blue" }, field: "themeMode" },
      { body: { ...FULL, version: 7 }, field: "version" },
      { body: { ...FULL, defaultFlavorId: "go" }, field: "defaultFlavorId" },
    ],
  },
  {
    name: "PATCH /api/v1/me/preferences",
    method: "PATCH",
    path: () => PATH,
    body: { themeMode: "light" },
    badInputs: [
      { body: { autoRefreshInterval: 4 }, field: "autoRefreshInterval" },
      { body: { autoRefreshInterval: 301 }, field: "autoRefreshInterval" },
      { body: { defaultResourceTierId: "galactic" }, field: "defaultResourceTierId" },
      { body: { defaultAddonIds: ["code-server", "nope"] }, field: "defaultAddonIds[1]" },
      { body: { defaultAgentId: "../evil" }, field: "defaultAgentId" },
      { body: { userId: "usr_someone_else" }, field: "userId" },
      { body: { defaultProviderId: "openai", defaultModelId: "gpt\u0000" }, field: "defaultModelId" },
      { body: { defaultProviderId: "openai", defaultModelId: "gpt\udfff" }, field: "defaultModelId" },
    ],
  },
  { name: "DELETE /api/v1/me/preferences", method: "DELETE", path: () => PATH },
  { name: "GET /api/v1/me/preferences/events", method: "GET", path: () => `${PATH}/events` },
]);

describe("reading", () => {
  test("defaults at version 0 with a quoted ETag, and nothing is written", async () => {
    const u = await signUp(app());
    const res = await app().request(PATH, { token: u.token });
    expect(res.status).toBe(200);
    expect(res.headers.get("etag")).toBe('"0"');
    expect(await json(res)).toEqual({
      themeMode: "system",
      themePreset: "default",
      autoRefreshInterval: 30,
      inAppNotifications: true,
      systemNotifications: false,
      defaultResourceTierId: null,
      defaultFlavorId: null,
      defaultAddonIds: [],
      defaultAgentId: null,
      defaultProviderId: null,
      defaultModelId: null,
      version: 0,
      updatedAt: null,
    });
    const rows = await app().database.db.select().from(userPreferences).where(eq(userPreferences.userId, u.id));
    expect(rows).toEqual([]);
  });
});

describe("writing", () => {
  test("PUT replaces, PATCH merges, DELETE resets; every change is a new version with its activity entry", async () => {
    const u = await signUp(app());
    const put = await app().request(PATH, { method: "PUT", token: u.token, json: FULL });
    expect(put.status).toBe(200);
    expect(put.headers.get("etag")).toBe('"1"');
    expect(await json(put)).toMatchObject({ ...FULL, version: 1 });

    const patched = await patch(u.token, { themeMode: "light", defaultAddonIds: [] });
    expect(patched.headers.get("etag")).toBe('"2"');
    expect(await json(patched)).toMatchObject({ ...FULL, themeMode: "light", defaultAddonIds: [], version: 2 });

    const reset = await app().request(PATH, { method: "DELETE", token: u.token });
    expect(reset.status).toBe(200);
    expect(reset.headers.get("etag")).toBe('"3"');
    const body = await json(reset);
    expect(body).toMatchObject({ themeMode: "system", themePreset: "default", defaultFlavorId: null, version: 3 });
    expect(await json(await app().request(PATH, { token: u.token }))).toEqual(body);

    const entries = await app()
      .database.db.select()
      .from(activityLog)
      .where(and(eq(activityLog.userId, u.id), eq(activityLog.entityType, "preferences")))
      .orderBy(activityLog.createdAt, activityLog.id);
    expect(entries.map((e) => [e.action, e.metadata.version])).toEqual([
      ["preferences.update", 1],
      ["preferences.update", 2],
      ["preferences.reset", 3],
    ]);
    expect(entries[1]!.metadata.fields).toEqual(["defaultAddonIds", "themeMode"]);
  });

  test("sandbox defaults are checked against the catalog, naming the field; refused writes change nothing", async () => {
    const u = await signUp(app());
    const cases: Array<[unknown, string, string]> = [
      [{ defaultFlavorId: "polyglot" }, "defaultFlavorId", "disabled"],
      [{ defaultFlavorId: "cobol" }, "defaultFlavorId", "not a flavor"],
      [{ defaultAddonIds: ["gpu"] }, "defaultAddonIds[0]", "GPU"],
      [{ defaultModelId: "gpt-9" }, "defaultProviderId", "required"],
      [{ defaultProviderId: "no-such-provider" }, "defaultProviderId", "not a known provider"],
      [{ defaultAddonIds: ["gui", "gui"] }, "defaultAddonIds", "repeat"],
    ];
    for (const [body, field, words] of cases) {
      const error = await expectError(await patch(u.token, body), 400, "VALIDATION_FAILED");
      expect(error.details.fields.map((f: { field: string }) => f.field)).toContain(field);
      expect(error.message).toContain(words);
    }
    expect((await json(await app().request(PATH, { token: u.token }))).version).toBe(0);
    const ok = await patch(u.token, { defaultFlavorId: "rust", defaultResourceTierId: "power", defaultAddonIds: ["cloud"] });
    expect(ok.status).toBe(200);
  });

  test("If-Match: current and * pass; stale and weak get 412 with the current document; malformed is 400", async () => {
    const u = await signUp(app());
    expect((await patch(u.token, { themeMode: "dark" }, { "if-match": '"0"' })).status).toBe(200);
    expect((await patch(u.token, { themeMode: "light" }, { "if-match": '"7", "1"' })).status).toBe(200);
    expect((await patch(u.token, { themePreset: "x" }, { "if-match": "*" })).status).toBe(200);
    const current = await json(await app().request(PATH, { token: u.token }));
    for (const stale of ['"1"', 'W/"3"']) {
      const res = await patch(u.token, { themeMode: "dark" }, { "if-match": stale });
      const error = await expectError(res, 412, "PRECONDITION_FAILED");
      expect(res.headers.get("etag")).toBe('"3"');
      expect(error.details.current).toEqual(current);
    }
    for (const method of ["PUT", "DELETE"]) {
      const res = await app().request(PATH, { method, token: u.token, json: method === "PUT" ? FULL : undefined, headers: { "if-match": '"2"' } });
      await expectError(res, 412, "PRECONDITION_FAILED");
    }
    const bad = await expectError(await patch(u.token, { themeMode: "dark" }, { "if-match": "three" }), 400, "VALIDATION_FAILED");
    expect(bad.message).toContain("If-Match");
    expect(await json(await app().request(PATH, { token: u.token }))).toEqual(current);
  });
});

describe("concurrent writers", () => {
  test("two devices racing with the same If-Match: one wins, the other gets 412, and its retry loses nothing", async () => {
    const u = await signUp(app());
    const phone = await secondDevice(u);
    await patch(u.token, { themeMode: "dark" });
    const etag = (await app().request(PATH, { token: u.token })).headers.get("etag")!;
    const [a, b] = await Promise.all([
      patch(u.token, { themePreset: "from-laptop" }, { "if-match": etag }),
      patch(phone, { autoRefreshInterval: 120 }, { "if-match": etag }),
    ]);
    expect([a.status, b.status].sort()).toEqual([200, 412]);
    const [loserRes, loserBody, loserToken] = a.status === 412 ? [a, { themePreset: "from-laptop" }, u.token] : [b, { autoRefreshInterval: 120 }, phone];
    const error = await json(loserRes);
    expect(error.error.details.current.version).toBe(2);
    const retry = await patch(loserToken, loserBody, { "if-match": `"${error.error.details.current.version}"` });
    expect(retry.status).toBe(200);
    expect(await json(retry)).toMatchObject({ themeMode: "dark", themePreset: "from-laptop", autoRefreshInterval: 120, version: 3 });
  });

  test("20 concurrent PATCHes without If-Match are all applied: version +20, no field lost", async () => {
    const u = await signUp(app());
    const devices = [u.token, await secondDevice(u)];
    const bodies = Array.from({ length: 20 }, (_, i) => {
      switch (i % 4) {
        case 0:
          return { themePreset: `preset-${i}` };
        case 1:
          return { autoRefreshInterval: 100 + i };
        case 2:
          return { defaultAgentId: `agent-${i}` };
        default:
          return { systemNotifications: true, themeMode: "dark" as const };
      }
    });
    const results = await Promise.all(bodies.map((body, i) => patch(devices[i % 2]!, body)));
    expect(results.map((r) => r.status)).toEqual(Array(20).fill(200));
    const versions = (await Promise.all(results.map((r) => json(r)))).map((d) => d.version).sort((x, y) => x - y);
    expect(versions).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    const final = await json(await app().request(PATH, { token: u.token }));
    expect(final.version).toBe(20);
    expect(bodies.filter((_, i) => i % 4 === 0).map((b) => b.themePreset)).toContain(final.themePreset);
    expect(bodies.filter((_, i) => i % 4 === 1).map((b) => b.autoRefreshInterval)).toContain(final.autoRefreshInterval);
    expect(bodies.filter((_, i) => i % 4 === 2).map((b) => b.defaultAgentId)).toContain(final.defaultAgentId);
    expect(final).toMatchObject({ systemNotifications: true, themeMode: "dark" });
    const entries = await app().database.db.select().from(activityLog).where(and(eq(activityLog.userId, u.id), eq(activityLog.action, "preferences.update")));
    expect(entries.length).toBe(20);
  });
});

describe("OpenAPI", () => {
  test("documents the preferences and agent-configuration routes, their headers and errors", async () => {
    const doc = await json(await app().request("/api/openapi.json"));
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining([
        PATH,
        `${PATH}/events`,
        "/api/v1/me/agent-config",
        "/api/v1/me/agent-config/files",
        "/api/v1/me/agent-config/files/{type}/{name}",
      ]),
    );
    expect(Object.keys(doc.paths[PATH]).sort()).toEqual(["delete", "get", "patch", "put"]);
    for (const method of ["put", "patch", "delete"]) {
      const op = doc.paths[PATH][method];
      expect(op.parameters.map((p: { name: string; in: string }) => `${p.in}:${p.name}`)).toContain("header:if-match");
      expect(op.responses["412"].content["application/json"].schema.$ref).toBe("#/components/schemas/Error");
      expect(op.responses["200"].headers.ETag).toBeDefined();
    }
    expect(doc.paths[`${PATH}/events`].get.responses["200"].content["text/event-stream"]).toBeDefined();
    const filePut = doc.paths["/api/v1/me/agent-config/files/{type}/{name}"].put;
    expect(Object.keys(filePut.responses)).toEqual(expect.arrayContaining(["200", "201", "400", "401", "403", "412", "413"]));
    expect(Object.keys(doc.components.schemas.SandboxSync.properties).sort()).toEqual(["applied", "restartRequired"]);
    expect(JSON.stringify(doc.components.schemas.AgentConfigWritten)).toContain('"sandboxes":{"$ref":"#/components/schemas/SandboxSync"}');
  });
});
