import type { Db } from "../database/client";
import type { Logger } from "../lib/logger";
import { acquireLease, releaseLease } from "./lease";

export type Job = {
  name: string;
  intervalMs: number;
  /** Runs only on the instance holding the job's lease. */
  run: () => Promise<unknown>;
};

/**
 * Runs periodic jobs once across all Warren instances: each tick, an instance that holds (or
 * takes over) the job's lease runs it; the others skip. A failing run is logged, never fatal.
 */
export function startJobs(opts: { db: Db; logger: Logger; holder: string; now: () => Date; jobs: Job[] }) {
  const timers: Timer[] = [];
  let stopped = false;
  const running = new Set<Promise<unknown>>();
  for (const job of opts.jobs) {
    let busy = false;
    const tick = async () => {
      if (busy || stopped) return;
      busy = true;
      try {
        const leader = await acquireLease(opts.db, `job:${job.name}`, opts.holder, opts.now(), job.intervalMs * 3);
        if (leader) await job.run();
      } catch (err) {
        opts.logger.warn({ job: job.name, err: { message: (err as Error).message } }, "job run failed");
      } finally {
        busy = false;
      }
    };
    timers.push(
      setInterval(() => {
        const p = tick();
        running.add(p);
        void p.finally(() => running.delete(p));
      }, job.intervalMs),
    );
  }
  return {
    async stop() {
      stopped = true;
      for (const t of timers) clearInterval(t);
      await Promise.allSettled([...running]);
      await Promise.allSettled(opts.jobs.map((j) => releaseLease(opts.db, `job:${j.name}`, opts.holder)));
    },
  };
}
