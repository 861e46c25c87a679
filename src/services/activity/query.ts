import { and, count, desc, eq, gte, lt, sql, type SQL } from "drizzle-orm";
import { activityLog } from "../../../db/schema";
import type { ServiceContext } from "../../context";
import type { Db, Executor } from "../../database/client";
import { p, prepared } from "../../database/prepared";
import { afterCursorPlaceholders, decodeCursor, newestFirst } from "../../lib/pagination";

type ActivityRow = typeof activityLog.$inferSelect;

/** An activity entry as its owner sees it (the owner's own IP and user agent included). */
export type ActivityEntryView = {
  id: string;
  action: string;
  actorType: "user" | "system";
  entityType: string | null;
  entityId: string | null;
  reason: string | null;
  requestId: string | null;
  ipAddress: string | null;
  userAgent: string | null;
  metadata: Record<string, unknown>;
  createdAt: string;
};

export function toActivityView(row: ActivityRow): ActivityEntryView {
  return {
    id: row.id,
    action: row.action,
    actorType: row.actorType,
    entityType: row.entityType,
    entityId: row.entityId,
    reason: row.reason,
    requestId: row.requestId,
    ipAddress: row.ipAddress,
    userAgent: row.userAgent,
    metadata: row.metadata,
    createdAt: row.createdAt.toISOString(),
  };
}

export type ActivityFilter = {
  action?: string | undefined;
  entityType?: string | undefined;
  entityId?: string | undefined;
  /** Inclusive lower bound. */
  from?: Date | undefined;
  /** Exclusive upper bound. */
  to?: Date | undefined;
};

/** The caller's rows matching the filter: always scoped by user first. */
export function activityWhere(userId: string, f: ActivityFilter): SQL {
  return and(
    eq(activityLog.userId, userId),
    f.action ? eq(activityLog.action, f.action) : undefined,
    f.entityType ? eq(activityLog.entityType, f.entityType) : undefined,
    f.entityId ? eq(activityLog.entityId, f.entityId) : undefined,
    f.from ? gte(activityLog.createdAt, f.from) : undefined,
    f.to ? lt(activityLog.createdAt, f.to) : undefined,
  )!;
}

/**
 * Activity keysets keep created_at at full (microsecond) precision. The shared cursor carries a
 * JS Date (milliseconds): entries written in the same millisecond by the database's clock (an
 * import, a bulk insert, now() in one statement) would be skipped after a page boundary.
 * Cursors keep the shared format, base64url of [time, id], with the time to the microsecond.
 */
const keyAt = sql<string>`to_char(${activityLog.createdAt} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;
const KEY_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$/;

export function encodeActivityCursor(at: string, id: string): string {
  return Buffer.from(JSON.stringify([at, id])).toString("base64url");
}

function decodeActivityCursor(cursor: string): { at: string; id: string } {
  try {
    const value = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8")) as unknown;
    if (Array.isArray(value) && value.length === 2 && typeof value[0] === "string" && typeof value[1] === "string") {
      const [at, id] = value as [string, string];
      if (KEY_TIME.test(at) && !Number.isNaN(Date.parse(at)) && id.length <= 256 && !id.includes("\u0000")) return { at, id };
    }
  } catch {
    // fall through to the validation error
  }
  return decodeCursor("!") as never;
}

/** One keyset batch, newest first, each row with its exact key; for the page and the exports. */
export async function activityBatch(db: Executor, userId: string, f: ActivityFilter, limit: number, cursor?: string) {
  const key = cursor ? decodeActivityCursor(cursor) : undefined;
  return db
    .select({ row: activityLog, at: keyAt })
    .from(activityLog)
    .where(and(activityWhere(userId, f), key ? sql`(${activityLog.createdAt}, ${activityLog.id}) < (${key.at}::timestamptz, ${key.id})` : undefined))
    .orderBy(...newestFirst(activityLog))
    .limit(limit);
}

/**
 * The plain page (no filter), the one every activity screen opens with, as a prepared statement
 * (src/database/prepared.ts). Filtered pages stay unprepared: PostgreSQL then plans them for the
 * values given, and picks the index that suits a rare action or entity.
 */
function plainBatch(db: Db, userId: string, limit: number, key: { at: string; id: string } | undefined) {
  const shape = key ? "activity:c" : "activity:";
  const query = prepared<{ row: ActivityRow; at: string }[]>(db, shape, () =>
    db
      .select({ row: activityLog, at: keyAt })
      .from(activityLog)
      .where(and(eq(activityLog.userId, p("userId")), key ? afterCursorPlaceholders(activityLog) : undefined))
      .orderBy(...newestFirst(activityLog))
      .limit(p("limit"))
      .prepare(key ? "warren_activity_c" : "warren_activity"),
  );
  return query.execute({ userId, at: key?.at, id: key?.id, limit });
}

export async function listActivity(ctx: ServiceContext, q: ActivityFilter & { limit: number; cursor?: string | undefined }) {
  const plain = !q.action && !q.entityType && !q.entityId && !q.from && !q.to;
  const rows = plain
    ? await plainBatch(ctx.db, ctx.userId, q.limit + 1, q.cursor ? decodeActivityCursor(q.cursor) : undefined)
    : await activityBatch(ctx.db, ctx.userId, q, q.limit + 1, q.cursor);
  const page = rows.slice(0, q.limit);
  const last = page[page.length - 1];
  return {
    data: page.map((r) => toActivityView(r.row)),
    nextCursor: rows.length > q.limit && last ? encodeActivityCursor(last.at, last.row.id) : null,
  };
}

export type ActivityStats = {
  from: string | null;
  to: string | null;
  total: number;
  byAction: Array<{ action: string; count: number }>;
};

/** Counts by action of the caller's own entries in [from, to): never anyone else's. */
export async function activityStats(ctx: ServiceContext, range: { from?: Date | undefined; to?: Date | undefined }): Promise<ActivityStats> {
  const n = count();
  const rows = await ctx.db
    .select({ action: activityLog.action, count: n })
    .from(activityLog)
    .where(activityWhere(ctx.userId, range))
    .groupBy(activityLog.action)
    .orderBy(desc(n), activityLog.action);
  const byAction = rows.map((r) => ({ action: r.action, count: Number(r.count) }));
  return {
    from: range.from?.toISOString() ?? null,
    to: range.to?.toISOString() ?? null,
    total: byAction.reduce((sum, r) => sum + r.count, 0),
    byAction,
  };
}
