/**
 * Conversions of the legacy file's loose values (shared/legacy-schema.md, "Quirks") into what
 * Warren's columns hold. Pure functions: no database, no I/O; every oddity is reported to the
 * caller through `Notes` so the report can name the row and column.
 */

import { MAX_JSON_DEPTH, nestsDeeperThan, storableJson } from "../lib/text";

/** Where malformed JSON goes: a jsonb object the operator can find and repair by hand. */
export const LEGACY_TEXT_KEY = "$legacyText";

export type Notes = {
  /**
   * A JSON column held text that is not JSON: stored as {"$legacyText": "..."}, or, where
   * Warren's column has no room for it (an array of ids, a list of scopes), not stored and
   * handed over here as `lost` so that the report carries the original text instead.
   */
  malformedJson(column: string, lost?: string): void;
  /** A value was replaced (NULL in a NOT NULL column, an unknown literal, an unparseable time). */
  replaced(column: string, why: string): void;
  /**
   * A row still in progress in the legacy file (a message being streamed) was stored in a final
   * state: no agent will ever finish it. Counted apart, and listed with the replaced values.
   */
  interrupted(column: string, why: string): void;
};

/** Notes that go nowhere: for a conversion whose findings were already reported (or need not be). */
export const QUIET_NOTES: Notes = { malformedJson() {}, replaced() {}, interrupted() {} };

const UNSTORABLE_NOTE = "held NUL or half a surrogate pair, which PostgreSQL cannot store: stored with U+FFFD in their place";

/**
 * `value` (a column's, converted) with what PostgreSQL cannot hold made U+FFFD: NUL in text or
 * JSON (a tool's output of a binary file, kept by the old chat sync), and an unpaired surrogate
 * escaped in JSON text. Noted per row and column when anything changed. Called only for a value
 * the sinks found suspect, so the common row pays one test of its text.
 */
export function storableValue(column: string, value: unknown, notes: Pick<Notes, "replaced">): unknown {
  const fixed = storableJson(value);
  if (JSON.stringify(fixed) !== JSON.stringify(value)) notes.replaced(column, UNSTORABLE_NOTE);
  return fixed;
}

const SQLITE_DATETIME = /^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)$/;
const HAS_ZONE = /(Z|[+-]\d{2}:?\d{2})$/i;

/**
 * Every timestamp shape the legacy file holds, as an ISO 8601 UTC string (or null):
 * SQLite's `datetime('now')` (UTC without a zone), ISO 8601 with `Z` or an offset, Better
 * Auth's strings (Date#toString, e.g. "Tue Nov 21 2023 13:48:14 GMT+0000 (…)"), and epoch
 * numbers (seconds or milliseconds). All legacy times are UTC.
 */
export function toIsoTime(value: unknown): string | null | undefined {
  if (value === null || value === undefined || value === "") return null;
  if (typeof value === "number" || typeof value === "bigint") {
    const n = Number(value);
    // Seconds until the year 5138; anything larger is milliseconds.
    const ms = Math.abs(n) < 1e11 ? n * 1000 : n;
    const d = new Date(ms);
    return Number.isNaN(d.getTime()) ? undefined : checked(d);
  }
  if (typeof value !== "string") return undefined;
  const s = value.trim();
  const plain = SQLITE_DATETIME.exec(s);
  if (plain) {
    const d = new Date(`${plain[1]}T${plain[2]}Z`);
    return Number.isNaN(d.getTime()) || !sameDay(d, plain[1]!) ? undefined : checked(d);
  }
  if (/^\d{4}-\d{2}-\d{2}$/.test(s)) {
    const d = new Date(`${s}T00:00:00Z`);
    return Number.isNaN(d.getTime()) || !sameDay(d, s) ? undefined : d.toISOString();
  }
  if (/^-?\d+(\.\d+)?$/.test(s)) return toIsoTime(Number(s));
  // ISO with a zone, or a Date#toString / RFC 2822 string (which carries its own GMT offset).
  const d = new Date(s);
  if (Number.isNaN(d.getTime())) return undefined;
  // JS rolls an impossible date over ("2023-02-30" is 2 March): refused, not moved.
  const day = /^(\d{4}-\d{2}-\d{2})[ T]/.exec(s)?.[1];
  if (day && !HAS_ZONE.test(s) && !/GMT|UTC/i.test(s)) {
    // An ISO string without a zone: the legacy system wrote UTC; JS would read it as local.
    const utc = new Date(`${s}Z`);
    if (!Number.isNaN(utc.getTime())) return sameDay(utc, day) ? checked(utc) : undefined;
  }
  if (day && !validDay(day)) return undefined;
  return checked(d);
}

/** Years PostgreSQL and ISO 8601 both write plainly; anything else is a garbled value. */
function checked(d: Date): string | undefined {
  const year = d.getUTCFullYear();
  return year < 1 || year > 9999 ? undefined : d.toISOString();
}

function sameDay(d: Date, day: string): boolean {
  return d.toISOString().startsWith(day);
}

function validDay(day: string): boolean {
  const d = new Date(`${day}T00:00:00Z`);
  return !Number.isNaN(d.getTime()) && sameDay(d, day);
}

