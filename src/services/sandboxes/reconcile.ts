import { and, eq, inArray, lt, notExists, sql } from "drizzle-orm";
import { sandboxes, sandboxOperations } from "../../../db/schema";
import { ts } from "../../database/client";
import { recordActivity } from "../activity/record";
import type { SandboxRuntime } from "./runtime";
import { requestTransition } from "./transitions";
import type { SandboxRow } from "./view";
import { systemContext } from "../../context";

export type ReconcileReport = {
  requeued: number;
  resolved: Array<{ sandboxId: string; from: string; to: string }>;
  died: string[];
  orphansStopped: string[];
};

/**
 * Compares the database with what the orchestrator really runs, so that no sandbox stays stuck:
 * operations whose worker died are handed on; transitions older than the timeout with no live
 * operation are settled to the workload's real state; running sandboxes whose workload died
 * become `error`; workloads Warren does not know are stopped and reported.
 */
export async function reconcile(rt: SandboxRuntime): Promise<ReconcileReport> {
  const now = rt.now();
  const report: ReconcileReport = { requeued: 0, resolved: [], died: [], orphansStopped: [] };

  const requeued = await rt.db
    .update(sandboxOperations)
    .set({ status: "queued", claimedBy: null, claimedUntil: null, runAfter: now })
    .where(and(eq(sandboxOperations.status, "running"), lt(sandboxOperations.claimedUntil, now)))
    .returning({ id: sandboxOperations.id });
  report.requeued = requeued.length;

  const stuck = await rt.db
    .select()
    .from(sandboxes)
    .where(
      and(
        inArray(sandboxes.status, ["creating", "starting", "stopping", "deleting"]),
        lt(sandboxes.transitionStartedAt, new Date(now.getTime() - rt.settings.transitionTimeoutMs)),
        notExists(
          rt.db
            .select({ one: sql`1` })
            .from(sandboxOperations)
            .where(and(eq(sandboxOperations.sandboxId, sandboxes.id), inArray(sandboxOperations.status, ["queued", "running"]))),
        ),
      ),
    );
  for (const row of stuck) {
    const to = await settleStuck(rt, row);
    report.resolved.push({ sandboxId: row.id, from: row.status, to });
  }

  const running = await rt.db.select().from(sandboxes).where(eq(sandboxes.status, "running"));
  for (const row of running) {
    const info = await rt.driver.inspect(row.id);
    if (info.state === "running") continue;
    const message = info.state === "missing" ? "the workload is gone" : `the workload exited (code ${info.exitCode ?? "unknown"})`;
    await setStatus(rt, row, "running", { status: "error", statusReason: "workload_exited", errorMessage: message });
    report.died.push(row.id);
  }

  const known = new Set((await rt.db.select({ id: sandboxes.id }).from(sandboxes)).map((r) => r.id));
  for (const w of await rt.driver.listManaged()) {
    if (known.has(w.sandboxId)) continue;
    if (w.state === "running") {
      await rt.driver.stop(w.sandboxId);
      report.orphansStopped.push(w.sandboxId);
      rt.logger.warn({ sandboxId: w.sandboxId, workloadId: w.workloadId }, "stopped a workload Warren does not know");
    }
  }
  if (report.requeued || report.resolved.length || report.died.length || report.orphansStopped.length) {
    rt.logger.info({ report }, "reconciled sandboxes");
  }
  return report;
}

async function settleStuck(rt: SandboxRuntime, row: SandboxRow): Promise<string> {
  if (row.status === "deleting") {
    await rt.driver.remove(row.id);
    await rt.db.transaction(async (tx) => {
      await recordActivity(tx, systemContext(rt, row.userId), {
        action: "sandbox.deleted",
        entityType: "sandbox",
        entityId: row.id,
        reason: "reconciled",
      });
      await tx.delete(sandboxes).where(eq(sandboxes.id, row.id));
    });
    return "deleted";
  }
  const info = await rt.driver.inspect(row.id);
  if (info.state === "running" && row.desiredStatus === "running") {
    await setStatus(rt, row, row.status, { status: "running", statusReason: "reconciled", errorMessage: null });
    return "running";
  }
  if (info.state === "running") await rt.driver.stop(row.id);
  const failedStart = row.desiredStatus === "running";
  await setStatus(
    rt,
    row,
    row.status,
    failedStart
      ? { status: "error", statusReason: "reconciled", errorMessage: `stuck ${row.status} past the timeout` }
      : { status: "stopped", statusReason: "reconciled", errorMessage: null },
  );
  return failedStart ? "error" : "stopped";
}

async function setStatus(
  rt: SandboxRuntime,
  row: SandboxRow,
  from: SandboxRow["status"],
  to: { status: SandboxRow["status"]; statusReason: string; errorMessage: string | null },
) {
  await rt.db.transaction(async (tx) => {
    const [updated] = await tx
      .update(sandboxes)
      // Health describes one run: a sandbox settled to running is "starting" until checked.
      .set({ ...to, transitionStartedAt: null, version: sql`${sandboxes.version} + 1`, addonHealth: {} })
      .where(and(eq(sandboxes.id, row.id), eq(sandboxes.status, from)))
      .returning({ id: sandboxes.id });
    if (updated) {
      await recordActivity(tx, systemContext(rt, row.userId), {
        action: "sandbox.reconciled",
        entityType: "sandbox",
        entityId: row.id,
        reason: to.statusReason,
        metadata: { from, to: to.status },
      });
    }
  });
}

/** Stops running sandboxes idle past their timeout, with reason idle_timeout. */
export async function stopIdleSandboxes(rt: SandboxRuntime): Promise<string[]> {
  const now = rt.now();
  const idle = await rt.db
    .select({ id: sandboxes.id, userId: sandboxes.userId })
    .from(sandboxes)
    .where(
      and(
        eq(sandboxes.status, "running"),
        sql`${sandboxes.idleTimeoutMinutes} > 0`,
        sql`coalesce(${sandboxes.lastActivityAt}, ${sandboxes.startedAt}, ${sandboxes.updatedAt}) + make_interval(mins => ${sandboxes.idleTimeoutMinutes}) < ${ts(now)}`,
      ),
    );
  const stopped: string[] = [];
  for (const s of idle) {
    try {
      await requestTransition(systemContext(rt, s.userId), rt, s.id, "stop", "idle_timeout");
      stopped.push(s.id);
    } catch (err) {
      // Someone else moved it first (a user's stop, a delete): nothing to do.
      rt.logger.debug({ sandboxId: s.id, err: { message: (err as Error).message } }, "idle stop skipped");
    }
  }
  return stopped;
}
