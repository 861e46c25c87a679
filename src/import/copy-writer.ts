import type { Sql } from "postgres";
import type { Executor } from "../database/client";
import type { Notes } from "./convert";
import { copyLine, parseColumns, type StageColumn } from "./copy-format";
import type { TableReport } from "./report";
import { afterStatements, bisectFailure, classification, countLeftOut, databaseMessage, ImportFailure, type BatchSink, type Converted, type TableSpec } from "./writer";

/**
 * The PostgreSQL bulk path: each chunk of converted rows is streamed with COPY FROM STDIN into a
 * temporary staging table (all text columns, dropped at commit or rollback, never WAL-logged),
 * then written with one set-based statement that inserts (ON CONFLICT DO NOTHING) and, in the
 * same statement, classifies every row it did not insert:
 *
 *   with ins as (insert … select … from stage … returning key as k)
 *   select count(*) from ins  union all  select ord, classification from stage where key not in ins
 *
 * All the statements of a data-modifying WITH see the snapshot taken before it, so "present"
 * means "already in Warren before this chunk" (and "deleted", deleted in Warren since an earlier
 * import, reads the ledger as it was before this chunk), the same answers the JSON path gives.
 *
 * Everything runs on the import transaction's own connection (the drizzle transaction is
 * postgres.js's sql.begin underneath): one transaction, so a kill -9 leaves nothing behind.
 *
 * Chunks are pipelined: flush() starts writing one chunk and returns; the caller converts the
 * next chunk from SQLite while PostgreSQL inserts this one, and the next flush waits for it.
 */

type RawSql = Sql<Record<string, unknown>>;

/** The postgres.js connection under a drizzle postgres-js transaction, or null (PGlite). */
export function postgresClientOf(tx: Executor): RawSql | null {
  // drizzle-orm's PostgresJsSession keeps the TransactionSql it was given as `client`.
  const client = (tx as unknown as { session?: { client?: unknown } }).session?.client;
  if (typeof client === "function" && typeof (client as { unsafe?: unknown }).unsafe === "function") return client as RawSql;
  return null;
}

const quote = (name: string) => `"${name.replaceAll('"', '""')}"`;

type Chunk = { lines: string[]; ids: string[] };

export class CopySink implements BatchSink {
  rows = 0;
  bytes = 0;
  private lines: string[] = [];
  private ids: string[] = [];
  private inflight: Promise<void> = Promise.resolve();
  private readonly columns: StageColumn[];
  private readonly stage: string;
  private readonly source: string;
  private readonly statement: string;
  /** afterStatements(spec) (add-on links, the import ledger), run after each chunk's insert. */
  private readonly after: string[];
  private opened = false;
  /**
   * Large imports as a superuser: the foreign-key triggers of the target are skipped for the
   * INSERT (session_replication_role = replica, for that statement only) and replaced by what
   * they would have done, set-based: the spec's insert only takes rows whose referenced rows
   * exist, and this statement takes the FOR KEY SHARE locks the triggers would have taken, so
   * no other session can delete a referenced row before the import commits. Row by row, those
   * triggers are a third of the cost of a chat message (bench/README.md). Without superuser
   * (managed servers) the triggers run as usual.
   */
  private lockReferences: string | null = null;
  /** Definitions of the indexes dropped for this table, recreated by close(). */
  private dropped: Array<{ name: string; definition: string }> = [];
  /** Definitions of the page-cache triggers dropped for this table, recreated by close(). */
  private droppedTriggers: Array<{ name: string; definition: string }> = [];

  constructor(
    private readonly raw: RawSql,
    private readonly spec: TableSpec,
    private readonly report: TableReport,
    private readonly written: (rows: number) => void,
    private readonly options: {
      /** Build the target's secondary indexes once at the end instead of row by row. */
      rebuildIndexes: boolean;
      warn: (message: string) => void;
      /** Told before each index build (they take seconds on a large table, after the last row). */
      step?: (step: string) => void;
    },
  ) {
    this.columns = parseColumns(spec.recordset);
    this.stage = quote(`legacy_stage_${spec.table}`);
    // The staging table holds text; the casts to the spec's types happen here, in a plain
    // statement whose errors PostgreSQL reports normally (and which bisect() can retry).
    const typed = this.columns.map((c) => `${quote(c.name)}::${c.type} as ${quote(c.name)}`).join(", ");
    this.source = `(select x.ord, ${typed} from ${this.stage} x) as s`;
    const insert = spec.insert.replace("SRC", this.source);
    this.statement = `with ins as (${insert})
      select null::int as ord, count(*)::int as n, null::text as cls from ins
      union all
      select s.ord, null, ${classification(spec)} from ${this.source}
      where not exists (select 1 from ins where ins.k = s.${quote(spec.keyField)})`;
    this.after = afterStatements(spec).map((statement) => statement.replace("SRC", this.source));
  }

