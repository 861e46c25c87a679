/**
 * OpenCode's conversation data as Warren stores it. Shapes are those of OpenCode 1.18's own
 * OpenAPI document (`opencode serve`, GET /doc): Session, UserMessage | AssistantMessage, Part,
 * and the events session.created / session.updated / session.deleted, message.updated,
 * message.removed, message.part.updated, message.part.removed (GET /event, server-sent).
 * Everything else on the stream (deltas, status, plugins, …) carries nothing that the final
 * message.updated / message.part.updated do not, and is skipped.
 *
 * The agent's data is untrusted input: every field is read defensively and anything malformed
 * is dropped rather than stored half-understood.
 */

import { excerpt, MAX_JSON_DEPTH, nestsDeeperThan, storableJson, mayHoldUnstorableEscape, unstorableText } from "../../lib/text";

export type SessionChange = {
  externalId: string;
  title: string | null;
  /** The agent's time.updated; the newer version of a session wins. */
  updatedAt: Date | null;
  createdAt: Date | null;
  deleted: boolean;
  archived: boolean;
};

export type MessageChange = {
  sessionExternalId: string;
  externalId: string;
  role: "user" | "assistant" | "system";
  createdAt: Date;
  completedAt: Date | null;
  status: "streaming" | "complete" | "error" | "cancelled";
  errorMessage: string | null;
  modelProvider: string | null;
  modelId: string | null;
  agentId: string | null;
  inputTokens: number;
  outputTokens: number;
  reasoningTokens: number;
  cacheReadTokens: number;
  cacheWriteTokens: number;
  /** The cost the agent computed itself; used when the catalog has no price for the model. */
  agentCost: number;
};

export type PartChange = {
  sessionExternalId: string;
  messageExternalId: string;
  externalId: string;
  type: string;
  content: Record<string, unknown>;
  revision: number;
  /** When the part started, for the stub message a part may need before its message arrives. */
  at: Date | null;
};

export type RemovedMessage = { sessionExternalId: string; messageExternalId: string };
export type RemovedPart = { sessionExternalId: string; messageExternalId: string; partExternalId: string };

/** One batch of changes, in the order they were received. */
export type ChangeSet = {
  sessions: SessionChange[];
  messages: MessageChange[];
  parts: PartChange[];
  removedMessages: RemovedMessage[];
  removedParts: RemovedPart[];
  /** Events read, including those that changed nothing here. */
  events: number;
  lastEventId: string | null;
};

export function emptyChangeSet(): ChangeSet {
  return { sessions: [], messages: [], parts: [], removedMessages: [], removedParts: [], events: 0, lastEventId: null };
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);
// An id or a model name PostgreSQL could not store (NUL, an unpaired surrogate) is as good as absent.
const str = (v: unknown, max = 512): string | null =>
  typeof v === "string" && v.length > 0 && v.length <= max && !unstorableText(v) ? v : null;
const num = (v: unknown): number => (typeof v === "number" && Number.isFinite(v) && v >= 0 ? v : 0);
// Token counts go into int4 columns; an absurd value from a broken agent is clamped, not a crash.
const tokens = (v: unknown): number => Math.min(Math.floor(num(v)), 2_000_000_000);
const time = (v: unknown): Date | null => {
  if (typeof v !== "number" || !Number.isFinite(v) || v <= 0 || v > 8.64e15) return null;
  return new Date(v);
};

export function sessionChange(info: unknown, deleted = false): SessionChange | null {
  if (!isObj(info)) return null;
  const externalId = str(info.id, 128);
  if (!externalId) return null;
  const t = isObj(info.time) ? info.time : {};
  return {
    externalId,
    title: typeof info.title === "string" ? excerpt(info.title, 1000) : null,
    updatedAt: time(t.updated),
    createdAt: time(t.created),
    deleted,
    archived: time(t.archived) !== null,
  };
}

function errorText(error: unknown): string | null {
  if (!isObj(error)) return null;
  const data = isObj(error.data) ? error.data : {};
  const message = typeof data.message === "string" ? data.message : typeof error.name === "string" ? error.name : "error";
  return excerpt(message, 2000);
}

export function messageChange(info: unknown): MessageChange | null {
  if (!isObj(info)) return null;
  const externalId = str(info.id, 128);
  const sessionExternalId = str(info.sessionID, 128);
  const role = info.role === "user" || info.role === "assistant" || info.role === "system" ? info.role : null;
  if (!externalId || !sessionExternalId || !role) return null;
  const t = isObj(info.time) ? info.time : {};
  const createdAt = time(t.created);
  if (!createdAt) return null;
  const completedAt = time(t.completed);
  const tk = isObj(info.tokens) ? info.tokens : {};
  const cache = isObj(tk.cache) ? tk.cache : {};
  const model = isObj(info.model) ? info.model : {};
  const error = info.error;
  let status: MessageChange["status"] = "complete";
  if (role === "assistant") {
    if (isObj(error)) status = error.name === "MessageAbortedError" ? "cancelled" : "error";
    else status = completedAt ? "complete" : "streaming";
  }
  return {
    sessionExternalId,
    externalId,
    role,
    createdAt,
    completedAt,
    status,
    errorMessage: errorText(error),
    modelProvider: str(info.providerID, 200) ?? str(model.providerID, 200),
    modelId: str(info.modelID, 200) ?? str(model.modelID, 200),
    agentId: str(info.agent, 200) ?? str(info.mode, 200),
    inputTokens: tokens(tk.input),
    outputTokens: tokens(tk.output),
    reasoningTokens: tokens(tk.reasoning),
    cacheReadTokens: tokens(cache.read),
    cacheWriteTokens: tokens(cache.write),
    agentCost: num(info.cost),
  };
}

