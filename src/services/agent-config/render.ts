import { asc, eq } from "drizzle-orm";
import { userAgentConfig, userAgentFiles } from "../../../db/schema";
import type { Executor } from "../../database/client";
import type { WorkloadFile } from "../../orchestrator/driver";
import { agentNameProblem, EXTENSIONS_BY_TYPE, type AgentFileExtension, type AgentFileType } from "./names";

/**
 * OpenCode's global configuration layout, relative to the sandbox user's HOME (with the default
 * XDG_CONFIG_HOME=$HOME/.config). OpenCode reads opencode.json and AGENTS.md from its config
 * directory and scans, inside it, {agent,agents}/**\/*.md, {command,commands}/**\/*.md,
 * {tool,tools}/*.{js,ts} and {plugin,plugins}/*.{ts,js}; the plural names are the documented ones.
 */
export const OPENCODE_CONFIG_DIR = ".config/opencode";

const DIRECTORY_BY_TYPE: Record<AgentFileType, string> = {
  agent: "agents",
  command: "commands",
  tool: "tools",
  plugin: "plugins",
};

/** Directories whose whole content Warren owns: an applier may replace them wholesale, so a
 * file deleted through the API disappears from the sandbox too. */
export const MANAGED_DIRECTORIES = Object.values(DIRECTORY_BY_TYPE).map((d) => `${OPENCODE_CONFIG_DIR}/${d}`);

export type RenderableAgentConfig = {
  config: Record<string, unknown>;
  agentsMd: string;
  files: ReadonlyArray<{ type: AgentFileType; name: string; extension: AgentFileExtension; content: string }>;
};

export function agentFilePath(type: AgentFileType, name: string, extension: AgentFileExtension): string {
  // Names were validated on the way in; checked again because rows may come from an import.
  const problem = agentNameProblem(name);
  if (problem) throw new Error(`unsafe agent file name ${JSON.stringify(name)}: ${problem}`);
  if (!EXTENSIONS_BY_TYPE[type].includes(extension)) throw new Error(`a ${type} cannot be a .${extension} file`);
  return `${OPENCODE_CONFIG_DIR}/${DIRECTORY_BY_TYPE[type]}/${name}.${extension}`;
}

/**
 * Renders a user's agent configuration into the files OpenCode reads. Pure: no I/O, same input,
 * same output (sorted by path). opencode.json and AGENTS.md are always present, so clearing them
 * through the API also clears them in a sandbox.
 */
export function renderAgentConfig(input: RenderableAgentConfig): WorkloadFile[] {
  const files: WorkloadFile[] = [
    // opencode.json may hold a pasted provider key: owner-only, like every workload file.
    { path: `${OPENCODE_CONFIG_DIR}/opencode.json`, content: `${JSON.stringify(input.config, null, 2)}\n`, mode: 0o600 },
    { path: `${OPENCODE_CONFIG_DIR}/AGENTS.md`, content: input.agentsMd, mode: 0o600 },
  ];
  const seen = new Set(files.map((f) => f.path));
  const rendered = input.files.map((f) => ({ path: agentFilePath(f.type, f.name, f.extension), content: f.content, mode: 0o600 }));
  for (const file of rendered.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))) {
    // Two names differing only by extension would be two files; one path can only hold one.
    if (seen.has(file.path)) throw new Error(`two agent files render to ${file.path}`);
    seen.add(file.path);
    files.push(file);
  }
  return files;
}

/** Loads and renders one user's configuration (defaults when nothing is stored). */
export async function loadAgentConfigFiles(db: Executor, userId: string): Promise<WorkloadFile[]> {
  const [config] = await db.select().from(userAgentConfig).where(eq(userAgentConfig.userId, userId));
  const files = await db
    .select({ type: userAgentFiles.type, name: userAgentFiles.name, extension: userAgentFiles.extension, content: userAgentFiles.content })
    .from(userAgentFiles)
    .where(eq(userAgentFiles.userId, userId))
    .orderBy(asc(userAgentFiles.type), asc(userAgentFiles.name));
  return renderAgentConfig({ config: config?.config ?? {}, agentsMd: config?.agentsMd ?? "", files });
}
