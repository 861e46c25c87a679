import { and, asc, desc, eq, isNull, sql, type SQL } from "drizzle-orm";
import { chatMessages, chatSessions, chatSyncState } from "../../../db/schema";
import type { ServiceContext } from "../../context";
import { queryRows, ts } from "../../database/client";
import { p, prepared } from "../../database/prepared";
import { AppError, notFound } from "../../errors";
import { afterCursorPlaceholders, decodeCursor, newestFirst, toPage } from "../../lib/pagination";
import { recordActivity } from "../activity/record";
import { findOwned } from "../sandboxes/queries";
import { messageView, sessionView, syncStateView, type MessageViewRow, type SessionRow } from "./views";

type SessionStatus = SessionRow["status"];

/**
 * Reading chats. Every query is filtered by the caller's user id; sessions under a sandbox are
 * reached through the caller's sandbox first (another user's sandbox or session is 404).
 * Purged sessions are tombstones and do not exist for readers.
 */

// Hot reads run as prepared statements, one per shape of the query (src/database/prepared.ts).

/** Decodes a cursor; when it is bad, the ownership check runs first so that its 404 wins, as it always has. */
async function orOwnership<T>(decode: () => T, check: () => Promise<unknown>): Promise<T> {
  try {
    return decode();
  } catch (err) {
    await check();
    throw err;
  }
}

/** The columns a message view shows: not the search vector, nor the jsonb copies it does not return. */
const messageColumns = {
  id: chatMessages.id,
  sessionId: chatMessages.sessionId,
  externalMessageId: chatMessages.externalMessageId,
  role: chatMessages.role,
  status: chatMessages.status,
  text: chatMessages.text,
  content: chatMessages.content,
  modelProvider: chatMessages.modelProvider,
  modelId: chatMessages.modelId,
  agentId: chatMessages.agentId,
  inputTokens: chatMessages.inputTokens,
  outputTokens: chatMessages.outputTokens,
  reasoningTokens: chatMessages.reasoningTokens,
  cacheReadTokens: chatMessages.cacheReadTokens,
  cacheWriteTokens: chatMessages.cacheWriteTokens,
  cost: chatMessages.cost,
  errorMessage: chatMessages.errorMessage,
  createdAt: chatMessages.createdAt,
  completedAt: chatMessages.completedAt,
};

export async function listSessions(
  ctx: ServiceContext,
  q: { sandboxId?: string | undefined; status?: SessionStatus | undefined; limit: number; cursor?: string | undefined },
) {
  // A bad cursor on another user's sandbox is still that sandbox's 404, as the check comes first.
  const cursor = q.cursor ? await orOwnership(() => decodeCursor(q.cursor!), async () => (q.sandboxId ? findOwned(ctx.db, ctx, q.sandboxId) : undefined)) : undefined;
  const key = { createdAt: chatSessions.updatedAt, id: chatSessions.id };
  const shape = `sessions:${q.sandboxId ? "s" : ""}${q.status ? "t" : ""}${cursor ? "c" : ""}`;
  const query = prepared(ctx.db, shape, () =>
    ctx.db
      .select()
      .from(chatSessions)
      .where(
        and(
          eq(chatSessions.userId, p("userId")),
          q.sandboxId ? eq(chatSessions.sandboxId, p("sandboxId")) : undefined,
          q.status ? eq(chatSessions.status, p("status")) : undefined,
          isNull(chatSessions.purgedAt),
          cursor ? afterCursorPlaceholders(key) : undefined,
        ),
      )
      .orderBy(...newestFirst(key))
      .limit(p("limit"))
      .prepare(`chat_${shape.replace(/:/g, "_")}`),
  );
  const rows = (await query.execute({
    userId: ctx.userId,
    sandboxId: q.sandboxId,
    status: q.status,
    at: cursor?.createdAt.toISOString(),
    id: cursor?.id,
    limit: q.limit + 1,
  })) as SessionRow[];
  // Rows of the sandbox and the caller prove the sandbox is the caller's; with none, it may not be.
  if (q.sandboxId && rows.length === 0) await findOwned(ctx.db, ctx, q.sandboxId);
  return toPage(
    rows.map((r) => ({ ...r, createdAt: r.updatedAt, row: r })),
    q.limit,
    (r) => sessionView(r.row),
  );
}

