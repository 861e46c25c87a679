/**
 * Sync ingest rate (issue 7, "Performance": at least 5,000 events/s into PostgreSQL): OpenCode
 * event streams, byte for byte what `GET /event` sends (server-sent events), go through the same
 * path as src/services/chat/sync-manager.ts — eventsource-parser, JSON.parse, the synced-type
 * filter, addEvent into a change set, a flush every 500 events — into the real
 * applyChanges (src/services/chat/ingest.ts) on a postgres.js pool of 10, several sandboxes at
 * once, each sandbox's batches one after the other as the sync manager serialises them.
 *
 *   DATABASE_URL=postgres://… bun bench/chat-ingest.ts [--help]
 *
 * bench/chat.ts calls benchIngest() on its seeded database, after the HTTP runs.
 */
import { parseArgs } from "node:util";
import { createParser } from "eventsource-parser";
import postgres from "postgres";
import { openPostgres } from "../src/database/client";
import { applyChanges } from "../src/services/chat/ingest";
import { addEvent, emptyChangeSet, parseSyncedEvent, SYNCED_EVENT_TYPES, type ChangeSet } from "../src/services/chat/opencode-events";
import { messageText, rng } from "./chat-text";
import { databaseUrlFromEnv, numberOption } from "./lib/processes";

export const HELP = `Usage: DATABASE_URL=postgres://… bun bench/chat-ingest.ts [options]

Feeds generated OpenCode event streams through Warren's sync ingest (the sync manager's parse and
batch path, then src/services/chat/ingest.ts applyChanges) into the database and reports events/s.
The database must be migrated and hold sandboxes (e.g. seeded by bench/seed-chat.ts or
bench/seed-sandboxes.ts); the streams are written into new sessions of existing sandboxes.

A stream, per sandbox, for each session: session.created, then per turn the user's message
(message.updated + its text part), the assistant's message (message.updated while streaming, a
step-start part, its text part updated --growth times with text growing to ~1–2 kB, interleaved
message.part.delta events that the reader skips unparsed as the real one does, a tool part going
pending → running → completed in one of three turns, a step-finish part, message.updated with
tokens and cost when done), session.updated with the title; then 10% of the stream replayed (a
reconnect). Events/s counts only the events that reach the ingest (synced types), duplicates
included; deltas are read but not counted.

Options:
  --sandboxes N   streams written at once, one per sandbox (default 4)
  --sessions N    sessions per stream (default 10)
  --turns N       turns per session (default 25)
  --growth N      updates of each streamed text part (default 8)
  --batch N       events per transaction, as the sync manager's batchSize (default 500)
  --quiet         no progress output
  -h, --help      this help

Environment: DATABASE_URL (required).
`;

export type IngestOptions = { databaseUrl: string; sandboxes: number; sessions: number; turns: number; growth: number; batch: number; quiet: boolean };
export type IngestReport = {
  streams: number;
  events: number;
  /** Delta events read and skipped (not counted in `events`). */
  skippedDeltas: number;
  batches: number;
  seconds: number;
  eventsPerSecond: number;
  batchMs: { p50: number; p99: number; max: number };
  rows: { sessions: number; messages: number; parts: number };
  /** Stored message count equals the distinct messages sent: duplicates converged. */
  converged: boolean;
};

