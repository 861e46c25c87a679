/**
 * Fills activity_log of a migrated, already seeded PostgreSQL database (users and sandboxes from
 * bench/seed-sandboxes.ts or bench/seed-chat.ts) with a realistic activity history, fast (COPY):
 * issue 11's 1,000,000 entries, the heavy user's among them.
 *
 *   DATABASE_URL=postgres://… bun bench/seed-activity.ts [--help]
 *
 * bench/api.ts imports seedActivity() from here.
 */
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { parseArgs } from "node:util";
import postgres from "postgres";
import { typeid } from "typeid-js";
import { rng } from "./chat-text";

export const HELP = `Usage: DATABASE_URL=postgres://… bun bench/seed-activity.ts [options]

Seeds activity_log of a database whose users and sandboxes are already there (bench/seed-sandboxes.ts
or bench/seed-chat.ts), fast (COPY):

  - --entries entries in all, --heavy-entries of them for the heavy user (--heavy-email), the rest
    spread at random over the other users;
  - actions as the services record them: sandbox lifecycle entries (entity = one of the user's own
    sandboxes), sign-ins with an IP address and user agent, preference and credential changes,
    about 10% by the system (reconciler); spread over the past 89 days and interleaved in the
    table as months of writes by everyone would leave them: inside the default retention period
    (ACTIVITY_RETENTION_DAYS=90), as a running Warren keeps activity_log (older entries are moved
    to the archive), so the server's retention job finds nothing to move in the middle of a
    measurement;
  - no secret anywhere (metadata holds names and statuses only).

activity_log's secondary indexes are dropped for the COPY and rebuilt from their own definitions
(pg_indexes), then VACUUM ANALYZE.

Options:
  --entries N         entries in all (default 1000000)
  --heavy-entries N   the heavy user's (default 100000)
  --heavy-email E     (default heavy@bench.warren.test)
  --quiet             no progress output
  -h, --help          this help

Environment: DATABASE_URL (required).
`;

export type ActivitySeedOptions = { databaseUrl: string; entries: number; heavyEntries: number; heavyEmail: string; quiet: boolean };
export type ActivitySeedResult = { entries: number; heavyEntries: number; heavyUserId: string; seconds: number };

/**
 * Entries are this recent: a day inside the default retention period (90 days), so none expires
 * during a run. A year-long spread left ~75% expired, and the server's retention job moved them to
 * the archive from 60 s after it started: in the middle of bench:api's runs.
 */
const SPREAD_MS = 89 * 24 * 3600 * 1000;
const SANDBOX_ACTIONS = ["sandbox.create", "sandbox.start", "sandbox.stop", "sandbox.running", "sandbox.stopped", "sandbox.update", "sandbox.restart"];
const USER_ACTIONS = ["auth.sign_in", "auth.sign_in", "auth.sign_in", "preferences.update", "agent_config.update", "credential.set", "auth.sign_out"];
const SYSTEM_ACTIONS = ["sandbox.reconciled", "sandbox.stopped", "sandbox.failed"];
const AGENTS = [
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
  "Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0",
  "warren-cli/1.4.0 (linux; x64)",
  "Warren Desktop/2.1.3 (darwin; arm64)",
];

function cell(v: string | number | boolean | null): string {
  if (v === null) return "\\N";
  if (typeof v !== "string") return String(v);
  return v.replace(/[\\\t\n\r]/g, (c) => (c === "\\" ? "\\\\" : c === "\t" ? "\\t" : c === "\n" ? "\\n" : "\\r"));
}

