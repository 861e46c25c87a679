import { sql } from "drizzle-orm";
import type { Keyring } from "../crypto/keyring";
import { queryRows, type Database, type Executor } from "../database/client";
import type { Logger } from "../lib/logger";
import { PAGES_CHANNEL } from "../lib/page-cache";
import { LEGACY_CREDENTIALS_TABLE } from "../services/credentials/import";
import { assigneeKnown, ImportUsageError, planCredentials, writeCredentials } from "./credentials";
import { importReferenceData, loadCatalog } from "./reference-data";
import { balance, emptyTableReport, type ImportReport, type NotImported } from "./report";
import { LegacySource, LegacySourceError } from "./source";
import { finishInterruptedMessages } from "./interrupted";
import { recountImportedSessions } from "./session-counters";
import { buildSpecs } from "./tables";
import { databaseMessage, ImportFailure, importTable, type Progress } from "./writer";

export { ImportUsageError } from "./credentials";

export type ImportOptions = {
  database: Pick<Database, "db" | "engine" | "location">;
  sourcePath: string;
  dryRun?: boolean;
  /** Email of the Warren (or imported) user who gets the legacy global provider credentials. */
  assignCredentialsTo?: string | null;
  /** The legacy ENCRYPTION_KEY setting. */
  legacyKey?: string | null;
  /** The environment variable legacyKey was read from, when the operator named one (messages). */
  legacyKeyEnv?: string;
  keyring: Keyring;
  /** Warren's AUTH_SECRET: linked-account tokens are sealed with it as Better Auth would. */
  authSecret: string;
  logger: Logger;
  /** "json" forces the portable JSON path on PostgreSQL too (benchmarks compare the two). */
  writePath?: "copy" | "json";
  /** Tables with at least this many rows get their secondary indexes built at the end (PostgreSQL). */
  rebuildIndexesFrom?: number;
  /** Rows per batch (default 20,000 on PostgreSQL, 2,000 on PGlite). */
  batchRows?: number;
  /** Flush a batch early at this size (default 16 MB on PostgreSQL, 8 MB on PGlite). */
  batchBytes?: number;
  onProgress?: (p: Progress) => void;
  now?: () => Date;
};

/** Tables with no place in Warren: listed in the report, never imported. */
const NOT_IMPORTED: Record<string, string> = {
  projects: "the pre-sandbox generation of sandboxes; nothing in Warren corresponds to it",
  _migrations: "the legacy system's own migration bookkeeping",
  container_tiers: "an older tier table kept only for history; Warren uses resource_tiers",
  providers: "the old provider catalogue; Warren keeps its own (models.dev)",
  settings: "internal flags and a global default provider; Warren's defaults are per user",
};

const HANDLED = new Set([
  "resource_tiers",
  "container_flavors",
  "container_addons",
  "user",
  "session",
  "account",
  "verification",
  "sandboxes",
  "chat_sessions",
  "chat_messages",
  "user_preferences",
  "user_opencode_config",
  "user_opencode_files",
  "activity_log",
  "activity_log_archive",
  LEGACY_CREDENTIALS_TABLE,
  "oauth_state",
]);

/** Thrown inside the transaction to roll it back on purpose (dry run, failed verification). */
class Rollback extends Error {}

/**
 * Imports a legacy SQLite file into Warren's database in ONE transaction: everything or
 * nothing. Idempotent (ON CONFLICT DO NOTHING on kept ids: a second run finds every row already
 * present), verified (per-table counts must balance, and every target table must have grown by
 * exactly the rows imported), and reported table by table. Warren's migrations must already be
 * applied (the CLI does it).
 *
 * Deletions made in Warren since an earlier run stand: the import ledger (legacy_import_ledger,
 * written in this same transaction) lists the users, sandboxes, chat sessions, agent files and
 * credentials the import has accounted for, and a listed row that Warren no longer has (or a
 * purged session) is reported as deletedInWarren, with everything that hangs off it, and never
 * brought back. Every run records what it finds already present too, so a database imported
 * before the ledger existed gets it filled by its first run since (see README, "Importing").
 *
 * Throws ImportUsageError for refusals made before anything is written (no such file, no
 * assignee for credentials, no legacy key); every other failure comes back in report.failure.
 */
