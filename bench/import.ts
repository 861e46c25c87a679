/**
 * Legacy import throughput: builds a legacy SQLite file with N chat messages and N activity
 * entries (default 1,000,000 each), imports it into a fresh database and reports rows/s per table
 * and the process's peak RSS (memory stays bounded: rows are streamed in batches).
 *
 *   bun run bench:import [--messages N] [--activities N] [--pglite] [--keep-file]
 *                        [--json-path] [--batch-size N] [--rebuild-indexes-from N]
 *
 * The server comes from BENCH_DATABASE_URL; without it a throwaway PostgreSQL cluster is started
 * (scripts/pg-cluster.sh, fsync off) and stopped at the end. A database named
 * warren_bench_import_<pid> is created there and dropped afterwards.
 * --pglite imports into an in-memory PGlite instead. For comparisons on PostgreSQL: --json-path
 * uses the portable JSON path instead of COPY, --batch-size sets rows per batch,
 * --rebuild-indexes-from N moves the threshold for building secondary indexes at the end, and
 * --server-setting NAME=VALUE (repeatable) starts the throwaway cluster with that setting (e.g. the
 * bulk-load settings wal_level=minimal and max_wal_senders=0). --chat-text gives the messages
 * bench:chat's text (bench/chat-text.ts) instead of one fixed sentence and a number each.
 */
import { existsSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import postgres from "postgres";
import { PGlite } from "@electric-sql/pglite";
import { loadConfig } from "../src/config";
import { openPostgres, pgliteExtensions, wrapPglite, type Database } from "../src/database/client";
import { migrateDatabase } from "../src/database/migrate";
import { importLegacy } from "../src/import/run";
import { createLogger } from "../src/lib/logger";
import { addBulkRows, buildLegacyFixture, ALICE } from "../tests/helpers/legacy-fixture";
import { messageText, rng } from "./chat-text";
import { startCluster } from "./lib/cluster";
import { cleanup } from "./lib/processes";

const { values } = parseArgs({
  options: {
    messages: { type: "string", default: "1000000" },
    activities: { type: "string", default: "1000000" },
    pglite: { type: "boolean", default: false },
    "json-path": { type: "boolean", default: false },
    "batch-size": { type: "string" },
    "rebuild-indexes-from": { type: "string" },
    "keep-file": { type: "boolean", default: false },
    "server-setting": { type: "string", multiple: true, default: [] },
    "chat-text": { type: "boolean", default: false },
    help: { type: "boolean", short: "h" },
  },
});
if (values.help) {
  console.log("Usage: bun run bench:import [--messages N] [--activities N] [--pglite] [--keep-file] [--json-path] [--batch-size N] [--rebuild-indexes-from N] [--server-setting NAME=VALUE]... [--chat-text]");
  process.exit(0);
}
const messages = Number(values.messages);
const activities = Number(values.activities);
const file = join(tmpdir(), `warren-bench-legacy-${messages}-${activities}${values["chat-text"] ? "-chat-text" : ""}.sqlite`);

if (!existsSync(file)) {
  const t0 = performance.now();
  process.stderr.write(`building ${file} (${messages} messages, ${activities} activity entries)…\n`);
  buildLegacyFixture(file);
  // --chat-text: bench:chat's text (Zipf-distributed words, identifiers; bench/chat-text.ts)
  // instead of one sentence and a number per message.
  const random = rng(7);
  const textOf = values["chat-text"] ? (i: number) => messageText(random, i % 2 ? "assistant" : "user") : undefined;
  addBulkRows(file, { userId: ALICE.id, sandboxId: "AbCdEf123456", sessions: Math.max(1, Math.ceil(messages / 1000)), messages, activities, textOf });
  process.stderr.write(`built in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
}

const serverSettings = values["server-setting"] ?? [];
for (const s of serverSettings) {
  if (!/^[a-z_.]+=[\w.-]+$/.test(s)) throw new Error(`--server-setting ${s}: expected NAME=VALUE`);
}
if (serverSettings.length > 0 && (values.pglite || process.env.BENCH_DATABASE_URL)) throw new Error("--server-setting applies to the throwaway cluster only");
const base = values.pglite ? "" : process.env.BENCH_DATABASE_URL || (await startCluster({ keep: false, settings: serverSettings })).url;
const dbName = `warren_bench_import_${process.pid}`;
let database: Database;
let drop = async () => {};
if (values.pglite) {
  database = await wrapPglite(new PGlite({ extensions: pgliteExtensions }), "memory");
  await migrateDatabase(database);
} else {
  const admin = postgres(base, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database "${dbName}"`);
  const u = new URL(base);
  u.pathname = `/${dbName}`;
  database = openPostgres(u.toString(), 2);
  await migrateDatabase(database, u.toString());
  drop = async () => {
    await admin.unsafe(`drop database if exists "${dbName}" with (force)`);
    await admin.end();
  };
}

const config = loadConfig({ NODE_ENV: "test", DATA_DIR: "memory://", AUTH_SECRET: "bench-secret-that-is-at-least-32-characters" });
let peakRss = process.memoryUsage.rss();
const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage.rss())), 100);
const t0 = performance.now();
const report = await importLegacy({
  database,
  sourcePath: file,
  assignCredentialsTo: ALICE.email,
  legacyKey: "legacy-encryption-key-not-32-ch",
  keyring: config.keyring,
  authSecret: config.authSecret,
  logger: createLogger("warn", process.stderr),
  writePath: values["json-path"] ? "json" : undefined,
  batchRows: values["batch-size"] ? Number(values["batch-size"]) : undefined,
  rebuildIndexesFrom: values["rebuild-indexes-from"] ? Number(values["rebuild-indexes-from"]) : undefined,
}).catch(async (err) => {
  // Nothing of a throwaway cluster is left running.
  await drop().catch(() => {});
  await cleanup();
  throw err;
});
const totalMs = performance.now() - t0;
clearInterval(sampler);
await database.close();
await drop();
await cleanup();
if (!values["keep-file"]) rmSync(file, { force: true });

const row = (name: string) => report.tables.find((t) => t.table === name)!;
const rate = (name: string) => {
  const t = row(name);
  return { rows: t.imported, seconds: +(t.durationMs / 1000).toFixed(2), rowsPerSecond: Math.round(t.imported / (t.durationMs / 1000)) };
};
const bulkRows = row("chat_messages").imported + row("activity_log").imported;
const bulkMs = row("chat_messages").durationMs + row("activity_log").durationMs;
const result = {
  engine: values.pglite ? "pglite" : "postgres",
  ok: report.ok,
  failure: report.failure,
  chat_messages: rate("chat_messages"),
  activity_log: rate("activity_log"),
  combined: { rows: bulkRows, rowsPerSecond: Math.round(bulkRows / (bulkMs / 1000)) },
  wholeImportSeconds: +(totalMs / 1000).toFixed(2),
  writePath: values.pglite || values["json-path"] ? "json" : "copy",
  indexesRebuilt: report.tables.flatMap((t) => t.indexesRebuilt ?? []),
  serverSettings,
  text: values["chat-text"] ? "chat-text" : "fixed sentence + number",
  loadAverage: loadavg().map((l) => +l.toFixed(2)),
  peakRssMb: Math.round(peakRss / 1024 / 1024),
};
console.log(JSON.stringify(result, null, 2));
process.exit(report.ok ? 0 : 1);
