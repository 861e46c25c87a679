import { z } from "@hono/zod-openapi";

/**
 * PostgreSQL text and jsonb cannot hold U+0000: a string carrying it must be refused as input
 * (400 naming the field), not discovered by a failed insert (500).
 */
export const containsNul = (value: string) => value.includes("\u0000");

/**
 * Why PostgreSQL cannot store `value` as it is, or undefined:
 * - NUL (U+0000): neither text nor jsonb holds it (SQLSTATE 22021 / 22P05);
 * - an unpaired UTF-16 surrogate ("\ud800", or half an emoji cut by a client's slice): jsonb
 *   refuses its escape (22P02, "Unicode low surrogate must follow a high surrogate"), and a text
 *   column would silently hold U+FFFD instead.
 */
export function unstorableText(value: string): string | undefined {
  if (containsNul(value)) return "must not contain NUL (U+0000) characters";
  if (!value.isWellFormed()) return "must not contain unpaired UTF-16 surrogates (U+D800 to U+DFFF)";
  return undefined;
}

/**
 * `value` made storable, for text Warren cannot refuse (an agent's output, a title it chose):
 * NUL and unpaired surrogates become U+FFFD, as a decoder does with bytes it cannot read.
 */
export const storableText = (value: string) => (unstorableText(value) ? value.replaceAll("\u0000", "\ufffd").toWellFormed() : value);

/**
 * At most `max` UTF-16 units of text Warren keeps from elsewhere (an agent's, a process's error),
 * storable: cut before a surrogate pair rather than through it, NUL made U+FFFD.
 */
export function excerpt(value: string, max: number): string {
  let cut = value;
  if (value.length > max) {
    const last = value.charCodeAt(max - 1);
    cut = value.slice(0, last >= 0xd800 && last <= 0xdbff ? max - 1 : max);
  }
  return storableText(cut);
}

/**
 * What a name shown in lists must not hold: control characters (a newline, a bell, NUL) and the
 * bidirectional overrides and isolates that make "\u202eevil" read as "live".
 */
const HIDDEN_IN_NAMES = /[\p{Cc}\u202A-\u202E\u2066-\u2069]/u;

/** A display name (a sandbox's, a profile's, a custom provider's): trimmed, 1 to `max` characters, all visible. */
export const displayName = (max: number) =>
  z
    .string()
    .trim()
    .min(1, { error: "must not be empty" })
    .max(max)
    .superRefine((s, ctx) => {
      const message = HIDDEN_IN_NAMES.test(s) ? "must not contain control characters or bidirectional overrides" : unstorableText(s);
      if (message) ctx.addIssue({ code: "custom", message });
    });

/** `s` without what displayName refuses (for names taken from elsewhere, such as GitHub's). */
export const withoutHidden = (s: string) => s.replace(new RegExp(HIDDEN_IN_NAMES.source, "gu"), "").toWellFormed();

/** A string that can be stored. */
export const storableString = () =>
  z.string().superRefine((s, ctx) => {
    const message = unstorableText(s);
    if (message) ctx.addIssue({ code: "custom", message });
  });

/** Request JSON nested deeper than this is refused (unstorableJson says why). */
export const MAX_JSON_DEPTH = 64;

export type Unstorable = { path: PropertyKey[]; message: string; code: string };
const INVALID_CHARACTERS = "invalid_characters";

/**
 * The first value of a request PostgreSQL could not take, or undefined:
 * - a string (or key) unstorableText refuses: NUL (such a value reaching a query was a 500, found
 *   by the OpenAPI fuzzer, issue 11) or an unpaired surrogate (a 500 wherever it reached jsonb);
 * - objects and arrays nested more than MAX_JSON_DEPTH deep: PostgreSQL refuses a jsonb 100,000
 *   levels deep (stack depth limit exceeded), which a 1 MB body can hold, and PGlite returned no
 *   row for one 10,000 deep, so the write failed as a 500. No configuration needs a tenth of it.
 * The walk goes no deeper than MAX_JSON_DEPTH: a recursion (or a JSON.stringify) down a body
 * 100,000 levels deep runs out of stack, as a 500.
 */
export function unstorableJson(value: unknown, path: PropertyKey[] = []): Unstorable | undefined {
  if (typeof value === "string") {
    const message = unstorableText(value);
    return message ? { path, message, code: INVALID_CHARACTERS } : undefined;
  }
  if (value === null || typeof value !== "object") return undefined;
  if (path.length >= MAX_JSON_DEPTH) {
    return { path, message: `nests objects and arrays more than ${MAX_JSON_DEPTH} levels deep`, code: "too_deep" };
  }
  for (const [key, child] of Array.isArray(value) ? value.entries() : Object.entries(value)) {
    const keyMessage = typeof key === "string" ? unstorableText(key) : undefined;
    if (keyMessage) return { path: [...path, key], message: keyMessage, code: INVALID_CHARACTERS };
    const found = unstorableJson(child, [...path, key]);
    if (found) return found;
  }
  return undefined;
}

const UNSTORABLE_JSON_ESCAPE = /\\u(?:0000|d[89a-f])/;

/**
 * Whether JSON.stringify's output may hold what jsonb refuses: the escape it writes for NUL, or
 * for a surrogate it could not pair (a paired one is written as itself). A yes may be a false
 * alarm (a backslash in the text followed by "u0000"): storableJson then changes nothing. Most
 * JSON has no \u escape at all, and includes() rules that out several times faster than the
 * regular expression (bulk import, chat sync).
 */
export const mayHoldUnstorableEscape = (json: string) => json.includes("\\u") && UNSTORABLE_JSON_ESCAPE.test(json);

/** Whether `value` holds objects or arrays nested more than `max` levels (it looks no deeper). */
export function nestsDeeperThan(value: unknown, max: number): boolean {
  if (value === null || typeof value !== "object") return false;
  if (max === 0) return true;
  for (const child of Array.isArray(value) ? value : Object.values(value)) if (nestsDeeperThan(child, max - 1)) return true;
  return false;
}

/**
 * JSON Warren cannot refuse (an agent's message part) as jsonb can hold it: storableText applied
 * to every string and key. The caller has made sure it nests no deeper than MAX_JSON_DEPTH.
 */
export function storableJson(value: unknown): unknown {
  if (typeof value === "string") return storableText(value);
  if (value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) return value.map(storableJson);
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [storableText(k), storableJson(v)]));
}

/**
 * JSON whose strings (keys included) can be stored in jsonb, as far as MAX_JSON_DEPTH levels:
 * anything deeper is refused for its depth by the validation hook (src/lib/openapi.ts).
 */
export const isStorableJson = (value: unknown) => unstorableJson(value)?.code !== INVALID_CHARACTERS;
export const UNSTORABLE_JSON_MESSAGE = {
  error: "must not contain NUL (U+0000) or unpaired UTF-16 surrogates in any key or string",
};
