import type { Keyring } from "../../crypto/keyring";
import type { Db } from "../../database/client";
import type { Logger } from "../../lib/logger";
import type { OrchestratorDriver, WorkloadFile } from "../../orchestrator/driver";

export type SandboxSettings = {
  /** Sandboxes a user may have, and of those running or starting at once. */
  maxSandboxes: number;
  maxRunning: number;
  /** A transition older than this with no live operation is resolved by the reconciler. */
  transitionTimeoutMs: number;
  /** How long a worker's claim on an operation lasts without renewal (it renews while it runs). */
  operationClaimMs: number;
};

/**
 * What the sandbox verbs need besides the caller's context: the orchestrator, the keyring that
 * seals each sandbox's agent password, limits, and a way to wake the worker. Built once in
 * createApp and shared by routes, the worker and the jobs.
 */
export type SandboxRuntime = {
  db: Db;
  driver: OrchestratorDriver;
  keyring: Keyring;
  settings: SandboxSettings;
  logger: Logger;
  now: () => Date;
  /** Wakes the operation worker (in this process) after an operation was queued. */
  kick: () => void;
  /** The owner's agent configuration and credentials, in OpenCode's own file formats. */
  workloadFiles: (userId: string, sandboxId: string) => Promise<WorkloadFile[]>;
};

/**
 * Builds the runtime and its operation worker. The worker is started by the caller (main, or a
 * test) with `startWorker`; until then `kick` does nothing and operations wait in the queue.
 */
export function createSandboxRuntime(deps: Omit<SandboxRuntime, "kick">): SandboxRuntime & {
  attachWorker(worker: { kick(): void }): void;
} {
  let worker: { kick(): void } | undefined;
  return {
    ...deps,
    kick: () => worker?.kick(),
    attachWorker(w) {
      worker = w;
    },
  };
}
