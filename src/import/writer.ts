import { sql, type SQL } from "drizzle-orm";
import { queryRows, type Executor } from "../database/client";
import { mayHoldUnstorableEscape } from "../lib/text";
import { LEGACY_TEXT_KEY, storableValue, type Notes } from "./convert";
import { ORIGINAL_TEXT_CAP, ROW_LIST_CAP, skip, type SkipReason, type TableReport } from "./report";
import type { LegacyRow, LegacySource } from "./source";
import { CopySink, postgresClientOf } from "./copy-writer";

/**
 * The bulk path shared by every row table. Rows are streamed from SQLite and converted in JS,
 * then written a batch at a time by a sink:
 * - on PostgreSQL, CopySink (copy-writer.ts): COPY into a staging table, then one set-based
 *   INSERT … SELECT … ON CONFLICT DO NOTHING that also classifies what it did not insert;
 * - on PGlite (no COPY FROM STDIN), JsonSink: the batch serialised as one JSON array, handed
 *   to the database as a single parameter, expanded with json_to_recordset and inserted with ON
 *   CONFLICT DO NOTHING. One parameter per batch keeps clear of the 65,535-parameter limit.
 *
 * Rows a batch did not insert are classified (CopySink: in the inserting statement itself;
 * JsonSink: by a second query, only when there are any): the key is already in Warren (an
 * earlier run), the row was deleted in Warren since an earlier run brought it over (or hangs off
 * something that was; see IN_LEDGER in tables.ts), the row is an orphan, or, for tables whose
 * duplicates are merged, it lost to an equal row on another unique key. Anything else is a
 * conflict the importer refuses to guess about. Either way every source row is counted once,
 * which is what verification checks.
 */

export type Converted = Record<string, unknown>;
export type ConvertResult = Converted | { skip: SkipReason };

export type ConvertEnv = {
  /** The import's clock: fallback for times missing from NOT NULL columns. */
  now: string;
};

export type TableSpec = {
  table: string;
  target: string;
  /** Row identity in reports (legacy id by default). */
  idOf?: (row: LegacyRow) => string;
  /** The converted field that identifies the row in Warren (returned by the insert as `k`). */
  keyField: string;
  /** json_to_recordset column list, e.g. "id text, created_at timestamptz". */
  recordset: string;
  /** The insert, with SRC standing for the expanded batch (alias s); must `returning … as k`. */
  insert: string;
  /** SQL boolean: the row's key is already in Warren (alias s). */
  present: string;
  /** SQL text: the skip reason when the row is an orphan, else NULL (alias s). */
  orphan?: string;
  /**
   * SQL boolean: the row, or what it hangs off, was deleted in Warren since an earlier import
   * brought it over (alias s). The insert must leave such rows out; they are counted as
   * deletedInWarren, never brought back.
   */
  deleted?: string;
  /**
   * The entity name under which the import ledger (legacy_import_ledger) records the rows of this
   * table that are in Warren after each batch (imported now or earlier) or held back as deleted,
   * keyed by keyField: what lets a later run tell "deleted in Warren" from "never imported".
   */
  ledger?: string;
  /** What a row neither inserted, present nor orphan means. */
  unplaced: "merged" | { conflict: string };
  convert(row: LegacyRow, notes: Notes, env: ConvertEnv): ConvertResult | Promise<ConvertResult>;
  /**
   * A second unique key of the target (besides keyField): a row repeating one already in the
   * current batch starts a new batch, so that the first copy in file order is the one kept.
   */
  batchUnique?: (row: Converted) => string | null;
  /**
   * Locks (FOR KEY SHARE) every row the rows staged in STAGE reference through the target's
   * foreign keys: lets CopySink skip the row-by-row foreign-key triggers of a large import (the
   * insert itself must only take rows whose references exist).
   */
  lockReferences?: string;
  /** Extra writes per batch (e.g. a sandbox's add-on links): a template with SRC, like insert. */
  afterBatch?: string;
};

export class ImportFailure extends Error {
  override name = "ImportFailure";
  constructor(
    readonly table: string,
    readonly row: string | null,
    message: string,
  ) {
    super(message);
  }
}

/** `step`: what the table is at once its rows are in, when that takes a while (an index build). */
export type Progress = { table: string; done: number; total: number; step?: string };

