/**
 * Fills a migrated PostgreSQL database with chat history for the chat benchmark (issue 7,
 * "Performance"): users and sandboxes through bench/seed-sandboxes.ts, then chat sessions and
 * messages with COPY — a heavy user with 1,000,000 messages across 1,000 sessions among other
 * users' conversations.
 *
 *   DATABASE_URL=postgres://… bun bench/seed-chat.ts [--help]
 *
 * bench/chat.ts imports seedChat() from here.
 */
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { parseArgs } from "node:util";
import postgres from "postgres";
import { typeid } from "typeid-js";
import { identifier, messageText, rng } from "./chat-text";
import { seedSandboxes, type SeedResult } from "./seed-sandboxes";
import { databaseUrlFromEnv, numberOption } from "./lib/processes";

export const HELP = `Usage: DATABASE_URL=postgres://… bun bench/seed-chat.ts [options]

Seeds a PostgreSQL database that Warren's migrations have already been applied to
(bun run db:migrate) with a chat-history population, fast (COPY):

  - users and sandboxes as bench/seed-sandboxes.ts makes them (every user signs in with
    --password; the heavy user is --heavy-email);
  - --heavy-sessions chat sessions for the heavy user with --heavy-messages messages in all
    (evenly spread), 10% of the sessions in one sandbox (the "main" sandbox, for the per-sandbox
    session list), the rest spread over the user's other sandboxes;
  - --other-sessions sessions with --other-messages messages for other users, at random;
  - messages alternate user / assistant, with text whose word frequencies are those of
    programming chat (bench/chat-text.ts), OpenCode-shaped parts in \`content\`, token counts
    and costs on the assistant's; a session's messages are interleaved in the table with those
    of 200 other sessions, as live sync writes them (a page of 50 reads ~50 heap pages, as it
    would in production);
  - the per-session figures (counts, tokens, cost, last message) computed from the rows.

chat_messages' secondary indexes are dropped for the COPY and rebuilt afterwards from their own
definitions (pg_indexes), then VACUUM ANALYZE. 1,000,000 messages take about two minutes here.

Options:
  --users N            users in total (default 10000)
  --sandboxes N        sandboxes in total (default 100000)
  --heavy N            sandboxes of the heavy user (default 1000)
  --heavy-sessions N   (default 1000)
  --heavy-messages N   (default 1000000)
  --other-sessions N   (default 4000)
  --other-messages N   (default 200000)
  --heavy-email E      (default heavy@bench.warren.test)
  --password P         (default "bench password 1234")
  --quiet              no progress output
  -h, --help           this help

Environment: DATABASE_URL (required).
`;

export type ChatSeedOptions = {
  databaseUrl: string;
  users: number;
  sandboxes: number;
  heavy: number;
  heavySessions: number;
  heavyMessages: number;
  otherSessions: number;
  otherMessages: number;
  heavyEmail: string;
  password: string;
  quiet: boolean;
};

export type ChatSeedResult = SeedResult & {
  /** The heavy user's sandbox holding 10% of its sessions. */
  mainSandboxId: string;
  mainSandboxSessions: number;
  heavySessions: number;
  heavyMessages: number;
  otherSessions: number;
  otherMessages: number;
  chatSeconds: number;
  /** An identifier that occurs in the corpus (for a rare-term search). */
  rareIdentifier: string;
};

const YEAR_MS = 365 * 24 * 3600 * 1000;
const INTERLEAVE = 200;
const MODELS = [
  { provider: "anthropic", model: "claude-sonnet-4-20250514", input: 3, output: 15 },
  { provider: "openai", model: "gpt-4.1", input: 2, output: 8 },
  { provider: "anthropic", model: "claude-3-5-haiku-20241022", input: 0.8, output: 4 },
];

function cell(v: string | number | boolean | null): string {
  if (v === null) return "\\N";
  if (typeof v !== "string") return String(v);
  return v.replace(/[\\\t\n\r]/g, (c) => (c === "\\" ? "\\\\" : c === "\t" ? "\\t" : c === "\n" ? "\\n" : "\\r"));
}
const line = (cells: (string | number | boolean | null)[]) => cells.map(cell).join("\t") + "\n";