/** A time for a nullable column; an unparseable value becomes null and is noted. */
export function optionalTime(value: unknown, column: string, notes: Notes): string | null {
  const iso = toIsoTime(value);
  if (iso === undefined) {
    notes.replaced(column, "unparseable timestamp, stored as NULL");
    return null;
  }
  return iso;
}

/** A time for a NOT NULL column: falls back (e.g. updated_at → created_at → import time). */
export function requiredTime(value: unknown, column: string, notes: Notes, ...fallbacks: Array<string | null>): string {
  const iso = toIsoTime(value);
  if (iso) return iso;
  const fallback = fallbacks.find((f): f is string => Boolean(f))!;
  notes.replaced(column, iso === undefined ? "unparseable timestamp" : "NULL in a NOT NULL column");
  return fallback;
}

/** SQLite booleans: 0/1 integers (sometimes "0"/"1", "true"/"false" text in hand-edited rows). */
export function toBool(value: unknown, column: string, notes: Notes, fallback: boolean): boolean {
  if (value === 1 || value === 1n || value === "1" || value === true || value === "true") return true;
  if (value === 0 || value === 0n || value === "0" || value === false || value === "false") return false;
  if (value !== null && value !== undefined) notes.replaced(column, `not a boolean, stored as ${fallback}`);
  else notes.replaced(column, `NULL, stored as ${fallback}`);
  return fallback;
}

/**
 * JSON text to a value for a jsonb column. Empty text or NULL gives `fallback` (old rows left
 * them empty); malformed text is kept whole as {"$legacyText": "..."} and noted, never dropped.
 * So is JSON nested more than MAX_JSON_DEPTH levels, Warren's limit for the JSON it takes: Warren
 * would refuse it written back (an agent config saved again), and some tens of thousands of levels
 * failed the import (JSON.stringify's stack, then PostgreSQL's).
 */
export function toJson(value: unknown, column: string, notes: Notes, fallback: unknown, opts: { keep: boolean } = { keep: true }): unknown {
  if (value === null || value === undefined) return fallback;
  if (typeof value !== "string") return value;
  if (value.trim() === "") return fallback;
  try {
    const parsed: unknown = JSON.parse(value);
    if (!nestsDeeperThan(parsed, MAX_JSON_DEPTH)) return parsed;
    if (!opts.keep) {
      notes.malformedJson(column, value);
      return fallback;
    }
    notes.replaced(column, `JSON nested more than ${MAX_JSON_DEPTH} levels deep (Warren's limit for JSON): kept as text in {"${LEGACY_TEXT_KEY}": …}`);
    return { [LEGACY_TEXT_KEY]: value };
  } catch {
    // keep: false for columns whose shape cannot hold the wrapper (arrays of ids): the caller
    // stores `fallback` and the report carries the original text.
    if (!opts.keep) {
      notes.malformedJson(column, value);
      return fallback;
    }
    notes.malformedJson(column);
    return { [LEGACY_TEXT_KEY]: value };
  }
}

/** A CHECK-guarded literal mapped onto Warren's enum; anything else becomes `fallback`, noted. */
export function toEnum<T extends string>(value: unknown, allowed: readonly T[], column: string, notes: Notes, fallback: T): T {
  if (typeof value === "string" && (allowed as readonly string[]).includes(value)) return value as T;
  notes.replaced(column, value === null || value === undefined ? `NULL, stored as "${fallback}"` : `unknown value, stored as "${fallback}"`);
  return fallback;
}

export function toText(value: unknown): string | null {
  if (value === null || value === undefined) return null;
  if (typeof value === "string") return value;
  if (value instanceof Uint8Array) return Buffer.from(value).toString("utf8");
  return String(value);
}

export function toInt(value: unknown, fallback: number): number {
  const n = typeof value === "number" ? value : typeof value === "bigint" ? Number(value) : Number(value ?? Number.NaN);
  return Number.isFinite(n) ? Math.trunc(n) : fallback;
}

/**
 * The plain text of a message's parts (what Warren's search indexes): the `text` of text parts,
 * or the whole value when the legacy row held a bare string.
 */
export function messageText(content: unknown): string {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) {
    const out: string[] = [];
    for (const part of content) {
      if (typeof part === "string") out.push(part);
      else if (part && typeof part === "object" && (part as { type?: unknown }).type === "text") {
        const text = (part as { text?: unknown }).text;
        if (typeof text === "string") out.push(text);
      }
    }
    return out.join("\n");
  }
  if (content && typeof content === "object") {
    const obj = content as Record<string, unknown>;
    if (typeof obj.text === "string") return obj.text;
    if (typeof obj[LEGACY_TEXT_KEY] === "string") return obj[LEGACY_TEXT_KEY] as string;
  }
  return "";
}

/**
 * A repository URL Warren accepts (https, no credentials in it). Userinfo is a secret the
 * legacy system kept in plaintext: it is stripped, never imported.
 */
export function toRepositoryUrl(value: unknown, notes: Notes): string | null {
  const s = toText(value)?.trim();
  if (!s) return null;
  const url = URL.parse(s);
  if (!url || url.protocol !== "https:") {
    notes.replaced("github_url", "not an https URL, not imported");
    return null;
  }
  if (url.username || url.password) {
    url.username = "";
    url.password = "";
    notes.replaced("github_url", "credentials in the URL removed");
  }
  return url.toString();
}
