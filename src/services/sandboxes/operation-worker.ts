import type { SandboxRuntime } from "./runtime";
import { claimOperation, renewClaim, runOperation } from "./worker";

/**
 * The in-process loop that carries out queued sandbox operations. Several Warren instances each
 * run one; claiming with SKIP LOCKED keeps them from taking the same operation. Woken at once by
 * kick() after a request queues work, and polls otherwise (operations queued by other instances).
 */
export function startOperationWorker(rt: SandboxRuntime, opts: { holder: string; concurrency?: number; pollMs?: number }) {
  const concurrency = opts.concurrency ?? 4;
  const pollMs = opts.pollMs ?? 500;
  const inFlight = new Set<Promise<void>>();
  let stopped = false;
  let wake: (() => void) | undefined;

  const sleep = () =>
    new Promise<void>((resolve) => {
      const t = setTimeout(resolve, pollMs);
      wake = () => {
        clearTimeout(t);
        resolve();
      };
    });

  const loop = (async () => {
    while (!stopped) {
      if (inFlight.size >= concurrency) {
        await Promise.race(inFlight);
        continue;
      }
      let op;
      try {
        op = await claimOperation(rt, opts.holder);
      } catch (err) {
        rt.logger.warn({ err: { message: (err as Error).message } }, "claiming a sandbox operation failed");
      }
      if (!op) {
        await sleep();
        continue;
      }
      // Renewed at a third of its length while the operation runs (a start can take minutes).
      const renew = setInterval(() => {
        renewClaim(rt, op.id, opts.holder).catch((err) =>
          rt.logger.warn({ err: { message: (err as Error).message }, operationId: op.id }, "renewing a sandbox operation claim failed"),
        );
      }, Math.max(500, Math.floor(rt.settings.operationClaimMs / 3)));
      const p = runOperation(rt, op)
        .catch((err) => rt.logger.error({ err, operationId: op.id }, "sandbox operation crashed"))
        .finally(() => {
          clearInterval(renew);
          inFlight.delete(p);
        });
      inFlight.add(p);
    }
  })();

  return {
    kick() {
      wake?.();
    },
    /** Finishes the operations under way (their outcome is recorded), takes no new ones. */
    async stop() {
      stopped = true;
      wake?.();
      await loop;
      await Promise.allSettled([...inFlight]);
    },
    /** Resolves once nothing is queued or running in this process (for tests). */
    async idle() {
      while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
    },
  };
}

export type OperationWorker = ReturnType<typeof startOperationWorker>;