export type WriteOptions = {
  /** PostgreSQL through postgres.js: use COPY (CopySink). */
  bulk: boolean;
  batchRows: number;
  /** Rows the target table holds before this import (decides whether indexes are rebuilt). */
  existingRows: number;
  /** REBUILD_INDEXES_FROM unless given (tests lower it). */
  rebuildIndexesFrom?: number;
  warn: (message: string) => void;
  /** Flush a batch early once its JSON reaches this size (very long texts). */
  batchBytes: number;
  env: ConvertEnv;
  onProgress?: (p: Progress) => void;
};

const src = (recordset: string) => `json_to_recordset($JSON::json) as s(${recordset})`;

/**
 * SQL text (alias s): how a row the insert left out is counted: 'present' (already in Warren),
 * 'deleted' (deleted in Warren since an earlier import), an orphan's skip reason, or NULL (merged,
 * or a conflict). One CASE, so each row costs only the checks up to its answer: on a re-run,
 * where every row is present, one primary-key lookup.
 */
export function classification(spec: TableSpec): string {
  return `case when ${spec.present} then 'present' when ${spec.deleted ?? "false"} then 'deleted' else ${spec.orphan ?? "null::text"} end`;
}

/** Counts one row the insert left out, by its classification(). */
export function countLeftOut(spec: TableSpec, report: TableReport, id: string, cls: string | null | undefined): void {
  if (cls === "present") report.alreadyPresent++;
  else if (cls === "deleted") report.deletedInWarren++;
  else if (cls) skip(report, id, cls as SkipReason);
  else if (spec.unplaced === "merged") report.merged++;
  else throw new ImportFailure(spec.table, id, spec.unplaced.conflict);
}

/**
 * The statements run after a batch's insert, each a template with SRC like the insert: the
 * spec's own (afterBatch), then the ledger's record of the batch's rows now in Warren or held
 * back as deleted in Warren. Set-based, one statement per batch; the ledger is small (users,
 * sandboxes, sessions, agent files), never per message.
 */
export function afterStatements(spec: TableSpec): string[] {
  const out: string[] = [];
  if (spec.afterBatch) out.push(spec.afterBatch);
  if (spec.ledger) {
    out.push(`insert into legacy_import_ledger (entity, legacy_id)
      select '${spec.ledger}', s.${spec.keyField} from SRC
      where (${spec.present}) or (${spec.deleted ?? "false"})
      on conflict do nothing`);
  }
  return out;
}

/** Builds `template` (with SRC) around one JSON parameter. */
export function withBatch(template: string, recordset: string, json: string): SQL {
  const [before, after] = template.replace("SRC", src(recordset)).split("$JSON");
  return sql`${sql.raw(before!)}${json}${sql.raw(after!)}`;
}

export function notesFor(report: TableReport, id: string): Notes {
  const notes: Notes = {
    malformedJson(column, lost) {
      report.malformedJsonCount++;
      if (lost !== undefined) report.malformedJsonNotKept++;
      if (report.malformedJson.length >= ROW_LIST_CAP) return;
      report.malformedJson.push(
        lost === undefined
          ? { id, column, problem: `malformed JSON, kept as {"${LEGACY_TEXT_KEY}": <the original text>}` }
          : { id, column, problem: "malformed JSON; Warren's column cannot hold it, so it was stored empty and its text is kept here (original)", original: lost.slice(0, ORIGINAL_TEXT_CAP) },
      );
    },
    replaced(column, why) {
      report.replacedCount++;
      if (report.replaced.length < ROW_LIST_CAP) report.replaced.push({ id, column, problem: why });
    },
    interrupted(column, why) {
      report.interrupted = (report.interrupted ?? 0) + 1;
      notes.replaced(column, why);
    },
  };
  return notes;
}

/**
 * Where converted rows go, a batch at a time: JsonSink (one JSON parameter per batch; PGlite) or
 * CopySink (COPY into a staging table, then one set-based statement; PostgreSQL).
 */
export interface BatchSink {
  /** Rows and (approximate) bytes waiting for the next flush. */
  readonly rows: number;
  readonly bytes: number;
  /** `notes` takes what had to change for PostgreSQL to hold the row (NUL: see storableValue). */
  push(row: Converted, id: string, notes: Notes): void;
  /** Hands the waiting rows to the database; may return before they are written. */
  flush(): Promise<void>;
  /** Flushes and waits until every row is written and classified. */
  close(): Promise<void>;
  /** Waits for any write in flight to end, whatever its outcome (before a rollback). */
  settle(): Promise<void>;
}