export async function findSession(ctx: ServiceContext, sessionId: string, sandboxId?: string) {
  const shape = sandboxId ? "session:s" : "session";
  const query = prepared(ctx.db, shape, () =>
    ctx.db
      .select()
      .from(chatSessions)
      .where(
        and(
          eq(chatSessions.id, p("id")),
          eq(chatSessions.userId, p("userId")),
          sandboxId ? eq(chatSessions.sandboxId, p("sandboxId")) : undefined,
          isNull(chatSessions.purgedAt),
        ),
      )
      .prepare(`chat_${shape.replace(/:/g, "_")}`),
  );
  const [row] = (await query.execute({ id: sessionId, userId: ctx.userId, sandboxId })) as SessionRow[];
  if (!row) {
    // Another user's (or no) sandbox is a 404 for the sandbox, as before, not for the session.
    if (sandboxId) await findOwned(ctx.db, ctx, sandboxId);
    throw notFound("Chat session", sessionId);
  }
  return row;
}

export const LATEST_MESSAGES = 20;

export async function getSession(ctx: ServiceContext, sessionId: string, sandboxId?: string) {
  const row = await findSession(ctx, sessionId, sandboxId);
  const latest = await prepared(ctx.db, "latest", () =>
    ctx.db
      .select(messageColumns)
      .from(chatMessages)
      .where(and(eq(chatMessages.sessionId, p("sessionId")), eq(chatMessages.isStub, false), isNull(chatMessages.removedAt)))
      .orderBy(desc(chatMessages.createdAt), desc(chatMessages.id))
      .limit(LATEST_MESSAGES)
      .prepare("chat_latest_messages"),
  ).execute({ sessionId: row.id });
  return { ...sessionView(row), latestMessages: (latest as MessageViewRow[]).reverse().map(messageView) };
}

// ---- messages: keyset pages in both directions ----

type MessageCursor = { at: string; id: string; dir: "next" | "prev" };

function encodeMessageCursor(c: MessageCursor): string {
  return Buffer.from(JSON.stringify([c.at, c.id, c.dir])).toString("base64url");
}

function badCursor(): AppError {
  return new AppError("VALIDATION_FAILED", 'Invalid query parameter "cursor": not a cursor returned by this endpoint', {
    fields: [{ location: "query parameter", field: "cursor", message: "not a cursor returned by this endpoint", code: "invalid_cursor" }],
  });
}

function decodeMessageCursor(cursor: string): MessageCursor {
  try {
    const v = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8")) as unknown;
    if (Array.isArray(v) && v.length === 3 && typeof v[0] === "string" && typeof v[1] === "string" && (v[2] === "next" || v[2] === "prev")) {
      // A forged cursor must not reach the query with a value PostgreSQL refuses (a 500): a year
      // outside 1–9999, or an id with NUL or of absurd length (as decodeCursor in lib/pagination).
      const year = new Date(v[0]).getUTCFullYear();
      if (year >= 1 && year <= 9999 && v[1].length <= 256 && !v[1].includes("\u0000")) return { at: v[0], id: v[1], dir: v[2] };
    }
  } catch {
    // fall through
  }
  throw badCursor();
}

/**
 * A page of a session's messages in `order` (asc: oldest first, the reading order; desc: newest
 * first). `nextCursor` continues in that order, `prevCursor` goes back towards the start; both
 * are keyset positions on (created_at, id), so any depth costs the same.
 *
 * One statement: the page joined with the caller's session (the ownership check); only an empty
 * page asks again whether the session (or the sandbox) exists for the caller, to answer 404.
 */
