import { z } from "@hono/zod-openapi";

/**
 * PostgreSQL text and jsonb cannot hold U+0000: a string carrying it must be refused as input
 * (400 naming the field), not discovered by a failed insert (500).
 */
export const containsNul = (value: string) => value.includes("\u0000");

const NUL_MESSAGE = { error: "must not contain the NUL character (U+0000)" };

/** A string that can be stored. */
export const storableString = () => z.string().refine((s) => !containsNul(s), NUL_MESSAGE);

/** JSON whose strings (keys included) can be stored in jsonb. */
export const isStorableJson = (value: unknown) => !JSON.stringify(value).includes("\\u0000");
export const NUL_IN_JSON_MESSAGE = { error: "must not contain the NUL character (U+0000) in any key or string" };
