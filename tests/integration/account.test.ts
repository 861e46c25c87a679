import { describe, expect, test } from "bun:test";
import { hashPassword } from "better-auth/crypto";
import { and, eq, sql } from "drizzle-orm";
import { account, activityLog, chatMessages, chatSessions, session } from "../../db/schema";
import { queryRows } from "../../src/database/client";
import { resetPassword } from "../../src/services/account/reset-password";
import { silentLogger } from "../helpers/legacy-fixture";
import { json, signUp, TEST_PUBLIC_URL, useTestApp, type TestUser } from "../helpers/app";
import { expectError } from "../helpers/expect";
import { securitySuite } from "../helpers/security";

const app = useTestApp();

const CONFIRM = { confirm: "DELETE MY ACCOUNT" };

securitySuite("account lifecycle", app, [
  { name: "GET /api/v1/me/account", method: "GET", path: () => "/api/v1/me/account" },
  { name: "GET /api/v1/me/export", method: "GET", path: () => "/api/v1/me/export" },
  {
    name: "DELETE /api/v1/me/account",
    method: "DELETE",
    path: () => "/api/v1/me/account",
    body: CONFIRM,
    badInputs: [
      { body: { confirm: "delete my account" }, field: "confirm" },
      { body: {}, field: "confirm" },
      { body: { ...CONFIRM, password: 42 }, field: "password" },
      { body: { ...CONFIRM, cascade: false }, field: "cascade" },
    ],
  },
]);

const createSandbox = async (u: TestUser, name: string) => {
  const res = await app().request("/api/v1/sandboxes", { method: "POST", token: u.token, json: { name } });
  expect(res.status).toBe(201);
  return (await json(res)).id as string;
};

/** Chat rows straight into the schema: chat sync (issue 7) fills them in production. */
async function seedChat(u: TestUser, sandboxId: string | null, sessions: number, messagesEach: number) {
  const db = app().database.db;
  for (let s = 0; s < sessions; s++) {
    const sessionId = `chs_${u.id.slice(4, 16)}_${s}`;
    await db.insert(chatSessions).values({ id: sessionId, userId: u.id, sandboxId, title: `Chat ${s}`, messageCount: messagesEach });
    const rows = Array.from({ length: messagesEach }, (_, m) => ({
      id: `chm_${u.id.slice(4, 16)}_${s}_${String(m).padStart(4, "0")}`,
      sessionId,
      userId: u.id,
      role: (m % 2 ? "assistant" : "user") as "assistant" | "user",
      content: [{ type: "text", text: `message ${m} of chat ${s}` }],
      text: `message ${m} of chat ${s}`,
    }));
    if (rows.length) await db.insert(chatMessages).values(rows);
  }
}

const setKey = (u: TestUser, providerId: string, apiKey: string) =>
  app().request(`/api/v1/providers/${providerId}/credential`, { method: "PUT", token: u.token, json: { apiKey } });

describe("GET /api/v1/me/account", () => {
  test("the user, their sign-in methods and counts; no password hash, no token", async () => {
    const u = await signUp(app());
    await createSandbox(u, "One");
    const sbx = await createSandbox(u, "Two");
    await seedChat(u, sbx, 2, 3);
    expect((await setKey(u, "anthropic", "sk-ant-0123456789abcdef")).status).toBe(201);
    // Someone else's data is not counted.
    const other = await signUp(app());
    await createSandbox(other, "Theirs");

    const res = await app().request("/api/v1/me/account", { token: u.token });
    expect(res.status).toBe(200);
    const body = await json(res);
    expect(body.user).toMatchObject({ id: u.id, email: u.email, name: u.name });
    expect(body.signInMethods).toEqual([{ providerId: "credential", accountId: u.id, scopes: [], linkedAt: expect.any(String) }]);
    expect(body.counts).toEqual({ sandboxes: 2, chatSessions: 2, chatMessages: 6, credentials: 1 });
    const text = JSON.stringify(body);
    expect(text).not.toContain("scrypt");
    expect(text).not.toContain("sk-ant-0123456789abcdef");
    expect(text).not.toContain("password");
  });
});

