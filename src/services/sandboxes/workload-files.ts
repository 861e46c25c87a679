import { and, eq } from "drizzle-orm";
import { sandboxes } from "../../../db/schema";
import type { Keyring } from "../../crypto/keyring";
import type { Db } from "../../database/client";
import type { Logger } from "../../lib/logger";
import type { WorkloadFile } from "../../orchestrator/driver";
import { MANAGED_DIRECTORIES, OPENCODE_CONFIG_DIR, loadAgentConfigFiles } from "../agent-config/render";
import { credentialsForSandbox } from "../credentials/sandbox-credentials";
import type { SandboxConfigApplier } from "../agent-config/apply";
import type { SandboxCredentialsHook } from "../credentials/types";
import { systemContext } from "../../context";
import type { OrchestratorDriver } from "../../orchestrator/driver";
import { withKnowledgeMcp, type McpSettings } from "../knowledge/sandbox-mcp";
import { withOnboardingLayer } from "../onboarding/workload-layer";

/** Where OpenCode reads provider credentials ($XDG_DATA_HOME/opencode/auth.json). */
export const AUTH_JSON_PATH = ".local/share/opencode/auth.json";
const OPENCODE_JSON_PATH = `${OPENCODE_CONFIG_DIR}/opencode.json`;

type Deps = { db: Db; keyring: Keyring; logger: Logger; now: () => Date; /** Without it, no MCP server is configured. */ mcp?: McpSettings };

/**
 * The files a sandbox's agent starts with, in OpenCode's own formats: the owner's configuration
 * (opencode.json, AGENTS.md, agents, commands, tools, plugins) and their credentials (auth.json,
 * plus custom providers merged into opencode.json), the sandbox's applied onboarding layer, and
 * Warren's knowledge MCP server with a token for this sandbox (a new one each time; `rotate`, on
 * start, revokes the earlier ones). Written into the sandbox home with mode 0600; never part of
 * a response or a log.
 */
export function workloadFilesLoader(deps: Deps) {
  return async (userId: string, sandboxId: string, options: { rotateMcpToken?: boolean } = {}): Promise<WorkloadFile[]> => {
    const files = await withOnboardingLayer(deps.db, userId, sandboxId, await loadAgentConfigFiles(deps.db, userId));
    const creds = await credentialsForSandbox(systemContext(deps, userId), deps.keyring, sandboxId);
    const config = files.find((f) => f.path === OPENCODE_JSON_PATH);
    if (config && Object.keys(creds.config.provider).length > 0) {
      const parsed = JSON.parse(config.content) as { provider?: Record<string, unknown> };
      parsed.provider = { ...(parsed.provider ?? {}), ...creds.config.provider };
      config.content = `${JSON.stringify(parsed, null, 2)}\n`;
    }
    const withMcp = deps.mcp
      ? await withKnowledgeMcp({ db: deps.db, now: deps.now, mcp: deps.mcp }, userId, sandboxId, files, options.rotateMcpToken ?? true)
      : files;
    return [...withMcp, { path: AUTH_JSON_PATH, content: `${JSON.stringify(creds.authJson, null, 2)}\n`, mode: 0o600 }];
  };
}

async function runningSandboxes(db: Db, userId: string) {
  return db
    .select({ id: sandboxes.id })
    .from(sandboxes)
    .where(and(eq(sandboxes.userId, userId), eq(sandboxes.status, "running")));
}

/**
 * Pushes a user's changed configuration or credentials into their running sandboxes by
 * rewriting the files in place (and removing agent files that were deleted). OpenCode reads them when it starts, so the sandboxes are also
 * reported as needing a restart for the change to take full effect.
 */
export function sandboxHooks(deps: Deps & { driver: OrchestratorDriver }): {
  config: SandboxConfigApplier;
  credentials: SandboxCredentialsHook;
} {
  const load = workloadFilesLoader(deps);
  const push = async (userId: string) => {
    const written: string[] = [];
    for (const { id } of await runningSandboxes(deps.db, userId)) {
      // The running agent keeps the MCP token it started with (the rewritten file repeats it).
      // The whole set: agents, commands, tools and plugins deleted through the API go too.
      await deps.driver.writeFiles(id, await load(userId, id, { rotateMcpToken: false }), { replaceDirectories: MANAGED_DIRECTORIES });
      written.push(id);
    }
    return written;
  };
  return {
    config: {
      async applyAgentConfig(ctx) {
        const written = await push(ctx.userId);
        return { applied: written, restartRequired: written };
      },
    },
    credentials: {
      async credentialsChanged(ctx) {
        const written = await push(ctx.userId);
        return { refreshed: written, restartRequired: written };
      },
    },
  };
}
