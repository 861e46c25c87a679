import { and, eq } from "drizzle-orm";
import { session } from "../../../db/schema";
import type { ServiceContext } from "../../context";
import { notFound } from "../../errors";
import { afterCursor, newestFirst, toPage } from "../../lib/pagination";
import { recordActivity } from "../activity/record";

/** A signed-in device as the user sees it. The token never leaves the database. */
export type DeviceSession = {
  id: string;
  current: boolean;
  ipAddress: string | null;
  userAgent: string | null;
  createdAt: string;
  updatedAt: string;
  expiresAt: string;
};

function toDeviceSession(row: typeof session.$inferSelect, currentId: string): DeviceSession {
  return {
    id: row.id,
    current: row.id === currentId,
    ipAddress: row.ipAddress,
    userAgent: row.userAgent,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
    expiresAt: row.expiresAt.toISOString(),
  };
}

export async function listSessions(
  ctx: ServiceContext,
  currentSessionId: string,
  page: { limit: number; cursor?: string | undefined },
) {
  const rows = await ctx.db
    .select()
    .from(session)
    .where(and(eq(session.userId, ctx.userId), afterCursor(page.cursor, session)))
    .orderBy(...newestFirst(session))
    .limit(page.limit + 1);
  return toPage(rows, page.limit, (r) => toDeviceSession(r, currentSessionId));
}

/** Signs one of the caller's devices out. Another user's session id is simply not found. */
export async function revokeSession(ctx: ServiceContext, sessionId: string): Promise<void> {
  await ctx.db.transaction(async (tx) => {
    const deleted = await tx
      .delete(session)
      .where(and(eq(session.id, sessionId), eq(session.userId, ctx.userId)))
      .returning({ id: session.id });
    if (deleted.length === 0) throw notFound("Session", sessionId);
    await recordActivity(tx, ctx, { action: "session.revoke", entityType: "session", entityId: sessionId });
  });
}
