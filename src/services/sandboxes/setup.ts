import type { Config } from "../../config";
import type { Db } from "../../database/client";
import type { Logger } from "../../lib/logger";
import type { OrchestratorDriver } from "../../orchestrator/driver";
import { createSandboxRuntime } from "./runtime";
import { workloadFilesLoader } from "./workload-files";

/** The sandbox runtime of one Warren process, from its configuration and chosen driver. */
export function buildSandboxRuntime(opts: { config: Config; db: Db; logger: Logger; now: () => Date; driver: OrchestratorDriver }) {
  const { config, db, logger, now, driver } = opts;
  return createSandboxRuntime({
    db,
    driver,
    keyring: config.keyring,
    settings: {
      maxSandboxes: config.sandboxes.maxSandboxes,
      maxRunning: config.sandboxes.maxRunning,
      transitionTimeoutMs: config.sandboxes.transitionTimeoutMs,
      operationClaimMs: config.sandboxes.operationClaimMs,
    },
    logger: logger.child({ component: "sandboxes" }),
    now,
    workloadFiles: workloadFilesLoader({ db, keyring: config.keyring, logger, now, mcp: config.mcp }),
  });
}
