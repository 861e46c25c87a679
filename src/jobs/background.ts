import { hostname } from "node:os";
import type { Config } from "../config";
import type { Database } from "../database/client";
import type { Logger } from "../lib/logger";
import { startChatSync } from "../services/chat/sync-manager";
import { startOperationWorker } from "../services/sandboxes/operation-worker";
import { reconcile, stopIdleSandboxes } from "../services/sandboxes/reconcile";
import { checkAddonHealth } from "../services/sandboxes/addon-health";
import type { SandboxRuntime } from "../services/sandboxes/runtime";
import { startJobs } from "./scheduler";
import { startRetentionJob } from "./retention";
import { runWorkloadCleanups } from "../services/account/workload-cleanup";

/**
 * The sandbox background work of one Warren process: the operation worker (every instance runs
 * one; SKIP LOCKED shares the queue) and the leader-elected jobs (one instance at a time): the
 * reconciler, run once at start-up and then periodically, the idle reaper and the add-on health check.
 */
export function startSandboxBackground(opts: {
  config: Config;
  database: Database;
  logger: Logger;
  rt: SandboxRuntime & { attachWorker(w: { kick(): void }): void };
}) {
  const { config, database, logger, rt } = opts;
  // Unique per process: a lease or a claim held by a dead process is recognisably not ours.
  const holder = `${hostname()}:${process.pid}:${Date.now().toString(36)}`;
  const worker = startOperationWorker(rt, { holder });
  rt.attachWorker(worker);
  const first = reconcile(rt).catch((err) => logger.warn({ err: { message: (err as Error).message } }, "start-up reconcile failed"));
  // Chat history: every running sandbox's agent stream, each followed by one instance (leases).
  const chatSync = startChatSync({
    rt,
    logger: logger.child({ component: "chat-sync" }),
    holder,
    tickMs: config.chatSync.tickMs,
    leaseMs: config.chatSync.leaseMs,
    reconcileIntervalMs: config.chatSync.reconcileIntervalMs,
    streamIdleMs: config.chatSync.streamIdleMs,
  });
  // Activity older than the retention period moves to the anonymised archive (daily, one instance).
  const retention = startRetentionJob({ config, db: database.db, logger, holder, now: rt.now });
  const jobs = startJobs({
    db: database.db,
    logger,
    holder,
    now: rt.now,
    jobs: [
      { name: "sandbox-reconciler", intervalMs: config.sandboxes.reconcileIntervalMs, run: () => reconcile(rt) },
      { name: "sandbox-idle-reaper", intervalMs: Math.min(config.sandboxes.reconcileIntervalMs, 60_000), run: () => stopIdleSandboxes(rt) },
      // Its own job, not part of the reconciler: a shorter interval, and slow probes (bounded, 2 s
      // each) never delay settling stuck transitions.
      { name: "sandbox-addon-health", intervalMs: config.sandboxes.addonHealthIntervalMs, run: () => checkAddonHealth(rt) },
      // Workloads of deleted accounts: retried until removed (rows are claimed, so any instance may run it).
      { name: "workload-cleanups", intervalMs: 30_000, run: () => runWorkloadCleanups(rt) },
    ],
  });
  return {
    async stop() {
      await first;
      await retention.stop();
      await chatSync.stop();
      await jobs.stop();
      await worker.stop();
      await rt.driver.close();
    },
  };
}
