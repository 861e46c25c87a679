import { z } from "@hono/zod-openapi";
import { sql, type SQL } from "drizzle-orm";
import type { PgColumn } from "drizzle-orm/pg-core";
import { AppError } from "../errors";

/**
 * Cursor pagination (ARCHITECTURE.md): `?limit=` 1–100 (default 50) and `?cursor=`; bodies are
 * {"data":[…],"nextCursor":string|null}. Cursors are opaque, keyset-backed (created_at, id),
 * newest first; never OFFSET, so a page costs the same at any depth.
 */

export const PageQuery = z.object({
  limit: z.coerce
    .number()
    .int()
    .min(1)
    .max(100)
    .default(50)
    .openapi({ param: { name: "limit", in: "query" }, example: 50, description: "Page size, 1–100" }),
  cursor: z
    .string()
    .max(512)
    .optional()
    .openapi({ param: { name: "cursor", in: "query" }, description: "nextCursor from the previous page" }),
});

export function pageOf<T extends z.ZodTypeAny>(item: T, name: string) {
  return z.object({ data: z.array(item), nextCursor: z.string().nullable() }).openapi(name);
}

type Key = { createdAt: Date; id: string };

export function encodeCursor(key: Key): string {
  return Buffer.from(JSON.stringify([key.createdAt.toISOString(), key.id])).toString("base64url");
}

export function decodeCursor(cursor: string): Key {
  try {
    const value = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8")) as unknown;
    if (Array.isArray(value) && value.length === 2 && typeof value[0] === "string" && typeof value[1] === "string") {
      const createdAt = new Date(value[0]);
      // A forged cursor must not reach the query with a value PostgreSQL refuses (a 500): a year
      // outside 1–9999 (toISOString writes "+010000-…"), or an id with NUL or of absurd length.
      const year = createdAt.getUTCFullYear();
      const id = value[1];
      if (!Number.isNaN(createdAt.getTime()) && year >= 1 && year <= 9999 && id.length <= 256 && !id.includes("\u0000")) {
        return { createdAt, id };
      }
    }
  } catch {
    // fall through to the validation error
  }
  throw new AppError("VALIDATION_FAILED", 'Invalid query parameter "cursor": not a cursor returned by this endpoint', {
    fields: [{ location: "query parameter", field: "cursor", message: "not a cursor returned by this endpoint", code: "invalid_cursor" }],
  });
}

/**
 * WHERE clause for "rows after the cursor" in newest-first order: a row comparison, which the
 * (…, created_at desc, id desc) indexes serve directly at any depth.
 */
export function afterCursor(cursor: string | undefined, columns: { createdAt: PgColumn; id: PgColumn }): SQL | undefined {
  if (!cursor) return undefined;
  const key = decodeCursor(cursor);
  return sql`(${columns.createdAt}, ${columns.id}) < (${key.createdAt.toISOString()}::timestamptz, ${key.id})`;
}

/**
 * afterCursor for a prepared statement (src/database/prepared.ts): the cursor's key is bound at
 * execute() as the placeholders "at" (an ISO time) and "id".
 */
export function afterCursorPlaceholders(columns: { createdAt: PgColumn; id: PgColumn }): SQL {
  return sql`(${columns.createdAt}, ${columns.id}) < (${sql.placeholder("at")}::timestamptz, ${sql.placeholder("id")})`;
}

/**
 * Newest first. NULLS LAST is spelled out because drizzle-kit builds `.desc()` index columns as
 * DESC NULLS LAST while a bare DESC means NULLS FIRST: without it PostgreSQL cannot read a page
 * off the index and sorts every row of the user instead (measured in bench/: list cost grew
 * with the number of the user's sandboxes).
 */
export function newestFirst(columns: { createdAt: PgColumn; id: PgColumn }): SQL[] {
  return [sql`${columns.createdAt} desc nulls last`, sql`${columns.id} desc nulls last`];
}

/** Fetch limit+1 rows, return `limit` of them and the cursor of the last one if more exist. */
export function toPage<T extends Key, U>(rows: T[], limit: number, map: (row: T) => U): { data: U[]; nextCursor: string | null } {
  const more = rows.length > limit;
  const page = more ? rows.slice(0, limit) : rows;
  const last = page[page.length - 1];
  return { data: page.map(map), nextCursor: more && last ? encodeCursor(last) : null };
}
