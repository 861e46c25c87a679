import type { SandboxRuntime } from "./runtime";
import { claimOperation, runOperation } from "./worker";

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
      const p = runOperation(rt, op)
        .catch((err) => rt.logger.error({ err, operationId: op.id }, "sandbox operation crashed"))
        .finally(() => inFlight.delete(p));
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
