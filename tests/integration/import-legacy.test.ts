import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Database as Sqlite } from "bun:sqlite";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sql } from "drizzle-orm";
import { symmetricDecrypt } from "better-auth/crypto";
import { queryRows } from "../../src/database/client";
import { SEED } from "../../src/import/reference-data";
import { renderText } from "../../src/import/report";
import { ImportUsageError, importLegacy, type ImportOptions } from "../../src/import/run";
import { workloadFilesLoader, AUTH_JSON_PATH } from "../../src/services/sandboxes/workload-files";
import { createTestApp, type TestApp } from "../helpers/app";
import { ALICE, ANTHROPIC_KEY, BOB, buildLegacyFixture, COPILOT_TOKEN, importOptionsFor, LEGACY_BROKEN_METADATA, LEGACY_KEY, LONG_TEXT, silentLogger } from "../helpers/legacy-fixture";

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


const iso = (value: unknown) => (value === null ? null : new Date(value as string).toISOString());
const sha256 = async (path: string) => new Bun.CryptoHasher("sha256").update(await Bun.file(path).arrayBuffer()).digest("hex");

const SESSION = "0123456789abcdef0123456789abcdef";
type Counters = { n: number; u: number; a: number; input: number; output: number; cost: number; last: string | null };

/** What chat_sessions says about a session. */
async function sessionCounters(id: string): Promise<Counters> {
  const [r] = await queryRows<Record<string, unknown>>(
    t.database.db,
    sql`select message_count as n, user_message_count as u, assistant_message_count as a, total_input_tokens as input,
          total_output_tokens as output, total_cost as cost, last_message_at as last from chat_sessions where id = ${id}`,
  );
  return toCounters(r!);
}

/** The same figures counted from the session's rows in chat_messages, independently of the importer. */
async function countedFromMessages(id: string): Promise<Counters> {
  const [r] = await queryRows<Record<string, unknown>>(
    t.database.db,
    sql`select count(*) as n, count(*) filter (where role = 'user') as u, count(*) filter (where role = 'assistant') as a,
          coalesce(sum(input_tokens), 0) as input, coalesce(sum(output_tokens), 0) as output, coalesce(sum(cost), 0) as cost,
          max(created_at) as last from chat_messages where session_id = ${id}`,
  );
  return toCounters(r!);
}

function toCounters(r: Record<string, unknown>): Counters {
  return { n: Number(r.n), u: Number(r.u), a: Number(r.a), input: Number(r.input), output: Number(r.output), cost: Number(r.cost), last: iso(r.last) };
}

/** The legacy file's messages of a session with each duplicate (same external id) counted once. */
function countedInFile(id: string): Pick<Counters, "n" | "u" | "a" | "input" | "output"> {
  const db = new Sqlite(file, { readonly: true });
  const r = db
    .query<Record<string, number>, [string]>(
      `select count(*) as n, sum(role = 'user') as u, sum(role = 'assistant') as a, sum(coalesce(input_tokens, 0)) as input, sum(coalesce(output_tokens, 0)) as output
       from chat_messages m where session_id = ?1
         and (external_message_id is null or rowid = (select min(rowid) from chat_messages d where d.session_id = m.session_id and d.external_message_id = m.external_message_id))`,
    )
    .get(id)!;
  db.close();
  return { n: r.n!, u: r.u!, a: r.a!, input: r.input!, output: r.output! };
}

async function signIn(email: string, password: string): Promise<Response> {
  return t.request("/api/auth/sign-in/email", { method: "POST", json: { email, password }, headers: { origin: t.config.publicUrl } });
}

