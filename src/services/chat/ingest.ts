import { sql, type SQL } from "drizzle-orm";
import { queryRows, ts, type Db, type Executor } from "../../database/client";
import { newId } from "../../lib/ids";
import type { ChangeSet, MessageChange, PartChange, SessionChange } from "./opencode-events";
import { recountSessions } from "./session-counters";

/**
 * Writes a batch of changes from one sandbox's agent in one transaction. Every write is an
 * idempotent upsert whose merge is order-independent, so replayed, duplicated and out-of-order
 * events converge to the same rows:
 * - a session's title comes from its newest version (the agent's time.updated); deleted and
 *   archived are sticky;
 * - a message's token counts and cost only grow (GREATEST), its status only moves forward
 *   (streaming → complete → cancelled/error), its completion time is kept once known;
 * - a part's newer version (see partRevision) is never overwritten by an older one;
 * - a part that arrives before its message hangs on a stub message that counts nothing until
 *   the message itself arrives.
 * - a removed message stays as a tombstone (removed_at): hidden from readers and from the
 *   session's message counts, never revived by a late update, created ahead of the message if
 *   the removal arrives first; its tokens and cost still count (they were spent).
 * Per-session counts and totals are recomputed from the rows (never incremented): the totals
 * sum every message ever received, removed ones included, so they never go backwards and a
 * removal never hides the tokens of messages that come after it.
 */

export type Authoritative = {
  /** The complete list of the session's messages and their parts, as the agent returned it. */
  sessionExternalId: string;
  messages: Array<{ externalId: string; partIds: string[] }>;
  /**
   * When the list was requested. Rows written after it (by the event stream, meanwhile) are newer
   * than the list and are not removed for being absent from it.
   */
  asOf: Date;
};

export type IngestResult = { applied: boolean; sessions: number; messages: number; parts: number };

/** Rows per statement: well under PostgreSQL's 65,535 parameters for the widest row. */
const CHUNK = 500;

const tsn = (d: Date | null): SQL => (d ? ts(d) : sql`null::timestamptz`);
/** A text[] literal built from parameters ('' keeps it typed when the list is empty). */
const textArray = (values: string[]): SQL => sql`array[${sql.join([sql`''`, ...values.map((v) => sql`${v}`)], sql`, `)}]::text[]`;
const chunks = <T>(rows: T[]): T[][] => {
  const out: T[][] = [];
  for (let i = 0; i < rows.length; i += CHUNK) out.push(rows.slice(i, i + CHUNK));
  return out;
};

const MESSAGE_STATUS_RANK = { streaming: 0, complete: 1, cancelled: 2, error: 3 } as const;

function mergeSession(a: SessionChange, b: SessionChange): SessionChange {
  const newer = (b.updatedAt?.getTime() ?? -1) >= (a.updatedAt?.getTime() ?? -1) ? b : a;
  const created = [a.createdAt, b.createdAt].filter((d): d is Date => d !== null);
  return {
    ...newer,
    createdAt: created.length ? new Date(Math.min(...created.map((d) => d.getTime()))) : null,
    deleted: a.deleted || b.deleted,
    archived: a.archived || b.archived,
  };
}

function mergeMessage(a: MessageChange, b: MessageChange): MessageChange {
  return {
    ...b,
    createdAt: a.createdAt < b.createdAt ? a.createdAt : b.createdAt,
    completedAt: a.completedAt ?? b.completedAt,
    status: MESSAGE_STATUS_RANK[b.status] >= MESSAGE_STATUS_RANK[a.status] ? b.status : a.status,
    errorMessage: b.errorMessage ?? a.errorMessage,
    modelProvider: b.modelProvider ?? a.modelProvider,
    modelId: b.modelId ?? a.modelId,
    agentId: b.agentId ?? a.agentId,
    inputTokens: Math.max(a.inputTokens, b.inputTokens),
    outputTokens: Math.max(a.outputTokens, b.outputTokens),
    reasoningTokens: Math.max(a.reasoningTokens, b.reasoningTokens),
    cacheReadTokens: Math.max(a.cacheReadTokens, b.cacheReadTokens),
    cacheWriteTokens: Math.max(a.cacheWriteTokens, b.cacheWriteTokens),
    agentCost: Math.max(a.agentCost, b.agentCost),
  };
}

