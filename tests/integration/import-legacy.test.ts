import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Database as Sqlite } from "bun:sqlite";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sql } from "drizzle-orm";
import { symmetricDecrypt } from "better-auth/crypto";
import { queryRows } from "../../src/database/client";
import { ImportUsageError, importLegacy, type ImportOptions } from "../../src/import/run";
import { workloadFilesLoader, AUTH_JSON_PATH } from "../../src/services/sandboxes/workload-files";
import { createTestApp, type TestApp } from "../helpers/app";
import { ALICE, ANTHROPIC_KEY, BOB, buildLegacyFixture, COPILOT_TOKEN, importOptionsFor, LEGACY_KEY, LONG_TEXT, silentLogger } from "../helpers/legacy-fixture";

const dir = mkdtempSync(join(tmpdir(), "warren-import-"));
const file = join(dir, "database.sqlite");
const fixture = buildLegacyFixture(file);

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
}, 60_000);
afterAll(async () => {
  await t?.close();
  rmSync(dir, { recursive: true, force: true });
});

const silent = silentLogger;
const opts = (over: Partial<ImportOptions> = {}) => importOptionsFor(t, file, over);

async function count(table: string): Promise<number> {
  const [row] = await queryRows<{ n: string }>(t.database.db, sql`select count(*) as n from ${sql.identifier(table)}`);
  return Number(row!.n);
}


async function signIn(email: string, password: string): Promise<Response> {
  return t.request("/api/auth/sign-in/email", { method: "POST", json: { email, password }, headers: { origin: t.config.publicUrl } });
}

