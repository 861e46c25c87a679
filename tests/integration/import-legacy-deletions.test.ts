import { afterAll, describe, expect, test } from "bun:test";
import { Database as Sqlite } from "bun:sqlite";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sql } from "drizzle-orm";
import { queryRows } from "../../src/database/client";
import { renderText, type ImportReport, type TableReport } from "../../src/import/report";
import { importLegacy } from "../../src/import/run";
import { createDriver } from "../../src/orchestrator";
import { buildSandboxRuntime } from "../../src/services/sandboxes/setup";
import { claimOperation, runOperation } from "../../src/services/sandboxes/worker";
import { useTestApp } from "../helpers/app";
import { ALICE, BOB, buildLegacyFixture, importOptionsFor, silentLogger } from "../helpers/legacy-fixture";

/**
 * Issue 9 says a re-run of the import (the same file, or a newer snapshot of it during the
 * migration window) adds only what is new. What users deleted in Warren since the first run is
 * not new: a deleted account (privacy), a deleted sandbox and its chats, a purged chat session's
 * messages, a deleted agent file, a deleted provider credential (a leaked key removed: security)
 * must stay deleted. Deletions go through the real API routes.
 */

const SESSION = "0123456789abcdef0123456789abcdef";

/** The quirk fixture plus what the deletions below need: Bob's chats, file and activity; Alice's extra chats. */
function buildFile(dir: string): string {
  const file = join(dir, "database.sqlite");
  buildLegacyFixture(file);
  const db = new Sqlite(file, { strict: true });
  const chat = db.query("insert into chat_sessions (id, sandbox_id, user_id, source, opencode_session_id, title, status, created_at) values (?,?,?,?,?,?,?,?)");
  chat.run("purge-me", "AbCdEf123456", ALICE.id, "opencode", "oc-purge", "to purge", "active", "2023-03-01 00:00:00");
  chat.run("in-broken", "ZyXwVu654321", ALICE.id, "opencode", "oc-broken", "in the sandbox to delete", "active", "2023-03-01 00:00:00");
  chat.run("bob-chat", "Bob000000001", BOB.id, "opencode", "oc-bob", "Bob's chat", "active", "2023-03-01 00:00:00");
  const message = db.query("insert into chat_messages (id, session_id, external_message_id, role, content, status, created_at) values (?,?,?,?,?,?,?)");
  for (const [id, session] of [["pm-1", "purge-me"], ["pm-2", "purge-me"], ["ib-1", "in-broken"], ["bob-m1", "bob-chat"]] as const) {
    message.run(id, session, `ext-${id}`, "user", JSON.stringify([{ type: "text", text: id }]), "complete", "2023-03-01 00:01:00");
  }
  db.query('insert into "session" values (?,?,?,?,?,?,?,?)').run("ses-bob", "2030-01-01T00:00:00.000Z", "legacy-token-bob", null, null, BOB.id, null, null);
  db.query('insert into "verification" values (?,?,?,?,?,?)').run("ver-bob", "reset-password:legacy-reset-token", BOB.id, "2030-01-01T00:00:00.000Z", null, null);
  db.query("insert into user_opencode_files values (?,?,?,?,?,?,?,?)").run("file-bob", BOB.id, "agent", "bobs-helper", "md", "Bob's helper", null, null);
  db.query("insert into activity_log (user_id, action, ip_address, metadata, created_at) values (?,?,?,?,?)").run(BOB.id, "sandbox.start", "10.1.2.3", "{}", "2023-03-01 00:00:00");
  db.close();
  return file;
}

type Counts = Pick<TableReport, "imported" | "alreadyPresent" | "merged" | "deletedInWarren" | "skipped">;
const byTable = (report: ImportReport) => Object.fromEntries(report.tables.map((x) => [x.table, x]));
const counts = (x: TableReport): Counts => ({ imported: x.imported, alreadyPresent: x.alreadyPresent, merged: x.merged, deletedInWarren: x.deletedInWarren, skipped: x.skipped });