type Price = { input: number | null; output: number | null; cacheRead: number | null };

async function pricesFor(tx: Executor, messages: MessageChange[]): Promise<Map<string, Price>> {
  const pairs = new Map<string, [string, string]>();
  for (const m of messages) if (m.modelProvider && m.modelId) pairs.set(`${m.modelProvider}\u0000${m.modelId}`, [m.modelProvider, m.modelId]);
  const out = new Map<string, Price>();
  if (pairs.size === 0) return out;
  const rows = await queryRows<{ provider_id: string; id: string; input_price: string | null; output_price: string | null; cache_read_price: string | null }>(
    tx,
    sql`select provider_id, id, input_price, output_price, cache_read_price from provider_models
        where (provider_id, id) in (${sql.join([...pairs.values()].map(([p, m]) => sql`(${p}, ${m})`), sql`, `)})`,
  );
  const n = (v: string | number | null) => (v === null ? null : Number(v));
  for (const r of rows) out.set(`${r.provider_id}\u0000${r.id}`, { input: n(r.input_price), output: n(r.output_price), cacheRead: n(r.cache_read_price) });
  return out;
}

/** USD from the provider catalog's prices (per million tokens); the agent's own figure otherwise. */
export function messageCost(m: MessageChange, price: Price | undefined): number {
  if (!price || (price.input === null && price.output === null)) return round6(m.agentCost);
  const cost =
    (m.inputTokens * (price.input ?? 0) + m.outputTokens * (price.output ?? 0) + m.cacheReadTokens * (price.cacheRead ?? price.input ?? 0)) / 1e6;
  return round6(cost);
}
const round6 = (v: number) => Math.round(v * 1e6) / 1e6;