export async function importLegacy(opts: ImportOptions): Promise<ImportReport> {
  const now = opts.now ?? (() => new Date());
  const started = performance.now();
  let source: LegacySource;
  try {
    source = LegacySource.open(opts.sourcePath);
  } catch (err) {
    if (err instanceof LegacySourceError) throw new ImportUsageError(err.message);
    throw err;
  }
  const report: ImportReport = {
    source: opts.sourcePath,
    engine: `${opts.database.engine} (${opts.database.location})`,
    dryRun: Boolean(opts.dryRun),
    committed: false,
    ok: false,
    startedAt: now().toISOString(),
    durationMs: 0,
    tables: [],
    notImported: [],
    credentials: { assignedTo: null, imported: 0, alreadyPresent: 0, deletedInWarren: 0 },
    verification: { ok: false, mismatches: [] },
    failure: null,
    warnings: [],
  };
  let currentTable = "(start)";
  try {
    for (const table of source.tables()) {
      if (HANDLED.has(table)) continue;
      const reason = NOT_IMPORTED[table] ?? "not part of the documented legacy layout";
      report.notImported.push({ table, rows: source.count(table), reason } satisfies NotImported);
    }
    const assignTo = opts.assignCredentialsTo?.trim() || null;
    const plan = planCredentials(source, { legacyKey: opts.legacyKey ?? null, assignTo, legacyKeyEnv: opts.legacyKeyEnv });
    if (plan.credentials.length > 0 && !(await assigneeKnown(opts.database.db, source, assignTo!))) {
      throw new ImportUsageError(`--assign-credentials-to ${assignTo}: no user with that email in the file or in Warren`);
    }
    if (assignTo && plan.credentials.length === 0) report.warnings.push(`--assign-credentials-to ${assignTo} given, but the file holds no credential with a secret`);

    const nowIso = now().toISOString();
    // PostgreSQL takes rows by COPY (copy-writer.ts); PGlite has no COPY FROM STDIN and keeps
    // the portable JSON path.
    const bulk = opts.database.engine === "postgres" && opts.writePath !== "json";
    await opts.database.db.transaction(async (tx) => {
      // The import's set-based statements are planned once per chunk with costs above
      // jit_above_cost, and JIT-compiling them took ~60 ms of each 20,000-row chunk's ~850 ms
      // (auto_explain, bench/README.md) for nothing back: they run once each.
      await tx.execute(sql`set local jit = off`);
      currentTable = "reference data";
      report.tables.push(...(await importReferenceData(tx, source, nowIso)));
      const specs = buildSpecs({ catalog: await loadCatalog(tx), authSecret: opts.authSecret });
      for (const spec of specs) {
        if (!source.has(spec.table)) continue;
        currentTable = spec.table;
        const t = emptyTableReport(spec.table, spec.target, source.count(spec.table));
        report.tables.push(t);
        const t0 = performance.now();
        const before = await countRows(tx, spec.target);
        await importTable(tx, source, spec, t, {
          bulk,
          existingRows: before,
          rebuildIndexesFrom: opts.rebuildIndexesFrom,
          warn: (message) => report.warnings.push(message),
          batchRows: opts.batchRows ?? (bulk ? 20_000 : 2000),
          batchBytes: opts.batchBytes ?? (bulk ? 16 : 8) * 1024 * 1024,
          env: { now: nowIso },
          onProgress: opts.onProgress,
        });
        t.targetDelta = (await countRows(tx, spec.target)) - before;
        t.durationMs = Math.round(performance.now() - t0);
        opts.logger.debug({ table: spec.table, imported: t.imported, ms: t.durationMs }, "legacy table imported");
      }
      // Replies an earlier import stored as interrupted, finished in this file (before the counters).
      const messages = report.tables.find((t) => t.table === "chat_messages");
      const messageSpec = specs.find((s) => s.table === "chat_messages");
      if (messages && messageSpec) {
        currentTable = "chat_messages (replies interrupted at an earlier import)";
        const finished = await finishInterruptedMessages(tx, source, messageSpec, { now: nowIso });
        if (finished > 0) {
          messages.finished = finished;
          messages.updated += finished;
          messages.alreadyPresent -= finished;
        }
      }
      // Session counters from the messages now in Warren, on both write paths (after COPY too).
      const chat = report.tables.find((t) => t.table === "chat_sessions") ?? messages;
      if (chat) {
        currentTable = "chat_sessions (counters)";
        chat.countersRecomputed = await recountImportedSessions(tx, source);
      }
      currentTable = LEGACY_CREDENTIALS_TABLE;
      const written = await writeCredentials(tx, plan, { assignTo, keyring: opts.keyring, logger: opts.logger, now, db: opts.database.db });
      if (plan.report) {
        report.tables.push(plan.report);
        report.credentials = {
          assignedTo: written.userId ? assignTo : null,
          imported: plan.report.imported,
          alreadyPresent: plan.report.alreadyPresent,
          deletedInWarren: plan.report.deletedInWarren,
        };
      }
      if (plan.oauthState) report.tables.push(plan.oauthState);

      for (const t of report.tables) {
        const mismatch = balance(t);
        t.verified = mismatch === null;
        if (mismatch) report.verification.mismatches.push(mismatch);
      }
      report.verification.ok = report.verification.mismatches.length === 0;
      if (!report.verification.ok || report.dryRun) throw new Rollback();
      // Large tables were written with their page-cache triggers set aside (copy-writer.ts):
      // running instances drop every cached page at commit instead (migration 0015).
      await tx.execute(sql`select pg_notify(${PAGES_CHANNEL}, '*')`);
    });
    report.committed = true;
  } catch (err) {
    if (err instanceof ImportUsageError) {
      source.close();
      throw err;
    }
    if (err instanceof ImportFailure) report.failure = { table: err.table, row: err.row, message: err.message };
    else if (!(err instanceof Rollback)) {
      // Not the error object itself: a driver's message ("Failed query: … params: …") and
      // stack carry the batch, and with it session tokens and password hashes.
      opts.logger.error({ table: currentTable, error: databaseMessage(err), stack: stackFrames(err) }, "legacy import failed");
      report.failure = { table: currentTable, row: null, message: databaseMessage(err) };
    }
  } finally {
    report.durationMs = Math.round(performance.now() - started);
  }
  source.close();
  report.ok = report.failure === null && report.verification.ok;
  return report;
}

/** The stack's frames without its first line (the message). */
function stackFrames(err: unknown): string | undefined {
  const stack = (err as Error)?.stack;
  return stack ? stack.split("\n").filter((line) => /^\s+at /.test(line)).join("\n") : undefined;
}

async function countRows(tx: Executor, table: string): Promise<number> {
  const [row] = await queryRows<{ n: string | number }>(tx, sql`select count(*) as n from ${sql.identifier(table)}`);
  return Number(row?.n ?? 0);
}