function harness() {
  const app = useTestApp();
  const dir = mkdtempSync(join(tmpdir(), "warren-import-deletions-"));
  const file = buildFile(dir);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const rows = (query: ReturnType<typeof sql>) => queryRows<Record<string, unknown>>(app().database.db, query);
  const ids = async (table: string, list: string[]) =>
    (await rows(sql`select id from ${sql.identifier(table)} where id in ${sql`(${sql.join(list.map((id) => sql`${id}`), sql`, `)})`} order by id`)).map((r) => r.id);
  const signIn = async (email: string, password: string) => {
    const res = await app().request("/api/auth/sign-in/email", { method: "POST", json: { email, password }, headers: { origin: app().config.publicUrl } });
    expect(res.status).toBe(200);
    return res.headers.get("set-auth-token")!;
  };
  /**
   * DELETE /sandboxes/:id, then the queued operation carried out as the worker does. The legacy
   * sandbox never had a workload under Warren, so the driver's remove is the only part replaced.
   */
  const deleteSandbox = async (token: string, id: string) => {
    expect((await app().request(`/api/v1/sandboxes/${id}`, { method: "DELETE", token })).status).toBe(202);
    const driver = createDriver(app().config, silentLogger);
    driver.remove = async () => {};
    const rt = buildSandboxRuntime({ config: app().config, db: app().database.db, logger: silentLogger, now: () => new Date(), driver });
    const op = await claimOperation(rt, "test-worker");
    expect(op).toMatchObject({ sandboxId: id, kind: "delete" });
    await runOperation(rt, op!);
    expect(await ids("sandboxes", [id])).toEqual([]);
  };
  const ledger = async () =>
    Object.fromEntries((await rows(sql`select entity, count(*)::int as n from legacy_import_ledger group by entity`)).map((r) => [r.entity, Number(r.n)]));
  return { app, file, rows, ids, signIn, deleteSandbox, ledger, run: () => importLegacy(importOptionsFor(app(), file)) };
}

