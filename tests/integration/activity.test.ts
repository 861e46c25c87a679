import { describe, expect, test } from "bun:test";
import { parse } from "csv-parse/sync";
import { asc, eq } from "drizzle-orm";
import { activityLog } from "../../db/schema";
import { ACTIVITY_ACTIONS, recordActivity } from "../../src/services/activity/record";
import { systemContext } from "../../src/context";
import { json, memoryLogger, signInAgain, signUp, useTestApp, type TestUser } from "../helpers/app";
import { expectError } from "../helpers/expect";
import { securitySuite } from "../helpers/security";

// The trusted proxy header: only its last entry is the client's address (src/middleware/client-ip.ts).
const app = useTestApp({ env: { CLIENT_IP_HEADER: "x-forwarded-for" } });

const entriesOf = (userId: string) =>
  app().database.db.select().from(activityLog).where(eq(activityLog.userId, userId)).orderBy(asc(activityLog.createdAt), asc(activityLog.id));

/** Writes entries straight through the service helper, at chosen times, for filter tests. */
async function seed(u: TestUser, entries: Array<{ action: (typeof ACTIVITY_ACTIONS)[number]; at: string; entityType?: string; entityId?: string; metadata?: Record<string, unknown> }>) {
  const db = app().database.db;
  for (const e of entries) {
    const ctx = { ...systemContext({ db, logger: memoryLogger().logger, now: () => new Date(e.at) }, u.id), actor: "user" as const };
    await db.transaction((tx) => recordActivity(tx, ctx, e));
  }
}

securitySuite("activity", app, [
  {
    name: "GET /api/v1/me/activity",
    method: "GET",
    path: () => "/api/v1/me/activity",
    badInputs: [
      { path: () => "/api/v1/me/activity?action=sandbox.explode", field: "action" },
      { path: () => "/api/v1/me/activity?from=yesterday", field: "from" },
      { path: () => "/api/v1/me/activity?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z", field: "to" },
      { path: () => "/api/v1/me/activity?cursor=not-a-cursor", field: "cursor" },
      { path: () => "/api/v1/me/activity?limit=1000", field: "limit" },
      { path: () => `/api/v1/me/activity?entityId=${"x".repeat(200)}`, field: "entityId" },
    ],
  },
  {
    name: "GET /api/v1/me/activity/stats",
    method: "GET",
    path: () => "/api/v1/me/activity/stats",
    badInputs: [
      { path: () => "/api/v1/me/activity/stats?to=2026-13-45", field: "to" },
      { path: () => "/api/v1/me/activity/stats?from=2026-02-01T00:00:00Z&to=2026-02-01T00:00:00Z", field: "to" },
    ],
  },
  {
    name: "GET /api/v1/me/activity/export",
    method: "GET",
    path: () => "/api/v1/me/activity/export?format=csv",
    badInputs: [
      { path: () => "/api/v1/me/activity/export?format=xml", field: "format" },
      { path: () => "/api/v1/me/activity/export?action=nope", field: "action" },
    ],
  },
]);

describe("auth events from Better Auth's hooks", () => {
  test("sign-up, sign-in and sign-out are recorded with the trusted address and user agent", async () => {
    const email = `hooks.${Date.now()}@example.com`;
    const headers = {
      origin: app().config.publicUrl,
      "user-agent": "warren-test/1.0",
      // The client prepends a forged address; the proxy appended the real one last.
      "x-forwarded-for": "6.6.6.6, 203.0.113.7",
      // Better Auth's own header: whatever a client sends there is discarded by Warren.
      "x-warren-client-ip": "9.9.9.9",
      "x-warren-request-id": "forged-request-id",
    };
    const up = await app().request("/api/auth/sign-up/email", { method: "POST", json: { email, name: "Hook", password: "correct horse battery" }, headers });
    expect(up.status).toBe(200);
    const userId = (await json(up)).user.id as string;
    const token = up.headers.get("set-auth-token")!;
    const signIn = await app().request("/api/auth/sign-in/email", { method: "POST", json: { email, password: "correct horse battery" }, headers });
    expect(signIn.status).toBe(200);
    const out = await app().request("/api/auth/sign-out", { method: "POST", token, headers });
    expect(out.status).toBe(200);

    const rows = await entriesOf(userId);
    expect(rows.map((r) => r.action)).toEqual(["auth.sign_up", "auth.sign_in", "auth.sign_out"]);
    for (const r of rows) {
      expect(r.ipAddress).toBe("203.0.113.7");
      expect(r.userAgent).toBe("warren-test/1.0");
      expect(r.actorType).toBe("user");
      expect(r.requestId).toMatch(/^req_/);
    }
    expect(rows[0]!.metadata).toEqual({ method: "email" });
    expect(rows[1]!.entityType).toBe("session");
    // Each entry names the request that caused it: the response's X-Request-Id.
    expect(rows[0]!.requestId).toBe(up.headers.get("x-request-id"));
    expect(rows[1]!.requestId).toBe(signIn.headers.get("x-request-id"));
  });

  test("a password change is recorded (nothing of the password); a refused one is not", async () => {
    const u = await signUp(app());
    const change = (currentPassword: string) =>
      app().request("/api/auth/change-password", {
        method: "POST",
        token: u.token,
        json: { currentPassword, newPassword: "a brand new long password" },
        headers: { origin: app().config.publicUrl, "user-agent": "warren-test/2.0" },
      });
    expect((await change("not the password")).status).toBe(400);
    expect((await entriesOf(u.id)).map((r) => r.action)).not.toContain("auth.password_change");
    const ok = await change(u.password);
    expect(ok.status).toBe(200);
    const entry = (await entriesOf(u.id)).find((r) => r.action === "auth.password_change");
    expect(entry).toMatchObject({ entityType: "user", entityId: u.id, userAgent: "warren-test/2.0", metadata: {} });
    expect(entry!.requestId).toBe(ok.headers.get("x-request-id"));
    expect(JSON.stringify(entry)).not.toContain("brand new");
  });

  test("a failed sign-in records nothing", async () => {
    const u = await signUp(app());
    const before = (await entriesOf(u.id)).length;
    const res = await app().request("/api/auth/sign-in/email", {
      method: "POST",
      json: { email: u.email, password: "wrong password entirely" },
      headers: { origin: app().config.publicUrl },
    });
    expect(res.status).toBe(401);
    expect((await entriesOf(u.id)).length).toBe(before);
  });
});