export async function listMessages(
  ctx: ServiceContext,
  sessionId: string,
  q: { sandboxId?: string | undefined; limit: number; cursor?: string | undefined; order: "asc" | "desc" },
) {
  const cursor = q.cursor ? await orOwnership(() => decodeMessageCursor(q.cursor!), () => findSession(ctx, sessionId, q.sandboxId)) : undefined;
  // Walking forward in `order`, or backward (prev) against it.
  const forward = !cursor || cursor.dir === "next";
  const ascending = (q.order === "asc") === forward;
  const shape = `messages:${ascending ? "asc" : "desc"}${cursor ? "c" : ""}${q.sandboxId ? "s" : ""}`;
  const query = prepared(ctx.db, shape, () => {
    let after: SQL | undefined;
    if (cursor) {
      after = ascending
        ? sql`(${chatMessages.createdAt}, ${chatMessages.id}) > (${p("at")}::timestamptz, ${p("cid")})`
        : sql`(${chatMessages.createdAt}, ${chatMessages.id}) < (${p("at")}::timestamptz, ${p("cid")})`;
    }
    return ctx.db
      .select(messageColumns)
      .from(chatMessages)
      .innerJoin(chatSessions, eq(chatSessions.id, chatMessages.sessionId))
      .where(
        and(
          eq(chatSessions.id, p("sessionId")),
          eq(chatSessions.userId, p("userId")),
          q.sandboxId ? eq(chatSessions.sandboxId, p("sandboxId")) : undefined,
          isNull(chatSessions.purgedAt),
          eq(chatMessages.sessionId, p("sessionId")),
          eq(chatMessages.isStub, false),
          isNull(chatMessages.removedAt),
          after,
        ),
      )
      .orderBy(...(ascending ? [asc(chatMessages.createdAt), asc(chatMessages.id)] : [desc(chatMessages.createdAt), desc(chatMessages.id)]))
      .limit(p("limit"))
      .prepare(`chat_${shape.replace(/:/g, "_")}`);
  });
  const rows = (await query.execute({
    sessionId,
    userId: ctx.userId,
    sandboxId: q.sandboxId,
    // Any string Date parses, as before; the database sees it normalised.
    at: cursor ? new Date(cursor.at).toISOString() : undefined,
    cid: cursor?.id,
    limit: q.limit + 1,
  })) as MessageViewRow[];
  if (rows.length === 0) await findSession(ctx, sessionId, q.sandboxId);
  const more = rows.length > q.limit;
  const page = more ? rows.slice(0, q.limit) : rows;
  if (!forward) page.reverse();
  const first = page[0];
  const last = page[page.length - 1];
  const key = (r: typeof first, dir: "next" | "prev") => (r ? encodeMessageCursor({ at: r.createdAt.toISOString(), id: r.id, dir }) : null);
  return {
    data: page.map(messageView),
    nextCursor: forward ? (more ? key(last, "next") : null) : key(last, "next"),
    prevCursor: forward ? (cursor ? key(first, "prev") : null) : more ? key(first, "prev") : null,
  };
}

// ---- archive / purge ----

export async function archiveSession(ctx: ServiceContext, sessionId: string, sandboxId?: string) {
  const row = await findSession(ctx, sessionId, sandboxId);
  return ctx.db.transaction(async (tx) => {
    const [updated] = await tx
      .update(chatSessions)
      .set({ status: sql`case when ${chatSessions.status} = 'deleted' then 'deleted'::chat_session_status else 'archived'::chat_session_status end`, updatedAt: ctx.now() })
      .where(and(eq(chatSessions.id, row.id), eq(chatSessions.userId, ctx.userId)))
      .returning();
    await recordActivity(tx, ctx, { action: "chat_session.archive", entityType: "chat_session", entityId: row.id });
    return sessionView(updated!);
  });
}

/**
 * Deletes the session's messages and keeps the row as a tombstone (purged_at), so that the agent
 * re-sending the same session does not bring the conversation back.
 */
export async function purgeSession(ctx: ServiceContext, sessionId: string, sandboxId?: string) {
  const row = await findSession(ctx, sessionId, sandboxId);
  await ctx.db.transaction(async (tx) => {
    // The tombstone first: its row lock waits for a sync batch writing into the session to commit
    // (the delete below then sees that batch's messages), and a batch after it sees purged_at and
    // writes nothing. Deleting first let a concurrent batch's messages survive the purge.
    await tx
      .update(chatSessions)
      .set({
        purgedAt: ctx.now(),
        status: "deleted",
        title: "",
        messageCount: 0,
        userMessageCount: 0,
        assistantMessageCount: 0,
        updatedAt: ctx.now(),
      })
      .where(and(eq(chatSessions.id, row.id), eq(chatSessions.userId, ctx.userId)));
    await tx.delete(chatMessages).where(and(eq(chatMessages.sessionId, row.id), eq(chatMessages.userId, ctx.userId)));
    await recordActivity(tx, ctx, { action: "chat_session.purge", entityType: "chat_session", entityId: row.id });
  });
}

