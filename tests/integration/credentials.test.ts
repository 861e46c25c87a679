import { afterAll, describe, expect, test } from "bun:test";
import { eq, sql } from "drizzle-orm";
import { activityLog, sandboxes } from "../../db/schema";
import { createApp } from "../../src/app";
import { createAuth } from "../../src/auth/auth";
import type { ServiceContext } from "../../src/context";
import { queryRows } from "../../src/database/client";
import { createVault } from "../../src/services/credentials/vault";
import { githubDeviceFlowClients } from "../../src/services/credentials/github-device";
import { noSandboxHook } from "../../src/services/credentials/types";
import { json, memoryLogger, signUp, testConfig, useTestApp, type TestApp, type TestUser } from "../helpers/app";
import { createTestDatabase } from "../helpers/db";
import { expectError } from "../helpers/expect";
import { securitySuite } from "../helpers/security";

// The app's clock: real time plus an offset a test can move forward instead of sleeping.
let clockOffsetMs = 0;
const app = useTestApp({ deps: { now: () => new Date(Date.now() + clockOffsetMs) } });

let keyCounter = 0;
/** Distinctive keys, so that finding one anywhere is unambiguous. */
const newKey = () => `sk-live-PLAINTEXT-${++keyCounter}-${crypto.randomUUID().replace(/-/g, "")}`;

const put = (t: Pick<TestApp, "request">, u: TestUser, providerId: string, body: unknown) =>
  t.request(`/api/v1/providers/${providerId}/credential`, { method: "PUT", token: u.token, json: body });

async function withKey(owner: TestUser, providerId = "openai") {
  expect((await put(app(), owner, providerId, { apiKey: newKey() })).status).toBe(201);
  return `/api/v1/providers/${providerId}/credential`;
}

const untouched = async (owner: TestUser, path: string) => {
  const res = await app().request(path, { token: owner.token });
  expect(res.status).toBe(200);
};

securitySuite("credentials", app, [
  {
    name: "GET /api/v1/credentials",
    method: "GET",
    path: () => "/api/v1/credentials",
    badInputs: [
      { path: () => "/api/v1/credentials?limit=101", field: "limit" },
      { path: () => "/api/v1/credentials?cursor=bm90LWEtY3Vyc29y", field: "cursor" },
    ],
  },
  {
    name: "PUT /api/v1/providers/:id/credential",
    method: "PUT",
    path: () => "/api/v1/providers/anthropic/credential",
    body: { apiKey: "sk-ant-0123456789abcdef" },
    badInputs: [
      { body: { apiKey: "" }, field: "apiKey" },
      { body: { apiKey: "short" }, field: "apiKey" },
      { body: { apiKey: "sk-ant 0123456789abcdef" }, field: "apiKey" },
      { body: { apiKey: "sk-ant-0123456789\nabcdef" }, field: "apiKey" },
      { body: { apiKey: "x".repeat(4097) }, field: "apiKey" },
      { body: { apiKey: "sk-ant-0123456789abcdef", baseUrl: "file:///etc/passwd" }, field: "baseUrl" },
      { body: { apiKey: "sk-ant-0123456789abcdef", baseUrl: "https://me:hunter2@gateway.example.com/v1" }, field: "baseUrl" },
      { body: { apiKey: "sk-ant-0123456789abcdef", userId: "usr_other" }, field: "userId" },
    ],
  },
  {
    // The owner's custom provider: an intruder can neither see it nor store a key for it.
    name: "PUT /api/v1/providers/:id/credential (another user's custom provider)",
    method: "PUT",
    path: async (owner) => {
      const res = await app().request("/api/v1/providers", {
        method: "POST",
        token: owner.token,
        json: { name: "Private", baseUrl: "http://10.0.0.5:8000/v1", models: [{ id: "m" }] },
      });
      const id = (await json(res)).id;
      await withKey(owner, id);
      return `/api/v1/providers/${id}/credential`;
    },
    body: { apiKey: "sk-intruder-0123456789" },
    ownedResource: true,
    verifyUntouched: untouched,
  },
  { name: "GET /api/v1/providers/:id/credential", method: "GET", path: (o) => withKey(o), ownedResource: true, verifyUntouched: untouched },
  { name: "DELETE /api/v1/providers/:id/credential", method: "DELETE", path: (o) => withKey(o), ownedResource: true, verifyUntouched: untouched },
]);

