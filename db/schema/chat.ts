import { sql } from "drizzle-orm";
import {
  bigint,
  boolean,
  index,
  integer,
  jsonb,
  numeric,
  pgEnum,
  pgTable,
  text,
  uniqueIndex,
} from "drizzle-orm/pg-core";
import { ownerId } from "./auth";
import { createdAt, tsvector, tz, updatedAt } from "./columns";
import { sandboxes } from "./sandboxes";

export const chatSource = pgEnum("chat_source", ["opencode", "acp_gateway"]);
export const chatSessionStatus = pgEnum("chat_session_status", ["active", "archived", "deleted"]);
export const chatRole = pgEnum("chat_role", ["user", "assistant", "system"]);
export const chatMessageStatus = pgEnum("chat_message_status", ["streaming", "complete", "error", "cancelled"]);

export const chatSessions = pgTable(
  "chat_sessions",
  {
    id: text("id").primaryKey(),
    userId: ownerId(),
    // Conversations outlive their sandbox when the user asks (?keepChats=true): set null, not cascade.
    sandboxId: text("sandbox_id").references(() => sandboxes.id, { onDelete: "set null" }),
    source: chatSource("source").notNull().default("opencode"),
    externalSessionId: text("external_session_id"),
    acpAgentId: text("acp_agent_id"),
    title: text("title").notNull().default(""),
    status: chatSessionStatus("status").notNull().default("active"),
    messageCount: integer("message_count").notNull().default(0),
    userMessageCount: integer("user_message_count").notNull().default(0),
    assistantMessageCount: integer("assistant_message_count").notNull().default(0),
    totalInputTokens: bigint("total_input_tokens", { mode: "number" }).notNull().default(0),
    totalOutputTokens: bigint("total_output_tokens", { mode: "number" }).notNull().default(0),
    totalCost: numeric("total_cost", { precision: 14, scale: 6, mode: "number" }).notNull().default(0),
    lastMessageAt: tz("last_message_at"),
    lastSyncedAt: tz("last_synced_at"),
    externalUpdatedAt: tz("external_updated_at"),
    /**
     * Set when the user purged the session: its messages are gone and the row stays as a
     * tombstone, so that later events from the agent about the same session are ignored instead
     * of bringing it back.
     */
    purgedAt: tz("purged_at"),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    uniqueIndex("chat_sessions_external_uq")
      .on(t.sandboxId, t.source, t.externalSessionId)
      .where(sql`${t.externalSessionId} is not null`),
    index("chat_sessions_sandbox_idx").on(t.sandboxId, t.updatedAt.desc(), t.id.desc()),
    index("chat_sessions_user_idx").on(t.userId, t.updatedAt.desc(), t.id.desc()),
  ],
);

