import { eq, sql } from "drizzle-orm";
import { workloadCleanups } from "../../../db/schema";
import { queryRows, ts, type Db } from "../../database/client";
import type { Logger } from "../../lib/logger";
import type { OrchestratorDriver } from "../../orchestrator/driver";
import { excerpt } from "../../lib/text";

export type CleanupDeps = { db: Db; driver: OrchestratorDriver; logger: Logger; now: () => Date };

/** A claimed cleanup belongs to its runner this long; a runner that died lets it lapse. */
const CLAIM_MS = 5 * 60_000;
const MAX_BACKOFF_MS = 60 * 60_000;

export type CleanupReport = { removed: string[]; failed: Array<{ sandboxId: string; error: string }> };

/**
 * Removes the workloads of sandboxes whose rows are gone (account deletion), until each removal
 * has succeeded. Rows are claimed with FOR UPDATE SKIP LOCKED and a claim time, so several
 * instances share the work and a runner that died mid-removal hands its rows on. A failure backs
 * off exponentially (capped at an hour) and is retried forever: nothing may be left running.
 * `only` restricts a run to some sandboxes (the request that deleted them, right after commit).
 */
export async function runWorkloadCleanups(deps: CleanupDeps, opts: { limit?: number; only?: string[] } = {}): Promise<CleanupReport> {
  const now = deps.now();
  const only = opts.only;
  if (only && only.length === 0) return { removed: [], failed: [] };
  const filter = only
    ? sql`and sandbox_id in (${sql.join(
        only.map((id) => sql`${id}`),
        sql`, `,
      )})`
    : sql``;
  const claimed = await queryRows<{ id: string; sandbox_id: string; driver: string; attempts: number }>(
    deps.db,
    sql`update workload_cleanups set run_after = ${ts(new Date(now.getTime() + CLAIM_MS))}, attempts = attempts + 1
        where id in (select id from workload_cleanups
                     where completed_at is null and run_after <= ${ts(now)} ${filter}
                     order by run_after limit ${opts.limit ?? 50} for update skip locked)
        returning id, sandbox_id, driver, attempts`,
  );
  const report: CleanupReport = { removed: [], failed: [] };
  for (const row of claimed) {
    try {
      // Drivers find workloads by sandbox id (names, labels, directories); removal is idempotent.
      await deps.driver.remove(row.sandbox_id);
      await deps.db
        .update(workloadCleanups)
        .set({ completedAt: deps.now(), lastError: null })
        .where(eq(workloadCleanups.id, row.id));
      report.removed.push(row.sandbox_id);
    } catch (err) {
      const message = excerpt(err instanceof Error ? err.message : String(err), 2000);
      const backoff = Math.min(10_000 * 2 ** Math.min(row.attempts, 20), MAX_BACKOFF_MS);
      await deps.db
        .update(workloadCleanups)
        .set({ lastError: message, runAfter: new Date(deps.now().getTime() + backoff) })
        .where(eq(workloadCleanups.id, row.id));
      report.failed.push({ sandboxId: row.sandbox_id, error: message });
      deps.logger.warn({ sandboxId: row.sandbox_id, attempts: row.attempts, err: { message } }, "workload cleanup failed; will retry");
    }
  }
  return report;
}
