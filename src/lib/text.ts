import { z } from "@hono/zod-openapi";

/**
 * PostgreSQL text and jsonb cannot hold U+0000: a string carrying it must be refused as input
 * (400 naming the field), not discovered by a failed insert (500).
 */
export const containsNul = (value: string) => value.includes("\u0000");

const NUL_MESSAGE = { error: "must not contain the NUL character (U+0000)" };

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
    .refine((s) => !HIDDEN_IN_NAMES.test(s), { error: "must not contain control characters or bidirectional overrides" });

/** `s` without what displayName refuses (for names taken from elsewhere, such as GitHub's). */
export const withoutHidden = (s: string) => s.replace(new RegExp(HIDDEN_IN_NAMES.source, "gu"), "");

/** A string that can be stored. */
export const storableString = () => z.string().refine((s) => !containsNul(s), NUL_MESSAGE);

/** Request JSON nested deeper than this is refused (unstorableJson says why). */
export const MAX_JSON_DEPTH = 64;

export type Unstorable = { path: PropertyKey[]; message: string; code: string };
const NUL_IN_VALUE = { message: "must not contain NUL (U+0000) characters", code: "invalid_characters" };

/**
 * The first value of a request PostgreSQL could not take, or undefined:
 * - a string (or key) holding a NUL character: PostgreSQL cannot store U+0000 in text or jsonb,
 *   and such a value reaching a query is a 500 (SQLSTATE 22021 / 22P05; found by the OpenAPI
 *   fuzzer, issue 11);
 * - objects and arrays nested more than MAX_JSON_DEPTH deep: PostgreSQL refuses a jsonb 100,000
 *   levels deep (stack depth limit exceeded), which a 1 MB body can hold, and PGlite returned no
 *   row for one 10,000 deep, so the write failed as a 500. No configuration needs a tenth of it.
 * The walk goes no deeper than MAX_JSON_DEPTH: a recursion (or a JSON.stringify) down a body
 * 100,000 levels deep runs out of stack, as a 500.
 */
export function unstorableJson(value: unknown, path: PropertyKey[] = []): Unstorable | undefined {
  if (typeof value === "string") return containsNul(value) ? { path, ...NUL_IN_VALUE } : undefined;
  if (value === null || typeof value !== "object") return undefined;
  if (path.length >= MAX_JSON_DEPTH) {
    return { path, message: `nests objects and arrays more than ${MAX_JSON_DEPTH} levels deep`, code: "too_deep" };
  }
  for (const [key, child] of Array.isArray(value) ? value.entries() : Object.entries(value)) {
    if (typeof key === "string" && containsNul(key)) return { path: [...path, key], ...NUL_IN_VALUE };
    const found = unstorableJson(child, [...path, key]);
    if (found) return found;
  }
  return undefined;
}

/**
 * JSON whose strings (keys included) can be stored in jsonb, as far as MAX_JSON_DEPTH levels:
 * anything deeper is refused for its depth by the validation hook (src/lib/openapi.ts).
 */
export const isStorableJson = (value: unknown) => unstorableJson(value)?.code !== NUL_IN_VALUE.code;
export const NUL_IN_JSON_MESSAGE = { error: "must not contain the NUL character (U+0000) in any key or string" };