export async function seedActivity(o: ActivitySeedOptions): Promise<ActivitySeedResult> {
  if (!Number.isInteger(o.entries) || o.entries < 0) throw new Error("--entries must be a whole number ≥ 0");
  if (!Number.isInteger(o.heavyEntries) || o.heavyEntries < 0 || o.heavyEntries > o.entries) throw new Error("--heavy-entries must be between 0 and --entries");
  const say = (msg: string) => o.quiet || process.stderr.write(`${msg}\n`);
  const tty = process.stderr.isTTY;
  let lastShown = 0;
  const show = (done: number) => {
    if (o.quiet) return;
    const text = `  activity_log: ${done.toLocaleString("en")}/${o.entries.toLocaleString("en")}`;
    if (tty) process.stderr.write(`\r${text}${done >= o.entries ? "\n" : ""}`);
    else if (done >= o.entries || Date.now() - lastShown > 3000) {
      lastShown = Date.now();
      process.stderr.write(`${text}\n`);
    }
  };
  const started = performance.now();
  const random = rng(11);
  const pick = <T>(list: readonly T[]) => list[Math.floor(random() * list.length)]!;
  const sql = postgres(o.databaseUrl, { max: 2, onnotice: () => {} });
  try {
    const [heavy] = await sql<{ id: string }[]>`select id from users where email = ${o.heavyEmail}`;
    if (!heavy) throw new Error(`no user ${o.heavyEmail}: seed users first (bench/seed-sandboxes.ts)`);
    const users = (await sql<{ id: string }[]>`select id from users where id <> ${heavy.id} order by id`).map((r) => r.id);
    if (users.length === 0 && o.heavyEntries < o.entries) throw new Error("only the heavy user exists: --heavy-entries must equal --entries");
    const boxes = new Map<string, string[]>();
    for (const r of await sql<{ id: string; user_id: string }[]>`select id, user_id from sandboxes`) {
      const list = boxes.get(r.user_id);
      if (list) list.push(r.id);
      else boxes.set(r.user_id, [r.id]);
    }
    const dropped = await sql<{ indexname: string; indexdef: string }[]>`
      select indexname, indexdef from pg_indexes
      where schemaname = 'public' and tablename = 'activity_log'
        and indexname not in (select conname from pg_constraint where conrelid = 'activity_log'::regclass)`;
    say(`seeding ${o.entries.toLocaleString("en")} activity entries (${o.heavyEntries.toLocaleString("en")} for ${o.heavyEmail})`);

    // The heavy user's entries sit at random places among everyone else's.
    const heavyShare = o.entries ? o.heavyEntries / o.entries : 0;
    let heavyLeft = o.heavyEntries;
    const now = Date.now();
    function entry(i: number): string {
      const left = o.entries - i;
      const isHeavy = heavyLeft > 0 && (heavyLeft >= left || random() < heavyShare);
      if (isHeavy) heavyLeft--;
      const userId = isHeavy ? heavy!.id : pick(users);
      const own = boxes.get(userId);
      const system = own !== undefined && random() < 0.1;
      const onSandbox = own !== undefined && (system || random() < 0.6);
      const action = system ? pick(SYSTEM_ACTIONS) : onSandbox ? pick(SANDBOX_ACTIONS) : pick(USER_ACTIONS);
      const sandboxId = onSandbox ? pick(own!) : null;
      const created = new Date(now - random() * SPREAD_MS).toISOString();
      const signIn = action.startsWith("auth.");
      const metadata =
        action === "sandbox.create" ? { name: `${pick(["api", "web", "docs", "ml", "bot"])}-${Math.floor(random() * 1000)}`, tier: "starter" }
        : action === "sandbox.failed" ? { error: "container exited with code 137" }
        : action === "preferences.update" ? { fields: ["themeMode"] }
        : action === "credential.set" ? { provider: pick(["anthropic", "openai"]) }
        : {};
      return [
        typeid("act").toString(),
        userId,
        system ? "system" : "user",
        action,
        sandboxId ? "sandbox" : action === "credential.set" ? "credential" : null,
        sandboxId,
        system ? "reconciler" : null,
        system ? null : typeid("req").toString(),
        signIn ? `10.${Math.floor(random() * 256)}.${Math.floor(random() * 256)}.${Math.floor(random() * 256)}` : null,
        signIn ? pick(AGENTS) : null,
        JSON.stringify(metadata),
        false,
        created,
      ]
        .map(cell)
        .join("\t") + "\n";
    }

    await sql.begin(async (tx) => {
      await tx`set local session_replication_role = replica`; // user ids are known to exist: no FK triggers
      for (const d of dropped) await tx.unsafe(`drop index ${d.indexname}`);
      const columns = ["id", "user_id", "actor_type", "action", "entity_type", "entity_id", "reason", "request_id", "ip_address", "user_agent", "metadata", "anonymized", "created_at"];
      const writable = await tx.unsafe(`copy activity_log (${columns.map((c) => `"${c}"`).join(", ")}) from stdin`).writable();
      async function* chunks() {
        for (let start = 0; start < o.entries; start += 5000) {
          const end = Math.min(o.entries, start + 5000);
          let text = "";
          for (let i = start; i < end; i++) text += entry(i);
          show(end);
          yield text;
        }
      }
      await pipeline(Readable.from(chunks()), writable);
    });
    for (const d of dropped) {
      say(`  rebuilding ${d.indexname} …`);
      await sql.unsafe(d.indexdef);
    }
    say(`  vacuum analyze activity_log …`);
    await sql`vacuum analyze activity_log`;
    return { entries: o.entries, heavyEntries: o.heavyEntries, heavyUserId: heavy.id, seconds: Math.round((performance.now() - started) / 100) / 10 };
  } finally {
    await sql.end({ timeout: 5 });
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      entries: { type: "string", default: "1000000" },
      "heavy-entries": { type: "string", default: "100000" },
      "heavy-email": { type: "string", default: "heavy@bench.warren.test" },
      quiet: { type: "boolean", default: false },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    process.exit(0);
  }
  const databaseUrl = process.env.DATABASE_URL;
  if (!databaseUrl) {
    console.error("seed-activity: DATABASE_URL is not set (see --help)");
    process.exit(2);
  }
  try {
    const r = await seedActivity({
      databaseUrl,
      entries: Number(values.entries),
      heavyEntries: Number(values["heavy-entries"]),
      heavyEmail: values["heavy-email"]!,
      quiet: values.quiet!,
    });
    console.log(JSON.stringify(r));
  } catch (err) {
    console.error(`seed-activity: ${(err as Error).message}`);
    process.exit(1);
  }
}
