import type { ServiceContext } from "../../context";

/** Which of the user's running sandboxes took a configuration change, and how. */
export type SandboxSync = {
  /** Sandboxes whose files were rewritten and whose agent reloaded them. */
  applied: string[];
  /** Sandboxes that got the files but pick them up only after a restart (or could not be reached). */
  restartRequired: string[];
};

/**
 * The seam to the sandbox feature: called after an agent-configuration write has committed, with
 * the writer's scope. An implementation renders the configuration (loadAgentConfigFiles), writes
 * it into each running sandbox of ctx.userId through the driver, and asks the agent to reload.
 */
export interface SandboxConfigApplier {
  applyAgentConfig(ctx: ServiceContext): Promise<SandboxSync>;
}

/** Until sandboxes exist there is nothing running to update. */
export const noSandboxConfig: SandboxConfigApplier = {
  applyAgentConfig: async () => ({ applied: [], restartRequired: [] }),
};

/**
 * The write has committed whatever happens here: a failing applier must not turn a saved change
 * into an error response. The change reaches sandboxes on their next start either way.
 */
export async function applyToSandboxes(ctx: ServiceContext, applier: SandboxConfigApplier): Promise<SandboxSync> {
  try {
    return await applier.applyAgentConfig(ctx);
  } catch (err) {
    ctx.logger.error({ err, userId: ctx.userId }, "applying agent configuration to running sandboxes failed");
    return { applied: [], restartRequired: [] };
  }
}