export const chatMessages = pgTable(
  "chat_messages",
  {
    id: text("id").primaryKey(),
    sessionId: text("session_id")
      .notNull()
      .references(() => chatSessions.id, { onDelete: "cascade" }),
    // Denormalised owner: search and usage run per user without joining every session.
    userId: ownerId(),
    externalMessageId: text("external_message_id"),
    role: chatRole("role").notNull(),
    /** Raw message parts as the agent produced them. */
    content: jsonb("content").$type<unknown>().notNull().default([]),
    toolCalls: jsonb("tool_calls").$type<unknown>(),
    toolResults: jsonb("tool_results").$type<unknown>(),
    thinking: jsonb("thinking").$type<unknown>(),
    /** Plain text extracted from the parts; what search indexes. */
    text: text("text").notNull().default(""),
    searchVector: tsvector("search_vector").generatedAlwaysAs(
      sql`to_tsvector('simple', left(coalesce("text", ''), 100000))`,
    ),
    modelProvider: text("model_provider"),
    modelId: text("model_id"),
    agentId: text("agent_id"),
    inputTokens: integer("input_tokens").notNull().default(0),
    outputTokens: integer("output_tokens").notNull().default(0),
    reasoningTokens: integer("reasoning_tokens").notNull().default(0),
    cacheReadTokens: integer("cache_read_tokens").notNull().default(0),
    cacheWriteTokens: integer("cache_write_tokens").notNull().default(0),
    /**
     * True while only parts of the message have arrived (events can come out of order): the row
     * exists for the parts to hang on, and counts nothing until the message itself arrives.
     */
    isStub: boolean("is_stub").notNull().default(false),
    /**
     * Set when the agent removed the message (message.removed, or missing from a reconciliation).
     * The row stays as a tombstone: readers and counts skip it, a late or replayed update of the
     * message cannot bring it back, and its tokens and cost stay in the session's totals and in
     * usage (they were spent).
     */
    removedAt: tz("removed_at"),
    cost: numeric("cost", { precision: 14, scale: 6, mode: "number" }).notNull().default(0),
    status: chatMessageStatus("status").notNull().default("complete"),
    errorMessage: text("error_message"),
    createdAt: createdAt(),
    completedAt: tz("completed_at"),
    updatedAt: updatedAt(),
  },
  (t) => [
    // The agent's message id is unique within a session: repeated sync events upsert, never duplicate.
    uniqueIndex("chat_messages_external_uq")
      .on(t.sessionId, t.externalMessageId)
      .where(sql`${t.externalMessageId} is not null`),
    index("chat_messages_session_idx").on(t.sessionId, t.createdAt, t.id),
    // Usage by time range (GET /me/usage) reads only this index.
    index("chat_messages_user_created_idx").on(t.userId, t.createdAt),
    // Search: rare terms are found through the GIN index, frequent ones by walking the user's
    // messages newest first (chat_messages_user_created_idx); the planner picks per query.
    // New entries wait in GIN's pending list, which every search reads in full until it is merged
    // into the index; at PostgreSQL's default limit (4 MB) that was ~500 pages and 2 ms of every
    // search while chats stream in (bench/README.md). 64 kB keeps it to a few pages, and ingest
    // did not get slower (migration 0016).
    index("chat_messages_search_idx").using("gin", t.searchVector).with({ gin_pending_list_limit: 64 }),
  ],
);

export const chatMessageParts = pgTable(
  "chat_message_parts",
  {
    id: text("id").primaryKey(),
    messageId: text("message_id")
      .notNull()
      .references(() => chatMessages.id, { onDelete: "cascade" }),
    externalPartId: text("external_part_id").notNull(),
    type: text("type").notNull(),
    content: jsonb("content").$type<unknown>().notNull(),
    position: integer("position").notNull().default(0),
    /**
     * How far along the part is (finished, tool state, size): a replayed or late older version
     * of the part never overwrites a newer one, so events in any order converge.
     */
    revision: bigint("revision", { mode: "number" }).notNull().default(0),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [uniqueIndex("chat_message_parts_external_uq").on(t.messageId, t.externalPartId)],
);

/** One row per sandbox whose agent stream Warren follows; the lease says which instance owns it. */
export const chatSyncState = pgTable("chat_sync_state", {
  sandboxId: text("sandbox_id")
    .primaryKey()
    .references(() => sandboxes.id, { onDelete: "cascade" }),
  leaseHolder: text("lease_holder"),
  leaseExpiresAt: tz("lease_expires_at"),
  connected: boolean("connected").notNull().default(false),
  lastEventAt: tz("last_event_at"),
  lastEventId: text("last_event_id"),
  lastReconciledAt: tz("last_reconciled_at"),
  lastError: text("last_error"),
  consecutiveErrors: integer("consecutive_errors").notNull().default(0),
  eventsIngested: bigint("events_ingested", { mode: "number" }).notNull().default(0),
  /** Milliseconds between receiving the last batch's oldest event and committing it. */
  lagMs: integer("lag_ms"),
  lastErrorAt: tz("last_error_at"),
  updatedAt: updatedAt(),
});