describe("GET /api/v1/me/activity", () => {
  test("pages newest first, filters by action, entity and time, and shows only the caller's entries", async () => {
    const u = await signUp(app());
    const other = await signUp(app());
    await seed(u, [
      { action: "sandbox.create", at: "2026-01-01T10:00:00.000Z", entityType: "sandbox", entityId: "sbx_a" },
      { action: "sandbox.start", at: "2026-01-02T10:00:00.000Z", entityType: "sandbox", entityId: "sbx_a" },
      { action: "sandbox.stop", at: "2026-01-03T10:00:00.000Z", entityType: "sandbox", entityId: "sbx_a" },
      { action: "sandbox.create", at: "2026-01-04T10:00:00.000Z", entityType: "sandbox", entityId: "sbx_b" },
      { action: "preferences.update", at: "2026-01-05T10:00:00.000Z", entityType: "preferences", entityId: u.id },
    ]);
    await seed(other, [{ action: "sandbox.create", at: "2026-01-03T12:00:00.000Z", entityType: "sandbox", entityId: "sbx_a" }]);

    const range = "from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z";
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const res = await app().request(`/api/v1/me/activity?${range}&limit=2${cursor ? `&cursor=${cursor}` : ""}`, { token: u.token });
      expect(res.status).toBe(200);
      const page = await json(res);
      expect(page.data.length).toBeLessThanOrEqual(2);
      seen.push(...page.data.map((e: { createdAt: string; action: string }) => `${e.createdAt.slice(0, 10)} ${e.action}`));
      cursor = page.nextCursor;
    } while (cursor);
    expect(seen).toEqual([
      "2026-01-05 preferences.update",
      "2026-01-04 sandbox.create",
      "2026-01-03 sandbox.stop",
      "2026-01-02 sandbox.start",
      "2026-01-01 sandbox.create",
    ]);

    const byAction = await json(await app().request(`/api/v1/me/activity?${range}&action=sandbox.create`, { token: u.token }));
    expect(byAction.data.map((e: { entityId: string }) => e.entityId)).toEqual(["sbx_b", "sbx_a"]);
    const byEntity = await json(await app().request(`/api/v1/me/activity?entityType=sandbox&entityId=sbx_a`, { token: u.token }));
    expect(byEntity.data.map((e: { action: string }) => e.action)).toEqual(["sandbox.stop", "sandbox.start", "sandbox.create"]);
    const window = await json(
      await app().request(`/api/v1/me/activity?from=2026-01-02T10:00:00Z&to=2026-01-04T10:00:00Z`, { token: u.token }),
    );
    // from is inclusive, to exclusive.
    expect(window.data.map((e: { action: string }) => e.action)).toEqual(["sandbox.stop", "sandbox.start"]);
  });

  test("stats count the caller's own entries by action within the range, and nobody else's", async () => {
    const u = await signUp(app());
    const other = await signUp(app());
    await seed(u, [
      { action: "sandbox.start", at: "2026-03-01T00:00:00.000Z" },
      { action: "sandbox.start", at: "2026-03-02T00:00:00.000Z" },
      { action: "sandbox.stop", at: "2026-03-02T00:00:00.000Z" },
      { action: "sandbox.start", at: "2026-04-02T00:00:00.000Z" },
    ]);
    await seed(other, [
      { action: "sandbox.start", at: "2026-03-01T00:00:00.000Z" },
      { action: "credential.use", at: "2026-03-01T00:00:00.000Z" },
    ]);
    const res = await app().request("/api/v1/me/activity/stats?from=2026-03-01T00:00:00Z&to=2026-04-01T00:00:00Z", { token: u.token });
    expect(res.status).toBe(200);
    expect(await json(res)).toEqual({
      from: "2026-03-01T00:00:00.000Z",
      to: "2026-04-01T00:00:00.000Z",
      total: 3,
      byAction: [
        { action: "sandbox.start", count: 2 },
        { action: "sandbox.stop", count: 1 },
      ],
    });
  });
});