describe("legacy import", () => {
  test("Warren's seeded catalog holds the legacy seed's values for every field the import compares", async () => {
    // The import applies a legacy edit only over a value still equal to this seed (reference-data.ts).
    for (const [table, rows] of Object.entries(SEED)) {
      for (const [id, fields] of Object.entries(rows)) {
        const [row] = await queryRows<Record<string, unknown>>(t.database.db, sql`select * from ${sql.identifier(table)} where id = ${id}`);
        const got = Object.fromEntries(Object.keys(fields).map((c) => [c, typeof row![c] === "string" && /^-?\d+(\.\d+)?$/.test(row![c] as string) ? Number(row![c]) : row![c]]));
        expect({ table, id, ...got }).toEqual({ table, id, ...fields } as never);
      }
    }
  });

  test("refuses to guess who gets the global credentials, before writing anything", async () => {
    await expect(importLegacy({ ...opts({ logger: silent }), assignCredentialsTo: null })).rejects.toBeInstanceOf(ImportUsageError);
    await expect(importLegacy({ ...opts({ logger: silent }), legacyKey: null })).rejects.toThrow(/LEGACY_ENCRYPTION_KEY is not set/);
    // The variable the operator named is the one the message names.
    await expect(importLegacy({ ...opts({ logger: silent }), legacyKey: null, legacyKeyEnv: "OLD_KEY" })).rejects.toThrow(/OLD_KEY is not set/);
    expect(await count("users")).toBe(0);
  });

  test("refuses an assignee who is neither in the file nor in Warren, before writing anything", async () => {
    const attempt = importLegacy(opts({ assignCredentialsTo: "nobody@example.com" }));
    await expect(attempt).rejects.toBeInstanceOf(ImportUsageError);
    await expect(importLegacy(opts({ assignCredentialsTo: "nobody@example.com" }))).rejects.toThrow(/nobody@example.com: no user with that email/);
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

  test("counts that do not balance roll everything back: the table grew by more than was imported", async () => {
    // A trigger (test-only) adds a second row per verification: imported 1, verifications +2.
    const db = t.database.db;
    await db.execute(sql.raw(`create function legacy_test_shadow() returns trigger language plpgsql as $$
      begin
        if new.id not like '%-shadow' then
          insert into verifications (id, identifier, value, expires_at) values (new.id || '-shadow', new.identifier, new.value, new.expires_at);
        end if;
        return new;
      end $$`));
    await db.execute(sql.raw("create trigger legacy_test_shadow after insert on verifications for each row execute function legacy_test_shadow()"));
    try {
      const report = await importLegacy(opts());
      expect(report.ok).toBe(false);
      expect(report.committed).toBe(false);
      expect(report.failure).toBeNull();
      expect(report.verification.ok).toBe(false);
      expect(report.verification.mismatches).toEqual(["verification: 1 rows imported but verifications gained 2"]);
      expect(report.tables.find((x) => x.table === "verification")!.verified).toBe(false);
      expect(await count("users")).toBe(0);
      expect(await count("verifications")).toBe(0);
    } finally {
      await db.execute(sql.raw("drop trigger legacy_test_shadow on verifications"));
      await db.execute(sql.raw("drop function legacy_test_shadow()"));
    }
  });

  test("imports every table with its quirks, verified", async () => {
    const fileBefore = await sha256(file);
    const report = await importLegacy(opts({ logger: silent }));
    // The legacy file is read, never written (not even a checkpoint).
    expect(await sha256(file)).toBe(fileBefore);
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
    expect(byTable.chat_messages!.malformedJson).toEqual([{ id: "m3", column: "content", problem: 'malformed JSON, kept as {"$legacyText": <the original text>}' }]);
    // m2 was still streaming in the legacy file: no agent will finish it.
    expect(byTable.chat_messages!.interrupted).toBe(1);
    expect(byTable.chat_messages!.replaced).toContainEqual({ id: "m2", column: "status", problem: "still streaming in the legacy file, stored as cancelled (content kept)" });
    expect(renderText(report)).toContain("chat_messages: 1 message(s) still streaming in the legacy file stored as finished");
    expect(byTable.chat_sessions!.countersRecomputed).toBe(1);
    // Agent files whose names or extensions Warren refuses are skipped and named, not imported.
    expect(byTable.user_opencode_files).toMatchObject({ imported: 1, skippedByReason: { orphan_user: 1, invalid: 2 } });
    expect(byTable.user_opencode_files!.replaced.filter((r) => r.problem.endsWith("row not imported"))).toEqual([
      { id: "file-3", column: "name", problem: '"../escape" must not contain / or \\: row not imported' },
      { id: "file-4", column: "extension", problem: "a tool cannot be a .md file: row not imported" },
    ]);
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
    const [alice] = await queryRows<{ created_at: Date | string; updated_at: Date | string }>(db, sql`select created_at, updated_at from users where id = ${ALICE.id}`);
    expect(iso(alice!.created_at)).toBe("2023-01-02T03:04:05.000Z"); // 'YYYY-MM-DD HH:MM:SS', no zone: UTC
    expect(iso(alice!.updated_at)).toBe("2023-01-02T03:04:05.123Z"); // ISO with Z
    const [ses] = await queryRows<{ created_at: string; updated_at: string; expires_at: string }>(db, sql`select created_at, updated_at, expires_at from sessions where id = 'ses-alice'`);
    expect(iso(ses!.created_at)).toBe("2023-01-02T03:04:05.000Z"); // epoch seconds
    expect(iso(ses!.updated_at)).toBe("2023-01-02T03:04:05.123Z"); // epoch milliseconds
    const [ver] = await queryRows<{ expires_at: string }>(db, sql`select expires_at from verifications where id = 'ver-1'`);
    expect(iso(ver!.expires_at)).toBe("2023-06-01T00:00:00.000Z"); // ISO with +02:00
    // No 30 February: stored as NULL and named, not rolled over to March.
    const [bobBox] = await queryRows<{ last_activity_at: string | null }>(db, sql`select last_activity_at from sandboxes where id = 'Bob000000001'`);
    expect(bobBox!.last_activity_at).toBeNull();
    expect(byTable.sandboxes!.replaced).toContainEqual({ id: "Bob000000001", column: "last_accessed_at", problem: "unparseable timestamp, stored as NULL" });
    // 0/1 to booleans.
    const verified = await queryRows<{ id: string; email_verified: boolean }>(db, sql`select id, email_verified from users order by id`);
    expect(verified).toEqual([
      { id: ALICE.id, email_verified: true },
      { id: BOB.id, email_verified: false },
    ]);
    const [prefs] = await queryRows<{ in_app_notifications: boolean; system_notifications: boolean }>(db, sql`select in_app_notifications, system_notifications from user_preferences where user_id = ${ALICE.id}`);
    expect(prefs).toEqual({ in_app_notifications: true, system_notifications: false });
    // Malformed JSON is recoverable; unicode and very long text survive; duplicates merged.
    const msgs = await queryRows<{ id: string; content: unknown; text: string }>(db, sql`select id, content, text from chat_messages order by id`);
    expect(msgs.map((m) => m.id)).toEqual(["m1", "m2", "m3", "m4", "m5"]);
    expect(msgs.find((m) => m.id === "m3")!.content).toEqual({ $legacyText: "{not json" });
    // The operator gets the original text back with plain SQL, wherever it was kept.
    const [recovered] = await queryRows<{ original: string }>(db, sql`select content->>'$legacyText' as original from chat_messages where id = 'm3'`);
    expect(recovered!.original).toBe("{not json");
    const [bobConfig] = await queryRows<{ original: string }>(db, sql`select config->>'$legacyText' as original from user_agent_config where user_id = ${BOB.id}`);
    expect(bobConfig!.original).toBe('{"model": ');
    // Where Warren's column cannot hold it (a list of add-on ids, of scopes), the report carries it.
    const original = (table: string, id: string) => byTable[table]!.malformedJson.find((m) => m.id === id)?.original;
    expect(original("sandboxes", "ZyXwVu654321")).toBe("[gui");
    expect(original("user_preferences", BOB.id)).toBe("not json");
    expect(original("provider_credentials", "cred-3")).toBe("read:user, repo");
    expect(byTable.sandboxes!.malformedJsonNotKept).toBe(1);
    expect(msgs.find((m) => m.id === "m4")!.text).toBe(LONG_TEXT);
    expect(msgs.find((m) => m.id === "m1")!.text).toBe("Bonjour, 世界 🦀");
    // The interrupted message is final, with its content; nothing is left streaming.
    const [m2] = await queryRows<{ status: string; content: unknown; error_message: string | null }>(db, sql`select status, content, error_message from chat_messages where id = 'm2'`);
    expect(m2).toEqual({ status: "cancelled", content: [{ type: "text", text: "first copy" }], error_message: "Interrupted: the legacy system never finished this message" });
    expect(await queryRows(db, sql`select id from chat_messages where status = 'streaming'`)).toEqual([]);
    // The legacy row says 5 messages, 3 from the assistant, 100/200 tokens (it counted the
    // duplicate m2-dup and more); the session's counters are those of the messages imported.
    const counters = await sessionCounters(SESSION);
    expect(counters).toEqual(await countedFromMessages(SESSION));
    expect(counters).toMatchObject(countedInFile(SESSION));
    expect(counters).toMatchObject({ n: 5, u: 2, a: 2, input: 5, output: 10, cost: 0 });
    // Secrets: no plaintext GitHub token, none in activity metadata, credential sealed by the vault.
    const [gh] = await queryRows<{ access_token: string }>(db, sql`select access_token from accounts where id = 'acc-alice-gh'`);
    expect(gh!.access_token).not.toContain("gho_");
    const ctx = await t.auth.$context;
    expect(await symmetricDecrypt({ key: ctx.secretConfig as never, data: gh!.access_token })).toBe("gho_plaintextGithubToken");
    const [act] = await queryRows<{ metadata: Record<string, unknown> }>(db, sql`select metadata from activity_log where id = '1'`);
    expect(act!.metadata).toEqual({ apiKey: "[redacted]", via: "ui" });
    // Malformed metadata is kept as text, with the secrets it holds redacted like parsed ones.
    const [broken] = await queryRows<{ metadata: Record<string, unknown> }>(db, sql`select metadata from activity_log where id = '2'`);
    expect(broken!.metadata).toEqual({ $legacyText: LEGACY_BROKEN_METADATA.replace("sk-legacy-broken-secret", "[redacted]") });
    const dump = JSON.stringify(await queryRows(db, sql`select * from activity_log`));
    expect(dump).not.toContain(ANTHROPIC_KEY);
    expect(dump).not.toContain("sk-legacy-broken-secret");
    // The report (printed, or --json) carries no secret of the file.
    const legacy = new Sqlite(file, { readonly: true });
    const hashes = legacy.query<{ password: string }, []>('select password from "account" where password is not null').all().map((r) => r.password);
    legacy.close();
    const printed = JSON.stringify(report);
    for (const secret of [ANTHROPIC_KEY, COPILOT_TOKEN, "gho_plaintextGithubToken", "legacy-token-alice", "legacy-token-ghost", "dc-plain", "sk-should-not-survive", "sk-legacy-broken-secret", ...hashes]) {
      expect(printed).not.toContain(secret);
    }
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

    const chats = await t.request("/api/v1/chat/sessions", { token });
    expect(chats.status).toBe(200);
    const sessions = ((await chats.json()) as { data: Array<{ id: string; title: string }> }).data;
    expect(sessions.map((s) => [s.id, s.title])).toEqual([["0123456789abcdef0123456789abcdef", "Première session 🦊"]]);
    const messages = await t.request("/api/v1/chat/sessions/0123456789abcdef0123456789abcdef/messages?limit=100", { token });
    expect(messages.status).toBe(200);
    const page = JSON.stringify(await messages.json());
    expect(page).toContain("Bonjour, 世界 🦀");
    expect(page).toContain("first copy");
    expect(page).not.toContain("second copy");

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
    expect(report.tables.find((x) => x.table === "chat_sessions")!.countersRecomputed).toBe(0);
    for (const table of ["resource_tiers", "container_flavors", "container_addons"]) {
      expect(report.tables.find((x) => x.table === table)).toMatchObject({ imported: 0, updated: 0, keptCount: 0, kept: [] });
    }
    expect(await count("chat_messages")).toBe(before);
  });

  test("a re-run after edits in Warren keeps them and reports nothing new", async () => {
    const db = t.database.db;
    // Edits in Warren after the first import: over a legacy edit the import applied (builder's
    // memory), over a row the import added (elixir), over a field the legacy file left at its seed
    // (gui's price). And Warren's sync counted more tokens for the imported session than its rows hold.
    await db.execute(sql`update resource_tiers set memory_mb = 8192 where id = 'builder'`);
    await db.execute(sql`update container_flavors set image_size_mb = 1000 where id = 'elixir'`);
    await db.execute(sql`update container_addons set price_monthly = 7 where id = 'gui'`);
    await db.execute(sql`update chat_sessions set total_input_tokens = 1000, total_output_tokens = 2000, total_cost = 1.5 where id = ${SESSION}`);
    const sessionBefore = await sessionCounters(SESSION);

    const report = await importLegacy(opts({ logger: silent }));
    expect(report.ok).toBe(true);
    for (const x of report.tables) {
      expect(x.imported).toBe(0);
      expect(x.updated).toBe(0);
      expect(x.imported + x.updated + x.alreadyPresent + x.merged + x.skipped).toBe(x.source);
    }
    const byTable = Object.fromEntries(report.tables.map((x) => [x.table, x]));
    expect(byTable.resource_tiers).toMatchObject({ alreadyPresent: 5, keptCount: 1 });
    expect(byTable.resource_tiers!.kept).toEqual([{ id: "builder", column: "memory_mb", problem: "legacy 6144, Warren 8192: changed in Warren since its seed; Warren's kept" }]);
    expect(byTable.container_flavors!.kept).toEqual([
      { id: "elixir", column: "image_size_mb", problem: "legacy 950, Warren 1000: not part of Warren's seed (added by an earlier import or in Warren); Warren's kept" },
    ]);
    // The legacy gui row is the seed: it says nothing, so there is nothing to keep or report.
    expect(byTable.container_addons).toMatchObject({ alreadyPresent: 1, keptCount: 0 });
    expect(byTable.chat_sessions!.countersRecomputed).toBe(0);
    expect(renderText(report)).toContain("resource_tiers: 1 legacy value(s) not applied, Warren's kept (changed in Warren since seeded or imported; see --json): builder.memory_mb");

    const [builder] = await queryRows<{ memory_mb: number }>(db, sql`select memory_mb from resource_tiers where id = 'builder'`);
    expect(builder!.memory_mb).toBe(8192);
    const [elixir] = await queryRows<{ image_size_mb: number }>(db, sql`select image_size_mb from container_flavors where id = 'elixir'`);
    expect(elixir!.image_size_mb).toBe(1000);
    const [gui] = await queryRows<{ price_monthly: string | number }>(db, sql`select price_monthly from container_addons where id = 'gui'`);
    expect(Number(gui!.price_monthly)).toBe(7);
    // Token and cost totals never go backwards.
    expect(await sessionCounters(SESSION)).toEqual(sessionBefore);
  });

  test("a newer file adds only its new rows", async () => {
    const db = new Sqlite(file, { strict: true });
    // Still streaming (a user message, which Warren's sync stores complete), and with tokens.
    db.query("insert into chat_messages (id, session_id, external_message_id, role, content, input_tokens, output_tokens, status, created_at) values (?,?,?,?,?,?,?,?,?)").run(
      "m-new", SESSION, "ext-new", "user", '[{"type":"text","text":"new"}]', 3, 4, "streaming", "2024-05-05 05:05:05",
    );
    db.close();
    const before = await sessionCounters(SESSION);
    const report = await importLegacy(opts({ logger: silent }));
    expect(report.ok).toBe(true);
    expect(report.tables.find((x) => x.table === "chat_messages")).toMatchObject({ imported: 1, alreadyPresent: 5, merged: 1, interrupted: 2 });
    expect(report.tables.filter((x) => x.table !== "chat_messages").every((x) => x.imported === 0)).toBe(true);
    expect(report.tables.find((x) => x.table === "chat_sessions")!.countersRecomputed).toBe(1);
    const [m] = await queryRows<{ status: string }>(t.database.db, sql`select status from chat_messages where id = 'm-new'`);
    expect(m!.status).toBe("complete");
    // Counts follow the rows; the totals Warren had (above the rows' sum) do not go backwards.
    const after = await sessionCounters(SESSION);
    const rows = await countedFromMessages(SESSION);
    expect(after).toEqual({ ...rows, input: before.input, output: before.output, cost: before.cost });
    expect(after).toMatchObject({ n: 6, u: 3, a: 2 });
  });

  test("a reply an earlier import stored as interrupted is replaced by its finished version from a newer file", async () => {
    const db = new Sqlite(file, { strict: true });
    // The legacy system finished m2 after the first snapshot was taken.
    db.query("update chat_messages set status = 'complete', content = ?, output_tokens = 4200, completed_at = ? where id = 'm2'").run(
      JSON.stringify([{ type: "text", text: "first copy, now finished" }]),
      "2023-02-01 09:33:00",
    );
    db.close();
    const before = await sessionCounters(SESSION);
    const report = await importLegacy(opts({ logger: silent }));
    expect(report.ok).toBe(true);
    const messages = report.tables.find((x) => x.table === "chat_messages")!;
    // m-new is still streaming in the file: interrupted again, and not touched.
    expect(messages).toMatchObject({ imported: 0, updated: 1, finished: 1, interrupted: 1, verified: true });
    expect(renderText(report)).toContain("chat_messages: 1 message(s) an earlier import stored as interrupted are finished in this file: replaced by the finished version");
    const [m2] = await queryRows<Record<string, unknown>>(t.database.db, sql`select status, content, text, error_message, output_tokens, completed_at = '2023-02-01T09:33:00Z'::timestamptz as completed_then from chat_messages where id = 'm2'`);
    expect(m2).toMatchObject({
      status: "complete",
      content: [{ type: "text", text: "first copy, now finished" }],
      text: "first copy, now finished",
      error_message: null,
      output_tokens: 4200,
      completed_then: true,
    });
    // The session's totals follow the finished reply (output 2000 set in Warren earlier is now
    // below the messages' sum); those still above it (input, cost) do not go backwards.
    const rows = await countedFromMessages(SESSION);
    expect(rows.output).toBeGreaterThan(4200);
    expect(await sessionCounters(SESSION)).toEqual({ ...rows, input: before.input, cost: before.cost });
    // Searchable by its finished text.
    const hits = await queryRows(t.database.db, sql`select id from chat_messages where search_vector @@ to_tsquery('simple', 'finished')`);
    expect(hits).toEqual([{ id: "m2" }]);

    // Once finished, a re-run has nothing more to do.
    const again = await importLegacy(opts({ logger: silent }));
    expect(again.tables.find((x) => x.table === "chat_messages")).toMatchObject({ imported: 0, updated: 0, verified: true });
    expect(again.tables.find((x) => x.table === "chat_messages")!.finished).toBeUndefined();
  });

  test("a row PostgreSQL refuses mid-way rolls everything back and is named", async () => {
    // The converter makes every value the legacy schema allows storable, so a row PostgreSQL
    // refuses is provoked here with a CHECK constraint of the test's own on Warren's table.
    await t.database.db.execute(sql`alter table activity_log add constraint refuse_in_test check (action <> 'refused.by.postgres') not valid`);
    const db = new Sqlite(file, { strict: true });
    db.query("insert into activity_log (user_id, action, metadata, created_at) values (?,?,?,?)").run(ALICE.id, "refused.by.postgres", "{}", "2024-01-01 00:00:00");
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
    expect(report.failure!.message).toContain("refuse_in_test");
    // chat_messages (imported before activity_log in the same run) was rolled back too.
    expect(await count("chat_messages")).toBe(messagesBefore);
    await t.database.db.execute(sql`alter table activity_log drop constraint refuse_in_test`);
  });
});
