import type { ServiceContext } from "../../context";
import { findOwned, viewOf } from "./queries";
import type { SandboxStatus } from "./state-machine";

const SETTLED: readonly SandboxStatus[] = ["running", "stopped", "error"];

/**
 * Long-polls the database until the sandbox reaches `status`, settles elsewhere (waiting for
 * running and getting error returns at once), or the timeout passes; clients need not poll.
 */
export async function waitForStatus(ctx: ServiceContext, id: string, status: SandboxStatus, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  for (let delay = 100; ; delay = Math.min(delay * 1.5, 1000)) {
    const row = await findOwned(ctx.db, ctx, id);
    const reached = row.status === status;
    // Waiting for a settled status and the sandbox settled on another one: it will not get there.
    const settledElsewhere = !reached && SETTLED.includes(row.status) && SETTLED.includes(status);
    if (reached || settledElsewhere || Date.now() + delay > deadline) {
      return { reached, sandbox: await viewOf(ctx.db, row) };
    }
    await Bun.sleep(delay);
  }
}
