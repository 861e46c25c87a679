import { createRoute, z } from "@hono/zod-openapi";
import { cachedPage, notModified } from "../lib/page-cache";
import { AppError } from "../errors";
import { authSecurity, createRouter, errorResponses } from "../lib/openapi";
import { PageQuery, pageOf } from "../lib/pagination";
import {
  archiveSession,
  getSession,
  getSyncState,
  listMessages,
  listSessions,
  purgeSession,
  searchMessages,
  usage,
} from "../services/chat/queries";
import { forceSyncSession } from "../services/chat/reconcile";
import type { SandboxRuntime } from "../services/sandboxes/runtime";

const json = <T extends z.ZodTypeAny>(schema: T, description: string) => ({
  description,
  content: { "application/json": { schema } },
});

const id = (name: string) => z.string().min(1).max(64).openapi({ param: { name, in: "path" } });
const SandboxParam = z.object({ id: id("id") });
const SessionParam = z.object({ sessionId: id("sessionId") });
const SandboxSessionParam = z.object({ id: id("id"), sessionId: id("sessionId") });

const SessionStatus = z.enum(["active", "archived", "deleted"]);

export const ChatSession = z
  .object({
    id: z.string(),
    sandboxId: z.string().nullable().openapi({ description: "null once the sandbox was deleted with keepChats=true" }),
    source: z.enum(["opencode", "acp_gateway"]),
    externalSessionId: z.string().nullable(),
    title: z.string(),
    status: SessionStatus,
    messageCount: z.number().int(),
    userMessageCount: z.number().int(),
    assistantMessageCount: z.number().int(),
    inputTokens: z.number().int(),
    outputTokens: z.number().int(),
    cost: z.number().openapi({ description: "USD, from the provider catalog's prices (the agent's own figure when the catalog has none)" }),
    lastMessageAt: z.string().nullable(),
    lastSyncedAt: z.string().nullable(),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi("ChatSession");

export const ChatMessage = z
  .object({
    id: z.string(),
    sessionId: z.string(),
    externalMessageId: z.string().nullable(),
    role: z.enum(["user", "assistant", "system"]),
    status: z.enum(["streaming", "complete", "error", "cancelled"]),
    text: z.string(),
    parts: z.array(z.unknown()).openapi({ description: "The agent's message parts (text, reasoning, tool, step-finish, …), as it produced them" }),
    modelProvider: z.string().nullable(),
    modelId: z.string().nullable(),
    agentId: z.string().nullable(),
    inputTokens: z.number().int(),
    outputTokens: z.number().int(),
    reasoningTokens: z.number().int(),
    cacheReadTokens: z.number().int(),
    cacheWriteTokens: z.number().int(),
    cost: z.number(),
    errorMessage: z.string().nullable(),
    createdAt: z.string(),
    completedAt: z.string().nullable(),
  })
  .openapi("ChatMessage");

const ChatSessionDetail = ChatSession.extend({
  latestMessages: z.array(ChatMessage).openapi({ description: "The latest 20 messages, oldest first" }),
}).openapi("ChatSessionDetail");

const MessagePage = z
  .object({ data: z.array(ChatMessage), nextCursor: z.string().nullable(), prevCursor: z.string().nullable() })
  .openapi("ChatMessagePage");

const SessionListQuery = PageQuery.extend({
  status: SessionStatus.optional().openapi({ param: { name: "status", in: "query" } }),
});
const AllSessionsQuery = SessionListQuery.extend({
  sandboxId: z.string().min(1).max(64).optional().openapi({ param: { name: "sandboxId", in: "query" } }),
});
const MessagesQuery = PageQuery.extend({
  order: z
    .enum(["asc", "desc"])
    .default("asc")
    .openapi({ param: { name: "order", in: "query" }, description: "asc: oldest first (default); desc: newest first" }),
});
const DeleteQuery = z.object({
  purge: z
    .enum(["true", "false"])
    .default("false")
    .openapi({ param: { name: "purge", in: "query" }, description: "true deletes the messages; otherwise the session is archived" }),
});

const SyncState = z
  .object({
    sandboxId: z.string(),
    sandboxStatus: z.string(),
    connected: z.boolean(),
    lagMs: z.number().int().nullable().openapi({ description: "Receive-to-commit time of the last batch" }),
    lastEventAt: z.string().nullable(),
    lastEventId: z.string().nullable(),
    lastReconciledAt: z.string().nullable(),
    eventsIngested: z.number().int(),
    lastError: z.string().nullable(),
    lastErrorAt: z.string().nullable(),
    consecutiveErrors: z.number().int(),
  })
  .openapi("ChatSyncState");

const SearchQuery = PageQuery.extend({
  q: z.string().trim().min(1, { error: "must not be empty" }).max(500).openapi({
    param: { name: "q", in: "query" },
    description: 'Web-search syntax: words, "quoted phrases", -excluded, or',
  }),
});
const SearchHit = z
  .object({
    messageId: z.string(),
    sessionId: z.string(),
    sandboxId: z.string().nullable(),
    sessionTitle: z.string(),
    role: z.string(),
    createdAt: z.string(),
    rank: z.number(),
    snippet: z.string().openapi({ description: "HTML-escaped text with matches in <mark>…</mark>" }),
  })
  .openapi("ChatSearchHit");

const UsageQuery = z.object({
  from: z.iso.datetime({ offset: true }).optional().openapi({ param: { name: "from", in: "query" }, description: "Inclusive; default 30 days before `to`" }),
  to: z.iso.datetime({ offset: true }).optional().openapi({ param: { name: "to", in: "query" }, description: "Exclusive; default now" }),
});
const UsageFigures = z.object({
  messages: z.number().int(),
  inputTokens: z.number().int(),
  outputTokens: z.number().int(),
  reasoningTokens: z.number().int(),
  cacheReadTokens: z.number().int(),
  cacheWriteTokens: z.number().int(),
  cost: z.number(),
});
const Usage = z
  .object({
    from: z.string(),
    to: z.string(),
    total: UsageFigures,
    byModel: z.array(UsageFigures.extend({ provider: z.string(), model: z.string() })),
  })
  .openapi("Usage");

const MAX_USAGE_RANGE_MS = 366 * 24 * 3600_000;

function usageRange(q: { from?: string | undefined; to?: string | undefined }, now: Date) {
  const to = q.to ? new Date(q.to) : now;
  const from = q.from ? new Date(q.from) : new Date(to.getTime() - 30 * 24 * 3600_000);
  const field = (name: string, message: string) =>
    new AppError("VALIDATION_FAILED", `Invalid query parameter "${name}": ${message}`, {
      fields: [{ location: "query parameter", field: name, message, code: "invalid_range" }],
    });
  if (from > to) throw field("from", "must not be after `to`");
  if (to.getTime() - from.getTime() > MAX_USAGE_RANGE_MS) throw field("from", "the range is at most 366 days");
  return { from, to };
}

export function chatRoutes(rt: SandboxRuntime) {
  const tags = ["Chat"];
  return createRouter()
    .openapi(
      createRoute({
        method: "get",
        path: "/sandboxes/{id}/chat/sessions",
        tags,
        summary: "The sandbox's chat sessions, most recently active first",
        security: authSecurity,
        request: { params: SandboxParam, query: SessionListQuery },
        responses: { 200: json(pageOf(ChatSession, "ChatSessionPage"), "A page of sessions"), ...notModified, ...errorResponses(404) },
      }),
      async (c) => cachedPage(c, "chat", () => listSessions(c.get("scope"), { ...c.req.valid("query"), sandboxId: c.req.valid("param").id })),
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/sandboxes/{id}/chat/sessions/{sessionId}",
        tags,
        summary: "One session with its latest messages",
        security: authSecurity,
        request: { params: SandboxSessionParam },
        responses: { 200: json(ChatSessionDetail, "The session"), ...notModified, ...errorResponses(404) },
      }),
      async (c) => {
        const p = c.req.valid("param");
        return cachedPage(c, "chat", () => getSession(c.get("scope"), p.sessionId, p.id));
      },
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/sandboxes/{id}/chat/sessions/{sessionId}/messages",
        tags,
        summary: "A page of the session's messages (nextCursor forward, prevCursor back)",
        security: authSecurity,
        request: { params: SandboxSessionParam, query: MessagesQuery },
        responses: { 200: json(MessagePage, "A page of messages"), ...notModified, ...errorResponses(404) },
      }),
      async (c) => {
        const p = c.req.valid("param");
        return cachedPage(c, "chat", () => listMessages(c.get("scope"), p.sessionId, { ...c.req.valid("query"), sandboxId: p.id }));
      },
    )
    .openapi(
      createRoute({
        method: "delete",
        path: "/sandboxes/{id}/chat/sessions/{sessionId}",
        tags,
        summary: "Archive a session, or with ?purge=true delete its messages for good",
        security: authSecurity,
        request: { params: SandboxSessionParam, query: DeleteQuery },
        responses: { 200: json(ChatSession, "Archived"), 204: { description: "Purged" }, ...errorResponses(404) },
      }),
      async (c) => {
        const p = c.req.valid("param");
        if (c.req.valid("query").purge === "true") {
          await purgeSession(c.get("scope"), p.sessionId, p.id);
          return c.body(null, 204);
        }
        return c.json(await archiveSession(c.get("scope"), p.sessionId, p.id), 200);
      },
    )
    .openapi(
      createRoute({
        method: "post",
        path: "/sandboxes/{id}/chat/sessions/{sessionId}/sync",
        tags,
        summary: "Re-sync one session from the sandbox's agent now",
        security: authSecurity,
        request: { params: SandboxSessionParam },
        responses: { 200: json(ChatSessionDetail, "The session after the sync"), ...errorResponses(404, 409) },
      }),
      async (c) => {
        const p = c.req.valid("param");
        return c.json(await forceSyncSession(c.get("scope"), rt, p.id, p.sessionId), 200);
      },
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/sandboxes/{id}/chat/sync",
        tags,
        summary: "Chat sync state of the sandbox: connected, lag, last event, errors",
        security: authSecurity,
        request: { params: SandboxParam },
        responses: { 200: json(SyncState, "Sync state"), ...errorResponses(404) },
      }),
      async (c) => c.json(await getSyncState(c.get("scope"), c.req.valid("param").id), 200),
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/chat/sessions",
        tags,
        summary: "All the caller's chat sessions (those of deleted sandboxes kept with keepChats too)",
        security: authSecurity,
        request: { query: AllSessionsQuery },
        responses: { 200: json(pageOf(ChatSession, "ChatSessionPage"), "A page of sessions"), ...notModified, ...errorResponses(404) },
      }),
      async (c) => cachedPage(c, "chat", () => listSessions(c.get("scope"), c.req.valid("query"))),
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/chat/sessions/{sessionId}",
        tags,
        summary: "One session with its latest messages, whatever became of its sandbox",
        security: authSecurity,
        request: { params: SessionParam },
        responses: { 200: json(ChatSessionDetail, "The session"), ...notModified, ...errorResponses(404) },
      }),
      async (c) => cachedPage(c, "chat", () => getSession(c.get("scope"), c.req.valid("param").sessionId)),
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/chat/sessions/{sessionId}/messages",
        tags,
        summary: "A page of the session's messages, whatever became of its sandbox",
        security: authSecurity,
        request: { params: SessionParam, query: MessagesQuery },
        responses: { 200: json(MessagePage, "A page of messages"), ...notModified, ...errorResponses(404) },
      }),
      async (c) => cachedPage(c, "chat", () => listMessages(c.get("scope"), c.req.valid("param").sessionId, c.req.valid("query"))),
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/chat/search",
        tags,
        summary: "Full-text search across all the caller's messages, ranked, with highlighted snippets",
        security: authSecurity,
        request: { query: SearchQuery },
        responses: { 200: json(pageOf(SearchHit, "ChatSearchPage"), "A page of hits, best first"), ...errorResponses() },
      }),
      async (c) => c.json(await searchMessages(c.get("scope"), c.req.valid("query")), 200),
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/me/usage",
        tags,
        summary: "Token usage and cost by provider and model over a time range",
        security: authSecurity,
        request: { query: UsageQuery },
        responses: { 200: json(Usage, "Usage in [from, to)"), ...errorResponses() },
      }),
      async (c) => {
        const scope = c.get("scope");
        return c.json(await usage(scope, usageRange(c.req.valid("query"), scope.now())), 200);
      },
    );
}