describe("GET /api/v1/me/export", () => {
  test("everything about the caller, nothing of anyone else, never a secret", async () => {
    const u = await signUp(app());
    const other = await signUp(app());
    const sbx = await createSandbox(u, "Exported");
    await createSandbox(other, "Not mine");
    await seedChat(u, sbx, 2, 4);
    await seedChat(other, null, 1, 1);
    expect((await setKey(u, "anthropic", "sk-ant-secret-0123456789")).status).toBe(201);
    expect((await app().request("/api/v1/me/preferences", { method: "PATCH", token: u.token, json: { themeMode: "dark" } })).status).toBe(200);
    expect(
      (await app().request("/api/v1/me/agent-config", { method: "PUT", token: u.token, json: { config: { theme: "x" }, agentsMd: "# Rules" } })).status,
    ).toBe(200);
    expect(
      (await app().request("/api/v1/me/agent-config/files/agent/reviewer", { method: "PUT", token: u.token, json: { content: "# Reviewer" } })).status,
    ).toBeLessThan(300);

    const res = await app().request("/api/v1/me/export", { token: u.token });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-disposition")).toContain("attachment");
    const text = await res.text();
    expect(text).not.toContain("sk-ant-secret-0123456789");
    expect(text).not.toContain(other.email);
    expect(text).not.toContain(other.id);
    const doc = JSON.parse(text);
    expect(doc.format).toBe("warren.account-export/1");
    expect(doc.profile).toMatchObject({ id: u.id, email: u.email });
    expect(doc.signInMethods.map((m: { providerId: string }) => m.providerId)).toEqual(["credential"]);
    expect(doc.preferences.themeMode).toBe("dark");
    expect(doc.agentConfig).toMatchObject({ config: { theme: "x" }, agentsMd: "# Rules" });
    expect(doc.agentFiles).toEqual([expect.objectContaining({ type: "agent", name: "reviewer", content: "# Reviewer" })]);
    expect(doc.credentials).toEqual([expect.objectContaining({ providerId: "anthropic", authType: "api_key", hint: "…6789" })]);
    expect(doc.sandboxes.map((s: { id: string }) => s.id)).toEqual([sbx]);
    expect(doc.chatSessions.length).toBe(2);
    for (const chat of doc.chatSessions) {
      expect(chat.sandboxId).toBe(sbx);
      expect(chat.messages.map((m: { text: string }) => m.text)).toEqual([0, 1, 2, 3].map((m) => `message ${m} of chat ${chat.title.slice(5)}`));
    }
    const actions = doc.activity.map((a: { action: string }) => a.action);
    expect(actions).toContain("auth.sign_up");
    expect(actions).toContain("sandbox.create");
    expect(actions).toContain("credential.set");
    // The export is recorded before the first byte, so it lists itself.
    expect(actions[0]).toBe("account.export");
  });

  test("a message removed in the agent is exported flagged with removedAt, one still arriving with isStub; cache tokens are kept", async () => {
    const u = await signUp(app());
    const sbx = await createSandbox(u, "Tombstones");
    await seedChat(u, sbx, 1, 3);
    const [removed, kept, stub] = (await app().database.db.select().from(chatMessages).where(eq(chatMessages.userId, u.id))).sort((a, b) => a.id.localeCompare(b.id));
    const removedAt = new Date("2026-05-01T12:00:00.000Z");
    await app().database.db.update(chatMessages).set({ removedAt }).where(eq(chatMessages.id, removed!.id));
    await app().database.db.update(chatMessages).set({ cacheReadTokens: 1200, cacheWriteTokens: 340 }).where(eq(chatMessages.id, kept!.id));
    await app().database.db.update(chatMessages).set({ isStub: true }).where(eq(chatMessages.id, stub!.id));

    const doc = await json(await app().request("/api/v1/me/export", { token: u.token }));
    const messages = doc.chatSessions[0].messages as Array<{ id: string; removedAt: string | null }>;
    expect(messages.find((m) => m.id === removed!.id)).toMatchObject({ removedAt: "2026-05-01T12:00:00.000Z", isStub: false });
    expect(messages.find((m) => m.id === kept!.id)).toMatchObject({ removedAt: null, isStub: false, cacheReadTokens: 1200, cacheWriteTokens: 340 });
    expect(messages.find((m) => m.id === stub!.id)).toMatchObject({ removedAt: null, isStub: true });
  });
});