/** One sandbox's stream as SSE text, and how many events of each kind it holds. */
export function openCodeStream(seed: number, o: { sessions: number; turns: number; growth: number }, run = "r") {
  const random = rng(seed);
  const frames: string[] = [];
  let synced = 0;
  let deltas = 0;
  let messages = 0;
  let evt = 0;
  // The run is in every id, so that a second run on the same database writes new rows.
  const tag = `${run}${seed.toString(36)}`;
  const emit = (type: string, properties: unknown) => {
    frames.push(`id: evt_${tag}_${++evt}\ndata: ${JSON.stringify({ id: `evt_${tag}_${evt}`, type, properties })}\n\n`);
    if (SYNCED_EVENT_TYPES.has(type)) synced++;
    else deltas++;
  };
  let clock = 1_790_000_000_000 + seed * 1_000_000;
  for (let s = 0; s < o.sessions; s++) {
    const ses = `ses_bench${tag}x${s}`;
    const info = (title: string, updated: number) => ({
      id: ses, slug: "s", projectID: "global", directory: "/home/workspace", title, version: "1.18.33", time: { created: clock, updated },
    });
    const created = clock;
    emit("session.created", { sessionID: ses, info: { ...info("New session", created), time: { created, updated: created } } });
    for (let t = 0; t < o.turns; t++) {
      clock += 20_000;
      const user = `msg_${tag}${s}u${t}`;
      const model = { providerID: "anthropic", modelID: "claude-sonnet-4-20250514" };
      emit("message.updated", { sessionID: ses, info: { id: user, sessionID: ses, role: "user", time: { created: clock }, agent: "build", model } });
      emit("message.part.updated", { sessionID: ses, part: { id: `prt_${user}a`, sessionID: ses, messageID: user, type: "text", text: messageText(random, "user") }, time: clock });
      messages++;
      const asst = `msg_${tag}${s}a${t}`;
      const start = clock + 50;
      const asstInfo = (done: boolean, input: number, output: number) => ({
        id: asst, sessionID: ses, parentID: user, role: "assistant", mode: "build", agent: "build",
        path: { cwd: "/home/workspace", root: "/" }, cost: 0,
        tokens: { input, output, reasoning: 0, cache: { read: Math.floor(input / 2), write: 0 } },
        modelID: model.modelID, providerID: model.providerID,
        time: done ? { created: start, completed: start + 9_000 } : { created: start },
        ...(done ? { finish: "stop" } : {}),
      });
      emit("message.updated", { sessionID: ses, info: asstInfo(false, 0, 0) });
      messages++;
      emit("message.part.updated", { sessionID: ses, part: { id: `prt_${asst}s`, sessionID: ses, messageID: asst, type: "step-start" }, time: start });
      const full = `${messageText(random, "assistant")} ${messageText(random, "assistant")} ${messageText(random, "assistant")}`;
      const textPart = (text: string, end?: number) => ({
        id: `prt_${asst}t`, sessionID: ses, messageID: asst, type: "text", text, time: { start, ...(end ? { end } : {}) },
      });
      for (let g = 1; g <= o.growth; g++) {
        const upTo = Math.floor((full.length * g) / o.growth);
        emit("message.part.delta", { sessionID: ses, messageID: asst, partID: `prt_${asst}t`, field: "text", delta: full.slice(0, 12) });
        emit("message.part.delta", { sessionID: ses, messageID: asst, partID: `prt_${asst}t`, field: "text", delta: full.slice(12, 30) });
        emit("message.part.updated", { sessionID: ses, part: textPart(full.slice(0, upTo), g === o.growth ? start + 8_000 : undefined), time: start });
      }
      if (t % 3 === 0) {
        const tool = (status: string, extra: object) => ({
          id: `prt_${asst}b`, sessionID: ses, messageID: asst, type: "tool", tool: "bash", callID: `call_${asst}`,
          state: { status, input: { command: "bun test tests/unit" }, ...extra },
        });
        emit("message.part.updated", { sessionID: ses, part: tool("pending", {}), time: start });
        emit("message.part.updated", { sessionID: ses, part: tool("running", { time: { start } }), time: start });
        emit("message.part.updated", { sessionID: ses, part: tool("completed", { output: "42 pass\n0 fail\n", title: "bun test", time: { start, end: start + 3_000 } }), time: start });
      }
      emit("message.part.updated", {
        sessionID: ses,
        part: { id: `prt_${asst}f`, sessionID: ses, messageID: asst, type: "step-finish", reason: "stop", cost: 0, tokens: { input: 4000 + t, output: 300 + t, reasoning: 0, cache: { read: 0, write: 0 } } },
        time: start,
      });
      emit("message.updated", { sessionID: ses, info: asstInfo(true, 4000 + t, 300 + t) });
    }
    emit("session.updated", { sessionID: ses, info: info(`Bench session ${s}`, clock + 1_000) });
  }
  // A reconnect: the agent replays the last 10% of the stream.
  const replay = frames.slice(Math.floor(frames.length * 0.9));
  for (const f of replay) {
    frames.push(f);
    if (f.includes('"type":"message.part.delta"')) deltas++;
    else synced++;
  }
  return { sse: frames.join(""), synced, deltas, messages };
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

export async function benchIngest(o: IngestOptions): Promise<IngestReport> {
  const say = (msg: string) => o.quiet || process.stderr.write(`${msg}\n`);
  const admin = postgres(o.databaseUrl, { max: 1, onnotice: () => {} });
  const database = openPostgres(o.databaseUrl, 10);
  try {
    // Sandboxes of one user, as the sync writes for the sandboxes of many.
    const boxes = await admin<{ id: string }[]>`select id from sandboxes where status <> 'deleting' order by md5(id) limit ${o.sandboxes}`;
    if (boxes.length < o.sandboxes) throw new Error(`needs ${o.sandboxes} sandboxes in the database, found ${boxes.length}`);
    const run = Date.now().toString(36);
    const streams = boxes.map((b, i) => ({ sandboxId: b.id, ...openCodeStream(1000 + i, o, run) }));
    const totalSynced = streams.reduce((a, s) => a + s.synced, 0);
    say(`ingest: ${streams.length} streams, ${totalSynced.toLocaleString("en")} synced events (+ ${streams.reduce((a, s) => a + s.deltas, 0).toLocaleString("en")} deltas), batches of ${o.batch}`);
    const batchMs: number[] = [];
    let ingested = 0;
    const tty = process.stderr.isTTY && !o.quiet;
    const started = performance.now();
    await Promise.all(
      streams.map(async (stream) => {
        // The sync manager's reader: SSE frames → JSON → type filter → change set → flush.
        const ready: ChangeSet[] = [];
        let queue = emptyChangeSet();
        const parser = createParser({
          onEvent: (event) => {
            const parsed = parseSyncedEvent(event.data);
            if (parsed === null) return;
            addEvent(queue, parsed);
            if (queue.events >= o.batch) {
              ready.push(queue);
              queue = emptyChangeSet();
            }
          },
        });
        // Fed in 64 kB chunks as a socket delivers them; each full batch is written before reading on.
        for (let i = 0; i < stream.sse.length || ready.length || queue.events; i += 65_536) {
          if (i < stream.sse.length) parser.feed(stream.sse.slice(i, i + 65_536));
          else if (queue.events) {
            ready.push(queue);
            queue = emptyChangeSet();
          }
          while (ready.length) {
            const set = ready.shift()!;
            const t = performance.now();
            const r = await applyChanges(database.db, stream.sandboxId, set, { now: new Date(), receivedAt: new Date() });
            if (!r.applied) throw new Error(`sandbox ${stream.sandboxId} refused the batch`);
            batchMs.push(performance.now() - t);
            ingested += set.events;
            if (tty) process.stderr.write(`\r  ingested ${ingested.toLocaleString("en")}/${totalSynced.toLocaleString("en")} events`);
          }
        }
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    if (tty) process.stderr.write("\n");
    const ids = streams.map((s) => s.sandboxId);
    const [rows] = await admin<{ sessions: number; messages: number; parts: number }[]>`
      select (select count(*)::int from chat_sessions where sandbox_id = any(${ids}) and external_session_id like ${`ses_bench${run}%`}) as sessions,
             (select count(*)::int from chat_messages m join chat_sessions s on s.id = m.session_id
               where s.sandbox_id = any(${ids}) and s.external_session_id like ${`ses_bench${run}%`}) as messages,
             (select count(*)::int from chat_message_parts p join chat_messages m on m.id = p.message_id join chat_sessions s on s.id = m.session_id
               where s.sandbox_id = any(${ids}) and s.external_session_id like ${`ses_bench${run}%`}) as parts`;
    const sorted = [...batchMs].sort((a, b) => a - b);
    const round = (n: number) => Math.round(n * 10) / 10;
    const expectedMessages = streams.reduce((a, s) => a + s.messages, 0);
    return {
      streams: streams.length,
      events: ingested,
      skippedDeltas: streams.reduce((a, s) => a + s.deltas, 0),
      batches: batchMs.length,
      seconds: Math.round(seconds * 100) / 100,
      eventsPerSecond: Math.round(ingested / seconds),
      batchMs: { p50: round(percentile(sorted, 50)), p99: round(percentile(sorted, 99)), max: round(sorted[sorted.length - 1] ?? 0) },
      rows: rows!,
      converged: rows!.messages === expectedMessages,
    };
  } finally {
    await database.close();
    await admin.end({ timeout: 2 });
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      sandboxes: { type: "string", default: "4" },
      sessions: { type: "string", default: "10" },
      turns: { type: "string", default: "25" },
      growth: { type: "string", default: "8" },
      batch: { type: "string", default: "500" },
      quiet: { type: "boolean", default: false },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    process.exit(0);
  }
  const int = (name: string, v: string) => numberOption("chat-ingest", name, v, 1);
  const databaseUrl = databaseUrlFromEnv("chat-ingest");
  try {
    const report = await benchIngest({
      databaseUrl,
      sandboxes: int("sandboxes", values.sandboxes!),
      sessions: int("sessions", values.sessions!),
      turns: int("turns", values.turns!),
      growth: int("growth", values.growth!),
      batch: int("batch", values.batch!),
      quiet: values.quiet!,
    });
    console.log(JSON.stringify(report));
  } catch (err) {
    console.error(`chat-ingest: ${(err as Error).stack ?? err}`);
    process.exit(1);
  }
}
