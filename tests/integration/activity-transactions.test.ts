import { beforeAll, describe, expect, test } from "bun:test";
import { eq, sql } from "drizzle-orm";
import { activityLog } from "../../db/schema";
import { json, signInAgain, signUp, useTestApp, type TestUser } from "../helpers/app";
import { expectError } from "../helpers/expect";

/**
 * Every mutating route writes exactly its activity entry, in the same transaction as its change:
 * when the database refuses the entry (a trigger raising on that action, installed in this test
 * database only), the change is not there either, and nothing is recorded.
 */
const app = useTestApp();

beforeAll(async () => {
  const db = app().database.db;
  await db.execute(sql.raw("create table warren_test_refused_actions (action text primary key)"));
  await db.execute(
    sql.raw(`create function warren_test_refuse_activity() returns trigger language plpgsql as $$
             begin
               if exists (select 1 from warren_test_refused_actions where action = new.action) then
                 raise exception 'activity % refused for the test', new.action;
               end if;
               return new;
             end; $$`),
  );
  await db.execute(
    sql.raw("create trigger warren_test_refuse_activity before insert on activity_log for each row execute function warren_test_refuse_activity()"),
  );
});


const refuse = (action: string) => app().database.db.execute(sql`insert into warren_test_refused_actions values (${action})`);
const allow = (action: string) => app().database.db.execute(sql`delete from warren_test_refused_actions where action = ${action}`);
const entries = (u: TestUser) => app().database.db.select().from(activityLog).where(eq(activityLog.userId, u.id));

type Case = {
  name: string;
  action: string;
  /** Builds what the mutation needs; returns whatever `run` and `state` use. */
  setup?: (u: TestUser) => Promise<Record<string, string>>;
  run: (u: TestUser, s: Record<string, string>) => Promise<Response>;
  status: number;
  /** The state the mutation changes, read back through the API. */
  state: (u: TestUser, s: Record<string, string>) => Promise<unknown>;
  entity?: (u: TestUser, s: Record<string, string>) => { entityType: string; entityId: string };
};

const get = async (u: TestUser, path: string) => {
  const res = await app().request(path, { token: u.token });
  return { status: res.status, body: res.status === 200 ? await res.json() : null };
};
const send = (u: TestUser, method: string, path: string, body?: unknown) =>
  app().request(path, { method, token: u.token, ...(body === undefined ? {} : { json: body }) });
const newSandbox = async (u: TestUser) => ({ sandbox: (await json(await send(u, "POST", "/api/v1/sandboxes", { name: "Tx" }))).id as string });
const stable = (v: any) => JSON.parse(JSON.stringify(v), (k, val) => (k === "updatedAt" || k === "lastActivityAt" || k === "expiresAt" ? undefined : val));

