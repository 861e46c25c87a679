/**
 * What an import did, table by table. The same object is printed as text, or as JSON with
 * --json. Per-row lists are capped (ROW_LIST_CAP per table and kind) so a file with a million
 * odd rows still gives a report of bounded size; the counts are always complete.
 */
export const ROW_LIST_CAP = 10_000;

export type RowIssue = {
  id: string;
  column: string;
  problem: string;
  /** Malformed JSON Warren's column cannot hold: the legacy text itself (first ORIGINAL_TEXT_CAP characters). */
  original?: string;
};

/** Malformed JSON kept only in the report is cut at this length (the legacy file keeps it whole). */
export const ORIGINAL_TEXT_CAP = 4000;
export type SkippedRow = { id: string; reason: SkipReason };

export type SkipReason =
  | "orphan_user" // references a user that exists neither in the file nor in Warren
  | "orphan_sandbox"
  | "orphan_session"
  | "invalid" // a row Warren cannot hold at all (e.g. a user without an email)
  | "unknown_provider"
  | "no_secret"
  | "pending_oauth_flow"
  | "transient_oauth_state";

export type TableReport = {
  /** The legacy table. */
  table: string;
  /** Where its rows go in Warren. */
  target: string;
  /** Rows in the legacy table. */
  source: number;
  /** Rows written by this run. */
  imported: number;
  /** Reference rows whose legacy operator edits were applied over Warren's (still seeded) values. */
  updated: number;
  /** Rows Warren already held (an earlier run, unchanged seed data, or edited in Warren: see kept). */
  alreadyPresent: number;
  /** Duplicate rows folded into one (chat messages with the same external id). */
  merged: number;
  /**
   * Rows an earlier import brought over that were deleted in Warren since (or hang off something
   * that was: a deleted account's sandboxes, a deleted sandbox's chats, a purged session's
   * messages): not brought back. Known from the import ledger (legacy_import_ledger) and from
   * purged sessions' tombstones.
   */
  deletedInWarren: number;
  skipped: number;
  skippedByReason: Partial<Record<SkipReason, number>>;
  skippedRows: SkippedRow[];
  /**
   * JSON columns whose text was not JSON (row and column): stored as {"$legacyText": "..."},
   * or, where the column cannot hold that (arrays of ids), listed here with the original text.
   */
  malformedJson: RowIssue[];
  malformedJsonCount: number;
  /** Of malformedJsonCount, the values not stored in Warren (their text is in `original`). */
  malformedJsonNotKept: number;
  /** Values replaced on the way in (NULL in NOT NULL columns, unknown literals, bad times). */
  replaced: RowIssue[];
  replacedCount: number;
  /**
   * Reference data: legacy values not applied because Warren's value has changed since Warren
   * seeded it (an earlier import, or an operator in Warren): Warren's value was kept.
   */
  kept: RowIssue[];
  keptCount: number;
  /** Chat messages still in progress in the legacy file, stored in a final state (also in `replaced`). */
  interrupted?: number;
  /**
   * Chat messages an earlier import stored as interrupted (still streaming then) that this file
   * holds finished: replaced by the finished version (counted in `updated`).
   */
  finished?: number;
  /** Chat sessions whose counters this run set from their messages (chat_sessions). */
  countersRecomputed?: number;
  /** Rows the target table gained, counted in Warren before and after (independent check). */
  targetDelta: number | null;
  verified: boolean;
  durationMs: number;
  /** Secondary indexes built once after the rows were in (large imports on PostgreSQL). */
  indexesRebuilt?: string[];
  /** The page-cache triggers set aside for the bulk insert and recreated before commit (PostgreSQL). */
  triggersRecreated?: string[];
};

export type NotImported = { table: string; rows: number; reason: string };

export type ImportFailureInfo = { table: string; row: string | null; message: string };

export type ImportReport = {
  source: string;
  engine: string;
  dryRun: boolean;
  /** True only when the transaction committed. */
  committed: boolean;
  ok: boolean;
  startedAt: string;
  durationMs: number;
  tables: TableReport[];
  notImported: NotImported[];
  credentials: { assignedTo: string | null; imported: number; alreadyPresent: number; deletedInWarren: number };
  verification: { ok: boolean; mismatches: string[] };
  failure: ImportFailureInfo | null;
  warnings: string[];
};

export function emptyTableReport(table: string, target: string, source: number): TableReport {
  return {
    table,
    target,
    source,
    imported: 0,
    updated: 0,
    alreadyPresent: 0,
    merged: 0,
    deletedInWarren: 0,
    skipped: 0,
    skippedByReason: {},
    skippedRows: [],
    malformedJson: [],
    malformedJsonCount: 0,
    malformedJsonNotKept: 0,
    replaced: [],
    replacedCount: 0,
    kept: [],
    keptCount: 0,
    targetDelta: null,
    verified: false,
    durationMs: 0,
  };
}

export function skip(report: TableReport, id: string, reason: SkipReason): void {
  report.skipped++;
  report.skippedByReason[reason] = (report.skippedByReason[reason] ?? 0) + 1;
  if (report.skippedRows.length < ROW_LIST_CAP) report.skippedRows.push({ id, reason });
}

