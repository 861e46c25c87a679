import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Database as Sqlite } from "bun:sqlite";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sql } from "drizzle-orm";
import { queryRows } from "../../src/database/client";
import { importLegacy, type ImportOptions } from "../../src/import/run";
import { createTestApp, readUntilCached, type TestApp } from "../helpers/app";
import { addBulkRows, ALICE, buildLegacyFixture, importOptionsFor, LEGACY_KEY, silentLogger } from "../helpers/legacy-fixture";

/**
 * The bulk write path at sizes where it changes behaviour: many batches per table (on
 * PostgreSQL: COPY into a staging table, chunks pipelined), secondary indexes built once at the
 * end for large tables (PostgreSQL; the threshold is lowered here so a test-sized file crosses
 * it), COPY's special characters, and a refused row found inside a large batch. The same tests
 * run on PGlite, which keeps the JSON path: the outcome must be the same on both engines.
 */
const dir = mkdtempSync(join(tmpdir(), "warren-import-bulk-"));
const file = join(dir, "database.sqlite");
buildLegacyFixture(file);
const MESSAGES = 3000;
const ACTIVITIES = 2500;
addBulkRows(file, { userId: ALICE.id, sandboxId: "AbCdEf123456", sessions: 7, messages: MESSAGES, activities: ACTIVITIES });

// Values COPY's text format must escape, and look-alikes of its markers.
const AWKWARD = ["tab\there", "line\nbreak", "carriage\rreturn", "back\\slash", "\\N", "\\.", "", "end\\", "\\\\t literal", "ünïcödé 🦀\t漢字\n"];
{
  const db = new Sqlite(file, { strict: true });
  const insert = db.query("insert into chat_messages (id, session_id, external_message_id, role, content, status, created_at) values (?,?,?,?,?,?,?)");
  AWKWARD.forEach((text, i) => insert.run(`awk-${i}`, "bulk-s0", `awk-e${i}`, "user", JSON.stringify([{ type: "text", text }]), "complete", "2024-03-03 03:03:03"));
  db.query("insert into activity_log (user_id, action, metadata, user_agent, created_at) values (?,?,?,?,?)").run(ALICE.id, "awk.action", JSON.stringify({ path: "C:\\dir\\file", tab: "a\tb" }), "agent\twith\\tabs\n", "2024-03-03 03:03:03");
  db.close();
}

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
}, 60_000);
afterAll(async () => {
  await t?.close();
  rmSync(dir, { recursive: true, force: true });
});

const silent = silentLogger;
const opts = (over: Partial<ImportOptions> = {}) => importOptionsFor(t, file, { batchRows: 700, rebuildIndexesFrom: 1000, ...over });

async function count(table: string): Promise<number> {
  const [row] = await queryRows<{ n: string }>(t.database.db, sql`select count(*) as n from ${sql.identifier(table)}`);
  return Number(row!.n);
}

/** A table's valid indexes with their definitions, and which of them are non-unique. */
async function indexes(table: string): Promise<string[]> {
  const rows = await queryRows<{ def: string }>(
    t.database.db,
    sql`select pg_get_indexdef(i.indexrelid) as def from pg_index i where i.indrelid = ${table}::regclass and i.indisvalid order by 1`,
  );
  return rows.map((r) => r.def);
}
async function secondaryIndexes(table: string): Promise<string[]> {
  const rows = await queryRows<{ name: string }>(
    t.database.db,
    sql`select c.relname as name from pg_index i join pg_class c on c.oid = i.indexrelid where i.indrelid = ${table}::regclass and not i.indisunique order by 1`,
  );
  return rows.map((r) => r.name);
}

/** A table's own triggers (not the foreign keys'), with their definitions. */
async function triggers(table: string): Promise<string[]> {
  const rows = await queryRows<{ def: string }>(
    t.database.db,
    sql`select pg_get_triggerdef(oid) as def from pg_trigger where tgrelid = ${table}::regclass and not tgisinternal order by 1`,
  );
  return rows.map((r) => r.def);
}

// Read from the schema as migrated (not spelled out here): the importer must bring back exactly
// what it found, whatever the chat and activity schemas hold.
let MESSAGE_INDEXES: string[] = [];
let ACTIVITY_INDEXES: string[] = [];
let MESSAGE_TRIGGERS: string[] = [];
let ACTIVITY_TRIGGERS: string[] = [];