const CASES: Case[] = [
  {
    name: "PATCH /me",
    action: "account.update",
    run: (u) => send(u, "PATCH", "/api/v1/me", { name: "Renamed" }),
    status: 200,
    state: async (u) => (await get(u, "/api/v1/me")).body.name,
    entity: (u) => ({ entityType: "user", entityId: u.id }),
  },
  {
    name: "DELETE /me/sessions/:id",
    action: "session.revoke",
    setup: async (u) => {
      await signInAgain(app(), u);
      const sessions = await get(u, "/api/v1/me/sessions");
      return { session: sessions.body.data.find((s: { current: boolean }) => !s.current).id };
    },
    run: (u, s) => send(u, "DELETE", `/api/v1/me/sessions/${s.session}`),
    status: 204,
    state: async (u) => (await get(u, "/api/v1/me/sessions")).body.data.length,
    entity: (_u, s) => ({ entityType: "session", entityId: s.session! }),
  },
  {
    name: "PATCH /me/preferences",
    action: "preferences.update",
    run: (u) => send(u, "PATCH", "/api/v1/me/preferences", { themeMode: "dark" }),
    status: 200,
    state: async (u) => stable((await get(u, "/api/v1/me/preferences")).body),
  },
  {
    name: "DELETE /me/preferences",
    action: "preferences.reset",
    setup: async (u) => {
      await send(u, "PATCH", "/api/v1/me/preferences", { themeMode: "light" });
      return {};
    },
    run: (u) => send(u, "DELETE", "/api/v1/me/preferences"),
    status: 200,
    state: async (u) => stable((await get(u, "/api/v1/me/preferences")).body),
  },
  {
    name: "PUT /me/agent-config",
    action: "agent_config.update",
    run: (u) => send(u, "PUT", "/api/v1/me/agent-config", { config: {}, agentsMd: "# Tx" }),
    status: 200,
    state: async (u) => stable((await get(u, "/api/v1/me/agent-config")).body),
  },
  {
    name: "PUT /me/agent-config/files/:type/:name",
    action: "agent_file.put",
    run: (u) => send(u, "PUT", "/api/v1/me/agent-config/files/agent/tx", { content: "# Tx" }),
    status: 201,
    state: async (u) => stable((await get(u, "/api/v1/me/agent-config")).body),
  },
  {
    name: "DELETE /me/agent-config/files/:type/:name",
    action: "agent_file.delete",
    setup: async (u) => {
      await send(u, "PUT", "/api/v1/me/agent-config/files/agent/tx", { content: "# Tx" });
      return {};
    },
    run: (u) => send(u, "DELETE", "/api/v1/me/agent-config/files/agent/tx"),
    status: 200,
    state: async (u) => stable((await get(u, "/api/v1/me/agent-config")).body),
  },
  {
    name: "PUT /providers/:id/credential",
    action: "credential.set",
    run: (u) => send(u, "PUT", "/api/v1/providers/anthropic/credential", { apiKey: "sk-ant-0123456789abcdef" }),
    status: 201,
    state: async (u) => (await get(u, "/api/v1/providers/anthropic/credential")).status,
    entity: () => ({ entityType: "provider", entityId: "anthropic" }),
  },
  {
    name: "DELETE /providers/:id/credential",
    action: "credential.delete",
    setup: async (u) => {
      await send(u, "PUT", "/api/v1/providers/anthropic/credential", { apiKey: "sk-ant-0123456789abcdef" });
      return {};
    },
    run: (u) => send(u, "DELETE", "/api/v1/providers/anthropic/credential"),
    status: 200,
    state: async (u) => (await get(u, "/api/v1/providers/anthropic/credential")).status,
  },
  {
    name: "POST /providers",
    action: "provider.create",
    run: (u) => send(u, "POST", "/api/v1/providers", { name: "Tx gateway", baseUrl: "http://models.internal:8000/v1", models: [{ id: "m" }] }),
    status: 201,
    state: async (u) => (await get(u, "/api/v1/providers?limit=100")).body.data.length,
  },
  {
    name: "POST /sandboxes",
    action: "sandbox.create",
    run: (u) => send(u, "POST", "/api/v1/sandboxes", { name: "Created" }),
    status: 201,
    state: async (u) => (await get(u, "/api/v1/sandboxes")).body.data.length,
  },
  {
    name: "PATCH /sandboxes/:id",
    action: "sandbox.update",
    setup: newSandbox,
    run: (u, s) => send(u, "PATCH", `/api/v1/sandboxes/${s.sandbox}`, { description: "changed" }),
    status: 200,
    state: async (u, s) => (await get(u, `/api/v1/sandboxes/${s.sandbox}`)).body.description,
    entity: (_u, s) => ({ entityType: "sandbox", entityId: s.sandbox! }),
  },
  {
    name: "POST /sandboxes/:id/start",
    action: "sandbox.start",
    setup: newSandbox,
    run: (u, s) => send(u, "POST", `/api/v1/sandboxes/${s.sandbox}/start`),
    status: 202,
    state: async (u, s) => (await get(u, `/api/v1/sandboxes/${s.sandbox}`)).body.status,
    entity: (_u, s) => ({ entityType: "sandbox", entityId: s.sandbox! }),
  },
  {
    name: "DELETE /sandboxes/:id",
    action: "sandbox.delete",
    setup: newSandbox,
    run: (u, s) => send(u, "DELETE", `/api/v1/sandboxes/${s.sandbox}`),
    status: 202,
    state: async (u, s) => (await get(u, `/api/v1/sandboxes/${s.sandbox}`)).body?.status ?? "gone",
    entity: (_u, s) => ({ entityType: "sandbox", entityId: s.sandbox! }),
  },
  {
    name: "PUT /me/default-model",
    action: "default_model.set",
    setup: async (u) => {
      await send(u, "PUT", "/api/v1/providers/anthropic/credential", { apiKey: "sk-ant-0123456789abcdef" });
      return { model: "claude-3-haiku-20240307" };
    },
    run: (u, s) => send(u, "PUT", "/api/v1/me/default-model", { providerId: "anthropic", modelId: s.model }),
    status: 200,
    state: async (u) => stable((await get(u, "/api/v1/me/preferences")).body),
  },
];

