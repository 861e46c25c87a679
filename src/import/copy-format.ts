/**
 * PostgreSQL's COPY text format (one line per row, tab between columns, `\N` for NULL), written
 * by hand because it is four escapes: a COPY library would add a dependency for less than this
 * file, and the importer needs the per-value hook below to name a row PostgreSQL would refuse.
 *
 * Every value goes into a text column of the staging table: the casts to Warren's types happen in
 * the INSERT … SELECT that follows, where a refused value is an ordinary statement error (a COPY
 * that fails mid-stream leaves postgres.js waiting for a completion that never comes).
 */

import { mayHoldUnstorableEscape } from "../lib/text";
import { storableValue, type Notes } from "./convert";

export type StageColumn = { name: string; type: string };

/** "id text, created_at timestamptz, …" (a spec's recordset) as name/type pairs. */
export function parseColumns(recordset: string): StageColumn[] {
  return recordset.split(",").map((part) => {
    const [name, ...type] = part.trim().split(/\s+/);
    if (!name || type.length === 0) throw new Error(`bad column definition "${part.trim()}"`);
    return { name, type: type.join(" ") };
  });
}

const NEEDS_ESCAPE = /[\\\t\n\r]/;
const ESCAPES = /[\\\t\n\r]/g;
const ESCAPED: Record<string, string> = { "\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r" };

function escapeText(s: string): string {
  return NEEDS_ESCAPE.test(s) ? s.replace(ESCAPES, (c) => ESCAPED[c]!) : s;
}

/**
 * One COPY line (with its newline): `ord`, then the row's values in column order. Objects and
 * arrays are JSON (for json/jsonb columns, as json_to_recordset would read them); booleans are
 * t/f; a missing key is NULL, as with json_to_recordset. Text PostgreSQL cannot hold is made
 * storable and noted (storableValue).
 *
 * Built with join, not +=: concatenation makes a rope (a string node per piece) that stays so
 * until read, and a chunk of 20,000 lines held that way was ~3 million strings and ~300 MB of
 * the import's peak RSS (bench/README.md); join makes one flat string per line.
 */
export function copyLine(ord: number, row: Record<string, unknown>, columns: StageColumn[], notes: Pick<Notes, "replaced">): string {
  const parts: string[] = [String(ord)];
  for (const { name } of columns) {
    const v = row[name];
    if (v === null || v === undefined) parts.push("\\N");
    else if (typeof v === "string") parts.push(escapeText(v.includes("\0") ? (storableValue(name, v, notes) as string) : v));
    else if (typeof v === "number" || typeof v === "bigint") parts.push(String(v));
    else if (typeof v === "boolean") parts.push(v ? "t" : "f");
    else {
      const json = JSON.stringify(v);
      parts.push(escapeText(mayHoldUnstorableEscape(json) ? JSON.stringify(storableValue(name, v, notes)) : json));
    }
  }
  parts[parts.length - 1] += "\n";
  return parts.join("\t");
}