describe("storing a key", () => {
  test("201 the first time, 200 after; metadata and a masked hint only; activity without the key", async () => {
    const u = await signUp(app());
    const first = newKey();
    const created = await put(app(), u, "anthropic", { apiKey: first });
    expect(created.status).toBe(201);
    const body = await json(created);
    expect(Object.keys(body).sort()).toEqual(["authType", "baseUrl", "createdAt", "expiresAt", "hint", "lastUsedAt", "providerId", "sandboxes", "scopes", "updatedAt"]);
    expect(body).toMatchObject({ providerId: "anthropic", authType: "api_key", hint: `…${first.slice(-4)}`, baseUrl: null });
    const second = newKey();
    const replaced = await put(app(), u, "anthropic", { apiKey: second, baseUrl: "https://gateway.example.com/v1" });
    expect(replaced.status).toBe(200);
    expect(await json(replaced)).toMatchObject({ hint: `…${second.slice(-4)}`, baseUrl: "https://gateway.example.com/v1", sandboxes: { refreshed: [], restartRequired: [] } });

    const one = await json(await app().request("/api/v1/providers/anthropic/credential", { token: u.token }));
    expect(one.hint).toBe(`…${second.slice(-4)}`);
    const list = await json(await app().request("/api/v1/credentials", { token: u.token }));
    expect(list.data.map((c: { providerId: string }) => c.providerId)).toEqual(["anthropic"]);
    expect(list.nextCursor).toBeNull();
    for (const text of [JSON.stringify(one), JSON.stringify(list)]) {
      expect(text).not.toContain(first);
      expect(text).not.toContain(second);
    }
    const entries = (await app().database.db.select().from(activityLog).where(eq(activityLog.userId, u.id))).filter(
      (e) => !e.action.startsWith("auth."), // auth.sign_up from Better Auth's hooks
    );
    // Both within a millisecond or two: compared without relying on their order.
    const byReplaced = (e: { metadata: unknown }) => ((e.metadata as { replaced?: boolean }).replaced ? 1 : 0);
    expect(entries.sort((a, b) => byReplaced(a) - byReplaced(b)).map((e) => [e.action, e.entityId, e.metadata])).toEqual([
      ["credential.set", "anthropic", { providerId: "anthropic", authType: "api_key", replaced: false }],
      ["credential.set", "anthropic", { providerId: "anthropic", authType: "api_key", replaced: true }],
    ]);
    expect((await app().request("/api/v1/providers/anthropic", { token: u.token }).then(json)).configured).toBe(true);
  });

  test("an unknown provider is 404; deleting twice is 404 the second time", async () => {
    const u = await signUp(app());
    await expectError(await put(app(), u, "no-such-provider", { apiKey: newKey() }), 404, "NOT_FOUND");
    // Copilot takes no API keys: its device flow is the only way in.
    await expectError(await put(app(), u, "github-copilot", { apiKey: newKey() }), 409, "INVALID_STATE");
    await withKey(u, "groq");
    const del = await app().request("/api/v1/providers/groq/credential", { method: "DELETE", token: u.token });
    expect(del.status).toBe(200);
    expect(await json(del)).toEqual({ deleted: true, sandboxes: { refreshed: [], restartRequired: [] } });
    await expectError(await app().request("/api/v1/providers/groq/credential", { method: "DELETE", token: u.token }), 404, "NOT_FOUND");
    await expectError(await app().request("/api/v1/providers/groq/credential", { token: u.token }), 404, "NOT_FOUND");
  });
});

describe("credential times and hint", () => {
  test("created stays, updated moves on replace, last used is set when handed to a sandbox; short keys show no characters", async () => {
    const u = await signUp(app());
    const created = await json(await put(app(), u, "deepseek", { apiKey: newKey() }));
    expect(created).toMatchObject({ lastUsedAt: null, expiresAt: null });
    expect(created.updatedAt).toBe(created.createdAt);

    clockOffsetMs += 90_000;
    const replaced = await json(await put(app(), u, "deepseek", { apiKey: newKey() }));
    expect(replaced.createdAt).toBe(created.createdAt);
    expect(Date.parse(replaced.updatedAt) - Date.parse(created.createdAt)).toBeGreaterThanOrEqual(90_000);
    expect(replaced.lastUsedAt).toBeNull();

    clockOffsetMs += 90_000;
    const usedAt = new Date(Date.now() + clockOffsetMs);
    await vaultFor(u.id, app(), () => usedAt).credentialsForSandbox(await insertSandbox(u.id));
    const after = await json(await app().request("/api/v1/providers/deepseek/credential", { token: u.token }));
    expect(after).toMatchObject({ createdAt: created.createdAt, updatedAt: replaced.updatedAt, lastUsedAt: usedAt.toISOString() });

    // Four characters of an 8-character key would be half of it: a short key shows none.
    const short = await json(await put(app(), u, "morph", { apiKey: "Ab3$x9Qz" }));
    expect(short.hint).toBe("…");
    expect(JSON.stringify(short)).not.toContain("x9Qz");
  });
});

