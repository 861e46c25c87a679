import { z } from "@hono/zod-openapi";
import { WebStandardStreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js";
import type { Db } from "../database/client";
import { AppError } from "../errors";
import { createRouter, errorResponses } from "../lib/openapi";
import { buildKnowledgeMcpServer } from "../services/knowledge/mcp-server";
import { verifyMcpToken } from "../services/knowledge/mcp-tokens";
import { MCP_SANDBOX_HEADER } from "../services/knowledge/sandbox-mcp";
import { touchSandbox } from "../services/sandboxes/manage";

const CHALLENGE = { "WWW-Authenticate": 'Bearer realm="warren-mcp"' };

const refused = (message: string) => new AppError("UNAUTHENTICATED", message, undefined, CHALLENGE);

/**
 * The knowledge base over MCP (Streamable HTTP, JSON-RPC 2.0), for agents inside sandboxes. It
 * is mounted before the session middleware: callers authenticate with their sandbox's MCP token
 * (Authorization: Bearer wmcp_…) and name the sandbox in X-Warren-Sandbox. Stateless: every POST
 * gets a fresh server and transport from the official SDK, answered as plain JSON, so any
 * instance can serve any request and nothing is held between them.
 */
export function mcpRoutes(deps: { db: Db; now: () => Date }) {
  const router = createRouter();

  router.openAPIRegistry.registerPath({
    method: "post",
    path: "/mcp",
    tags: ["Knowledge"],
    summary: "MCP server (Streamable HTTP, JSON-RPC 2.0) with the knowledge tools, for sandbox agents",
    description:
      "Tools: search_knowledge, get_knowledge_document, list_knowledge_categories, get_project_context. " +
      "Authenticate with the sandbox's MCP token (handed to OpenCode's configuration on every start) " +
      `and name the sandbox in ${MCP_SANDBOX_HEADER}. Stateless: no Mcp-Session-Id; GET and DELETE are 405.`,
    security: [{ mcpToken: [] }],
    request: {
      headers: z.object({
        [MCP_SANDBOX_HEADER.toLowerCase()]: z.string().openapi({ description: "The sandbox the token was issued to" }),
      }),
      body: {
        required: true,
        content: {
          "application/json": {
            schema: z
              .object({ jsonrpc: z.literal("2.0"), method: z.string(), id: z.union([z.string(), z.number()]).optional(), params: z.unknown().optional() })
              .openapi("JsonRpcRequest"),
          },
        },
      },
    },
    responses: {
      200: { description: "JSON-RPC response", content: { "application/json": { schema: z.object({ jsonrpc: z.literal("2.0") }).passthrough().openapi("JsonRpcResponse") } } },
      202: { description: "Notification accepted" },
      ...errorResponses(405),
    },
  });

  router.post("/mcp", async (c) => {
    const header = c.req.header("authorization") ?? "";
    const token = /^Bearer\s+(\S+)$/i.exec(header)?.[1];
    const sandboxId = c.req.header(MCP_SANDBOX_HEADER);
    if (!token) throw refused("Send the sandbox's MCP token as Authorization: Bearer");
    if (!sandboxId) throw refused(`Name the sandbox in the ${MCP_SANDBOX_HEADER} header`);
    const now = deps.now();
    const caller = await verifyMcpToken(deps.db, { token, sandboxId, now });
    // One answer for every refusal (unknown, expired, another sandbox's, deleted): nothing to probe.
    if (!caller) throw refused("The MCP token is not valid for this sandbox");
    // An agent consulting the knowledge base is activity: it postpones the idle stop.
    await touchSandbox({ db: deps.db, now: deps.now }, caller.sandboxId);

    const server = buildKnowledgeMcpServer(deps.db, caller, { logger: c.get("logger"), requestId: c.get("requestId") });
    const transport = new WebStandardStreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    await server.connect(transport);
    try {
      return await transport.handleRequest(c.req.raw);
    } finally {
      await server.close();
    }
  });

  // Stateless: no server-initiated stream to open and no session to end.
  router.on(["GET", "DELETE"], "/mcp", () => {
    throw new AppError("METHOD_NOT_ALLOWED", "This MCP server is stateless: send JSON-RPC requests with POST", undefined, { Allow: "POST" });
  });

  return router;
}
