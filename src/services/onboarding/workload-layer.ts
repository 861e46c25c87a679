import { and, eq } from "drizzle-orm";
import { onboardingSessions } from "../../../db/schema";
import type { Executor } from "../../database/client";
import type { WorkloadFile } from "../../orchestrator/driver";
import { OPENCODE_CONFIG_DIR, renderAgentConfig } from "../agent-config/render";
import type { GeneratedLayer } from "./generate";

const OPENCODE_JSON = `${OPENCODE_CONFIG_DIR}/opencode.json`;
const AGENTS_MD = `${OPENCODE_CONFIG_DIR}/AGENTS.md`;

/**
 * Lays a sandbox's applied onboarding output over its owner's agent configuration (both already
 * in OpenCode's file layout, rendered by the same renderer). The sandbox's layer is the more
 * specific one, as OpenCode's project config is over its global one: its opencode.json keys
 * replace the user's, its agent and command files replace same-named ones, and its AGENTS.md
 * follows the user's own.
 */
export function overlayOnboarding(files: WorkloadFile[], layer: GeneratedLayer): WorkloadFile[] {
  const rendered = renderAgentConfig({ config: layer.config, agentsMd: layer.agentsMd, files: layer.files });
  const byPath = new Map(files.map((f) => [f.path, f]));
  for (const file of rendered) {
    const base = byPath.get(file.path);
    if (file.path === OPENCODE_JSON) {
      const merged = { ...(base ? (JSON.parse(base.content) as Record<string, unknown>) : {}), ...layer.config };
      byPath.set(file.path, { ...file, content: `${JSON.stringify(merged, null, 2)}\n` });
    } else if (file.path === AGENTS_MD) {
      const own = base?.content.trim() ?? "";
      byPath.set(file.path, { ...file, content: own ? `${own}\n\n${layer.agentsMd}` : layer.agentsMd });
    } else {
      byPath.set(file.path, file);
    }
  }
  return [...byPath.values()];
}

/** The user's files with this sandbox's applied onboarding layer on top (unchanged without one). */
export async function withOnboardingLayer(db: Executor, userId: string, sandboxId: string, files: WorkloadFile[]): Promise<WorkloadFile[]> {
  const [row] = await db
    .select({ applied: onboardingSessions.applied })
    .from(onboardingSessions)
    .where(and(eq(onboardingSessions.sandboxId, sandboxId), eq(onboardingSessions.userId, userId)));
  return row?.applied ? overlayOnboarding(files, row.applied as unknown as GeneratedLayer) : files;
}
