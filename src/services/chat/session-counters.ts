import { sql } from "drizzle-orm";
import { queryRows, type Executor } from "../../database/client";

/**
 * Sets chat sessions' counters from their messages: counts by role and the last message time
 * from the visible ones (not stubs, not removed); token and cost totals from every message ever
 * received, removed ones too, and never below what the session already holds (a sum that only
 * grows: an earlier sync or import may have counted more). One set-based statement for `ids`
 * (the agent sync passes the sessions a batch touched, the legacy import a chunk of the file's
 * sessions); a session whose counters already agree is not written. Returns the sessions written.
 */
export async function recountSessions(tx: Executor, ids: string[]): Promise<number> {
  if (ids.length === 0) return 0;
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
          from unnest(array[${sql.join(ids.map((id) => sql`${id}`), sql`, `)}]::text[]) as x(id)
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
  return Number(row?.n ?? 0);
}
