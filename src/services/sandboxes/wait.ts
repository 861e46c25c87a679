import type { ServiceContext } from "../../context";
import type { PageCache } from "../../lib/page-cache";
import { findOwned, viewOf } from "./queries";
import type { SandboxStatus } from "./state-machine";

const SETTLED: readonly SandboxStatus[] = ["running", "stopped", "error"];

/** Between reads when changes are known to arrive (a safety net for one that is lost). */
const NOTIFIED_RECHECK_MS = 5_000;

/**
 * Long-polls until the sandbox reaches `status`, settles elsewhere (waiting for running and
 * getting error returns at once), or the timeout passes; clients need not poll.
 *
 * It sleeps on the user's sandbox changes as the page cache hears them (the sandboxes table's
 * NOTIFY trigger, whichever instance or job wrote): it reads again as soon as one arrives, and
 * otherwise only every 5 s. Where changes are not heard (the page cache is off, its listener is
 * down), it reads every 100 ms rising to 1 s. A waiter thus costs the database a read per change
 * of the user's sandboxes rather than one a second, and answers at the change, not up to a second
 * after it.
 */
export async function waitForStatus(
  ctx: ServiceContext,
  id: string,
  status: SandboxStatus,
  timeoutMs: number,
  changes?: Pick<PageCache, "nextChange">,
) {
  const deadline = Date.now() + timeoutMs;
  for (let delay = 100; ; delay = Math.min(delay * 1.5, 1000)) {
    // Listening before the read: a change committed while it reads still wakes the wait.
    const next = changes?.nextChange(ctx.userId, "sandboxes") ?? null;
    try {
      const row = await findOwned(ctx.db, ctx, id);
      const reached = row.status === status;
      // Waiting for a settled status and the sandbox settled on another one: it will not get there.
      const settledElsewhere = !reached && SETTLED.includes(row.status) && SETTLED.includes(status);
      const left = deadline - Date.now();
      const pause = next ? NOTIFIED_RECHECK_MS : delay;
      if (reached || settledElsewhere || left <= 0 || (!next && pause > left)) {
        return { reached, sandbox: await viewOf(ctx.db, row) };
      }
      await Promise.race([next?.changed, Bun.sleep(Math.min(pause, left))]);
    } finally {
      next?.cancel();
    }
  }
}