/**
 * From this many rows (and at least as many as the table already holds), a table's secondary
 * indexes are built once after its rows are in rather than row by row (CopySink). Below it, or
 * into a bigger table, rebuilding would cost more than it saves.
 */
export const REBUILD_INDEXES_FROM = 100_000;

export async function importTable(tx: Executor, source: LegacySource, spec: TableSpec, report: TableReport, opts: WriteOptions): Promise<void> {
  const idOf = spec.idOf ?? ((row: LegacyRow) => String(row.id ?? ""));
  let done = 0;
  const progress = (step?: string) => opts.onProgress?.({ table: spec.table, done: done + report.skipped, total: report.source, ...(step ? { step } : {}) });
  const written = (rows: number) => {
    done += rows;
    progress();
  };
  const raw = opts.bulk ? postgresClientOf(tx) : null;
  if (opts.bulk && !raw) throw new Error("the COPY path needs a postgres.js transaction");
  const sink: BatchSink = raw
    ? new CopySink(raw, spec, report, written, {
        rebuildIndexes: report.source >= (opts.rebuildIndexesFrom ?? REBUILD_INDEXES_FROM) && report.source >= opts.existingRows,
        warn: opts.warn,
        step: progress,
      })
    : new JsonSink(tx, spec, report, written);
  opts.onProgress?.({ table: spec.table, done, total: report.source });

  try {
    await feed(source, spec, report, opts, sink, idOf);
  } catch (err) {
    // A chunk may still be in flight on the transaction's connection: let it settle before the
    // caller rolls back, so that nothing of it runs after the transaction has ended.
    await sink.settle();
    throw err;
  }
  opts.onProgress?.({ table: spec.table, done: report.source, total: report.source });
}