describe("legacy import", () => {
  test("refuses to guess who gets the global credentials, before writing anything", async () => {
    await expect(importLegacy({ ...opts({ logger: silent }), assignCredentialsTo: null })).rejects.toBeInstanceOf(ImportUsageError);
    await expect(importLegacy({ ...opts({ logger: silent }), legacyKey: null })).rejects.toThrow(/LEGACY_ENCRYPTION_KEY/);
    expect(await count("users")).toBe(0);
  });

  test("a wrong legacy key fails at the credential row, with nothing written", async () => {
    const report = await importLegacy(opts({ logger: silent, legacyKey: "not-the-legacy-key" }));
    expect(report.ok).toBe(false);
    expect(report.committed).toBe(false);
    expect(report.failure).toMatchObject({ table: "provider_credentials", row: "cred-1" });
    expect(await count("users")).toBe(0);
  });

  test("dry run does everything, verifies, and rolls back", async () => {
    const report = await importLegacy(opts({ logger: silent, dryRun: true }));
    expect(report.failure).toBeNull();
    expect(report.verification).toEqual({ ok: true, mismatches: [] });
    expect(report.ok).toBe(true);
    expect(report.committed).toBe(false);
    expect(report.tables.find((x) => x.table === "chat_messages")!.imported).toBe(5);
    expect(await count("users")).toBe(0);
    expect(await count("chat_messages")).toBe(0);
  });

  test("imports every table with its quirks, verified", async () => {
    const report = await importLegacy(opts({ logger: silent }));
    expect(report.failure).toBeNull();
    expect(report.ok).toBe(true);
    const byTable = Object.fromEntries(report.tables.map((x) => [x.table, x]));
    for (const x of report.tables) {
      expect(x.source).toBe(fixture.counts[x.table]!);
      expect(x.imported + x.updated + x.alreadyPresent + x.merged + x.skipped).toBe(x.source);
      expect(x.verified).toBe(true);
    }
    expect(byTable.user).toMatchObject({ imported: 2 });
    expect(byTable.chat_messages).toMatchObject({ imported: 5, merged: 1, skipped: 2, skippedByReason: { orphan_session: 2 } });
    expect(byTable.chat_messages!.malformedJson).toEqual([{ id: "m3", column: "content", problem: "malformed JSON" }]);
    expect(byTable.activity_log).toMatchObject({ imported: 3, skippedByReason: { orphan_user: 1 } });
    expect(byTable.user_opencode_config).toMatchObject({ imported: 2, skippedByReason: { orphan_user: 1 } });
    expect(byTable.sandboxes).toMatchObject({ imported: 3, skippedByReason: { orphan_user: 1 } });
    expect(byTable.resource_tiers).toMatchObject({ updated: 1, alreadyPresent: 4 });
    expect(byTable.container_flavors).toMatchObject({ imported: 1, alreadyPresent: 1 });
    expect(byTable.provider_credentials).toMatchObject({ imported: 2, skippedByReason: { no_secret: 1 } });
    expect(byTable.oauth_state).toMatchObject({ skippedByReason: { pending_oauth_flow: 1, transient_oauth_state: 1 } });
    expect(report.notImported.map((n) => n.table).sort()).toEqual(["_migrations", "container_tiers", "projects", "providers", "settings"]);

    const db = t.database.db;
    // Timestamps of every shape land as UTC instants.
    const [bob] = await queryRows<{ created_at: Date | string; email: string; name: string }>(db, sql`select created_at, email, name from users where id = ${BOB.id}`);
    expect(new Date(bob!.created_at).toISOString()).toBe("2023-11-21T13:48:14.000Z");
    expect(bob!.email).toBe("bob@example.com");
    const [alice] = await queryRows<{ created_at: Date | string }>(db, sql`select created_at from users where id = ${ALICE.id}`);
    expect(new Date(alice!.created_at).toISOString()).toBe("2023-01-02T03:04:05.000Z");
    // Malformed JSON is recoverable; unicode and very long text survive; duplicates merged.
    const msgs = await queryRows<{ id: string; content: unknown; text: string }>(db, sql`select id, content, text from chat_messages order by id`);
    expect(msgs.map((m) => m.id)).toEqual(["m1", "m2", "m3", "m4", "m5"]);
    expect(msgs.find((m) => m.id === "m3")!.content).toEqual({ $legacyText: "{not json" });
    expect(msgs.find((m) => m.id === "m4")!.text).toBe(LONG_TEXT);
    expect(msgs.find((m) => m.id === "m1")!.text).toBe("Bonjour, 世界 🦀");
    // Secrets: no plaintext GitHub token, none in activity metadata, credential sealed by the vault.
    const [gh] = await queryRows<{ access_token: string }>(db, sql`select access_token from accounts where id = 'acc-alice-gh'`);
    expect(gh!.access_token).not.toContain("gho_");
    const ctx = await t.auth.$context;
    expect(await symmetricDecrypt({ key: ctx.secretConfig as never, data: gh!.access_token })).toBe("gho_plaintextGithubToken");
    const [act] = await queryRows<{ metadata: Record<string, unknown> }>(db, sql`select metadata from activity_log where id = '1'`);
    expect(act!.metadata).toEqual({ apiKey: "[redacted]", via: "ui" });
    const dump = JSON.stringify(await queryRows(db, sql`select * from activity_log`));
    expect(dump).not.toContain(ANTHROPIC_KEY);
    // The operator's edit of a tier carried over; the sandbox keeps its id, arrives stopped.
    const [builder] = await queryRows<{ memory_mb: number }>(db, sql`select memory_mb from resource_tiers where id = 'builder'`);
    expect(builder!.memory_mb).toBe(6144);
  });

  test("a legacy user signs in with the old password and sees their data; their key reaches their sandbox", async () => {
    const res = await signIn(ALICE.email, ALICE.password);
    expect(res.status).toBe(200);
    const token = res.headers.get("set-auth-token")!;
    expect((await signIn(ALICE.email, "wrong password!!")).status).toBe(401);
    expect((await signIn("BOB@example.com", BOB.password)).status).toBe(200);

    const list = await t.request("/api/v1/sandboxes", { token });
    expect(list.status).toBe(200);
    const sandboxes = ((await list.json()) as { data: Array<{ id: string; status: string; repositoryUrl: string | null }> }).data;
    expect(sandboxes.map((s) => s.id).sort()).toEqual(["AbCdEf123456", "ZyXwVu654321"]);
    const app = sandboxes.find((s) => s.id === "AbCdEf123456")!;
    expect(app.status).toBe("stopped");
    expect(app.repositoryUrl).toBe("https://github.com/alice/app");

    const prefs = await t.request("/api/v1/me/preferences", { token });
    expect(prefs.status).toBe(200);
    expect(await prefs.json()).toMatchObject({ themeMode: "dark", themePreset: "ocean", autoRefreshInterval: 300, defaultResourceTierId: "builder" });

    const config = await t.request("/api/v1/me/agent-config", { token });
    expect(config.status).toBe(200);
    const body = JSON.stringify(await config.json());
    expect(body).toContain("claude-sonnet-4");
    expect(body).toContain("reviewer");

    const chats = await queryRows<{ id: string; user_id: string }>(t.database.db, sql`select id, user_id from chat_sessions`);
    expect(chats).toEqual([{ id: "0123456789abcdef0123456789abcdef", user_id: ALICE.id }]);

    const files = await workloadFilesLoader({ db: t.database.db, keyring: t.config.keyring, logger: silent, now: () => new Date() })(ALICE.id, "AbCdEf123456");
    const auth = JSON.parse(files.find((f) => f.path === AUTH_JSON_PATH)!.content);
    expect(auth.anthropic).toEqual({ type: "api", key: ANTHROPIC_KEY });
    expect(auth["github-copilot"]).toMatchObject({ type: "oauth", refresh: COPILOT_TOKEN });
  });

  test("a second run imports nothing and reports every row as already present", async () => {
    const before = await count("chat_messages");
    const report = await importLegacy(opts({ logger: silent }));
    expect(report.ok).toBe(true);
    for (const x of report.tables) {
      expect(x.imported).toBe(0);
      expect(x.updated).toBe(0);
    }
    expect(report.tables.find((x) => x.table === "user")!.alreadyPresent).toBe(2);
    expect(report.tables.find((x) => x.table === "chat_messages")).toMatchObject({ alreadyPresent: 5, merged: 1 });
    expect(await count("chat_messages")).toBe(before);
  });

  test("a newer file adds only its new rows", async () => {
    const db = new Sqlite(file, { strict: true });
    db.query("insert into chat_messages (id, session_id, external_message_id, role, content, status, created_at) values (?,?,?,?,?,?,?)").run(
      "m-new", "0123456789abcdef0123456789abcdef", "ext-new", "user", '[{"type":"text","text":"new"}]', "complete", "2024-05-05 05:05:05",
    );
    db.close();
    const report = await importLegacy(opts({ logger: silent }));
    expect(report.ok).toBe(true);
    expect(report.tables.find((x) => x.table === "chat_messages")).toMatchObject({ imported: 1, alreadyPresent: 5, merged: 1 });
    expect(report.tables.filter((x) => x.table !== "chat_messages").every((x) => x.imported === 0)).toBe(true);
  });

  test("a row PostgreSQL refuses mid-way rolls everything back and is named", async () => {
    const db = new Sqlite(file, { strict: true });
    // A NUL character cannot be stored in PostgreSQL text: a genuine mid-import failure.
    db.query("insert into activity_log (user_id, action, metadata, created_at) values (?,?,?,?)").run(ALICE.id, "bad\u0000action", "{}", "2024-01-01 00:00:00");
    const id = db.query<{ id: number }, []>("select max(id) as id from activity_log").get()!.id;
    db.query("insert into chat_messages (id, session_id, external_message_id, role, content, status, created_at) values (?,?,?,?,?,?,?)").run(
      "m-newer", "0123456789abcdef0123456789abcdef", "ext-newer", "user", "[]", "complete", "2024-05-05 05:05:06",
    );
    db.close();
    const messagesBefore = await count("chat_messages");
    const report = await importLegacy(opts({ logger: silent }));
    expect(report.ok).toBe(false);
    expect(report.committed).toBe(false);
    expect(report.failure).toMatchObject({ table: "activity_log", row: String(id) });
    // chat_messages (imported before activity_log in the same run) was rolled back too.
    expect(await count("chat_messages")).toBe(messagesBefore);
  });
});