/** source = imported + updated + alreadyPresent + merged + deletedInWarren + skipped, or a mismatch message. */
export function balance(t: TableReport): string | null {
  const accounted = t.imported + t.updated + t.alreadyPresent + t.merged + t.deletedInWarren + t.skipped;
  if (accounted !== t.source) {
    return `${t.table}: ${t.source} rows in the file but ${accounted} accounted for (imported ${t.imported}, updated ${t.updated}, already present ${t.alreadyPresent}, merged ${t.merged}, deleted in Warren ${t.deletedInWarren}, skipped ${t.skipped})`;
  }
  if (t.targetDelta !== null && t.targetDelta !== t.imported) {
    return `${t.table}: ${t.imported} rows imported but ${t.target} gained ${t.targetDelta}`;
  }
  return null;
}

const pad = (s: string | number, n: number) => String(s).padStart(n);

export function renderText(r: ImportReport): string {
  const lines: string[] = [];
  lines.push(`Legacy import from ${r.source} into ${r.engine}${r.dryRun ? " (dry run: rolled back)" : ""}`);
  if (r.tables.length) {
    lines.push("", `${"table".padEnd(24)} ${pad("source", 9)} ${pad("imported", 9)} ${pad("updated", 8)} ${pad("present", 9)} ${pad("merged", 8)} ${pad("deleted", 8)} ${pad("skipped", 8)}  check`);
  }
  for (const t of r.tables) {
    lines.push(
      `${t.table.padEnd(24)} ${pad(t.source, 9)} ${pad(t.imported, 9)} ${pad(t.updated, 8)} ${pad(t.alreadyPresent, 9)} ${pad(t.merged, 8)} ${pad(t.deletedInWarren, 8)} ${pad(t.skipped, 8)}  ${t.verified ? "ok" : "MISMATCH"}`,
    );
  }
  const deleted = r.tables.filter((t) => t.deletedInWarren > 0);
  const details: string[] = [];
  for (const t of r.tables) {
    for (const [reason, n] of Object.entries(t.skippedByReason)) details.push(`  ${t.table}: ${n} skipped (${reason.replaceAll("_", " ")})`);
    const kept = t.malformedJson.filter((m) => m.original === undefined);
    const lost = t.malformedJson.filter((m) => m.original !== undefined);
    const sample = (list: RowIssue[], total: number) => `${list.slice(0, 5).map((m) => `${m.id}.${m.column}`).join(", ")}${total > 5 ? ", …" : ""}`;
    const keptCount = t.malformedJsonCount - t.malformedJsonNotKept;
    if (keptCount > 0) details.push(`  ${t.table}: ${keptCount} malformed JSON value(s) kept as {"$legacyText": "<original text>"} (${sample(kept, keptCount)})`);
    if (t.malformedJsonNotKept > 0) {
      details.push(`  ${t.table}: ${t.malformedJsonNotKept} malformed JSON value(s) Warren's column cannot hold, stored empty; original text in --json (${sample(lost, t.malformedJsonNotKept)})`);
    }
    if (t.replacedCount > 0) details.push(`  ${t.table}: ${t.replacedCount} value(s) replaced (NULLs, unknown literals, bad times; see --json)`);
    if (t.interrupted) details.push(`  ${t.table}: ${t.interrupted} message(s) still streaming in the legacy file stored as finished (assistant replies as cancelled), content kept`);
    if (t.finished) details.push(`  ${t.table}: ${t.finished} message(s) an earlier import stored as interrupted are finished in this file: replaced by the finished version`);
    if (t.countersRecomputed) details.push(`  ${t.table}: counters of ${t.countersRecomputed} session(s) set from their imported messages (duplicates counted once)`);
    if (t.keptCount > 0) {
      details.push(`  ${t.table}: ${t.keptCount} legacy value(s) not applied, Warren's kept (changed in Warren since seeded or imported; see --json): ${t.kept.slice(0, 5).map((k) => `${k.id}.${k.column}`).join(", ")}${t.keptCount > 5 ? ", …" : ""}`);
    }
  }
  if (details.length) lines.push("", "Details:", ...details);
  if (deleted.length) {
    lines.push(
      "",
      "Deleted in Warren since an earlier import, not brought back (\"deleted\" above; with what hangs off them):",
      ...deleted.map((t) => `  ${t.table}: ${t.deletedInWarren}`),
    );
  }
  if (r.notImported.length) {
    lines.push("", "Not imported (no place in Warren):");
    for (const n of r.notImported) lines.push(`  ${n.table} (${n.rows} ${n.rows === 1 ? "row" : "rows"}): ${n.reason}`);
  }
  if (r.credentials.assignedTo) {
    const { alreadyPresent: present, deletedInWarren: gone } = r.credentials;
    lines.push(
      "",
      `Provider credentials: ${r.credentials.imported} imported for ${r.credentials.assignedTo}${present ? `, ${present} already present` : ""}${gone ? `, ${gone} deleted in Warren since imported (not brought back)` : ""}`,
    );
  }
  if (r.warnings.length) lines.push("", "Warnings:", ...r.warnings.map((w) => `  ${w}`));
  lines.push("");
  if (r.failure) {
    lines.push(`FAILED in ${r.failure.table}${r.failure.row ? ` at row ${r.failure.row}` : ""}: ${r.failure.message}`);
    lines.push("Nothing was written: the whole import was rolled back.");
  } else if (!r.verification.ok) {
    lines.push("VERIFICATION FAILED (rolled back):", ...r.verification.mismatches.map((m) => `  ${m}`));
  } else {
    lines.push(r.dryRun ? "Dry run complete: every count verified, nothing written." : `Import committed and verified in ${(r.durationMs / 1000).toFixed(1)} s.`);
  }
  return `${lines.join("\n")}\n`;
}