export async function applyChanges(
  db: Db,
  sandboxId: string,
  set: ChangeSet,
  opts: { now: Date; receivedAt?: Date; authoritative?: Authoritative[] },
): Promise<IngestResult> {
  const now = opts.now;
  return db.transaction(async (tx) => {
    // The sandbox row is read under a share lock: a delete request (FOR UPDATE) waits for this
    // batch, and a batch after it sees "deleting" and writes nothing (no chats resurrected).
    const [sandbox] = await queryRows<{ user_id: string; status: string }>(
      tx,
      sql`select user_id, status from sandboxes where id = ${sandboxId} for share`,
    );
    if (!sandbox || sandbox.status === "deleting") return { applied: false, sessions: 0, messages: 0, parts: 0 };
    const userId = sandbox.user_id;

    // ---- sessions (with stubs for sessions only referenced so far) ----
    const sessions = new Map<string, SessionChange>();
    for (const s of set.sessions) {
      const prev = sessions.get(s.externalId);
      sessions.set(s.externalId, prev ? mergeSession(prev, s) : s);
    }
    const firstSeen = new Map<string, Date>();
    const reference = (id: string, at: Date | null) => {
      const prev = firstSeen.get(id);
      const when = at ?? now;
      if (!prev || when < prev) firstSeen.set(id, when);
    };
    for (const m of set.messages) reference(m.sessionExternalId, m.createdAt);
    for (const p of set.parts) reference(p.sessionExternalId, p.at);
    for (const r of set.removedMessages) reference(r.sessionExternalId, null);
    for (const r of set.removedParts) reference(r.sessionExternalId, null);
    for (const a of opts.authoritative ?? []) reference(a.sessionExternalId, null);
    for (const [id, at] of firstSeen) {
      if (!sessions.has(id)) sessions.set(id, { externalId: id, title: null, updatedAt: null, createdAt: at, deleted: false, archived: false });
    }

    const sessionIds = new Map<string, string>();
    for (const rows of chunks([...sessions.values()])) {
      const values = rows.map(
        (s) =>
          sql`(${newId("chatSession")}, ${userId}, ${sandboxId}, 'opencode'::chat_source, ${s.externalId}, ${s.title ?? ""},
               ${s.deleted ? "deleted" : s.archived ? "archived" : "active"}::chat_session_status, ${tsn(s.updatedAt)},
               ${ts(s.createdAt ?? now)}, ${ts(now)}, ${ts(now)})`,
      );
      const returned = await queryRows<{ id: string; external_session_id: string; purged_at: unknown }>(
        tx,
        sql`insert into chat_sessions as s (id, user_id, sandbox_id, source, external_session_id, title, status,
              external_updated_at, created_at, updated_at, last_synced_at)
            values ${sql.join(values, sql`, `)}
            on conflict (sandbox_id, source, external_session_id) where external_session_id is not null do update set
              title = case when excluded.external_updated_at is not null
                            and excluded.external_updated_at >= coalesce(s.external_updated_at, '-infinity'::timestamptz)
                           then excluded.title else s.title end,
              external_updated_at = greatest(s.external_updated_at, excluded.external_updated_at),
              status = case when s.status = 'deleted' or excluded.status = 'deleted' then 'deleted'::chat_session_status
                            when s.status = 'archived' or excluded.status = 'archived' then 'archived'::chat_session_status
                            else 'active'::chat_session_status end,
              created_at = least(s.created_at, excluded.created_at),
              updated_at = excluded.updated_at,
              last_synced_at = excluded.last_synced_at
            returning id, external_session_id, purged_at`,
      );
      // A purged session is a tombstone: nothing more is written into it.
      for (const r of returned) if (r.purged_at === null) sessionIds.set(r.external_session_id, r.id);
    }

    // ---- messages (with stubs for parts whose message has not arrived) ----
    type MessageRow = MessageChange & { stub: boolean };
    const messages = new Map<string, MessageRow>();
    const messageKey = (session: string, message: string) => `${session}\u0000${message}`;
    for (const m of set.messages) {
      if (!sessionIds.has(m.sessionExternalId)) continue;
      const key = messageKey(m.sessionExternalId, m.externalId);
      const prev = messages.get(key);
      messages.set(key, prev && !prev.stub ? { ...mergeMessage(prev, m), stub: false } : { ...m, stub: false });
    }
    const parts = new Map<string, PartChange>();
    for (const p of set.parts) {
      if (!sessionIds.has(p.sessionExternalId)) continue;
      const key = messageKey(p.sessionExternalId, p.messageExternalId);
      if (!messages.has(key)) {
        messages.set(key, {
          sessionExternalId: p.sessionExternalId,
          externalId: p.messageExternalId,
          role: "assistant",
          createdAt: p.at ?? now,
          completedAt: null,
          status: "streaming",
          errorMessage: null,
          modelProvider: null,
          modelId: null,
          agentId: null,
          inputTokens: 0,
          outputTokens: 0,
          reasoningTokens: 0,
          cacheReadTokens: 0,
          cacheWriteTokens: 0,
          agentCost: 0,
          stub: true,
        });
      }
      const pkey = `${key}\u0000${p.externalId}`;
      const prev = parts.get(pkey);
      if (!prev || p.revision >= prev.revision) parts.set(pkey, p);
    }

    const sessionExternal = new Map([...sessionIds].map(([ext, id]) => [id, ext]));
    const prices = await pricesFor(tx, [...messages.values()].filter((m) => !m.stub));
    const messageIds = new Map<string, string>();
    const touchedMessages = new Set<string>();
    for (const rows of chunks([...messages.values()])) {
      const values = rows.map((m) => {
        const cost = m.stub ? 0 : messageCost(m, prices.get(`${m.modelProvider}\u0000${m.modelId}`));
        return sql`(${newId("chatMessage")}, ${sessionIds.get(m.sessionExternalId)!}, ${userId}, ${m.externalId}, ${m.role}::chat_role,
                   ${m.status}::chat_message_status, ${m.modelProvider}, ${m.modelId}, ${m.agentId}, ${m.inputTokens}::int, ${m.outputTokens}::int,
                   ${m.reasoningTokens}::int, ${m.cacheReadTokens}::int, ${m.cacheWriteTokens}::int, ${cost}::numeric, ${ts(m.createdAt)},
                   ${tsn(m.completedAt)}, ${m.errorMessage}, ${m.stub}::boolean, ${ts(now)})`;
      });
      const returned = await queryRows<{ id: string; session_id: string; external_message_id: string }>(
        tx,
        sql`insert into chat_messages as m (id, session_id, user_id, external_message_id, role, status, model_provider, model_id,
              agent_id, input_tokens, output_tokens, reasoning_tokens, cache_read_tokens, cache_write_tokens, cost, created_at,
              completed_at, error_message, is_stub, updated_at)
            values ${sql.join(values, sql`, `)}
            on conflict (session_id, external_message_id) where external_message_id is not null do update set
              role = case when excluded.is_stub then m.role else excluded.role end,
              created_at = case when excluded.is_stub then m.created_at
                                when m.is_stub then excluded.created_at
                                else least(m.created_at, excluded.created_at) end,
              is_stub = m.is_stub and excluded.is_stub,
              status = case when array_position(array['streaming','complete','cancelled','error']::chat_message_status[], excluded.status)
                               > array_position(array['streaming','complete','cancelled','error']::chat_message_status[], m.status)
                            then excluded.status else m.status end,
              model_provider = coalesce(excluded.model_provider, m.model_provider),
              model_id = coalesce(excluded.model_id, m.model_id),
              agent_id = coalesce(excluded.agent_id, m.agent_id),
              input_tokens = greatest(m.input_tokens, excluded.input_tokens),
              output_tokens = greatest(m.output_tokens, excluded.output_tokens),
              reasoning_tokens = greatest(m.reasoning_tokens, excluded.reasoning_tokens),
              cache_read_tokens = greatest(m.cache_read_tokens, excluded.cache_read_tokens),
              cache_write_tokens = greatest(m.cache_write_tokens, excluded.cache_write_tokens),
              cost = greatest(m.cost, excluded.cost),
              completed_at = coalesce(m.completed_at, excluded.completed_at),
              error_message = coalesce(excluded.error_message, m.error_message),
              updated_at = excluded.updated_at
            returning id, session_id, external_message_id`,
      );
      for (const r of returned) {
        const ext = sessionExternal.get(r.session_id);
        if (ext) messageIds.set(messageKey(ext, r.external_message_id), r.id);
        touchedMessages.add(r.id);
      }
    }

    // ---- parts ----
    for (const rows of chunks([...parts.values()])) {
      const values = rows.map(
        (p) =>
          sql`(${newId("chatPart")}, ${messageIds.get(messageKey(p.sessionExternalId, p.messageExternalId))!}, ${p.externalId}, ${p.type},
               ${JSON.stringify(p.content)}::jsonb, ${p.revision}::bigint, ${ts(p.at ?? now)}, ${ts(now)})`,
      );
      await tx.execute(
        sql`insert into chat_message_parts as p (id, message_id, external_part_id, type, content, revision, created_at, updated_at)
            values ${sql.join(values, sql`, `)}
            on conflict (message_id, external_part_id) do update set
              type = excluded.type, content = excluded.content, revision = excluded.revision, updated_at = excluded.updated_at
            where excluded.revision >= p.revision`,
      );
    }

    // ---- removals (after the upserts: an update then a removal in one batch ends removed) ----
    const touchedSessions = new Set(sessionIds.values());
    for (const r of set.removedParts) {
      const sid = sessionIds.get(r.sessionExternalId);
      if (!sid) continue;
      const rows = await queryRows<{ message_id: string }>(
        tx,
        sql`delete from chat_message_parts p using chat_messages m
            where p.message_id = m.id and m.session_id = ${sid} and m.external_message_id = ${r.messageExternalId}
              and p.external_part_id = ${r.partExternalId}
            returning p.message_id`,
      );
      for (const row of rows) touchedMessages.add(row.message_id);
    }
    // A removal marks the message (creating a stub tombstone when the removal comes first), so
    // that events in any order end the same: removed, and its spent tokens still counted.
    const removals = new Map<string, { sid: string; ext: string }>();
    for (const r of set.removedMessages) {
      const sid = sessionIds.get(r.sessionExternalId);
      if (sid) removals.set(messageKey(r.sessionExternalId, r.messageExternalId), { sid, ext: r.messageExternalId });
    }
    for (const rows of chunks([...removals.values()])) {
      await tx.execute(
        sql`insert into chat_messages as m (id, session_id, user_id, external_message_id, role, status, is_stub, removed_at, created_at, updated_at)
            values ${sql.join(
              rows.map((r) => sql`(${newId("chatMessage")}, ${r.sid}, ${userId}, ${r.ext}, 'assistant'::chat_role, 'streaming'::chat_message_status,
                                   true, ${ts(now)}, ${ts(now)}, ${ts(now)})`),
              sql`, `,
            )}
            on conflict (session_id, external_message_id) where external_message_id is not null do update set
              removed_at = coalesce(m.removed_at, excluded.removed_at), updated_at = excluded.updated_at
            where m.removed_at is null`,
      );
    }
    for (const a of opts.authoritative ?? []) {
      const sid = sessionIds.get(a.sessionExternalId);
      if (!sid) continue;
      const keep = a.messages.map((m) => m.externalId);
      // Only rows older than the list: a message the stream wrote while the list was being
      // fetched is not in it and must not be removed (it would stay removed: tombstones are final).
      await tx.execute(
        sql`update chat_messages set removed_at = ${ts(now)}, updated_at = ${ts(now)}
            where session_id = ${sid} and external_message_id is not null and removed_at is null
              and updated_at < ${ts(a.asOf)} and not (external_message_id = any(${textArray(keep)}))`,
      );
      for (const m of a.messages) {
        const mid = messageIds.get(messageKey(a.sessionExternalId, m.externalId));
        if (!mid) continue;
        const rows = await queryRows<{ message_id: string }>(
          tx,
          sql`delete from chat_message_parts where message_id = ${mid} and updated_at < ${ts(a.asOf)}
              and not (external_part_id = any(${textArray(m.partIds)}))
              returning message_id`,
        );
        if (rows.length) touchedMessages.add(mid);
      }
    }

    // ---- derived columns: the message's text and parts, then the session's figures ----
    for (const ids of chunks([...touchedMessages])) {
      const idList = sql.join(ids.map((id) => sql`${id}`), sql`, `);
      await tx.execute(
        sql`update chat_messages m set
              content = coalesce(a.content, '[]'::jsonb),
              text = coalesce(a.text, ''),
              tool_calls = a.tools,
              thinking = a.thinking
            from (
              select x.id, agg.content, agg.text, agg.tools, agg.thinking
              from unnest(array[${idList}]::text[]) as x(id)
              left join (
                select message_id,
                  jsonb_agg(content order by external_part_id) as content,
                  string_agg(content->>'text', E'\n\n' order by external_part_id)
                    filter (where type = 'text' and coalesce(content->>'synthetic', 'false') <> 'true') as text,
                  jsonb_agg(content order by external_part_id) filter (where type = 'tool') as tools,
                  jsonb_agg(content order by external_part_id) filter (where type = 'reasoning') as thinking
                from chat_message_parts where message_id in (${idList}) group by message_id
              ) agg on agg.message_id = x.id
            ) a
            where m.id = a.id
              -- Replayed and duplicate events change nothing: no new row version, no index entries.
              and (m.content is distinct from coalesce(a.content, '[]'::jsonb) or m.text is distinct from coalesce(a.text, '')
                   or m.tool_calls is distinct from a.tools or m.thinking is distinct from a.thinking)`,
      );
    }
    for (const ids of chunks([...touchedSessions])) await recountSessions(tx, ids);

    // ---- sync state ----
    const lag = opts.receivedAt ? Math.max(0, Date.now() - opts.receivedAt.getTime()) : null;
    await tx.execute(
      sql`insert into chat_sync_state (sandbox_id, events_ingested, last_event_at, last_event_id, lag_ms, updated_at)
          values (${sandboxId}, ${set.events}, ${set.events > 0 ? ts(now) : sql`null`}, ${set.lastEventId}, ${lag}, ${ts(now)})
          on conflict (sandbox_id) do update set
            events_ingested = chat_sync_state.events_ingested + excluded.events_ingested,
            last_event_at = coalesce(excluded.last_event_at, chat_sync_state.last_event_at),
            last_event_id = coalesce(excluded.last_event_id, chat_sync_state.last_event_id),
            lag_ms = coalesce(excluded.lag_ms, chat_sync_state.lag_ms),
            updated_at = excluded.updated_at`,
    );
    return { applied: true, sessions: sessionIds.size, messages: messages.size, parts: parts.size };
  });
}
