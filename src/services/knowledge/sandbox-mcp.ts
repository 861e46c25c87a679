import type { Db } from "../../database/client";
import type { WorkloadFile } from "../../orchestrator/driver";
import { OPENCODE_CONFIG_DIR } from "../agent-config/render";
import { issueMcpToken } from "./mcp-tokens";

/** The MCP server's name in OpenCode's configuration, and the path Warren serves it on. */
export const MCP_SERVER_NAME = "warren-knowledge";
export const MCP_PATH = "/api/v1/mcp";
/** Names the sandbox a token is presented for; a token of any other sandbox is refused. */
export const MCP_SANDBOX_HEADER = "X-Warren-Sandbox";

export type McpSettings = { sandboxApiUrl: string; tokenTtlMs: number; tokenSecret: string };

const OPENCODE_JSON_PATH = `${OPENCODE_CONFIG_DIR}/opencode.json`;

/**
 * Adds Warren's knowledge MCP server to the opencode.json among `files` (OpenCode's remote MCP
 * format: url, headers; OAuth discovery off, the bearer token is the credential) with a token
 * for this sandbox. The user's own `mcp` entries are kept; one of the same name is replaced.
 */
export async function withKnowledgeMcp(
  deps: { db: Db; now: () => Date; mcp: McpSettings },
  userId: string,
  sandboxId: string,
  files: WorkloadFile[],
  rotate: boolean,
): Promise<WorkloadFile[]> {
  const index = files.findIndex((f) => f.path === OPENCODE_JSON_PATH);
  if (index < 0) return files;
  const issued = await issueMcpToken(deps.db, { userId, sandboxId, ttlMs: deps.mcp.tokenTtlMs, now: deps.now(), rotate, secret: deps.mcp.tokenSecret });
  const config = JSON.parse(files[index]!.content) as { mcp?: Record<string, unknown> };
  const mcp = config.mcp && typeof config.mcp === "object" && !Array.isArray(config.mcp) ? config.mcp : {};
  config.mcp = {
    ...mcp,
    [MCP_SERVER_NAME]: {
      type: "remote",
      url: `${deps.mcp.sandboxApiUrl}${MCP_PATH}`,
      enabled: true,
      oauth: false,
      headers: { Authorization: `Bearer ${issued.token}`, [MCP_SANDBOX_HEADER]: sandboxId },
    },
  };
  const out = [...files];
  out[index] = { ...files[index]!, content: `${JSON.stringify(config, null, 2)}\n`, mode: 0o600 };
  return out;
}
