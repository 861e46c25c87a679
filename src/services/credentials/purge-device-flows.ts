import { lt, or, and, ne } from "drizzle-orm";
import { oauthDeviceFlows } from "../../../db/schema";
import type { Db } from "../../database/client";
import type { Logger } from "../../lib/logger";

/**
 * Housekeeping verb (actor: system): deletes device flows that expired more than `graceMs` ago,
 * and finished ones (completed, denied, …) older than that. Their device codes go with them.
 * No activity entry: nothing a user did or owns changes, and start/complete/cancel were
 * recorded when they happened.
 */
export async function purgeDeviceFlows(deps: { db: Db; now: () => Date; graceMs?: number }): Promise<{ purged: number }> {
  const cutoff = new Date(deps.now().getTime() - (deps.graceMs ?? 60 * 60 * 1000));
  const deleted = await deps.db
    .delete(oauthDeviceFlows)
    .where(or(lt(oauthDeviceFlows.expiresAt, cutoff), and(ne(oauthDeviceFlows.status, "pending"), lt(oauthDeviceFlows.updatedAt, cutoff))))
    .returning({ id: oauthDeviceFlows.id });
  return { purged: deleted.length };
}

/**
 * Runs the purge every `intervalMs` in the background (unref'd, never in a request). Safe with
 * several instances: the delete is idempotent. Whoever adds leader election can wrap `run`.
 * Returns a stop function.
 */
export function scheduleDeviceFlowPurge(deps: { db: Db; logger: Logger; now?: () => Date; intervalMs?: number }): () => void {
  const run = async () => {
    try {
      const { purged } = await purgeDeviceFlows({ db: deps.db, now: deps.now ?? (() => new Date()) });
      if (purged > 0) deps.logger.info({ purged }, "purged finished and expired device flows");
    } catch (err) {
      deps.logger.warn({ err }, "device flow purge failed; will retry");
    }
  };
  const timer = setInterval(run, deps.intervalMs ?? 15 * 60 * 1000);
  timer.unref?.();
  return () => clearInterval(timer);
}