describe("every mutating route records exactly its entry, in its own transaction", () => {
  for (const c of CASES) {
    test(`${c.name} → ${c.action}`, async () => {
      // Success: the change, and exactly one new entry, the expected one.
      const u = await signUp(app());
      const s = (await c.setup?.(u)) ?? {};
      const before = new Set((await entries(u)).map((e) => e.id));
      const res = await c.run(u, s);
      expect({ status: res.status, body: res.status >= 400 ? await res.text() : "" }).toEqual({ status: c.status, body: "" });
      const added = (await entries(u)).filter((e) => !before.has(e.id));
      expect(added.map((e) => e.action)).toEqual([c.action]);
      expect(added[0]!.requestId).toBe(res.headers.get("x-request-id"));
      if (c.entity) expect(added[0]).toMatchObject(c.entity(u, s));

      // Forced failure: the database refuses the entry, so the change must not be there either.
      const v = await signUp(app());
      const sv = (await c.setup?.(v)) ?? {};
      const stateBefore = await c.state(v, sv);
      const beforeV = (await entries(v)).length;
      await refuse(c.action);
      try {
        await expectError(await c.run(v, sv), 500, "INTERNAL");
      } finally {
        await allow(c.action);
      }
      expect(await c.state(v, sv)).toEqual(stateBefore);
      expect((await entries(v)).length).toBe(beforeV);
    });
  }

  test("DELETE /me/account → account.delete (anonymised with the rest)", async () => {
    const u = await signUp(app());
    const res = await send(u, "DELETE", "/api/v1/me/account", { confirm: "DELETE MY ACCOUNT" });
    expect(res.status).toBe(200);
    const rows = await app().database.db.select().from(activityLog).where(eq(activityLog.action, "account.delete"));
    expect(rows.filter((r) => r.userId === null && r.anonymized).length).toBeGreaterThanOrEqual(1);

    const v = await signUp(app());
    await refuse("account.delete");
    try {
      await expectError(await send(v, "DELETE", "/api/v1/me/account", { confirm: "DELETE MY ACCOUNT" }), 500, "INTERNAL");
    } finally {
      await allow("account.delete");
    }
    expect((await get(v, "/api/v1/me")).status).toBe(200);
    expect((await entries(v)).every((e) => !e.anonymized)).toBe(true);
  });

  test("GET /me/export and /me/activity/export are recorded before any byte; a refused record exports nothing", async () => {
    const u = await signUp(app());
    for (const [path, action] of [
      ["/api/v1/me/export", "account.export"],
      ["/api/v1/me/activity/export?format=csv", "activity.export"],
    ] as const) {
      const before = (await entries(u)).length;
      const ok = await app().request(path, { token: u.token });
      expect(ok.status).toBe(200);
      await ok.text();
      const after = await entries(u);
      expect(after.length).toBe(before + 1);
      expect(after.filter((e) => e.action === action).length).toBe(1);
      await refuse(action);
      try {
        await expectError(await app().request(path, { token: u.token }), 500, "INTERNAL");
      } finally {
        await allow(action);
      }
    }
  });
});