const TOOL_STATE_RANK: Record<string, number> = { pending: 0, running: 1, completed: 2, error: 2 };

/**
 * How far along a version of a part is. Text and reasoning parts are finished once time.end is
 * set; tool parts move pending → running → completed/error; within a stage a longer version is
 * newer (streamed text only grows). Rank first, then size: the greater revision wins.
 */
export function partRevision(part: Obj, size: number): number {
  let rank = 0;
  const t = isObj(part.time) ? part.time : {};
  if (part.type === "tool") {
    const state = isObj(part.state) ? part.state : {};
    rank = TOOL_STATE_RANK[String(state.status)] ?? 0;
  } else if (t.end !== undefined) {
    rank = 1;
  } else if (part.type === "step-finish") {
    rank = 1;
  }
  return rank * 1_000_000_000 + Math.min(size, 999_999_999);
}

/** Parts larger than this are stored truncated (a tool's output can be megabytes). */
const MAX_PART_BYTES = 256 * 1024;

export function partChange(part: unknown): PartChange | null {
  if (!isObj(part)) return null;
  const externalId = str(part.id, 128);
  const messageExternalId = str(part.messageID, 128);
  const sessionExternalId = str(part.sessionID, 128);
  const type = str(part.type, 64);
  if (!externalId || !messageExternalId || !sessionExternalId || !type) return null;
  // The agent's output is stored as the user will want to read it, whatever it holds: a tool's
  // output with NUL bytes (a binary file) or half an emoji is kept with U+FFFD in their place, and
  // a part nested deeper than jsonb can take is kept as its text, like one too large.
  const json = nestsDeeperThan(part, MAX_JSON_DEPTH) ? null : JSON.stringify(part);
  let content = part;
  let size = json?.length ?? Infinity;
  if (json === null || size > MAX_PART_BYTES) {
    const text = typeof part.text === "string" ? excerpt(part.text, MAX_PART_BYTES) : undefined;
    content = { id: externalId, type, truncated: true, text };
    size = MAX_PART_BYTES;
  } else if (mayHoldUnstorableEscape(json)) {
    content = storableJson(part) as Obj;
  }
  const t = isObj(part.time) ? part.time : {};
  return { sessionExternalId, messageExternalId, externalId, type, content, revision: partRevision(part, size), at: time(t.start) };
}

/** Adds one event from the agent's stream (already JSON-parsed) to the change set. */
export function addEvent(set: ChangeSet, event: unknown): void {
  set.events++;
  if (!isObj(event)) return;
  if (typeof event.id === "string" && event.id.length <= 128) set.lastEventId = event.id;
  const p = isObj(event.properties) ? event.properties : {};
  switch (event.type) {
    case "session.created":
    case "session.updated":
    case "session.deleted": {
      const s = sessionChange(p.info, event.type === "session.deleted");
      if (s) set.sessions.push(s);
      return;
    }
    case "message.updated": {
      const m = messageChange(p.info);
      if (m) set.messages.push(m);
      return;
    }
    case "message.part.updated": {
      const part = partChange(p.part);
      if (part) set.parts.push(part);
      return;
    }
    case "message.removed": {
      const sessionExternalId = str(p.sessionID, 128);
      const messageExternalId = str(p.messageID, 128);
      if (sessionExternalId && messageExternalId) set.removedMessages.push({ sessionExternalId, messageExternalId });
      return;
    }
    case "message.part.removed": {
      const sessionExternalId = str(p.sessionID, 128);
      const messageExternalId = str(p.messageID, 128);
      const partExternalId = str(p.partID, 128);
      if (sessionExternalId && messageExternalId && partExternalId) {
        set.removedParts.push({ sessionExternalId, messageExternalId, partExternalId });
      }
      return;
    }
    default:
      return;
  }
}

/** The events worth keeping, for the stream reader to skip the rest before parsing batches. */
export const SYNCED_EVENT_TYPES = new Set([
  "session.created",
  "session.updated",
  "session.deleted",
  "message.updated",
  "message.removed",
  "message.part.updated",
  "message.part.removed",
]);

/**
 * One SSE frame's data as an event worth syncing, or null: not JSON, or a type that is not kept.
 * The one filter between OpenCode's stream and addEvent (the sync manager and bench/chat-ingest.ts).
 */
export function parseSyncedEvent(data: string): unknown | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(data);
  } catch {
    return null;
  }
  const type = (parsed as { type?: unknown } | null)?.type;
  return typeof type === "string" && SYNCED_EVENT_TYPES.has(type) ? parsed : null;
}