describe("legacy import re-runs after deletions in Warren", () => {
  const h = harness();

  test("a dry run records nothing; the first run records what it brought over in the import ledger", async () => {
    expect((await importLegacy(importOptionsFor(h.app(), h.file, { dryRun: true }))).ok).toBe(true);
    expect(await h.ledger()).toEqual({});
    const report = await h.run();
    expect(report.failure).toBeNull();
    expect(report.ok).toBe(true);
    for (const x of report.tables) expect(x.deletedInWarren).toBe(0);
    // The deletable entities only (never messages or activity): the legacy ghost rows were not imported.
    expect(await h.ledger()).toEqual({ user: 2, sandboxes: 3, chat_sessions: 4, user_opencode_files: 2, provider_credentials: 2 });
    const [cred] = await h.rows(sql`select l.warren_id, c.provider_id from legacy_import_ledger l join provider_credentials c on c.id = l.warren_id where l.legacy_id = 'cred-1'`);
    expect(cred).toMatchObject({ provider_id: "anthropic" });
  });

  test("users delete in Warren, through the API", async () => {
    const bob = await h.signIn("bob@example.com", BOB.password);
    const deleted = await h.app().request("/api/v1/me/account", { method: "DELETE", token: bob, json: { confirm: "DELETE MY ACCOUNT" } });
    expect(deleted.status).toBe(200);
    const alice = await h.signIn(ALICE.email, ALICE.password);
    await h.deleteSandbox(alice, "ZyXwVu654321");
    expect((await h.app().request("/api/v1/sandboxes/AbCdEf123456/chat/sessions/purge-me?purge=true", { method: "DELETE", token: alice })).status).toBe(204);
    expect((await h.app().request("/api/v1/me/agent-config/files/agent/reviewer", { method: "DELETE", token: alice })).status).toBe(200);
    // Written again under the same name: a new file (new id), the user's own.
    const again = await h.app().request("/api/v1/me/agent-config/files/agent/reviewer", { method: "PUT", token: alice, json: { content: "You review code, briefly." } });
    expect(again.status).toBe(201);
    expect((await h.app().request("/api/v1/providers/anthropic/credential", { method: "DELETE", token: alice })).status).toBe(200);

    expect(await h.ids("users", [BOB.id])).toEqual([]);
    expect(await h.ids("chat_sessions", ["in-broken", "bob-chat"])).toEqual([]);
    expect(await h.ids("chat_messages", ["pm-1", "pm-2", "ib-1", "bob-m1"])).toEqual([]);
    expect(await h.rows(sql`select id from provider_credentials where provider_id = 'anthropic'`)).toEqual([]);
  });

  test("a re-run of the same file brings none of it back: deleted in Warren, verified; the rest already present", async () => {
    const report = await h.run();
    expect(report.failure).toBeNull();
    expect(report.verification).toEqual({ ok: true, mismatches: [] });
    expect(report.ok).toBe(true);
    expect(report.committed).toBe(true);
    const t = byTable(report);
    for (const x of report.tables) {
      expect({ table: x.table, imported: x.imported, updated: x.updated }).toEqual({ table: x.table, imported: 0, updated: 0 });
      expect(x.alreadyPresent + x.merged + x.deletedInWarren + x.skipped).toBe(x.source);
      expect(x.verified).toBe(true);
    }
    expect(counts(t.user!)).toEqual({ imported: 0, alreadyPresent: 1, merged: 0, deletedInWarren: 1, skipped: 0 });
    // Bob's sign-in session and account, his password-reset token: gone with his account.
    expect(counts(t.session!)).toEqual({ imported: 0, alreadyPresent: 1, merged: 0, deletedInWarren: 1, skipped: 1 });
    expect(counts(t.account!)).toEqual({ imported: 0, alreadyPresent: 2, merged: 0, deletedInWarren: 1, skipped: 1 });
    expect(counts(t.verification!)).toEqual({ imported: 0, alreadyPresent: 1, merged: 0, deletedInWarren: 1, skipped: 0 });
    // The deleted sandbox, and Bob's.
    expect(counts(t.sandboxes!)).toEqual({ imported: 0, alreadyPresent: 1, merged: 0, deletedInWarren: 2, skipped: 1 });
    // The purged session (a tombstone), the deleted sandbox's chat, Bob's chat; and their messages.
    expect(counts(t.chat_sessions!)).toEqual({ imported: 0, alreadyPresent: 1, merged: 0, deletedInWarren: 3, skipped: 1 });
    expect(counts(t.chat_messages!)).toEqual({ imported: 0, alreadyPresent: 5, merged: 1, deletedInWarren: 4, skipped: 2 });
    expect(counts(t.user_preferences!)).toEqual({ imported: 0, alreadyPresent: 1, merged: 0, deletedInWarren: 1, skipped: 0 });
    expect(counts(t.user_opencode_config!)).toEqual({ imported: 0, alreadyPresent: 1, merged: 0, deletedInWarren: 1, skipped: 1 });
    // Alice's deleted file (rewritten since under the same name: hers, not a conflict) and Bob's.
    expect(counts(t.user_opencode_files!)).toEqual({ imported: 0, alreadyPresent: 0, merged: 0, deletedInWarren: 2, skipped: 3 });
    // Bob's activity stays as account deletion left it: anonymised, already present.
    expect(counts(t.activity_log!)).toEqual({ imported: 0, alreadyPresent: 4, merged: 0, deletedInWarren: 0, skipped: 1 });
    expect(counts(t.provider_credentials!)).toEqual({ imported: 0, alreadyPresent: 1, merged: 0, deletedInWarren: 1, skipped: 1 });
    expect(report.credentials).toEqual({ assignedTo: ALICE.email, imported: 0, alreadyPresent: 1, deletedInWarren: 1 });
    expect(t.chat_sessions!.countersRecomputed).toBe(0);

    // Nothing came back.
    expect(await h.ids("users", [BOB.id])).toEqual([]);
    expect(await h.rows(sql`select id from users where email = 'bob@example.com'`)).toEqual([]);
    expect(await h.ids("sessions", ["ses-bob"])).toEqual([]);
    expect(await h.ids("accounts", ["acc-bob"])).toEqual([]);
    expect(await h.ids("verifications", ["ver-bob"])).toEqual([]);
    expect(await h.ids("sandboxes", ["ZyXwVu654321", "Bob000000001"])).toEqual([]);
    expect(await h.ids("chat_sessions", ["in-broken", "bob-chat"])).toEqual([]);
    expect(await h.ids("chat_messages", ["pm-1", "pm-2", "ib-1", "bob-m1"])).toEqual([]);
    expect(await h.rows(sql`select user_id from user_preferences where user_id = ${BOB.id} union all select user_id from user_agent_config where user_id = ${BOB.id}`)).toEqual([]);
    expect(await h.ids("user_agent_files", ["file-1", "file-bob"])).toEqual([]);
    expect(await h.rows(sql`select content from user_agent_files where name = 'reviewer'`)).toEqual([{ content: "You review code, briefly." }]);
    expect(await h.rows(sql`select id from provider_credentials where provider_id = 'anthropic'`)).toEqual([]);
    expect(await h.rows(sql`select id from activity_log where user_id = ${BOB.id} or ip_address = '10.1.2.3'`)).toEqual([]);
    // The purged session is still the tombstone the purge left.
    expect(await h.rows(sql`select purged_at is not null as purged, message_count, title from chat_sessions where id = 'purge-me'`)).toEqual([{ purged: true, message_count: 0, title: "" }]);

    const text = renderText(report);
    expect(text).toContain("Deleted in Warren since an earlier import, not brought back");
    expect(text).toContain("  chat_messages: 4");
    expect(text).toContain("1 deleted in Warren since imported (not brought back)");
    expect(text).not.toContain("MISMATCH");
  });

  test("a newer file adds only its new rows; new rows of what was deleted in Warren stay out", async () => {
    const db = new Sqlite(h.file, { strict: true });
    const message = db.query("insert into chat_messages (id, session_id, external_message_id, role, content, status, created_at) values (?,?,?,?,?,?,?)");
    const chat = db.query("insert into chat_sessions (id, sandbox_id, user_id, source, opencode_session_id, title, status, created_at) values (?,?,?,?,?,?,?,?)");
    message.run("m-live", SESSION, "ext-live", "user", "[]", "complete", "2024-06-01 00:00:00");
    message.run("pm-3", "purge-me", "ext-pm-3", "user", "[]", "complete", "2024-06-01 00:00:00");
    chat.run("bob-chat-2", "Bob000000001", BOB.id, "opencode", "oc-bob-2", "Bob's later chat", "active", "2024-06-01 00:00:00");
    message.run("bob-m2", "bob-chat-2", "ext-bob-m2", "user", "[]", "complete", "2024-06-01 00:00:00");
    chat.run("in-broken-2", "ZyXwVu654321", ALICE.id, "opencode", "oc-broken-2", "later", "active", "2024-06-01 00:00:00");
    message.run("ib-2", "in-broken-2", "ext-ib-2", "user", "[]", "complete", "2024-06-01 00:00:00");
    db.query("insert into sandboxes (id, user_id, name, slug, status) values (?,?,?,?,?)").run("NewBox000001", ALICE.id, "New box", "new-box", "stopped");
    db.query("insert into sandboxes (id, user_id, name, slug, status) values (?,?,?,?,?)").run("BobBox000002", BOB.id, "Bob's later box", "bob-later", "stopped");
    db.query("insert into user_opencode_files values (?,?,?,?,?,?,?,?)").run("file-new", ALICE.id, "command", "plan", "md", "Plan it.", null, null);
    db.query("insert into user_opencode_files values (?,?,?,?,?,?,?,?)").run("file-bob-2", BOB.id, "command", "bobs-cmd", "md", "x", null, null);
    const activity = db.query("insert into activity_log (user_id, action, metadata, created_at) values (?,?,?,?)");
    activity.run(ALICE.id, "sandbox.create", "{}", "2024-06-01 00:00:00");
    activity.run(BOB.id, "sandbox.create", "{}", "2024-06-01 00:00:00");
    db.close();

    const report = await h.run();
    expect(report.ok).toBe(true);
    const t = byTable(report);
    const imported = Object.fromEntries(report.tables.filter((x) => x.imported > 0).map((x) => [x.table, x.imported]));
    expect(imported).toEqual({ sandboxes: 1, chat_messages: 1, user_opencode_files: 1, activity_log: 1 });
    expect(counts(t.sandboxes!)).toMatchObject({ deletedInWarren: 3 });
    expect(counts(t.chat_sessions!)).toMatchObject({ deletedInWarren: 5 });
    expect(counts(t.chat_messages!)).toMatchObject({ deletedInWarren: 7 });
    expect(counts(t.user_opencode_files!)).toMatchObject({ deletedInWarren: 3 });
    expect(counts(t.activity_log!)).toMatchObject({ deletedInWarren: 1 });
    expect(await h.ids("sandboxes", ["NewBox000001", "BobBox000002"])).toEqual(["NewBox000001"]);
    expect(await h.ids("chat_messages", ["m-live", "pm-3", "bob-m2", "ib-2"])).toEqual(["m-live"]);
    expect(await h.ids("chat_sessions", ["bob-chat-2", "in-broken-2"])).toEqual([]);
    expect(await h.ids("user_agent_files", ["file-new", "file-bob-2"])).toEqual(["file-new"]);
    expect(await h.ids("users", [BOB.id])).toEqual([]);

    // And once more: nothing new, nothing back.
    const again = await h.run();
    expect(again.ok).toBe(true);
    for (const x of again.tables) expect(x.imported).toBe(0);
    expect(byTable(again).chat_messages!.deletedInWarren).toBe(7);
  });
});