  push(row: Converted, id: string, notes: Notes): void {
    const line = copyLine(this.lines.length, row, this.columns, notes);
    this.lines.push(line);
    this.ids.push(id);
    this.rows++;
    this.bytes += line.length;
  }

  async flush(): Promise<void> {
    if (this.lines.length === 0) return;
    const chunk: Chunk = { lines: this.lines, ids: this.ids };
    this.lines = [];
    this.ids = [];
    this.rows = 0;
    this.bytes = 0;
    // The previous chunk must be in (and its failure, if any, raised) before this one starts.
    await this.inflight;
    const next = this.write(chunk);
    // Observed here so that a failure is not an unhandled rejection; raised by the next await.
    next.catch(() => {});
    this.inflight = next;
  }

  async close(): Promise<void> {
    await this.flush();
    await this.inflight;
    if (this.dropped.length === 0) return;
    // Sorted bulk builds, with room to sort in memory for this transaction only.
    await this.raw.unsafe("set local maintenance_work_mem = '256MB'");
    for (const [i, index] of this.dropped.entries()) {
      this.options.step?.(`building index ${i + 1}/${this.dropped.length} (${index.name})`);
      await this.raw.unsafe(index.definition);
    }
    await this.raw.unsafe("set local maintenance_work_mem to default");
    for (const trigger of this.droppedTriggers) await this.raw.unsafe(trigger.definition);
    this.report.indexesRebuilt = this.dropped.map((i) => i.name);
    if (this.droppedTriggers.length > 0) this.report.triggersRecreated = this.droppedTriggers.map((t) => t.name);
    this.dropped = [];
    this.droppedTriggers = [];
  }

  async settle(): Promise<void> {
    await this.inflight.catch(() => {});
  }

  private async open(): Promise<void> {
    if (this.opened) return;
    const cols = this.columns.map((c) => `${quote(c.name)} text`).join(", ");
    await this.raw.unsafe(`create temp table if not exists ${this.stage} (ord int, ${cols}) on commit drop`);
    if (this.options.rebuildIndexes) {
      await this.dropSecondaryIndexes();
      if (this.dropped.length > 0) await this.dropPageTriggers();
      if (this.spec.lockReferences) {
        // Replica mode skips every trigger of the table: only when it has none of its own
        // (a NOTIFY trigger added later must keep firing), only the foreign keys' internal ones.
        const [role] = (await this.raw.unsafe(
          `select current_setting('is_superuser') = 'on' as superuser,
             not exists (select 1 from pg_trigger where tgrelid = $1::regclass and not tgisinternal) as plain`,
          [this.spec.target],
        )) as unknown as Array<{ superuser: boolean; plain: boolean }>;
        if (role?.superuser && role.plain) this.lockReferences = this.spec.lockReferences.replaceAll("STAGE", this.stage);
      }
    }
    this.opened = true;
  }

  /**
   * For a large import, maintaining the GIN search index and the non-unique b-trees row by row
   * costs more than building them once at the end (measured in bench/README.md). They are
   * dropped inside the import's transaction and recreated, from the catalog's own definitions,
   * before it commits: other sessions never see the table without them (DDL is transactional;
   * a rollback or a kill -9 brings them back untouched), but they wait for the table until the
   * import commits. Unique indexes stay: ON CONFLICT needs them. When the table is busy (the
   * lock is not granted within 5 s) the import keeps the indexes and goes on row by row.
   */
  private async dropSecondaryIndexes(): Promise<void> {
    const indexes = (await this.raw.unsafe(
      `select c.relname as name, pg_get_indexdef(i.indexrelid) as definition
       from pg_index i join pg_class c on c.oid = i.indexrelid
       where i.indrelid = $1::regclass and not i.indisunique and not i.indisprimary and i.indisvalid`,
      [this.spec.target],
    )) as unknown as Array<{ name: string; definition: string }>;
    if (indexes.length === 0) return;
    await this.raw.unsafe("savepoint legacy_indexes");
    try {
      await this.raw.unsafe("set local lock_timeout = '5s'");
      await this.raw.unsafe(`drop index ${indexes.map((i) => quote(i.name)).join(", ")}`);
      await this.raw.unsafe("set local lock_timeout to default");
      await this.raw.unsafe("release savepoint legacy_indexes");
      this.dropped = indexes;
    } catch (err) {
      await this.raw.unsafe("rollback to savepoint legacy_indexes");
      this.options.warn(`${this.spec.target}: indexes kept (${databaseMessage(err)}); rows are indexed one by one`);
    }
  }

