import { inArray, sql } from "drizzle-orm";
import { activityLog, activityLogArchive } from "../../../db/schema";
import { queryRows, ts, type Db } from "../../database/client";
import type { Logger } from "../../lib/logger";
import { anonymiseMetadata } from "./anonymise";

export type RetentionDeps = {
  db: Db;
  logger: Logger;
  /** Injectable clock: tests move time instead of waiting for it. */
  now: () => Date;
  retentionDays: number;
  batchSize: number;
  /** Called after each committed batch (tests use it to crash between batches). */
  afterBatch?: (archived: number) => void | Promise<void>;
};

export type RetentionReport = { cutoff: string; archived: number; batches: number };

type Expired = typeof activityLog.$inferSelect;

/**
 * Moves activity older than the retention period into activity_log_archive with the personal
 * data removed (user, IP, user agent, request id, personal metadata keys), oldest first.
 *
 * Each batch is one transaction: lock the oldest expired rows (SKIP LOCKED, so a second runner
 * takes other rows instead of waiting), insert their anonymised copies, delete them. A crash
 * loses at most the batch in flight, which rolls back whole; the next run carries on from
 * whatever is still in activity_log. Entries already anonymised by account deletion (user_id
 * null) are archived like the rest.
 */
export async function archiveExpiredActivity(deps: RetentionDeps): Promise<RetentionReport> {
  const cutoff = new Date(deps.now().getTime() - deps.retentionDays * 86_400_000);
  let archived = 0;
  let batches = 0;
  for (;;) {
    const moved = await deps.db.transaction(async (tx) => {
      const ids = await queryRows<{ id: string }>(
        tx,
        sql`select id from activity_log where created_at < ${ts(cutoff)}
            order by created_at, id limit ${deps.batchSize} for update skip locked`,
      );
      if (ids.length === 0) return 0;
      const rows: Expired[] = await tx
        .select()
        .from(activityLog)
        .where(
          inArray(
            activityLog.id,
            ids.map((r) => r.id),
          ),
        );
      await tx
        .insert(activityLogArchive)
        .values(
          rows.map((r) => ({
            id: r.id,
            actorType: r.actorType,
            action: r.action,
            entityType: r.entityType,
            // A user id as the entity (account.update, preferences) would name the person.
            entityId: r.entityType === "user" || r.entityId === r.userId ? null : r.entityId,
            reason: r.reason,
            metadata: anonymiseMetadata(r.metadata) as Record<string, unknown>,
            originalCreatedAt: r.createdAt,
            archivedAt: deps.now(),
          })),
        )
        .onConflictDoNothing({ target: activityLogArchive.id });
      await tx.delete(activityLog).where(
        inArray(
          activityLog.id,
          rows.map((r) => r.id),
        ),
      );
      return rows.length;
    });
    if (moved === 0) break;
    archived += moved;
    batches++;
    await deps.afterBatch?.(moved);
    if (moved < deps.batchSize) break;
  }
  if (archived > 0) deps.logger.info({ archived, batches, cutoff: cutoff.toISOString() }, "archived expired activity");
  return { cutoff: cutoff.toISOString(), archived, batches };
}
