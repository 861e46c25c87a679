import { sql } from "drizzle-orm";
import { queryRows, type Executor } from "../database/client";
import type { LegacySource } from "./source";

/** Session ids per statement (one JSON parameter each). */
const CHUNK = 5000;

/**
 * Chat session counters (message counts by role, token and cost totals, last message time) set
 * from the messages in Warren, never copied from the legacy session row: the legacy counters
 * count every copy of a duplicated message (quirk 7), which the import merges into one. The same
 * rules as Warren's own sync (src/services/chat/ingest.ts): counts are the session's visible
 * messages; token and cost totals never go below what Warren already had (they sum every message
 * ever received, and an earlier import or the agent's sync may have counted more).
 *
 * Runs after the messages, in the import's transaction, for every session the file names (its
 * sessions and its messages' sessions), set-based, a chunk of ids per statement. A session whose
 * counters already agree is not written: a re-run changes nothing. Returns the sessions written.
 */
export async function recountSessions(tx: Executor, source: LegacySource): Promise<number> {
  const ids = new Set<string>();
  if (source.has("chat_sessions")) for (const id of source.distinct("chat_sessions", "id")) ids.add(id);
  if (source.has("chat_messages")) for (const id of source.distinct("chat_messages", "session_id")) ids.add(id);
  const all = [...ids];
  let written = 0;
  for (let i = 0; i < all.length; i += CHUNK) {
    const json = JSON.stringify(all.slice(i, i + CHUNK));
    const [row] = await queryRows<{ n: number }>(
      tx,
      sql`with counted as (
            select x.id,
              count(m.id) filter (where not m.is_stub and m.removed_at is null)::int as n,
              count(m.id) filter (where not m.is_stub and m.removed_at is null and m.role = 'user')::int as u,
              count(m.id) filter (where not m.is_stub and m.removed_at is null and m.role = 'assistant')::int as a,
              coalesce(sum(m.input_tokens), 0)::bigint as input,
              coalesce(sum(m.output_tokens), 0)::bigint as output,
              coalesce(sum(m.cost), 0)::numeric as cost,
              max(m.created_at) filter (where not m.is_stub and m.removed_at is null) as last
            from json_array_elements_text(${json}::json) as x(id)
            left join chat_messages m on m.session_id = x.id
            group by x.id
          ), changed as (
            update chat_sessions s set
              message_count = c.n, user_message_count = c.u, assistant_message_count = c.a,
              total_input_tokens = greatest(s.total_input_tokens, c.input),
              total_output_tokens = greatest(s.total_output_tokens, c.output),
              total_cost = greatest(s.total_cost, c.cost),
              last_message_at = c.last
            from counted c
            where s.id = c.id
              and (s.message_count, s.user_message_count, s.assistant_message_count, s.total_input_tokens, s.total_output_tokens, s.total_cost, s.last_message_at)
                is distinct from (c.n, c.u, c.a, greatest(s.total_input_tokens, c.input), greatest(s.total_output_tokens, c.output), greatest(s.total_cost, c.cost), c.last)
            returning 1
          )
          select count(*)::int as n from changed`,
    );
    written += Number(row?.n ?? 0);
  }
  return written;
}
