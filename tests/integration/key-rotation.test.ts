import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { sql } from "drizzle-orm";
import { createApp } from "../../src/app";
import { createAuth } from "../../src/auth/auth";
import type { ServiceContext } from "../../src/context";
import { queryRows } from "../../src/database/client";
import { githubDeviceFlowClients } from "../../src/services/credentials/github-device";
import { keyUsage, rotateKeys } from "../../src/services/credentials/rotation";
import { noSandboxHook } from "../../src/services/credentials/types";
import { createVault } from "../../src/services/credentials/vault";
import { json, memoryLogger, signUp, testConfig, useTestApp, type TestApp, type TestUser } from "../helpers/app";
import { startDeviceStandIn } from "../helpers/github-device-standin";

// Dozens of sign-ups, writes and re-encryptions per test: more than bun's 5 s default on a busy
// machine. A limit against hanging, not a timing assertion.
setDefaultTimeout(60_000);

const key = (fill: number) => Buffer.alloc(32, fill).toString("base64");
const K1 = `k1:${key(11)}`;
const K2 = `k2:${key(22)}`;
const github = startDeviceStandIn();
afterAll(() => github.stop());

// The app that wrote everything so far: k1 is its only key.
const app = useTestApp({ env: { ENCRYPTION_KEYS: K1, GITHUB_API_OVERRIDE_URL: github.url, COPILOT_OAUTH_CLIENT_ID: github.clientId } });

/** The same database after the operator added k2 and made it active. */
function rotatedApp(t: TestApp) {
  const config = testConfig({ ENCRYPTION_KEYS: `${K1},${K2}`, ENCRYPTION_ACTIVE_KEY: "k2", GITHUB_API_OVERRIDE_URL: github.url, COPILOT_OAUTH_CLIENT_ID: github.clientId });
  const { logger } = memoryLogger();
  const next = createApp({ config, database: t.database, logger, auth: createAuth({ config, db: t.database.db, logger }) });
  return {
    config,
    request: (path: string, init: { method?: string; token: string; json?: unknown }) =>
      Promise.resolve(
        next.request(path, {
          method: init.method ?? "GET",
          headers: { authorization: `Bearer ${init.token}`, ...(init.json ? { "content-type": "application/json" } : {}) },
          ...(init.json ? { body: JSON.stringify(init.json) } : {}),
        }),
      ),
  };
}

const PROVIDERS = ["anthropic", "openai", "google", "mistral", "groq"];
let counter = 0;
const newKey = () => `sk-rot-${++counter}-${crypto.randomUUID()}`;

async function seed(t: TestApp, users: number) {
  const latest = new Map<string, string>();
  const signed: TestUser[] = [];
  for (let i = 0; i < users; i++) {
    const u = await signUp(t);
    signed.push(u);
    for (const p of PROVIDERS) {
      const k = newKey();
      expect((await t.request(`/api/v1/providers/${p}/credential`, { method: "PUT", token: u.token, json: { apiKey: k } })).status).toBe(201);
      latest.set(`${u.id}/${p}`, k);
    }
  }
  return { users: signed, latest };
}

async function decryptAll(t: TestApp, keyring: TestApp["config"]["keyring"], users: TestUser[]) {
  const out = new Map<string, string>();
  for (const u of users) {
    const ctx: ServiceContext = { db: t.database.db, actor: "user", userId: u.id, requestId: null, ipAddress: null, userAgent: null, logger: memoryLogger().logger, now: () => new Date() };
    const sandboxId = `sbx_rot${crypto.randomUUID().slice(0, 8)}`;
    await t.database.db.execute(sql`insert into sandboxes (id, user_id, name, slug, resource_tier_id, flavor_id) values (${sandboxId}, ${u.id}, ${sandboxId}, ${sandboxId}, 'starter', 'fullstack')`);
    const vault = createVault({ ctx, keyring, sandboxes: noSandboxHook, deviceFlows: githubDeviceFlowClients({ copilotClientId: "x" }) });
    const result = await vault.credentialsForSandbox(sandboxId);
    expect(result.unavailable).toEqual([]);
    for (const [p, entry] of Object.entries(result.authJson)) if (entry.type === "api") out.set(`${u.id}/${p}`, entry.key);
  }
  return out;
}