describe("legacy import into a database imported before the ledger existed", () => {
  const h = harness();

  test("its first run since fills the ledger from what is present; purged sessions and deleted credentials stay out already", async () => {
    expect((await h.run()).ok).toBe(true);
    // What an import made before the ledger existed leaves behind.
    await h.app().database.db.execute(sql`delete from legacy_import_ledger`);
    const alice = await h.signIn(ALICE.email, ALICE.password);
    expect((await h.app().request("/api/v1/sandboxes/AbCdEf123456/chat/sessions/purge-me?purge=true", { method: "DELETE", token: alice })).status).toBe(204);
    expect((await h.app().request("/api/v1/providers/anthropic/credential", { method: "DELETE", token: alice })).status).toBe(200);
    expect((await h.app().request("/api/v1/me/agent-config/files/agent/reviewer", { method: "DELETE", token: alice })).status).toBe(200);

    const report = await h.run();
    expect(report.ok).toBe(true);
    const t = byTable(report);
    // A purged session is its own tombstone; the vault's import left a credential.import
    // activity entry naming the legacy id. Both say "imported, then deleted in Warren".
    expect(counts(t.chat_sessions!)).toMatchObject({ imported: 0, deletedInWarren: 1 });
    expect(counts(t.chat_messages!)).toMatchObject({ imported: 0, deletedInWarren: 2 });
    expect(report.credentials).toMatchObject({ imported: 0, alreadyPresent: 1, deletedInWarren: 1 });
    expect(await h.rows(sql`select id from provider_credentials where provider_id = 'anthropic'`)).toEqual([]);
    // An agent file deleted before any run kept a record cannot be told from one never imported:
    // it comes back this once (the README says so).
    expect(t.user_opencode_files!.imported).toBe(1);
    expect(await h.ids("user_agent_files", ["file-1"])).toEqual(["file-1"]);
    // From now on the ledger knows every row present.
    expect(await h.ledger()).toEqual({ user: 2, sandboxes: 3, chat_sessions: 4, user_opencode_files: 2, provider_credentials: 2 });

    await h.deleteSandbox(alice, "ZyXwVu654321");
    expect((await h.app().request("/api/v1/me/agent-config/files/agent/reviewer", { method: "DELETE", token: alice })).status).toBe(200);
    const after = await h.run();
    expect(after.ok).toBe(true);
    for (const x of after.tables) expect(x.imported).toBe(0);
    expect(counts(byTable(after).sandboxes!)).toMatchObject({ deletedInWarren: 1 });
    expect(counts(byTable(after).user_opencode_files!)).toMatchObject({ deletedInWarren: 1 });
    expect(await h.ids("sandboxes", ["ZyXwVu654321"])).toEqual([]);
    expect(await h.ids("user_agent_files", ["file-1"])).toEqual([]);
  });
});