function progress(quiet: boolean) {
  const tty = process.stderr.isTTY;
  let last = 0;
  return (label: string, done: number, total: number) => {
    if (quiet) return;
    const text = `  ${label}: ${done.toLocaleString("en")}/${total.toLocaleString("en")}`;
    if (tty) process.stderr.write(`\r${text}${done >= total ? "\n" : ""}`);
    else if (done >= total || Date.now() - last > 3000) {
      last = Date.now();
      process.stderr.write(`${text}\n`);
    }
  };
}

async function copyFrom(sql: postgres.TransactionSql, table: string, columns: string[], source: AsyncIterable<string> | Iterable<string>) {
  const writable = await sql.unsafe(`copy ${table} (${columns.map((c) => `"${c}"`).join(", ")}) from stdin`).writable();
  await pipeline(Readable.from(source), writable);
}

type SessionPlan = { id: string; userId: string; sandboxId: string; external: string; start: number; messages: number; model: (typeof MODELS)[number] };

export async function seedChat(o: ChatSeedOptions): Promise<ChatSeedResult> {
  const say = (msg: string) => o.quiet || process.stderr.write(`${msg}\n`);
  const show = progress(o.quiet);
  if (o.heavySessions < 1 || o.heavyMessages < o.heavySessions) throw new Error("--heavy-messages must be at least --heavy-sessions (≥ 1)");
  if (o.otherSessions > 0 && o.users < 2) throw new Error("--other-sessions needs at least 2 users");
  const base = await seedSandboxes({
    databaseUrl: o.databaseUrl,
    users: o.users,
    sandboxes: o.sandboxes,
    heavy: o.heavy,
    heavyEmail: o.heavyEmail,
    password: o.password,
    replace: false,
    quiet: o.quiet,
  });
  const started = performance.now();
  const random = rng(7);
  const sql = postgres(o.databaseUrl, { max: 2, onnotice: () => {} });
  try {
    const heavyBoxes = (await sql<{ id: string }[]>`select id from sandboxes where user_id = ${base.heavyUserId} order by id`).map((r) => r.id);
    const otherBoxes = o.otherSessions > 0 ? await sql<{ id: string; user_id: string }[]>`select id, user_id from sandboxes where user_id <> ${base.heavyUserId}` : [];
    if (heavyBoxes.length === 0) throw new Error("the heavy user has no sandbox (--heavy must be ≥ 1)");
    const mainSandboxId = heavyBoxes[0]!;
    const now = Date.now();

    // ---- plan the sessions
    const plans: SessionPlan[] = [];
    const perHeavy = Math.floor(o.heavyMessages / o.heavySessions);
    const mainCount = Math.max(1, Math.round(o.heavySessions / 10));
    for (let i = 0; i < o.heavySessions; i++) {
      const sandboxId = i < mainCount || heavyBoxes.length === 1 ? mainSandboxId : heavyBoxes[1 + Math.floor(random() * (heavyBoxes.length - 1))]!;
      plans.push({
        id: typeid("chs").toString(),
        userId: base.heavyUserId,
        sandboxId,
        external: `ses_${(i + 1).toString(16).padStart(8, "0")}heavy`,
        start: now - random() * YEAR_MS,
        messages: perHeavy + (i < o.heavyMessages - perHeavy * o.heavySessions ? 1 : 0),
        model: MODELS[i % MODELS.length]!,
      });
    }
    const perOther = o.otherSessions > 0 ? Math.floor(o.otherMessages / o.otherSessions) : 0;
    for (let i = 0; i < o.otherSessions; i++) {
      const box = otherBoxes[Math.floor(random() * otherBoxes.length)]!;
      plans.push({
        id: typeid("chs").toString(),
        userId: box.user_id,
        sandboxId: box.id,
        external: `ses_${(i + 1).toString(16).padStart(8, "0")}other`,
        start: now - random() * YEAR_MS,
        messages: perOther + (i < o.otherMessages - perOther * o.otherSessions ? 1 : 0),
        model: MODELS[(i * 7) % MODELS.length]!,
      });
    }
    // Sessions of every user are written at the same time, as live sync does.
    for (let i = plans.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [plans[i], plans[j]] = [plans[j]!, plans[i]!];
    }
    const totalMessages = plans.reduce((a, p) => a + p.messages, 0);
    say(`seeding ${plans.length.toLocaleString("en")} chat sessions, ${totalMessages.toLocaleString("en")} messages (${o.heavyMessages.toLocaleString("en")} for ${o.heavyEmail})`);

    const dropped = await sql<{ indexname: string; indexdef: string }[]>`
      select indexname, indexdef from pg_indexes
      where schemaname = 'public' and tablename = 'chat_messages'
        and indexname not in (select conname from pg_constraint where conrelid = 'chat_messages'::regclass)`;

    await sql.begin(async (tx) => {
      // Foreign keys are known to hold (sessions are written first): skip their per-row triggers.
      await tx`set local session_replication_role = replica`;
      await copyFrom(
        tx,
        "chat_sessions",
        ["id", "user_id", "sandbox_id", "source", "external_session_id", "title", "status", "created_at", "updated_at", "last_synced_at", "external_updated_at"],
        plans.map((p) => {
          const at = new Date(p.start).toISOString();
          const words = messageText(random, "user").split(" ").slice(0, 6).join(" ").replace(/[?.]$/, "");
          return line([p.id, p.userId, p.sandboxId, "opencode", p.external, words, random() < 0.05 ? "archived" : "active", at, at, at, at]);
        }),
      );
      for (const d of dropped) await tx.unsafe(`drop index ${d.indexname}`);

      let done = 0;
      async function* messages() {
        for (let g = 0; g < plans.length; g += INTERLEAVE) {
          const group = plans.slice(g, g + INTERLEAVE);
          const clocks = group.map((p) => p.start);
          const rounds = Math.max(...group.map((p) => p.messages));
          for (let r = 0; r < rounds; r++) {
            let chunk = "";
            for (let k = 0; k < group.length; k++) {
              const p = group[k]!;
              if (r >= p.messages) continue;
              clocks[k]! += 5_000 + random() * 115_000;
              const created = clocks[k]!;
              const role = r % 2 === 0 ? "user" : "assistant";
              const text = messageText(random, role);
              const msgExt = `msg_${p.external.slice(4, 12)}${r.toString(16).padStart(6, "0")}`;
              const completed = role === "assistant" ? created + 500 + random() * 20_000 : null;
              const partTime = { start: Math.round(created), ...(completed ? { end: Math.round(completed) } : {}) };
              const parts: unknown[] = [{ id: `prt_${msgExt.slice(4)}a`, type: "text", text, messageID: msgExt, sessionID: p.external, time: partTime }];
              let tools: unknown[] | null = null;
              if (role === "assistant" && random() < 0.3) {
                const tool = {
                  id: `prt_${msgExt.slice(4)}b`,
                  type: "tool",
                  tool: "bash",
                  callID: `call_${msgExt.slice(4)}`,
                  messageID: msgExt,
                  sessionID: p.external,
                  state: { status: "completed", input: { command: `bun test tests/${identifier(random)}.test.ts` }, output: `${Math.floor(random() * 40)} pass\n0 fail`, title: "bun test" },
                };
                parts.push(tool);
                tools = [tool];
              }
              const input = role === "assistant" ? 1_000 + Math.floor(random() * 30_000) : 0;
              const output = role === "assistant" ? 50 + Math.floor(random() * 2_000) : 0;
              const cacheRead = role === "assistant" ? Math.floor(input * random() * 0.8) : 0;
              const cost = role === "assistant" ? Math.round(((input * p.model.input + output * p.model.output) / 1e6) * 1e6) / 1e6 : 0;
              chunk += line([
                typeid("chm").toString(), p.id, p.userId, msgExt, role, JSON.stringify(parts), tools ? JSON.stringify(tools) : null, text,
                p.model.provider, p.model.model, "build", input, output, 0, cacheRead, 0, false, cost, "complete",
                new Date(created).toISOString(), completed ? new Date(completed).toISOString() : null, new Date(completed ?? created).toISOString(),
              ]);
              done++;
            }
            show("messages", done, totalMessages);
            yield chunk;
          }
        }
      }
      await copyFrom(
        tx,
        "chat_messages",
        [
          "id", "session_id", "user_id", "external_message_id", "role", "content", "tool_calls", "text", "model_provider", "model_id", "agent_id",
          "input_tokens", "output_tokens", "reasoning_tokens", "cache_read_tokens", "cache_write_tokens", "is_stub", "cost", "status",
          "created_at", "completed_at", "updated_at",
        ],
        messages(),
      );
    });

    say(`rebuilding chat_messages' ${dropped.length} secondary indexes …`);
    await sql`set maintenance_work_mem = '512MB'`;
    for (const d of dropped) {
      const t = performance.now();
      await sql.unsafe(d.indexdef);
      say(`  ${d.indexname} (${((performance.now() - t) / 1000).toFixed(1)} s)`);
    }

    say("per-session figures from the rows …");
    await sql`
      update chat_sessions s set
        message_count = a.n, user_message_count = a.u, assistant_message_count = a.a,
        total_input_tokens = a.input, total_output_tokens = a.output, total_cost = a.cost,
        last_message_at = a.last, updated_at = a.last, last_synced_at = a.last
      from (
        select session_id, count(*)::int as n, count(*) filter (where role = 'user')::int as u,
          count(*) filter (where role = 'assistant')::int as a, sum(input_tokens)::bigint as input,
          sum(output_tokens)::bigint as output, sum(cost) as cost, max(created_at) as last
        from chat_messages group by session_id
      ) a
      where s.id = a.session_id`;

    say("VACUUM ANALYZE …");
    for (const t of ["chat_sessions", "chat_messages"]) await sql.unsafe(`vacuum analyze ${t}`);
    const [rare] = await sql<{ w: string }[]>`
      select w from (select unnest(regexp_matches(text, '[a-z]+[A-Z][a-z]+V[0-9]+')) as w from chat_messages
                     where user_id = ${base.heavyUserId} limit 1) x`;
    const chatSeconds = (performance.now() - started) / 1000;
    say(`chat seeded in ${chatSeconds.toFixed(1)} s`);
    return {
      ...base,
      mainSandboxId,
      mainSandboxSessions: plans.filter((p) => p.sandboxId === mainSandboxId).length,
      heavySessions: o.heavySessions,
      heavyMessages: o.heavyMessages,
      otherSessions: o.otherSessions,
      otherMessages: o.otherSessions > 0 ? o.otherMessages : 0,
      chatSeconds,
      rareIdentifier: rare?.w ?? "invoiceHandlerV1",
    };
  } finally {
    await sql.end({ timeout: 5 });
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      users: { type: "string", default: "10000" },
      sandboxes: { type: "string", default: "100000" },
      heavy: { type: "string", default: "1000" },
      "heavy-sessions": { type: "string", default: "1000" },
      "heavy-messages": { type: "string", default: "1000000" },
      "other-sessions": { type: "string", default: "4000" },
      "other-messages": { type: "string", default: "200000" },
      "heavy-email": { type: "string", default: "heavy@bench.warren.test" },
      password: { type: "string", default: "bench password 1234" },
      quiet: { type: "boolean", default: false },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    process.exit(0);
  }
  const int = (name: string, v: string) => numberOption("seed-chat", name, v, 0);
  const databaseUrl = databaseUrlFromEnv("seed-chat");
  try {
    const result = await seedChat({
      databaseUrl,
      users: int("users", values.users!),
      sandboxes: int("sandboxes", values.sandboxes!),
      heavy: int("heavy", values.heavy!),
      heavySessions: int("heavy-sessions", values["heavy-sessions"]!),
      heavyMessages: int("heavy-messages", values["heavy-messages"]!),
      otherSessions: int("other-sessions", values["other-sessions"]!),
      otherMessages: int("other-messages", values["other-messages"]!),
      heavyEmail: values["heavy-email"]!,
      password: values.password!,
      quiet: values.quiet!,
    });
    console.log(JSON.stringify(result));
  } catch (err) {
    console.error(`seed-chat: ${(err as Error).message}`);
    process.exit(1);
  }
}
