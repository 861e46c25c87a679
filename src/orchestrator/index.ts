import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Config } from "../config";
import type { Logger } from "../lib/logger";
import { DockerDriver } from "./docker-driver";
import type { OrchestratorDriver } from "./driver";
import { LocalDriver } from "./local-driver";

export * from "./driver";
export { agentAuthHeader, AGENT_USERNAME } from "./opencode";

/**
 * The one driver of this deployment (ORCHESTRATOR_DRIVER). Construction never fails for a missing
 * bubblewrap or daemon: availability() reports that, so the API still starts and says what to
 * install.
 */
export function createDriver(config: Config, logger: Logger): OrchestratorDriver {
  const o = config.orchestrator;
  const log = logger.child({ component: "orchestrator", driver: o.driver });
  if (o.driver === "docker") {
    return new DockerDriver({
      socketPath: o.dockerSocket,
      agentStartTimeoutMs: o.agentStartTimeoutMs,
      openFilesLimit: o.openFilesLimit,
      uidBase: o.uidBase,
      loopbackGuard: o.loopbackGuard.enabled,
      loopbackAllowPorts: [...o.loopbackGuard.allowPorts, ...warrenPorts(config)],
      dataDir: config.dataDir,
      logger: log,
    });
  }
  return new LocalDriver({
    // DATA_DIR=memory:// keeps nothing across restarts; sandboxes still need real directories.
    dataDir: config.dataDir ?? join(tmpdir(), `warren-${process.pid}`),
    opencodeBin: o.opencodeBin,
    agentStartTimeoutMs: o.agentStartTimeoutMs,
    uidBase: o.uidBase,
    openFilesLimit: o.openFilesLimit,
    logMaxBytes: o.logMaxBytes,
    storageQuota: o.storageQuota,
    loopbackGuard: o.loopbackGuard.enabled,
    // Sandboxes reach Warren itself (the knowledge MCP server) on its port and at SANDBOX_API_URL.
    loopbackAllowPorts: [...o.loopbackGuard.allowPorts, ...warrenPorts(config)],
    logger: log,
  });
}

function warrenPorts(config: Config): number[] {
  const api = new URL(config.mcp.sandboxApiUrl);
  const apiPort = Number(api.port || (api.protocol === "https:" ? 443 : 80));
  return [config.port, apiPort].filter((p) => p > 0 && p <= 65535);
}
