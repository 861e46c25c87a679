import type { Config } from "../config";
import type { Db } from "../database/client";
import type { Logger } from "../lib/logger";
import { archiveExpiredActivity } from "../services/activity/retention";
import { acquireLease } from "./lease";
import { startJobs } from "./scheduler";

/** The first run comes this long after start-up, not a whole interval later. */
const FIRST_RUN_DELAY_MS = 60_000;

/**
 * The activity retention job: once across all instances (a lease in the leases table, see
 * scheduler.ts), every ACTIVITY_RETENTION_INTERVAL_MINUTES (a day by default) and once shortly
 * after start-up, so that an instance restarted more often than the interval still archives.
 * Each run archives in batches until nothing older than the retention period is left; a run cut
 * short by a crash is simply continued by the next.
 */
export function startRetentionJob(opts: { config: Config; db: Db; logger: Logger; holder: string; now: () => Date }) {
  const { config, db, logger, now } = opts;
  const log = logger.child({ job: "activity-retention" });
  const job = {
    name: "activity-retention",
    intervalMs: config.activity.retentionIntervalMs,
    run: () =>
      archiveExpiredActivity({
        db,
        logger: log,
        now,
        retentionDays: config.activity.retentionDays,
        batchSize: config.activity.retentionBatchSize,
      }),
  };
  const periodic = startJobs({ db, logger, holder: opts.holder, now, jobs: [job] });
  // The first run takes the same lease the periodic one uses, so it too runs on one instance.
  let first: Promise<unknown> | undefined;
  const timer = setTimeout(() => {
    first = acquireLease(db, `job:${job.name}`, opts.holder, now(), job.intervalMs * 3)
      .then((leader) => (leader ? job.run() : undefined))
      .catch((err) => log.warn({ err: { message: (err as Error).message } }, "activity retention run failed"));
  }, FIRST_RUN_DELAY_MS);
  return {
    async stop() {
      clearTimeout(timer);
      await first;
      await periodic.stop();
    },
  };
}