describe("DELETE /api/v1/me/account", () => {
  test("with a fresh session: everything goes in one go, activity stays anonymised, the email is free again", async () => {
    const u = await signUp(app(), { email: `leaving.${Date.now()}@example.com` });
    const sbx = await createSandbox(u, "Doomed");
    await seedChat(u, sbx, 1, 2);
    expect((await setKey(u, "anthropic", "sk-ant-doomed-0123456789")).status).toBe(201);
    expect((await app().request("/api/v1/me", { method: "PATCH", token: u.token, json: { name: "Soon gone" } })).status).toBe(200);
    const activityBefore = (await app().database.db.select().from(activityLog).where(eq(activityLog.userId, u.id))).map((r) => r.id);
    expect(activityBefore.length).toBeGreaterThan(3);

    const res = await app().request("/api/v1/me/account", { method: "DELETE", token: u.token, json: CONFIRM });
    expect(res.status).toBe(200);
    expect(await json(res)).toEqual({ deleted: true, sandboxesRemoved: 1 });

    // The old session is dead, by bearer and by cookie.
    await expectError(await app().request("/api/v1/me", { token: u.token }), 401, "UNAUTHENTICATED");
    await expectError(await app().request("/api/v1/me", { headers: { cookie: u.cookie } }), 401, "UNAUTHENTICATED");

    // No row anywhere names the user or the email, except the anonymised activity (by id only).
    const columns = await queryRows<{ table_name: string; column_name: string }>(
      app().database.db,
      sql`select table_name, column_name from information_schema.columns
          where table_schema = 'public' and data_type in ('text', 'jsonb', 'character varying')`,
    );
    const hits: string[] = [];
    for (const c of columns) {
      const rows = await queryRows<{ n: number }>(
        app().database.db,
        sql`select count(*)::int as n from ${sql.identifier(c.table_name)}
            where ${sql.identifier(c.column_name)}::text like ${`%${u.id}%`} or ${sql.identifier(c.column_name)}::text like ${`%${u.email}%`}`,
      );
      if (rows[0]!.n > 0) hits.push(`${c.table_name}.${c.column_name}: ${rows[0]!.n}`);
    }
    expect(hits).toEqual([]);

    // The activity is still there for the operator, anonymised, with the deletion itself.
    const kept = await app().database.db.select().from(activityLog).where(sql`${activityLog.id} in ${[...activityBefore]}`);
    expect(kept.length).toBe(activityBefore.length);
    for (const r of kept) {
      expect(r).toMatchObject({ userId: null, ipAddress: null, userAgent: null, requestId: null, anonymized: true });
    }
    const deletion = await app().database.db.select().from(activityLog).where(eq(activityLog.action, "account.delete"));
    expect(deletion.some((r) => r.anonymized && r.userId === null && r.metadata.sandboxes === 1)).toBe(true);

    // The sandbox's workload is queued for removal by the orchestrator (and outlives the user).
    const cleanups = await queryRows<{ sandbox_id: string }>(app().database.db, sql`select sandbox_id from workload_cleanups`);
    expect(cleanups.map((r) => r.sandbox_id)).toContain(sbx);

    // The email signs up anew, as a new user.
    const again = await signUp(app(), { email: u.email });
    expect(again.id).not.toBe(u.id);
    const me = await json(await app().request("/api/v1/me/account", { token: again.token }));
    expect(me.counts).toEqual({ sandboxes: 0, chatSessions: 0, chatMessages: 0, credentials: 0 });
  });

  test("an old session needs the password; a wrong one is 400 naming it and changes nothing", async () => {
    const u = await signUp(app());
    // The session was signed in an hour ago.
    await app().database.db.update(session).set({ createdAt: new Date(Date.now() - 3_600_000) }).where(eq(session.userId, u.id));
    await expectError(await app().request("/api/v1/me/account", { method: "DELETE", token: u.token, json: CONFIRM }), 412, "PRECONDITION_FAILED");
    const wrong = await expectError(
      await app().request("/api/v1/me/account", { method: "DELETE", token: u.token, json: { ...CONFIRM, password: "not the password" } }),
      400,
      "VALIDATION_FAILED",
    );
    expect(wrong.details.fields[0].field).toBe("password");
    expect((await app().request("/api/v1/me", { token: u.token })).status).toBe(200);
    const ok = await app().request("/api/v1/me/account", { method: "DELETE", token: u.token, json: { ...CONFIRM, password: u.password } });
    expect(ok.status).toBe(200);
    await expectError(await app().request("/api/v1/me", { token: u.token }), 401, "UNAUTHENTICATED");
  });

  test("a failure inside the transaction leaves the account whole", async () => {
    const u = await signUp(app());
    const sbx = await createSandbox(u, "Survivor");
    const db = app().database.db;
    // Forced honestly: the database refuses to delete this user, after everything before it ran.
    await db.execute(
      sql.raw(`create or replace function warren_test_refuse_delete() returns trigger language plpgsql as $$
               begin raise exception 'forced failure for the test'; end; $$`),
    );
    await db.execute(
      sql.raw(`create trigger warren_test_refuse_delete before delete on users for each row
               when (old.id = '${u.id}') execute function warren_test_refuse_delete()`),
    );
    try {
      const res = await app().request("/api/v1/me/account", { method: "DELETE", token: u.token, json: CONFIRM });
      await expectError(res, 500, "INTERNAL");
    } finally {
      await db.execute(sql.raw("drop trigger warren_test_refuse_delete on users"));
    }
    const me = await app().request("/api/v1/me/account", { token: u.token });
    expect(me.status).toBe(200);
    expect((await json(me)).counts.sandboxes).toBe(1);
    const mine = await db.select().from(activityLog).where(eq(activityLog.userId, u.id));
    expect(mine.every((r) => !r.anonymized && r.action !== "account.delete")).toBe(true);
    const cleanups = await queryRows<{ n: number }>(db, sql`select count(*)::int as n from workload_cleanups where sandbox_id = ${sbx}`);
    expect(cleanups[0]!.n).toBe(0);
  });
});