describe("legacy import, bulk path", () => {
  test("the tables have secondary indexes to rebuild", async () => {
    MESSAGE_INDEXES = await indexes("chat_messages");
    ACTIVITY_INDEXES = await indexes("activity_log");
    expect((await secondaryIndexes("chat_messages")).length).toBeGreaterThanOrEqual(2);
    expect((await secondaryIndexes("activity_log")).length).toBeGreaterThanOrEqual(2);
    // The page cache's NOTIFY triggers (migration 0015), which a bulk import sets aside.
    MESSAGE_TRIGGERS = await triggers("chat_messages");
    ACTIVITY_TRIGGERS = await triggers("activity_log");
    expect(MESSAGE_TRIGGERS.filter((d) => d.includes("warren_notify_pages")).length).toBe(3);
    expect(ACTIVITY_TRIGGERS.filter((d) => d.includes("warren_notify_pages")).length).toBe(3);
  });

  test("a dry run over large tables rolls back the rows and leaves every index in place", async () => {
    const report = await importLegacy(opts({ dryRun: true }));
    expect(report.failure).toBeNull();
    expect(report.ok).toBe(true);
    expect(report.committed).toBe(false);
    expect(await count("chat_messages")).toBe(0);
    expect(await indexes("chat_messages")).toEqual(MESSAGE_INDEXES);
    expect(await indexes("activity_log")).toEqual(ACTIVITY_INDEXES);
    expect(await triggers("chat_messages")).toEqual(MESSAGE_TRIGGERS);
    expect(await triggers("activity_log")).toEqual(ACTIVITY_TRIGGERS);
  });

  test("a row PostgreSQL refuses deep inside a large batch is named, and nothing is written", async () => {
    const db = new Sqlite(file, { strict: true });
    // Beyond PostgreSQL's integer: refused by the INSERT, not by the converter.
    db.query("update chat_messages set input_tokens = 99999999999 where id = 'bulk-m1733'").run();
    db.close();
    try {
      const report = await importLegacy(opts({ batchRows: 5000 }));
      expect(report.ok).toBe(false);
      expect(report.committed).toBe(false);
      expect(report.failure).toMatchObject({ table: "chat_messages", row: "bulk-m1733" });
      expect(report.failure!.message).toContain("out of range");
      expect(await count("users")).toBe(0);
      expect(await count("chat_messages")).toBe(0);
      expect(await indexes("chat_messages")).toEqual(MESSAGE_INDEXES);
      expect(await triggers("chat_messages")).toEqual(MESSAGE_TRIGGERS);
    } finally {
      const fix = new Sqlite(file, { strict: true });
      fix.query("update chat_messages set input_tokens = 10 where id = 'bulk-m1733'").run();
      fix.close();
    }
  });

  test("imports thousands of rows in many batches, builds the indexes once, and every value survives", async () => {
    const steps: string[] = [];
    const report = await importLegacy(opts({ onProgress: (p) => p.step && steps.push(`${p.table}: ${p.step}`) }));
    expect(report.failure).toBeNull();
    expect(report.ok).toBe(true);
    const messages = report.tables.find((x) => x.table === "chat_messages")!;
    const activity = report.tables.find((x) => x.table === "activity_log")!;
    expect(messages).toMatchObject({ imported: 5 + MESSAGES + AWKWARD.length, merged: 1, verified: true });
    expect(activity).toMatchObject({ imported: 3 + ACTIVITIES + 1, verified: true });
    expect(messages.targetDelta).toBe(messages.imported);
    if (t.database.engine === "postgres") {
      // Large tables: the non-unique indexes were dropped inside the transaction and rebuilt,
      // and the page-cache triggers set aside and recreated.
      expect(messages.indexesRebuilt!.sort()).toEqual(await secondaryIndexes("chat_messages"));
      expect(activity.indexesRebuilt!.sort()).toEqual(await secondaryIndexes("activity_log"));
      expect(messages.triggersRecreated).toHaveLength(3);
      expect(activity.triggersRecreated).toHaveLength(3);
      // The index builds, seconds long on a large table after its last row, show as steps.
      expect(steps.filter((s) => s.startsWith("chat_messages: "))).toEqual(
        messages.indexesRebuilt!.map((name, i, all) => `chat_messages: building index ${i + 1}/${all.length} (${name})`),
      );
      // Small tables kept theirs.
      expect(report.tables.find((x) => x.table === "user")!.indexesRebuilt).toBeUndefined();
    } else {
      expect(messages.indexesRebuilt).toBeUndefined();
      expect(steps).toEqual([]);
    }
    expect(await indexes("chat_messages")).toEqual(MESSAGE_INDEXES);
    expect(await indexes("activity_log")).toEqual(ACTIVITY_INDEXES);
    expect(await triggers("chat_messages")).toEqual(MESSAGE_TRIGGERS);
    expect(await triggers("activity_log")).toEqual(ACTIVITY_TRIGGERS);

    const db = t.database.db;
    // The rebuilt search index answers (and the rows carry their generated search vectors).
    const [found] = await queryRows<{ n: string }>(db, sql`select count(*) as n from chat_messages where search_vector @@ to_tsquery('simple', 'typical & explanation')`);
    expect(Number(found!.n)).toBe(MESSAGES);
    const awkward = await queryRows<{ id: string; text: string; content: unknown }>(db, sql`select id, text, content from chat_messages where id like 'awk-%'`);
    for (const [i, text] of AWKWARD.entries()) {
      const row = awkward.find((r) => r.id === `awk-${i}`)!;
      expect(row.text).toBe(text);
      expect(row.content).toEqual([{ type: "text", text }]);
    }
    const [act] = await queryRows<{ metadata: Record<string, unknown>; user_agent: string }>(db, sql`select metadata, user_agent from activity_log where action = 'awk.action'`);
    expect(act!.metadata).toEqual({ path: "C:\\dir\\file", tab: "a\tb" });
    expect(act!.user_agent).toBe("agent\twith\\tabs\n");
    // Every bulk message kept its session, its owner (from the session) and its time.
    const [owners] = await queryRows<{ n: string }>(db, sql`select count(*) as n from chat_messages where id like 'bulk-m%' and user_id = ${ALICE.id} and session_id like 'bulk-s%'`);
    expect(Number(owners!.n)).toBe(MESSAGES);
    // Every session's counters are those of its imported rows (duplicates counted once), on
    // both write paths: none differs from a count made here.
    expect(report.tables.find((x) => x.table === "chat_sessions")!.countersRecomputed).toBe(8);
    const off = await queryRows(
      db,
      sql`select s.id from chat_sessions s left join lateral (
            select count(m.id) as n, count(m.id) filter (where m.role = 'user') as u, count(m.id) filter (where m.role = 'assistant') as a,
              coalesce(sum(m.input_tokens), 0) as input, coalesce(sum(m.output_tokens), 0) as output, max(m.created_at) as last
            from chat_messages m where m.session_id = s.id) c on true
          where (s.message_count, s.user_message_count, s.assistant_message_count, s.total_input_tokens, s.total_output_tokens, s.last_message_at)
            is distinct from (c.n::int, c.u::int, c.a::int, c.input::bigint, c.output::bigint, c.last)`,
    );
    expect(off).toEqual([]);
    const [s0] = await queryRows<{ message_count: number; total_input_tokens: string | number }>(db, sql`select message_count, total_input_tokens from chat_sessions where id = 'bulk-s0'`);
    // bulk-s0: every 7th bulk message (10 input tokens each) and the awkward ones (none).
    expect(s0!.message_count).toBe(Math.ceil(MESSAGES / 7) + AWKWARD.length);
    expect(Number(s0!.total_input_tokens)).toBe(Math.ceil(MESSAGES / 7) * 10);
  });

  test("a second run over large tables imports nothing, reports every row present, and keeps the indexes", async () => {
    const before = await count("chat_messages");
    const report = await importLegacy(opts());
    expect(report.ok).toBe(true);
    for (const x of report.tables) expect(x.imported).toBe(0);
    expect(report.tables.find((x) => x.table === "chat_messages")).toMatchObject({ alreadyPresent: 5 + MESSAGES + AWKWARD.length, merged: 1 });
    expect(report.tables.find((x) => x.table === "activity_log")).toMatchObject({ alreadyPresent: 3 + ACTIVITIES + 1 });
    expect(report.tables.find((x) => x.table === "chat_sessions")!.countersRecomputed).toBe(0);
    expect(await count("chat_messages")).toBe(before);
    expect(await indexes("chat_messages")).toEqual(MESSAGE_INDEXES);
  });

  test("a session purged in Warren stays empty through a re-run over large tables; newer messages and activity arrive, and reach a running Warren's cached pages", async () => {
    const signIn = await t.request("/api/auth/sign-in/email", { method: "POST", json: { email: ALICE.email, password: ALICE.password }, headers: { origin: t.config.publicUrl } });
    expect(signIn.status).toBe(200);
    const token = signIn.headers.get("set-auth-token")!;
    const purged = await count("chat_messages");
    const [inSession] = await queryRows<{ n: string }>(t.database.db, sql`select count(*) as n from chat_messages where session_id = 'bulk-s3'`);
    const gone = Number(inSession!.n);
    expect(gone).toBeGreaterThan(400);
    expect((await t.request("/api/v1/sandboxes/AbCdEf123456/chat/sessions/bulk-s3?purge=true", { method: "DELETE", token })).status).toBe(204);
    const db = new Sqlite(file, { strict: true });
    const insert = db.query("insert into chat_messages (id, session_id, external_message_id, role, content, status, created_at) values (?,?,?,?,?,?,?)");
    insert.run("late-s3", "bulk-s3", "late-e3", "user", "[]", "complete", "2024-09-09 09:09:09");
    insert.run("late-s4", "bulk-s4", "late-e4", "user", "[]", "complete", "2024-09-09 09:09:09");
    db.close();
    // A running Warren holds Alice's newest legacy activity entry in its page cache before the
    // import, which brings newer ones, enough for the bulk path (page-cache triggers set aside).
    // Nothing else of the import touches activity_log: only its own notification at commit can
    // reach the page.
    const late = new Sqlite(file, { strict: true });
    const lateEntry = late.query("insert into activity_log (id, user_id, action, entity_type, entity_id, metadata, created_at) values (?,?,?,?,?,?,?)");
    late.transaction(() => {
      for (let i = 0; i < ACTIVITIES; i++) lateEntry.run(1_000_000 + i, ALICE.id, "sandbox.stop", "sandbox", "AbCdEf123456", "{}", i === 0 ? "2024-09-09 09:09:09" : "2024-06-06 06:06:06");
    })();
    late.close();
    const newest = "/api/v1/me/activity?to=2025-01-01T00:00:00.000Z&limit=1";
    const cached = await readUntilCached(t, token, newest);
    expect(cached.data[0].createdAt).not.toBe("2024-09-09T09:09:09.000Z");

    const report = await importLegacy(opts());
    expect(report.ok).toBe(true);
    // The import wrote with the page-cache triggers set aside; its commit still reaches the page.
    if (t.database.engine === "postgres") expect(report.tables.find((x) => x.table === "activity_log")!.triggersRecreated).toHaveLength(3);
    await t.pages.settle();
    const after = await t.request(newest, { token });
    expect((await after.json()).data[0]).toMatchObject({ action: "sandbox.stop", createdAt: "2024-09-09T09:09:09.000Z" });
    // Every batch (700 rows here) checks the whole batch against the tombstone at once.
    expect(report.tables.find((x) => x.table === "chat_messages")).toMatchObject({ imported: 1, deletedInWarren: gone + 1, verified: true });
    expect(report.tables.find((x) => x.table === "chat_sessions")).toMatchObject({ alreadyPresent: 7, deletedInWarren: 1 });
    const [left] = await queryRows<{ n: string }>(t.database.db, sql`select count(*) as n from chat_messages where session_id = 'bulk-s3'`);
    expect(Number(left!.n)).toBe(0);
    expect(await count("chat_messages")).toBe(purged - gone + 1);
    expect(await indexes("chat_messages")).toEqual(MESSAGE_INDEXES);
  });

  test("text PostgreSQL cannot hold (NUL, half an emoji in JSON) is stored with U+FFFD and named by row and column", async () => {
    // The old chat sync kept tool output as it came: a `cat` of a binary file holds NUL bytes.
    // One such row used to fail the whole import.
    const db = new Sqlite(file, { strict: true });
    const content = '[{"type":"tool","output":"ELF\\u0000\\u0001","note":"half \\ud83d","literal":"back\\\\u0000slash"}]';
    db.query("insert into chat_messages (id, session_id, external_message_id, role, content, model_id, status, created_at) values (?,?,?,?,?,?,?,?)").run(
      "nul-1", "bulk-s1", "nul-e1", "user", content, "model\u0000x", "complete", "2024-03-03 03:03:03",
    );
    // Metadata nested 10,000 deep: beyond Warren's 64 levels for JSON, so it is kept as text.
    const deep = `{"a":${"[".repeat(10_000)}${"]".repeat(10_000)}}`;
    db.query("insert into activity_log (user_id, action, metadata, created_at) values (?,?,?,?)").run(ALICE.id, "deep.metadata", deep, "2024-03-03 03:03:04");
    db.close();
    const report = await importLegacy(opts());
    expect(report.failure).toBeNull();
    expect(report.ok).toBe(true);
    const messages = report.tables.find((x) => x.table === "chat_messages")!;
    expect(messages.replaced.filter((r) => r.id === "nul-1").map((r) => r.column).sort()).toEqual(["content", "model_id"]);
    const [row] = await queryRows<{ content: unknown; model_id: string }>(t.database.db, sql`select content, model_id from chat_messages where external_message_id = 'nul-e1'`);
    expect(row).toEqual({
      content: [{ type: "tool", output: "ELF\ufffd\u0001", note: "half \ufffd", literal: "back\\u0000slash" }],
      model_id: "model\ufffdx",
    });
    const [entry] = await queryRows<{ metadata: Record<string, unknown> }>(t.database.db, sql`select metadata from activity_log where action = 'deep.metadata'`);
    expect(entry!.metadata).toEqual({ $legacyText: deep });
    expect(report.tables.find((x) => x.table === "activity_log")!.replaced.some((r) => r.column === "metadata" && r.problem.startsWith("JSON nested more than 64 levels"))).toBe(true);
  });
});