  /**
   * The page cache's NOTIFY triggers (migration 0015) are set aside like the indexes, while the
   * table is locked by the index drop. While they exist the foreign-key triggers cannot be skipped
   * (lockReferences needs a table with no trigger of its own), and those run row by row: on a
   * 1M-message import each 20,000-row chunk took 760-1,220 ms with them, 530-770 ms without (and
   * without JIT; bench/README.md). They would also have PostgreSQL copy every inserted row into
   * a transition table only to list its users. The import tells every instance to drop every
   * cached page at commit instead (run.ts); close() recreates them from their catalog
   * definitions before that.
   */
  private async dropPageTriggers(): Promise<void> {
    const triggers = (await this.raw.unsafe(
      `select t.tgname as name, pg_get_triggerdef(t.oid) as definition
       from pg_trigger t join pg_proc p on p.oid = t.tgfoid
       where t.tgrelid = $1::regclass and not t.tgisinternal and p.proname = 'warren_notify_pages'`,
      [this.spec.target],
    )) as unknown as Array<{ name: string; definition: string }>;
    for (const trigger of triggers) await this.raw.unsafe(`drop trigger ${quote(trigger.name)} on ${quote(this.spec.target)}`);
    this.droppedTriggers = triggers;
  }

  private async write(chunk: Chunk): Promise<void> {
    await this.open();
    // A savepoint per chunk: when PostgreSQL refuses it, bisect() finds the row, then the caller
    // rolls the whole import back.
    await this.raw.unsafe("savepoint legacy_batch");
    let result: Array<{ ord: number | null; n: number | null; cls: string | null }>;
    try {
      await this.load(chunk.lines);
      if (this.lockReferences) {
        await this.raw.unsafe(this.lockReferences);
        await this.raw.unsafe("set local session_replication_role = replica");
      }
      result = (await this.raw.unsafe(this.statement)) as unknown as typeof result;
      if (this.lockReferences) await this.raw.unsafe("set local session_replication_role = origin");
      for (const statement of this.after) await this.raw.unsafe(statement);
      await this.raw.unsafe("release savepoint legacy_batch");
    } catch (err) {
      await this.raw.unsafe("rollback to savepoint legacy_batch");
      throw await this.bisect(chunk, err);
    }
    let inserted = 0;
    for (const r of result) {
      if (r.ord === null) {
        inserted = Number(r.n);
        continue;
      }
      countLeftOut(this.spec, this.report, chunk.ids[r.ord]!, r.cls);
    }
    this.report.imported += inserted;
    this.written(chunk.lines.length);
  }

  /** Empties the staging table and streams `lines` into it. */
  private async load(lines: string[]): Promise<void> {
    await this.raw.unsafe(`truncate ${this.stage}`);
    const names = this.columns.map((c) => quote(c.name)).join(", ");
    const stream = await this.raw.unsafe(`copy ${this.stage} (ord, ${names}) from stdin`).writable();
    const done = new Promise<void>((resolve, reject) => {
      stream.once("finish", resolve);
      stream.once("error", reject);
    });
    // Written in slices of about 1 MB: one CopyData message each.
    let slice: string[] = [];
    let size = 0;
    for (const line of lines) {
      slice.push(line);
      size += line.length;
      if (size >= 1 << 20) {
        if (!stream.write(slice.join(""))) await new Promise((r) => stream.once("drain", r));
        slice = [];
        size = 0;
      }
    }
    stream.end(slice.join(""));
    await done;
  }

  /** Names the row PostgreSQL refused (bisectFailure), each attempt under a rolled-back savepoint. */
  private async bisect(chunk: Chunk, chunkError: unknown): Promise<ImportFailure> {
    const { index, error } = await bisectFailure(chunk.lines.length, chunkError, async (from, to) => {
      await this.raw.unsafe("savepoint legacy_try");
      try {
        await this.load(chunk.lines.slice(from, to));
        await this.raw.unsafe(this.statement);
        for (const statement of this.after) await this.raw.unsafe(statement);
        return null;
      } catch (err) {
        return err;
      } finally {
        await this.raw.unsafe("rollback to savepoint legacy_try");
        await this.raw.unsafe("release savepoint legacy_try");
      }
    });
    return new ImportFailure(this.spec.table, index === null ? null : (chunk.ids[index] ?? null), databaseMessage(error));
  }
}
