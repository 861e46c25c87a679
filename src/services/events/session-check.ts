import { and, eq, gt } from "drizzle-orm";
import { session } from "../../../db/schema";
import type { Executor } from "../../database/client";

/**
 * A stream is authorised once, when it opens; it can outlive its session by hours. Long-lived
 * streams re-check that the session still exists (not signed out, not revoked from another
 * device, not expired) so that revoking a device also silences its open streams.
 */
export async function sessionIsActive(db: Executor, sessionId: string, userId: string, now: Date): Promise<boolean> {
  const [row] = await db
    .select({ id: session.id })
    .from(session)
    .where(and(eq(session.id, sessionId), eq(session.userId, userId), gt(session.expiresAt, now)));
  return row !== undefined;
}