describe("two users", () => {
  test("neither can see, replace or delete the other's credential; each keeps their own", async () => {
    const ann = await signUp(app());
    const bob = await signUp(app());
    const annKey = newKey();
    expect((await put(app(), ann, "mistral", { apiKey: annKey })).status).toBe(201);
    // Bob's GET and DELETE miss; his PUT creates his own row and leaves Ann's alone.
    await expectError(await app().request("/api/v1/providers/mistral/credential", { token: bob.token }), 404, "NOT_FOUND");
    await expectError(await app().request("/api/v1/providers/mistral/credential", { method: "DELETE", token: bob.token }), 404, "NOT_FOUND");
    expect((await json(await app().request("/api/v1/credentials", { token: bob.token }))).data).toEqual([]);
    const bobKey = newKey();
    expect((await put(app(), bob, "mistral", { apiKey: bobKey })).status).toBe(201);
    expect((await json(await app().request("/api/v1/providers/mistral/credential", { token: ann.token }))).hint).toBe(`…${annKey.slice(-4)}`);
    expect((await json(await app().request("/api/v1/providers/mistral/credential", { token: bob.token }))).hint).toBe(`…${bobKey.slice(-4)}`);
    // Neither can use the other's: the sandbox hand-over only ever holds the caller's own key.
    const annSandbox = await insertSandbox(ann.id);
    const bobVault = vaultFor(bob.id);
    await expect(bobVault.credentialsForSandbox(annSandbox)).rejects.toMatchObject({ code: "NOT_FOUND" });
    const annCreds = await vaultFor(ann.id).credentialsForSandbox(annSandbox);
    expect(annCreds.authJson.mistral).toEqual({ type: "api", key: annKey });
  });
});

function vaultFor(userId: string, t: TestApp = app(), now: () => Date = () => new Date(), keyring = t.config.keyring) {
  const ctx: ServiceContext = { db: t.database.db, actor: "user", userId, requestId: null, ipAddress: null, userAgent: null, logger: memoryLogger().logger, now };
  return createVault({ ctx, keyring, sandboxes: noSandboxHook, deviceFlows: githubDeviceFlowClients({ copilotClientId: "test" }) });
}

async function insertSandbox(userId: string, t: TestApp = app()) {
  const id = `sbx_${crypto.randomUUID().replace(/-/g, "").slice(0, 12)}`;
  await t.database.db.insert(sandboxes).values({ id, userId, name: id, slug: id, resourceTierId: "starter", flavorId: "fullstack", status: "running" });
  return id;
}

