import { z } from "@hono/zod-openapi";

/**
 * Names of agent files become file names inside the sandbox (~/.config/opencode/agents/NAME.md),
 * so they are checked here and again by the renderer: no separator, no "..", no control
 * characters, no leading dot (hidden files, "." and ".."), 1–100 characters.
 */
export function agentNameProblem(name: string): string | undefined {
  if (name.length < 1 || name.length > 100) return "must be 1–100 characters";
  if (/[/\\]/.test(name)) return "must not contain / or \\";
  if (name.includes("..")) return 'must not contain ".."';
  // C0, DEL and C1 controls; also the Unicode line and paragraph separators.
  if (/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/.test(name)) return "must not contain control characters";
  if (name.startsWith(".")) return "must not start with a dot";
  if (name.trim() !== name) return "must not start or end with a space";
  return undefined;
}

export const AGENT_NAME = z.string().superRefine((name, ctx) => {
  const problem = agentNameProblem(name);
  if (problem) ctx.addIssue({ code: "custom", message: problem });
});

export const AGENT_FILE_TYPES = ["agent", "command", "tool", "plugin"] as const;
export type AgentFileType = (typeof AGENT_FILE_TYPES)[number];
export const AGENT_FILE_EXTENSIONS = ["md", "ts", "js"] as const;
export type AgentFileExtension = (typeof AGENT_FILE_EXTENSIONS)[number];

/** What OpenCode loads from each directory: markdown agents and commands, JS/TS tools and plugins. */
export const EXTENSIONS_BY_TYPE: Record<AgentFileType, readonly AgentFileExtension[]> = {
  agent: ["md"],
  command: ["md"],
  tool: ["ts", "js"],
  plugin: ["ts", "js"],
};
