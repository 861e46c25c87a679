import type { chatMessages, chatSessions, chatSyncState } from "../../../db/schema";

export type SessionRow = typeof chatSessions.$inferSelect;
export type MessageRow = typeof chatMessages.$inferSelect;
/** What a message view reads: the list queries select only these columns. */
export type MessageViewRow = Omit<MessageRow, "userId" | "toolCalls" | "toolResults" | "thinking" | "searchVector" | "isStub" | "updatedAt">;

const iso = (d: Date | null) => (d ? d.toISOString() : null);

export function sessionView(s: SessionRow) {
  return {
    id: s.id,
    sandboxId: s.sandboxId,
    source: s.source,
    externalSessionId: s.externalSessionId,
    title: s.title,
    status: s.status,
    messageCount: s.messageCount,
    userMessageCount: s.userMessageCount,
    assistantMessageCount: s.assistantMessageCount,
    inputTokens: s.totalInputTokens,
    outputTokens: s.totalOutputTokens,
    cost: Number(s.totalCost),
    lastMessageAt: iso(s.lastMessageAt),
    lastSyncedAt: iso(s.lastSyncedAt),
    createdAt: s.createdAt.toISOString(),
    updatedAt: s.updatedAt.toISOString(),
  };
}

export function messageView(m: MessageViewRow) {
  return {
    id: m.id,
    sessionId: m.sessionId,
    externalMessageId: m.externalMessageId,
    role: m.role,
    status: m.status,
    text: m.text,
    parts: Array.isArray(m.content) ? (m.content as unknown[]) : [],
    modelProvider: m.modelProvider,
    modelId: m.modelId,
    agentId: m.agentId,
    inputTokens: m.inputTokens,
    outputTokens: m.outputTokens,
    reasoningTokens: m.reasoningTokens,
    cacheReadTokens: m.cacheReadTokens,
    cacheWriteTokens: m.cacheWriteTokens,
    cost: Number(m.cost),
    errorMessage: m.errorMessage,
    createdAt: m.createdAt.toISOString(),
    completedAt: iso(m.completedAt),
  };
}

export function syncStateView(sandboxId: string, s: typeof chatSyncState.$inferSelect | undefined, sandboxStatus: string) {
  return {
    sandboxId,
    sandboxStatus,
    connected: Boolean(s?.connected) && sandboxStatus === "running",
    lagMs: s?.lagMs ?? null,
    lastEventAt: iso(s?.lastEventAt ?? null),
    lastEventId: s?.lastEventId ?? null,
    lastReconciledAt: iso(s?.lastReconciledAt ?? null),
    eventsIngested: s?.eventsIngested ?? 0,
    lastError: s?.lastError ?? null,
    lastErrorAt: iso(s?.lastErrorAt ?? null),
    consecutiveErrors: s?.consecutiveErrors ?? 0,
  };
}
