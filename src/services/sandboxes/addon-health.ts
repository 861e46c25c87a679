import { and, eq, isNotNull, sql } from "drizzle-orm";
import { containerAddons, sandboxAddons, sandboxes, type AddonHealth, type AddonHealthEntry } from "../../../db/schema";
import { describeProbeFailure, PROBE_TIMEOUT_MS, probeService, readinessPathOf } from "../../orchestrator/addons";
import type { SandboxRuntime } from "./runtime";

/**
 * Health of the add-on services of running sandboxes (like Coder's app health checks): each
 * service's readiness path is probed with the same rule as at start (any status below 500 within
 * the timeout), and the outcome is recorded in sandboxes.addon_health, which the sandbox view turns
 * into each add-on's status. A leader-elected job runs it (src/jobs/background.ts).
 *
 * Only a change is written, and without touching updated_at: updated_at is what the user changed
 * last (and the idle clock's last fallback), not a heartbeat, and rewriting every running row every
 * few seconds would only churn the table.
 */

/**
 * Consecutive failed checks before an add-on shows as unhealthy: one lost probe (a pause, a
 * crashed service inside the supervisor's first 1 s back-off) is not an outage worth showing.
 */
export const UNHEALTHY_AFTER = 2;

export type AddonHealthOptions = {
  /** Sandboxes checked at once. */
  concurrency?: number;
  /** One probe's time limit. */
  timeoutMs?: number;
  /** The driver's inspect of one sandbox; past it the sandbox is skipped this round. */
  inspectTimeoutMs?: number;
};

export type AddonHealthReport = { checked: number; changed: string[]; skipped: string[] };

type Target = { id: string; version: number; health: AddonHealth; addons: Array<{ id: string; readinessPath: string }> };

/** Checks every running sandbox's add-on services once and records what changed. */
export async function checkAddonHealth(rt: SandboxRuntime, opts: AddonHealthOptions = {}): Promise<AddonHealthReport> {
  const concurrency = opts.concurrency ?? 8;
  const rows = await rt.db
    .select({
      id: sandboxes.id,
      version: sandboxes.version,
      health: sandboxes.addonHealth,
      addonId: containerAddons.id,
      service: containerAddons.service,
    })
    .from(sandboxes)
    .innerJoin(sandboxAddons, eq(sandboxAddons.sandboxId, sandboxes.id))
    .innerJoin(containerAddons, eq(containerAddons.id, sandboxAddons.addonId))
    .where(and(eq(sandboxes.status, "running"), isNotNull(containerAddons.service)))
    .orderBy(sandboxes.id, containerAddons.id);
  const targets = new Map<string, Target>();
  for (const r of rows) {
    if (!r.service) continue;
    let t = targets.get(r.id);
    if (!t) targets.set(r.id, (t = { id: r.id, version: r.version, health: r.health, addons: [] }));
    t.addons.push({ id: r.addonId, readinessPath: readinessPathOf(r.service.readinessPath) });
  }

  const report: AddonHealthReport = { checked: 0, changed: [], skipped: [] };
  const queue = [...targets.values()];
  // A bounded pool: every probe has its own time limit, so one slow sandbox holds one slot, not the round.
  const workers = Array.from({ length: Math.min(concurrency, queue.length) }, async () => {
    for (let t = queue.shift(); t; t = queue.shift()) {
      try {
        const outcome = await checkSandbox(rt, t, opts);
        if (outcome === "skipped") report.skipped.push(t.id);
        else report.checked++;
        if (outcome === "changed") report.changed.push(t.id);
      } catch (err) {
        report.skipped.push(t.id);
        rt.logger.warn({ sandboxId: t.id, err: { message: (err as Error).message } }, "add-on health check failed");
      }
    }
  });
  await Promise.all(workers);
  if (report.changed.length) rt.logger.info({ changed: report.changed }, "add-on health changed");
  return report;
}

async function checkSandbox(rt: SandboxRuntime, t: Target, opts: AddonHealthOptions): Promise<"unchanged" | "changed" | "skipped"> {
  const timeoutMs = opts.timeoutMs ?? PROBE_TIMEOUT_MS;
  const info = await withTimeout(rt.driver.inspect(t.id), opts.inspectTimeoutMs ?? 5_000);
  // A workload that is gone is the reconciler's to settle; a driver that does not answer, next round's.
  if (!info || info.state !== "running") return "skipped";
  const results = await Promise.all(
    t.addons.map(async (a) => {
      const url = info.addonUrls && Object.hasOwn(info.addonUrls, a.id) ? info.addonUrls[a.id] : undefined;
      // Add-ons change only while a sandbox is stopped, so this is a workload started without it.
      if (!url) return [a.id, "is not running in this sandbox; restart the sandbox"] as const;
      const probe = await probeService(url, a.readinessPath, timeoutMs);
      return [a.id, probe.up ? null : describeProbeFailure(probe, a.readinessPath, timeoutMs)] as const;
    }),
  );
  const now = rt.now().toISOString();
  // Own properties only (hasOwn, fromEntries): catalogue ids are the operator's, "constructor" included.
  const prev = (id: string) => (Object.hasOwn(t.health, id) ? t.health[id] : undefined);
  const next: AddonHealth = Object.fromEntries(results.map(([id, error]) => [id, nextEntry(prev(id), error, now)]));
  const keys = Object.keys(t.health);
  const changed = keys.length !== results.length || keys.some((id) => next[id] !== t.health[id]);
  if (!changed) return "unchanged";
  // Only onto the run that was checked (version moves with every transition) and only over what
  // was read: a stop, a restart or another instance's write in between wins.
  const [written] = await rt.db
    .update(sandboxes)
    .set({ addonHealth: next, updatedAt: sql`${sandboxes.updatedAt}` })
    .where(
      and(
        eq(sandboxes.id, t.id),
        eq(sandboxes.status, "running"),
        eq(sandboxes.version, t.version),
        sql`${sandboxes.addonHealth} = ${JSON.stringify(t.health)}::jsonb`,
      ),
    )
    .returning({ id: sandboxes.id });
  return written ? "changed" : "skipped";
}

/**
 * The add-on's entry after one check (error null: it answered). The same object when nothing
 * changed, so that an unchanged sandbox is not written: the failure count stops at the threshold
 * and the check time is only recorded with a change.
 */
export function nextEntry(prev: AddonHealthEntry | undefined, error: string | null, now: string): AddonHealthEntry {
  if (error === null) {
    if (prev?.status === "healthy" && prev.failures === 0) return prev;
    return { status: "healthy", since: prev?.status === "healthy" ? prev.since : now, checkedAt: now, failures: 0, lastError: null };
  }
  const failures = Math.min((prev?.failures ?? 0) + 1, UNHEALTHY_AFTER);
  const status = failures >= UNHEALTHY_AFTER ? "unhealthy" : (prev?.status ?? "starting");
  if (prev && prev.status === status && prev.failures === failures && prev.lastError === error) return prev;
  return { status, since: prev?.status === status ? prev.since : now, checkedAt: now, failures, lastError: error };
}

/** Health as a successful start leaves it: the driver's start waited for every service to answer. */
export function healthyAtStart(addonIds: string[], now: Date): AddonHealth {
  const at = now.toISOString();
  return Object.fromEntries(addonIds.map((id) => [id, { status: "healthy", since: at, checkedAt: at, failures: 0, lastError: null }]));
}

async function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<undefined>((resolve) => {
        timer = setTimeout(() => resolve(undefined), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
