import { sql } from "drizzle-orm";
import { queryRows, type Executor } from "../database/client";
import type { LegacySource } from "./source";
import { INTERRUPTED_MESSAGE } from "./tables";
import { QUIET_NOTES } from "./convert";
import { withBatch, type ConvertEnv, type TableSpec } from "./writer";

/** Messages per round (one SQLite query and one UPDATE each). */
const CHUNK = 2000;
const MARKER = `'${INTERRUPTED_MESSAGE.replaceAll("'", "''")}'`;

// Only a row still exactly as an earlier import left it: interrupted, not removed, same session.
const UPDATE = `update chat_messages t set
    content = s.content, tool_calls = s.tool_calls, tool_results = s.tool_results, thinking = s.thinking, text = s.text,
    model_provider = coalesce(s.model_provider, t.model_provider), model_id = coalesce(s.model_id, t.model_id),
    agent_id = coalesce(s.agent_id, t.agent_id),
    input_tokens = greatest(t.input_tokens, s.input_tokens), output_tokens = greatest(t.output_tokens, s.output_tokens),
    status = s.status::chat_message_status, error_message = s.error_message, completed_at = s.completed_at,
    updated_at = greatest(t.updated_at, coalesce(s.completed_at, s.created_at))
  from SRC
  where t.id = s.id and t.session_id = s.session_id and t.status = 'cancelled' and t.error_message = ${MARKER}
    and t.removed_at is null
  returning t.id`;

/**
 * Assistant replies an earlier import found still streaming were stored cancelled, with what had
 * arrived and INTERRUPTED_MESSAGE (tables.ts): no agent would ever finish them. When this file
 * holds such a message finished (a snapshot taken after the legacy system completed it), the
 * finished version replaces it: its full text and parts, status, completion time, and token counts
 * that never go down. Messages removed in Warren since are left alone, and so is anything Warren
 * changed (the match is on the exact state the import left).
 *
 * Runs after the chat_messages table, before the session counters are recounted, in the import's
 * transaction; costs one indexed query when Warren holds no interrupted message. Returns how many
 * were finished (reported as `updated` instead of already present).
 */
export async function finishInterruptedMessages(tx: Executor, source: LegacySource, spec: TableSpec, env: ConvertEnv): Promise<number> {
  let finished = 0;
  let after = "";
  for (;;) {
    const waiting = await queryRows<{ id: string }>(
      tx,
      sql`select id from chat_messages
          where status = 'cancelled' and error_message = ${INTERRUPTED_MESSAGE} and removed_at is null and id > ${after}
          order by id limit ${CHUNK}`,
    );
    if (waiting.length === 0) return finished;
    after = waiting.at(-1)!.id;
    const rows: string[] = [];
    for (const row of source.rowsWhereIn(spec.table, "id", waiting.map((w) => w.id))) {
      if (String(row.status) === "streaming") continue; // still unfinished in this file too
      const out = await spec.convert(row, QUIET_NOTES, env);
      if (!("skip" in out && typeof out.skip === "string")) rows.push(JSON.stringify(out));
    }
    if (rows.length > 0) finished += (await queryRows(tx, withBatch(UPDATE, spec.recordset, `[${rows.join(",")}]`))).length;
  }
}