describe("handing credentials to a sandbox", () => {
  test("OpenCode's auth.json format, custom providers in config, one credential.use per value, lastUsedAt set", async () => {
    const u = await signUp(app());
    const anthropicKey = newKey();
    const gatewayKey = newKey();
    await put(app(), u, "anthropic", { apiKey: anthropicKey, baseUrl: "https://proxy.example.com/v1" });
    const custom = await json(
      await app().request("/api/v1/providers", {
        method: "POST",
        token: u.token,
        json: { name: "Self-hosted", baseUrl: "http://models.internal:8000/v1", models: [{ id: "coder", contextWindow: 32000, maxOutput: 4000 }] },
      }),
    );
    await put(app(), u, custom.id, { apiKey: gatewayKey });
    const sandboxId = await insertSandbox(u.id);
    const result = await vaultFor(u.id).credentialsForSandbox(sandboxId);
    expect(result.authJson).toEqual({ anthropic: { type: "api", key: anthropicKey }, [custom.id]: { type: "api", key: gatewayKey } });
    expect(result.config.provider).toEqual({
      anthropic: { options: { baseURL: "https://proxy.example.com/v1" } },
      [custom.id]: {
        npm: "@ai-sdk/openai-compatible",
        name: "Self-hosted",
        options: { baseURL: "http://models.internal:8000/v1" },
        models: { coder: { name: "coder", limit: { context: 32000, output: 4000 } } },
      },
    });
    expect(result.unavailable).toEqual([]);
    const uses = await app().database.db.select().from(activityLog).where(eq(activityLog.action, "credential.use"));
    const mine = uses.filter((e) => e.userId === u.id);
    expect(mine.map((e) => e.metadata).sort((a, b) => String(a.providerId).localeCompare(String(b.providerId)))).toEqual(
      [{ providerId: "anthropic", sandboxId }, { providerId: custom.id, sandboxId }].sort((a, b) => a.providerId.localeCompare(b.providerId)),
    );
    const listed = await json(await app().request("/api/v1/credentials", { token: u.token }));
    expect(listed.data.every((c: { lastUsedAt: string | null }) => c.lastUsedAt !== null)).toBe(true);
  });

  test("tampered rows fail closed: a ciphertext swapped between rows or users is left out, not decrypted", async () => {
    const ann = await signUp(app());
    const bob = await signUp(app());
    const annKey = newKey();
    await put(app(), ann, "openai", { apiKey: annKey });
    await put(app(), ann, "groq", { apiKey: newKey() });
    await put(app(), bob, "openai", { apiKey: newKey() });
    const db = app().database.db;
    // Copy Ann's openai ciphertext over Bob's openai row and over Ann's groq row.
    await db.execute(sql`update provider_credentials set secret = (select secret from provider_credentials where user_id = ${ann.id} and provider_id = 'openai') where (user_id = ${bob.id} and provider_id = 'openai') or (user_id = ${ann.id} and provider_id = 'groq')`);
    const bobResult = await vaultFor(bob.id).credentialsForSandbox(await insertSandbox(bob.id));
    expect(bobResult.authJson).toEqual({});
    expect(bobResult.unavailable).toEqual(["openai"]);
    const annResult = await vaultFor(ann.id).credentialsForSandbox(await insertSandbox(ann.id));
    expect(annResult.authJson).toEqual({ openai: { type: "api", key: annKey } });
    expect(annResult.unavailable).toEqual(["groq"]);
    // A flipped byte in the stored envelope: same.
    await db.execute(sql`update provider_credentials set secret = overlay(secret placing (case when substr(secret, 40, 1) = 'A' then 'B' else 'A' end) from 40 for 1) where user_id = ${ann.id} and provider_id = 'openai'`);
    const flipped = await vaultFor(ann.id).credentialsForSandbox(await insertSandbox(ann.id));
    expect(flipped.authJson).toEqual({});
    expect(flipped.unavailable.sort()).toEqual(["groq", "openai"]);
  });

  test("a wrong key id fails closed: relabelled to another key of the ring, or to one not in it", async () => {
    const u = await signUp(app());
    const key = newKey();
    await put(app(), u, "fireworks-ai", { apiKey: key });
    // The app's keyring plus a second key, as after an operator added one.
    const active = app().config.keyring;
    const ring = { activeKeyId: active.activeKeyId, keys: new Map([...active.keys, ["other", new Uint8Array(32).fill(7)]]) };
    const relabel = async (to: string) => {
      await app().database.db.execute(
        sql`update provider_credentials set secret = regexp_replace(secret, '^v1\.[^.]+\.', ${`v1.${to}.`}) where user_id = ${u.id} and provider_id = 'fireworks-ai'`,
      );
      const sandboxId = await insertSandbox(u.id);
      return vaultFor(u.id, app(), undefined, ring).credentialsForSandbox(sandboxId);
    };
    // Sanity: untouched, it decrypts with this ring.
    expect((await vaultFor(u.id, app(), undefined, ring).credentialsForSandbox(await insertSandbox(u.id))).authJson["fireworks-ai"]).toEqual({ type: "api", key });
    for (const to of ["other", "k-missing"]) {
      const result = await relabel(to);
      expect(result.authJson).toEqual({});
      expect(result.unavailable).toEqual(["fireworks-ai"]);
    }
    // Relabelled back, it decrypts again: nothing else was changed, the key id alone failed it.
    const restored = await relabel(active.activeKeyId);
    expect(restored.authJson["fireworks-ai"]).toEqual({ type: "api", key });
  });
});