describe("keys:rotate", () => {
  test("re-encrypts everything to the active key while writes keep landing; all of it decrypts", async () => {
    const { users, latest } = await seed(app(), 4);
    const flow = await json(await app().request("/api/v1/providers/github-copilot/oauth/device", { method: "POST", token: users[0]!.token }));
    expect(await keyUsage(app().database.db)).toEqual({ k1: 21 });

    const next = rotatedApp(app());
    const { logger } = memoryLogger();
    const writes = (async () => {
      for (let round = 0; round < 3; round++) {
        for (const u of users) {
          const p = PROVIDERS[(round + users.indexOf(u)) % PROVIDERS.length]!;
          const k = newKey();
          const res = await next.request(`/api/v1/providers/${p}/credential`, { method: "PUT", token: u.token, json: { apiKey: k } });
          expect(res.status).toBe(200);
          latest.set(`${u.id}/${p}`, k);
        }
        await Bun.sleep(1);
      }
      const extra = await signUp(app());
      users.push(extra);
      const k = newKey();
      await next.request("/api/v1/providers/xai/credential", { method: "PUT", token: extra.token, json: { apiKey: k } });
      latest.set(`${extra.id}/xai`, k);
    })();
    const progress: number[] = [];
    const [report] = await Promise.all([
      rotateKeys({ db: app().database.db, keyring: next.config.keyring, logger, batchSize: 3, onProgress: (p) => progress.push(p.done) }),
      writes,
    ]);
    expect(report.failed).toBe(0);
    // Rows the API rewrote before the rotation reached them are already on k2: neither counted.
    expect(report.rotated).toBeGreaterThan(0);
    expect(report.rotated + report.skipped).toBeLessThanOrEqual(21);
    expect(report.remaining).toBe(0);
    expect(progress.length).toBeGreaterThan(3);
    // Anything a concurrent write left on k1 would show here; rerunning finishes idempotently.
    const again = await rotateKeys({ db: app().database.db, keyring: next.config.keyring, logger });
    expect(again).toEqual({ rotated: 0, skipped: 0, failed: 0, remaining: 0 });
    expect(Object.keys(await keyUsage(app().database.db))).toEqual(["k2"]);

    const decrypted = await decryptAll(app(), next.config.keyring, users);
    expect(decrypted).toEqual(latest);
    // Without k1 in the ring, everything still decrypts: nothing depends on the old key any more.
    const k2Only = testConfig({ ENCRYPTION_KEYS: K2 }).keyring;
    expect(await decryptAll(app(), k2Only, users)).toEqual(latest);
    // The device flow's code moved too and still works with the new key.
    const res = await next.request(`/api/v1/providers/github-copilot/oauth/device/${flow.id}/poll`, { method: "POST", token: users[0]!.token });
    expect(res.status).toBe(200);
    const rotations = await queryRows<{ n: number }>(app().database.db, sql`select count(*)::int as n from activity_log where action = 'credential.rotate' and actor_type = 'system'`);
    expect(rotations[0]!.n).toBe(report.rotated);
  });

  test("is resumable: an interrupted run leaves the rest on the old key, the next run finishes it", async () => {
    const { users, latest } = await seed(app(), 2);
    const updatedAt = async () =>
      queryRows<{ id: string; updated_at: string }>(
        app().database.db,
        sql`select id, updated_at::text from provider_credentials where user_id in (${users[0]!.id}, ${users[1]!.id}) order by id`,
      );
    const before = await updatedAt();
    const next = rotatedApp(app());
    const { logger } = memoryLogger();
    let batches = 0;
    await expect(
      rotateKeys({
        db: app().database.db,
        keyring: next.config.keyring,
        logger,
        batchSize: 3,
        onProgress: (p) => {
          if (p.done > 0 && ++batches === 2) throw new Error("interrupted");
        },
      }),
    ).rejects.toThrow("interrupted");
    const midway = await keyUsage(app().database.db);
    expect(midway.k1).toBe(4);
    const report = await rotateKeys({ db: app().database.db, keyring: next.config.keyring, logger });
    expect(report).toEqual({ rotated: 4, skipped: 0, failed: 0, remaining: 0 });
    // Re-encrypting is not changing: each credential's updatedAt is what its owner last did.
    expect(await updatedAt()).toEqual(before);
    const decrypted = await decryptAll(app(), next.config.keyring, users);
    for (const [k, v] of decrypted) if (latest.has(k)) expect(v).toBe(latest.get(k)!);
  });

  test("the CLI has --help, and --check says by exit code whether a key id is still used", async () => {
    const help = Bun.spawnSync([process.execPath, "src/cli/keys-rotate.ts", "--help"], { cwd: `${import.meta.dir}/../..` });
    expect(help.exitCode).toBe(0);
    expect(help.stdout.toString()).toContain("--check KEYID");
    const bad = Bun.spawnSync([process.execPath, "src/cli/keys-rotate.ts", "--check", "not a key id!"], { cwd: `${import.meta.dir}/../..`, env: { PATH: process.env.PATH ?? "", DATA_DIR: "memory://" } });
    expect(bad.exitCode).toBe(2);
    const url = app().database.url;
    if (!url) return; // the in-memory database of this run is not reachable from another process
    const env = { PATH: process.env.PATH ?? "", DATABASE_URL: url, ENCRYPTION_KEYS: `${K1},${K2}`, ENCRYPTION_ACTIVE_KEY: "k2", NODE_ENV: "test" };
    const check = (id: string) => Bun.spawnSync([process.execPath, "src/cli/keys-rotate.ts", "--check", id], { cwd: `${import.meta.dir}/../..`, env });
    const k1 = check("k1");
    expect(k1.stdout.toString().trim()).toBe("key k1: not in use");
    expect(k1.exitCode).toBe(0);
    const k2 = check("k2");
    expect(k2.stdout.toString()).toContain("key k2: in use by");
    expect(k2.exitCode).toBe(1);
    const run = Bun.spawnSync([process.execPath, "src/cli/keys-rotate.ts"], { cwd: `${import.meta.dir}/../..`, env });
    expect(run.exitCode).toBe(0);
    expect(run.stdout.toString()).toContain("active key k2: 0 re-encrypted");
  });
});