async function feed(source: LegacySource, spec: TableSpec, report: TableReport, opts: WriteOptions, sink: BatchSink, idOf: (row: LegacyRow) => string): Promise<void> {
  const seen = new Set<string>();
  let sinceYield = 0;
  for (const row of source.rows(spec.table)) {
    const id = idOf(row);
    const notes = notesFor(report, id);
    let out: ConvertResult;
    try {
      const converted = spec.convert(row, notes, opts.env);
      out = converted instanceof Promise ? await converted : converted;
    } catch (err) {
      throw new ImportFailure(spec.table, id, (err as Error).message);
    }
    if ("skip" in out && typeof out.skip === "string") {
      skip(report, id, out.skip as SkipReason);
      continue;
    }
    const unique = spec.batchUnique?.(out as Converted);
    if (unique) {
      if (seen.has(unique)) {
        await sink.flush();
        seen.clear();
      }
      seen.add(unique);
    }
    sink.push(out as Converted, id, notes);
    if (sink.rows >= opts.batchRows || sink.bytes >= opts.batchBytes) {
      await sink.flush();
      seen.clear();
    }
    // Reading SQLite and converting is synchronous: yield now and then so that the chunk in
    // flight (CopySink) keeps moving while the next one is prepared.
    if (++sinceYield >= 1000) {
      sinceYield = 0;
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
  await sink.close();
}

/** The portable path: each batch is one JSON parameter, expanded by json_to_recordset. */
class JsonSink implements BatchSink {
  rows = 0;
  bytes = 0;
  private parts: string[] = [];
  private keys: string[] = [];
  private ids: string[] = [];

  constructor(
    private readonly tx: Executor,
    private readonly spec: TableSpec,
    private readonly report: TableReport,
    private readonly written: (rows: number) => void,
  ) {}

  push(row: Converted, id: string, notes: Notes): void {
    let text = JSON.stringify(row);
    if (mayHoldUnstorableEscape(text)) {
      row = Object.fromEntries(Object.entries(row).map(([column, v]) => [column, storableValue(column, v, notes)])) as Converted;
      text = JSON.stringify(row);
    }
    this.parts.push(text);
    this.keys.push(String(row[this.spec.keyField]));
    this.ids.push(id);
    this.rows++;
    this.bytes += text.length;
  }

  async flush(): Promise<void> {
    if (this.parts.length === 0) return;
    const { parts, keys, ids } = this;
    this.parts = [];
    this.keys = [];
    this.ids = [];
    this.rows = 0;
    this.bytes = 0;
    await writeBatch(this.tx, this.spec, this.report, parts, keys, ids);
    this.written(parts.length);
  }

  close(): Promise<void> {
    return this.flush();
  }

  async settle(): Promise<void> {}
}

async function writeBatch(tx: Executor, spec: TableSpec, report: TableReport, parts: string[], keys: string[], ids: string[]): Promise<void> {
  const json = `[${parts.join(",")}]`;
  const batch = withBatch(spec.insert, spec.recordset, json);
  let inserted: Array<{ k: string }>;
  // A savepoint per batch: when PostgreSQL refuses a batch, the rows are retried one by one to
  // name the row that failed, then the whole import is rolled back by the caller.
  await tx.execute(sql`savepoint legacy_batch`);
  try {
    inserted = await queryRows<{ k: string }>(tx, batch);
    for (const after of afterStatements(spec)) await tx.execute(withBatch(after, spec.recordset, json));
    await tx.execute(sql`release savepoint legacy_batch`);
  } catch (err) {
    await tx.execute(sql`rollback to savepoint legacy_batch`);
    throw await findFailingRow(tx, spec, parts, ids, err);
  }
  report.imported += inserted.length;
  if (inserted.length === parts.length) return;

  const got = new Set(inserted.map((r) => r.k));
  const rest: number[] = [];
  keys.forEach((k, i) => {
    if (!got.has(k)) rest.push(i);
  });
  const classify = `select s.${spec.keyField} as k, ${classification(spec)} as cls from SRC`;
  const rows = await queryRows<{ k: string; cls: string | null }>(
    tx,
    withBatch(classify, spec.recordset, `[${rest.map((i) => parts[i]).join(",")}]`),
  );
  const byKey = new Map(rows.map((r) => [r.k, r.cls]));
  for (const i of rest) countLeftOut(spec, report, ids[i]!, byKey.get(keys[i]!));
}

async function findFailingRow(tx: Executor, spec: TableSpec, parts: string[], ids: string[], batchError: unknown): Promise<ImportFailure> {
  const { index, error } = await bisectFailure(parts.length, batchError, async (from, to) => {
    const json = `[${parts.slice(from, to).join(",")}]`;
    await tx.execute(sql`savepoint legacy_try`);
    try {
      await queryRows(tx, withBatch(spec.insert, spec.recordset, json));
      for (const after of afterStatements(spec)) await tx.execute(withBatch(after, spec.recordset, json));
      return null;
    } catch (err) {
      return err;
    } finally {
      await tx.execute(sql`rollback to savepoint legacy_try`);
      await tx.execute(sql`release savepoint legacy_try`);
    }
  });
  return new ImportFailure(spec.table, index === null ? null : (ids[index] ?? null), databaseMessage(error));
}

/**
 * Finds the row PostgreSQL refused in a batch it refused, for both write paths: halves of the
 * batch are retried (`attempt` runs rows [from, to) and rolls them back, returning the error or
 * null) until one row is left. About two batches' worth of work, once, where a retry row by row
 * costs a round trip per row. `index` is null when neither half fails alone (the rows fail
 * together); `error` is the smallest failing attempt's.
 */
export async function bisectFailure(
  size: number,
  batchError: unknown,
  attempt: (from: number, to: number) => Promise<unknown>,
): Promise<{ index: number | null; error: unknown }> {
  let lo = 0;
  let hi = size;
  let error = batchError;
  while (hi - lo > 1) {
    const mid = lo + Math.floor((hi - lo) / 2);
    const left = await attempt(lo, mid);
    if (left) {
      hi = mid;
      error = left;
      continue;
    }
    const right = await attempt(mid, hi);
    if (right) {
      lo = mid;
      error = right;
      continue;
    }
    return { index: null, error };
  }
  return { index: size > 0 ? lo : null, error };
}

/** The server's own words (postgres.js and PGlite put them in different places). */
export function databaseMessage(err: unknown): string {
  for (let e: unknown = err; e && typeof e === "object"; e = (e as { cause?: unknown }).cause) {
    const m = e as { message?: string; detail?: string; code?: string };
    // Never PostgreSQL's "Failing row contains (…)" detail: it lists every value of the row,
    // session tokens and password hashes included.
    if (m.code && m.message) return m.detail && !/failing row contains/i.test(m.detail) ? `${m.message} (${m.detail})` : m.message;
  }
  // Never the driver wrapper's own message: Drizzle's "Failed query: … params: …" carries the
  // batch, and with it session tokens and password hashes.
  const message = (err as Error)?.message ?? String(err);
  return message.startsWith("Failed query") ? "the database refused the row" : message.slice(0, 500);
}
