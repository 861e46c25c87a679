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

/** Request JSON nested deeper than this is refused (src/lib/openapi.ts says why). */
export const MAX_JSON_DEPTH = 64;

/**
 * JSON whose strings (keys included) can be stored in jsonb, as far as MAX_JSON_DEPTH levels:
 * anything deeper is refused for its depth after validation, and a walk (or a JSON.stringify)
 * any deeper would run out of stack on a body 100,000 levels deep, as a 500.
 */
export function isStorableJson(value: unknown, depth = 0): boolean {
  if (typeof value === "string") return !containsNul(value);
  if (value === null || typeof value !== "object" || depth >= MAX_JSON_DEPTH) return true;
  return Object.entries(value).every(([key, child]) => !containsNul(key) && isStorableJson(child, depth + 1));
}
export const NUL_IN_JSON_MESSAGE = { error: "must not contain the NUL character (U+0000) in any key or string" };