/** Deletes every chat of a sandbox (DELETE /sandboxes/:id without keepChats), inside the caller's transaction. */
export async function deleteSandboxChats(tx: ServiceContext["db"], userId: string, sandboxId: string) {
  await tx.delete(chatSessions).where(and(eq(chatSessions.sandboxId, sandboxId), eq(chatSessions.userId, userId)));
}

// ---- sync state ----

export async function getSyncState(ctx: ServiceContext, sandboxId: string) {
  const sandbox = await findOwned(ctx.db, ctx, sandboxId);
  const [state] = await ctx.db.select().from(chatSyncState).where(eq(chatSyncState.sandboxId, sandbox.id));
  return syncStateView(sandbox.id, state, sandbox.status);
}

// ---- search ----

type SearchCursor = { rank: number; id: string };

function decodeSearchCursor(cursor: string): SearchCursor {
  try {
    const v = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8")) as unknown;
    // ts_rank is a real in [0, 1]: a forged rank outside what a real holds, or an id with NUL,
    // would be a 500 from PostgreSQL instead of a 400.
    if (Array.isArray(v) && v.length === 2 && typeof v[0] === "number" && v[0] >= 0 && v[0] <= 1e6 &&
        typeof v[1] === "string" && v[1].length <= 256 && !v[1].includes("\u0000")) {
      return { rank: v[0], id: v[1] };
    }
  } catch {
    // fall through
  }
  throw badCursor();
}

// ts_headline marks matches with two control characters, removed from the message's text before
// it gets there (SNIPPET_MARKS), so every one in its output is a mark; the snippet is
// HTML-escaped first and the marks become <mark>…</mark> afterwards, so a message containing
// markup, or the mark characters themselves, can never inject markup into a page that renders it.
const START = "\u0001";
const STOP = "\u0002";
export const SNIPPET_MARKS = START + STOP;
const escapeHtml = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;").replace(/'/g, "&#39;");
/** `raw`: ts_headline's output over text without SNIPPET_MARKS. */
export function snippetHtml(raw: string): string {
  return escapeHtml(raw).replace(/\u0001/g, "<mark>").replace(/\u0002/g, "</mark>");
}

/**
 * How many of the newest matching messages are ranked. Ranking needs every candidate's score
 * before the best one is known; over all of a heavy user's matches for a frequent word (100,000
 * messages saying "error") that took seconds per request. Ranking the newest matches bounds the
 * work whatever the term, and recent conversations are what people search for.
 */
export const SEARCH_CANDIDATES = 1000;

/**
 * Full-text search over all the caller's messages: websearch syntax ("quoted phrases", -not,
 * or); the newest SEARCH_CANDIDATES matches ranked by ts_rank, with a highlighted snippet.
 * Pages are keyset on (rank, id).
 */
