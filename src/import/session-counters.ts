import { sql } from "drizzle-orm";
import { queryRows, type Executor } from "../database/client";
import { recountSessions } from "../services/chat/session-counters";
import type { LegacySource } from "./source";

/** Session ids per statement (one bind parameter each, well under PostgreSQL's 65,535). */
const CHUNK = 5000;

/**
 * Chat session counters (message counts by role, token and cost totals, last message time) set
 * from the messages in Warren, never copied from the legacy session row: the legacy counters
 * count every copy of a duplicated message (quirk 7), which the import merges into one. The same
 * statement as Warren's own sync (src/services/chat/session-counters.ts): totals never go below
 * what Warren already had.
 *
 * Runs after the messages, in the import's transaction, for every session the file names (its
 * sessions and its messages' sessions), set-based, a chunk of ids per statement. A session whose
 * counters already agree is not written: a re-run changes nothing. A purged session is a
 * tombstone the import adds nothing to (tables.ts): left exactly as the purge left it. Returns the
 * sessions written.
 */
export async function recountImportedSessions(tx: Executor, source: LegacySource): Promise<number> {
  const ids = new Set<string>();
  if (source.has("chat_sessions")) for (const id of source.distinct("chat_sessions", "id")) ids.add(id);
  if (source.has("chat_messages")) for (const id of source.distinct("chat_messages", "session_id")) ids.add(id);
  const all = [...ids];
  let written = 0;
  for (let i = 0; i < all.length; i += CHUNK) {
    const live = await queryRows<{ id: string }>(
      tx,
      sql`select x.id from json_array_elements_text(${JSON.stringify(all.slice(i, i + CHUNK))}::json) as x(id)
          where not exists (select 1 from chat_sessions s where s.id = x.id and s.purged_at is not null)`,
    );
    written += await recountSessions(
      tx,
      live.map((r) => r.id),
    );
  }
  return written;
}