describe("GET /api/v1/me/activity/export", () => {
  const awkward = {
    note: 'comma, "quotes", and\na newline',
    formula: "=HYPERLINK(\"http://evil.example\")",
    unicode: "naïve — 日本語 🚀",
    apiKey: "sk-must-never-appear",
  };

  test("CSV: RFC 4180 escaping a real parser reads back, formulas neutralised, secrets stripped", async () => {
    const u = await signUp(app());
    await seed(u, [{ action: "credential.set", at: "2026-05-01T00:00:00.000Z", entityType: "provider", entityId: "openai", metadata: awkward }]);
    const res = await app().request("/api/v1/me/activity/export?format=csv&action=credential.set", { token: u.token });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/csv");
    expect(res.headers.get("content-disposition")).toContain("attachment");
    const text = await res.text();
    expect(text).not.toContain("sk-must-never-appear");
    const rows = parse(text, { columns: true }) as Array<Record<string, string>>;
    expect(rows.length).toBe(1);
    expect(rows[0]!.action).toBe("credential.set");
    expect(rows[0]!.entityId).toBe("openai");
    const metadata = JSON.parse(rows[0]!.metadata!);
    expect(metadata.note).toBe(awkward.note);
    expect(metadata.unicode).toBe(awkward.unicode);
    expect(metadata.apiKey).toBe("[redacted]");
  });

  test("CSV: a cell that would run as a spreadsheet formula is prefixed", async () => {
    const u = await signUp(app());
    await seed(u, [{ action: "sandbox.update", at: "2026-05-01T00:00:00.000Z", entityType: "=cmd|' /C calc'!A0", entityId: "sbx_x" }]);
    const text = await (await app().request("/api/v1/me/activity/export?format=csv&action=sandbox.update", { token: u.token })).text();
    const rows = parse(text, { columns: true }) as Array<Record<string, string>>;
    expect(rows[0]!.entityType!.startsWith("=")).toBe(false);
    expect(rows[0]!.entityType).toContain("cmd|");
  });

  test("JSON: every entry across many batches, once each, newest first; the export is itself recorded", async () => {
    const u = await signUp(app());
    const base = Date.parse("2025-01-01T00:00:00.000Z");
    // More than two export batches (500 each), some sharing a timestamp.
    const db = app().database.db;
    const rows = Array.from({ length: 1203 }, (_, i) => ({
      id: `act_seed_${String(i).padStart(5, "0")}`,
      userId: u.id,
      action: "sandbox.start",
      entityType: "sandbox",
      entityId: `sbx_${i}`,
      createdAt: new Date(base + Math.floor(i / 3) * 1000),
    }));
    for (let i = 0; i < rows.length; i += 400) await db.insert(activityLog).values(rows.slice(i, i + 400));
    const res = await app().request("/api/v1/me/activity/export?format=json&action=sandbox.start", { token: u.token });
    expect(res.status).toBe(200);
    const body = (await res.json()) as Array<{ entityId: string; createdAt: string }>;
    expect(body.length).toBe(1203);
    expect(new Set(body.map((e) => e.entityId)).size).toBe(1203);
    const times = body.map((e) => e.createdAt);
    expect([...times].sort().reverse()).toEqual(times);
    const recorded = (await entriesOf(u.id)).filter((r) => r.action === "activity.export");
    expect(recorded.length).toBe(1);
    expect(recorded[0]!.metadata).toMatchObject({ format: "json", filter: { action: "sandbox.start" } });
  });

  test("another user's entries never appear in an export", async () => {
    const u = await signUp(app());
    const other = await signUp(app());
    await seed(other, [{ action: "sandbox.create", at: "2026-06-01T00:00:00.000Z", entityId: "sbx_theirs" }]);
    const text = await (await app().request("/api/v1/me/activity/export?format=json", { token: u.token })).text();
    expect(text).not.toContain("sbx_theirs");
    expect(text).not.toContain(other.id);
  });
});

test("a second device's sign-in shows in the first device's activity", async () => {
  const u = await signUp(app());
  await signInAgain(app(), u, { "user-agent": "phone" });
  const page = await json(await app().request("/api/v1/me/activity?action=auth.sign_in", { token: u.token }));
  expect(page.data.length).toBe(1);
  expect(page.data[0].userAgent).toBe("phone");
  await expectError(await app().request("/api/v1/me/activity?action=auth.sign_in", {}), 401, "UNAUTHENTICATED");
});