describe("the sandbox hook", () => {
  const built: Array<() => Promise<void>> = [];
  afterAll(async () => {
    for (const close of built) await close();
  });

  test("is called after a committed replace or delete, and the response says what it did", async () => {
    const database = await createTestDatabase();
    built.push(() => database.destroy());
    const config = testConfig();
    const { logger } = memoryLogger();
    const calls: Array<[string, string]> = [];
    const t = createApp({
      config,
      database,
      logger,
      auth: createAuth({ config, db: database.db, logger }),
      sandboxCredentials: {
        async credentialsChanged(ctx, providerId) {
          // Called after commit: the change is already visible to another connection's reads.
          const rows = await queryRows<{ n: number }>(database.db, sql`select count(*)::int as n from provider_credentials where user_id = ${ctx.userId} and provider_id = ${providerId}`);
          calls.push([providerId, String(rows[0]!.n)]);
          if (providerId === "xai") throw new Error("orchestrator down");
          return { refreshed: ["sbx_running1"], restartRequired: ["sbx_old2"] };
        },
      },
    });
    const request = (path: string, init: RequestInit & { json?: unknown; token?: string } = {}) => {
      const headers = new Headers(init.headers);
      if (init.json !== undefined) headers.set("content-type", "application/json");
      if (init.token) headers.set("authorization", `Bearer ${init.token}`);
      return Promise.resolve(t.request(path, { ...init, headers, ...(init.json !== undefined ? { body: JSON.stringify(init.json) } : {}) }));
    };
    const u = await signUp({ request });
    expect((await put({ request } as Pick<TestApp, "request">, u, "openai", { apiKey: newKey() })).status).toBe(201);
    expect(calls).toEqual([]);
    const replaced = await put({ request } as Pick<TestApp, "request">, u, "openai", { apiKey: newKey() });
    expect((await json(replaced)).sandboxes).toEqual({ refreshed: ["sbx_running1"], restartRequired: ["sbx_old2"] });
    const deleted = await request("/api/v1/providers/openai/credential", { method: "DELETE", token: u.token });
    expect(await json(deleted)).toEqual({ deleted: true, sandboxes: { refreshed: ["sbx_running1"], restartRequired: ["sbx_old2"] } });
    expect(calls).toEqual([["openai", "1"], ["openai", "0"]]);
    // A failing hook never undoes the delete; the response says the sandboxes were not updated.
    await put({ request } as Pick<TestApp, "request">, u, "xai", { apiKey: newKey() });
    const failed = await json(await request("/api/v1/providers/xai/credential", { method: "DELETE", token: u.token }));
    expect(failed.sandboxes.error).toContain("restart");
    expect((await request("/api/v1/providers/xai/credential", { token: u.token })).status).toBe(404);
  });
});

describe("no plaintext anywhere", () => {
  test("after storing keys, no table row, log line or activity entry holds one", async () => {
    const users = [await signUp(app()), await signUp(app())];
    const keys: string[] = [];
    for (const u of users) {
      for (const provider of ["anthropic", "openai", "google"]) {
        const key = newKey();
        keys.push(key);
        expect([200, 201]).toContain((await put(app(), u, provider, { apiKey: key })).status);
      }
      const replacement = newKey();
      keys.push(replacement);
      expect((await put(app(), u, "anthropic", { apiKey: replacement })).status).toBe(200);
      await app().request("/api/v1/credentials", { token: u.token });
      await vaultFor(u.id).credentialsForSandbox(await insertSandbox(u.id));
    }
    const db = app().database.db;
    const tables = await queryRows<{ schemaname: string; tablename: string }>(
      db,
      sql`select schemaname, tablename from pg_tables where schemaname not in ('pg_catalog', 'information_schema')`,
    );
    expect(tables.map((t) => t.tablename)).toContain("provider_credentials");
    let dump = "";
    for (const t of tables) {
      const rows = await queryRows(db, sql.raw(`select * from "${t.schemaname}"."${t.tablename}"`));
      dump += JSON.stringify(rows);
    }
    expect(dump.length).toBeGreaterThan(10_000);
    const logs = app().logLines.join("\n");
    for (const key of keys) {
      // The whole key, and its random middle (in case of any re-framing).
      for (const needle of [key, key.slice(18, 42)]) {
        expect(dump).not.toContain(needle);
        expect(logs).not.toContain(needle);
      }
    }
  });
});