describe("an operator's password reset (bun run user:reset-password)", () => {
  test("a user who signs in with GitHub only gets a password, and signs in with it", async () => {
    const u = await signUp(app());
    // As a GitHub-only user is: no credential account.
    await app().database.db.delete(account).where(and(eq(account.userId, u.id), eq(account.providerId, "credential")));
    const result = await resetPassword(
      { db: app().database.db, logger: silentLogger, now: () => new Date() },
      { email: u.email.toUpperCase(), passwordHash: await hashPassword("given by the operator") },
    );
    expect(result).toEqual({ userId: u.id, email: u.email, passwordAdded: true, sessionsSignedOut: 1 });
    await app().pages.settle();
    await expectError(await app().request("/api/v1/me", { token: u.token }), 401, "UNAUTHENTICATED");
    const signIn = await app().request("/api/auth/sign-in/email", {
      method: "POST",
      json: { email: u.email, password: "given by the operator" },
      headers: { origin: TEST_PUBLIC_URL },
    });
    expect(signIn.status).toBe(200);
    const [entry] = await app().database.db.select().from(activityLog).where(and(eq(activityLog.userId, u.id), eq(activityLog.action, "auth.password_reset")));
    expect(entry).toMatchObject({ actorType: "system", metadata: { via: "cli", change: "added", sessionsSignedOut: 1 } });
  });

  test("an email no user has is NOT_FOUND, and nothing changes", async () => {
    await expect(
      resetPassword({ db: app().database.db, logger: silentLogger, now: () => new Date() }, { email: "nobody@example.com", passwordHash: "x" }),
    ).rejects.toMatchObject({ code: "NOT_FOUND" });
  });
});
