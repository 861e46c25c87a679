import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { and, eq } from "drizzle-orm";
import { z } from "zod";
import { onboardingSessions, sandboxes } from "../../../db/schema";
import type { Db } from "../../database/client";
import { AppError } from "../../errors";
import type { Logger } from "../../lib/logger";
import { storableString } from "../../lib/text";
import type { McpCaller } from "./mcp-tokens";
import { getKnowledge, knowledgeCategories, searchKnowledge } from "./queries";

/** Version reported in the MCP handshake (serverInfo). */
const SERVER_VERSION = "1.0.0";

/**
 * A tool's text argument, storable as the REST routes' are: NUL or half an emoji reaching
 * PostgreSQL failed the call with the database's own error text.
 */
const argument = (max: number) => storableString().trim().max(max);

const text = (value: string) => ({ content: [{ type: "text" as const, text: value }] });
const failed = (value: string) => ({ ...text(value), isError: true });

/**
 * The knowledge MCP server for one authenticated caller (a sandbox's agent). Built per request:
 * the HTTP transport runs stateless, so any Warren instance can answer any request.
 * Tools read the shared knowledge base; get_project_context reads only the caller's sandbox.
 */
export function buildKnowledgeMcpServer(db: Db, caller: McpCaller, request: { logger: Logger; requestId: string }): McpServer {
  /**
   * The SDK answers a tool that throws with the error's message: a failed query's is the SQL
   * statement and its parameters. An unexpected error is logged here and the agent told only
   * that it happened, with the request id to find it by.
   */
  const guarded =
    <A extends unknown[], R>(tool: string, handler: (...args: A) => Promise<R>) =>
    async (...args: A): Promise<R | ReturnType<typeof failed>> => {
      try {
        return await handler(...args);
      } catch (err) {
        request.logger.error({ err: { message: (err as Error).message }, tool, sandboxId: caller.sandboxId }, "MCP tool failed");
        return failed(`Warren could not answer ${tool} (internal error, request ${request.requestId}); try again later.`);
      }
    };

  const server = new McpServer(
    { name: "warren-knowledge", version: SERVER_VERSION },
    {
      instructions:
        "Warren's knowledge base: project templates, agent patterns, command templates and provider guides. " +
        "Search it with search_knowledge, then read a document with get_knowledge_document.",
    },
  );

  server.registerTool(
    "search_knowledge",
    {
      title: "Search the knowledge base",
      description:
        "Ranked full-text search over titles, descriptions and content, tolerant of short and misspelled queries. " +
        "Returns id, slug, title, category, a snippet and a score for each match.",
      inputSchema: {
        query: argument(200).min(1).describe("What to look for, e.g. 'fastapi testing' or 'code review agent'"),
        category: argument(100).optional().describe("Only this category, e.g. project-template, agent-pattern"),
        limit: z.number().int().min(1).max(20).optional().describe("At most this many results (default 5)"),
      },
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    guarded("search_knowledge", async ({ query, category, limit }: { query: string; category?: string | undefined; limit?: number | undefined }) => {
      const hits = await searchKnowledge(db, { q: query, limit: limit ?? 5, category });
      if (hits.length === 0) return text(`No knowledge documents match "${query}".`);
      const lines = hits.map(
        (h, i) => `${i + 1}. ${h.title} [${h.category}] — slug: ${h.slug}, id: ${h.id}, score: ${h.score}\n   ${h.snippet.replace(/\s+/g, " ")}`,
      );
      return {
        ...text(lines.join("\n")),
        structuredContent: { results: hits.map(({ id, slug, title, category, score, snippet }) => ({ id, slug, title, category, score, snippet })) },
      };
    }),
  );

  server.registerTool(
    "get_knowledge_document",
    {
      title: "Read a knowledge document",
      description: "The full Markdown of one document, by id or slug (from search_knowledge).",
      inputSchema: { id: argument(200).min(1).describe("The document's id or slug") },
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    guarded("get_knowledge_document", async ({ id }: { id: string }) => {
      try {
        const doc = await getKnowledge(db, id);
        const header = `# ${doc.title}\n\ncategory: ${doc.category} · slug: ${doc.slug} · version: ${doc.version}${doc.tags.length ? ` · tags: ${doc.tags.join(", ")}` : ""}\n\n`;
        return text(header + doc.content);
      } catch (err) {
        if (err instanceof AppError && err.code === "NOT_FOUND") return failed(`No knowledge document with id or slug "${id}".`);
        throw err;
      }
    }),
  );

  server.registerTool(
    "list_knowledge_categories",
    {
      title: "List knowledge categories",
      description: "Every category of the knowledge base with how many documents it holds.",
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    guarded("list_knowledge_categories", async () => {
      const categories = await knowledgeCategories(db);
      return { ...text(categories.map((c) => `${c.category}: ${c.count}`).join("\n") || "The knowledge base is empty."), structuredContent: { categories } };
    }),
  );

  server.registerTool(
    "get_project_context",
    {
      title: "This sandbox's project",
      description: "The project this sandbox was onboarded for: type, languages, frameworks and description, when onboarding recorded them.",
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    guarded("get_project_context", async () => {
      const [row] = await db
        .select({ name: sandboxes.name, requirements: onboardingSessions.requirements, status: onboardingSessions.status })
        .from(sandboxes)
        .leftJoin(onboardingSessions, eq(onboardingSessions.sandboxId, sandboxes.id))
        .where(and(eq(sandboxes.id, caller.sandboxId), eq(sandboxes.userId, caller.userId)));
      if (!row) return failed("This sandbox no longer exists.");
      const context = { sandbox: row.name, onboarding: row.status ?? "not started", requirements: row.requirements ?? null };
      return { ...text(JSON.stringify(context, null, 2)), structuredContent: context };
    }),
  );

  return server;
}