export async function searchMessages(ctx: ServiceContext, q: { q: string; limit: number; cursor?: string | undefined }) {
  const cursor = q.cursor ? decodeSearchCursor(q.cursor) : undefined;
  // The query is spelled out at each use instead of a shared CTE, and its plan is a custom one:
  // only a planner that sees the actual tsquery can tell a common word (walk the user's messages
  // newest first, stop at SEARCH_CANDIDATES matches) from a rare one (the GIN index). Through a
  // CTE, or with a generic plan, it guessed, took the GIN path for every word and ranked all
  // 125,000 matches of "error" for a user with a million messages (1.2 s instead of 35 ms).
  // Raw statements go out unnamed (postgres.js `unsafe` does not prepare them; PGlite neither), and
  // PostgreSQL plans an unnamed statement for the values it is bound to, so there is no generic
  // plan to avoid; the transaction with `set local plan_cache_mode` that used to guarantee it cost
  // three round trips per search. ts_rank runs on the candidates only.
  const tsq = sql`websearch_to_tsquery('simple', ${q.q})`;
  const rows = await queryRows<{
    id: string;
    session_id: string;
    sandbox_id: string | null;
    title: string;
    role: string;
    created_at: string | Date;
    rank: number;
    snippet: string;
  }>(
    ctx.db,
    sql`with candidates as materialized (
          select m.id, m.session_id, m.role, m.created_at
          from chat_messages m
          where m.user_id = ${ctx.userId} and m.search_vector @@ ${tsq} and not m.is_stub and m.removed_at is null
          order by m.created_at desc
          limit ${SEARCH_CANDIDATES}
        ),
        ranked as materialized (
          select c.*, ts_rank(m.search_vector, ${tsq}) as rank
          from candidates c join chat_messages m on m.id = c.id
        ),
        hits as (
          select r.* from ranked r
          ${cursor ? sql`where (r.rank, r.id) < (${cursor.rank}::real, ${cursor.id})` : sql``}
          order by r.rank desc, r.id desc
          limit ${q.limit + 1}
        )
        select h.id, h.session_id, s.sandbox_id, s.title, h.role::text as role, h.created_at, h.rank,
          ts_headline('simple', translate(left(m.text, 20000), ${SNIPPET_MARKS}, ''), ${tsq},
            'StartSel=${sql.raw(START)}, StopSel=${sql.raw(STOP)}, MaxWords=30, MinWords=12, MaxFragments=2, FragmentDelimiter=" … "') as snippet
        from hits h join chat_messages m on m.id = h.id join chat_sessions s on s.id = h.session_id
        where s.purged_at is null
        order by h.rank desc, h.id desc`,
  );
  const more = rows.length > q.limit;
  const page = more ? rows.slice(0, q.limit) : rows;
  const last = page[page.length - 1];
  return {
    data: page.map((r) => ({
      messageId: r.id,
      sessionId: r.session_id,
      sandboxId: r.sandbox_id,
      sessionTitle: r.title,
      role: r.role,
      createdAt: new Date(r.created_at).toISOString(),
      rank: Number(r.rank),
      snippet: snippetHtml(r.snippet),
    })),
    nextCursor: more && last ? Buffer.from(JSON.stringify([Number(last.rank), last.id])).toString("base64url") : null,
  };
}

// ---- usage ----

export async function usage(ctx: ServiceContext, q: { from: Date; to: Date }) {
  const rows = await queryRows<{
    provider: string;
    model: string;
    messages: number;
    input: string | number;
    output: string | number;
    reasoning: string | number;
    cache_read: string | number;
    cache_write: string | number;
    cost: string | number;
  }>(
    ctx.db,
    sql`select coalesce(model_provider, 'unknown') as provider, coalesce(model_id, 'unknown') as model,
          count(*)::int as messages, sum(input_tokens)::bigint as input, sum(output_tokens)::bigint as output,
          sum(reasoning_tokens)::bigint as reasoning, sum(cache_read_tokens)::bigint as cache_read,
          sum(cache_write_tokens)::bigint as cache_write, sum(cost)::numeric(16, 6) as cost
        from chat_messages
        where user_id = ${ctx.userId} and created_at >= ${ts(q.from)} and created_at < ${ts(q.to)}
          and role = 'assistant' and not is_stub
        group by 1, 2
        order by sum(cost) desc, 1, 2`,
  );
  const byModel = rows.map((r) => ({
    provider: r.provider,
    model: r.model,
    messages: Number(r.messages),
    inputTokens: Number(r.input),
    outputTokens: Number(r.output),
    reasoningTokens: Number(r.reasoning),
    cacheReadTokens: Number(r.cache_read),
    cacheWriteTokens: Number(r.cache_write),
    cost: Number(r.cost),
  }));
  const total = byModel.reduce(
    (t, r) => ({
      messages: t.messages + r.messages,
      inputTokens: t.inputTokens + r.inputTokens,
      outputTokens: t.outputTokens + r.outputTokens,
      reasoningTokens: t.reasoningTokens + r.reasoningTokens,
      cacheReadTokens: t.cacheReadTokens + r.cacheReadTokens,
      cacheWriteTokens: t.cacheWriteTokens + r.cacheWriteTokens,
      cost: Math.round((t.cost + r.cost) * 1e6) / 1e6,
    }),
    { messages: 0, inputTokens: 0, outputTokens: 0, reasoningTokens: 0, cacheReadTokens: 0, cacheWriteTokens: 0, cost: 0 },
  );
  return { from: q.from.toISOString(), to: q.to.toISOString(), total, byModel };
}
