/**
 * Fills a migrated PostgreSQL database with users and sandboxes for the sandbox benchmarks
 * (issue 4, "Performance"). Uses COPY, so 100,000 sandboxes take seconds, not minutes.
 *
 *   DATABASE_URL=postgres://… bun bench/seed-sandboxes.ts --users 10000 --sandboxes 100000 --heavy 1000
 *
 * Run `bun bench/seed-sandboxes.ts --help` for every option. bench/sandboxes.ts imports
 * seedSandboxes() from here.
 */
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { parseArgs } from "node:util";
import { hashPassword } from "better-auth/crypto";
import postgres from "postgres";
import { typeid } from "typeid-js";
import { databaseUrlFromEnv, numberOption } from "./lib/processes";

export const HELP = `Usage: DATABASE_URL=postgres://… bun bench/seed-sandboxes.ts [options]

Seeds a PostgreSQL database that Warren's migrations have already been applied to
(bun run db:migrate) with benchmark users and sandboxes, fast (COPY):

  - --users users (one of them the heavy user), each with a credential account whose password is
    --password (hashed once with Better Auth's own hasher, so every user can sign in);
  - --sandboxes sandboxes in total, --heavy of them owned by the heavy user (--heavy-email), the
    rest spread at random over the other users; statuses stopped or error (never a status the
    reconciler would act on), created over the past year;
  - about a third of the sandboxes get one or two add-ons (sandbox_addons).

Then VACUUM ANALYZE, so the planner sees the real table sizes.

Options:
  --users N           users in total, heavy user included (default 1000)
  --sandboxes N       sandboxes in total, heavy user's included (default 10000)
  --heavy N           sandboxes of the heavy user (default 1000)
  --heavy-email E     the heavy user's email (default heavy@bench.warren.test)
  --password P        every seeded user's password (default "bench password 1234")
  --replace           first delete users seeded earlier (emails @bench.warren.test) and their rows
  --quiet             no progress output
  -h, --help          this help

Environment: DATABASE_URL (required).
`;

export type SeedOptions = {
  databaseUrl: string;
  users: number;
  sandboxes: number;
  heavy: number;
  heavyEmail: string;
  password: string;
  replace: boolean;
  quiet: boolean;
};

export type SeedResult = {
  heavyUserId: string;
  heavyEmail: string;
  password: string;
  users: number;
  sandboxes: number;
  heavySandboxes: number;
  sandboxAddons: number;
  seconds: number;
};

const DOMAIN = "bench.warren.test";
const TIERS = ["micro", "starter", "starter", "starter", "builder", "creator", "power"];
const FLAVORS = ["bare", "js", "python", "rust", "fullstack", "fullstack"];
const IMAGES: Record<string, string> = {
  bare: "warren/sandbox-bare:latest",
  js: "warren/sandbox-js:latest",
  python: "warren/sandbox-python:latest",
  rust: "warren/sandbox-rust:latest",
  fullstack: "warren/sandbox-fullstack:latest",
};
const ADDONS = ["code-server", "databases", "cloud", "gui"];
const WORDS = ["api", "web", "docs", "infra", "ml", "bot", "cli", "etl", "game", "shop", "blog", "chat"];
const YEAR_MS = 365 * 24 * 3600 * 1000;

/** COPY text format: backslash, tab, newline and carriage return escaped; null as \N. */
function cell(v: string | number | boolean | null): string {
  if (v === null) return "\\N";
  if (typeof v !== "string") return String(v);
  return v.replace(/[\\\t\n\r]/g, (c) => (c === "\\" ? "\\\\" : c === "\t" ? "\\t" : c === "\n" ? "\\n" : "\\r"));
}
const row = (cells: (string | number | boolean | null)[]) => cells.map(cell).join("\t") + "\n";

function progress(quiet: boolean) {
  const tty = process.stderr.isTTY;
  let lastLine = 0;
  return (label: string, done: number, total: number) => {
    if (quiet) return;
    const line = `  ${label}: ${done.toLocaleString("en")}/${total.toLocaleString("en")}`;
    if (tty) {
      process.stderr.write(`\r${line}${done >= total ? "\n" : ""}`);
    } else if (done >= total || Date.now() - lastLine > 2000) {
      lastLine = Date.now();
      process.stderr.write(`${line}\n`);
    }
  };
}

/** Streams generated rows into `copy table (cols) from stdin`, in chunks of `chunk` rows. */
async function copyRows(
  sql: postgres.Sql | postgres.TransactionSql,
  table: string,
  columns: string[],
  total: number,
  make: (i: number) => string,
  report: (done: number) => void,
  chunk = 5000,
) {
  const writable = await sql.unsafe(`copy ${table} (${columns.map((c) => `"${c}"`).join(", ")}) from stdin`).writable();
  async function* chunks() {
    for (let start = 0; start < total; start += chunk) {
      let text = "";
      const end = Math.min(total, start + chunk);
      for (let i = start; i < end; i++) text += make(i);
      report(end);
      yield text;
    }
  }
  await pipeline(Readable.from(chunks()), writable);
}

/** A small deterministic PRNG (mulberry32), so two runs seed the same shape. */
function rng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export async function seedSandboxes(o: SeedOptions): Promise<SeedResult> {
  if (o.users < 1) throw new Error("--users must be at least 1");
  if (o.heavy > o.sandboxes) throw new Error("--heavy cannot exceed --sandboxes");
  if (o.users === 1 && o.heavy !== o.sandboxes) throw new Error("with one user, --heavy must equal --sandboxes");
  const started = performance.now();
  const say = (msg: string) => o.quiet || process.stderr.write(`${msg}\n`);
  const show = progress(o.quiet);
  const random = rng(42);
  const pick = <T>(list: T[]) => list[Math.floor(random() * list.length)]!;
  const sql = postgres(o.databaseUrl, { max: 2, onnotice: () => {} });
  try {
    const [{ exists } = { exists: false }] = await sql<{ exists: boolean }[]>`select to_regclass('public.sandboxes') is not null as exists`;
    if (!exists) throw new Error("table sandboxes not found: apply Warren's migrations first (bun run db:migrate)");
    if (o.replace) {
      say("deleting users seeded earlier …");
      await sql`delete from users where email like ${"%@" + DOMAIN} or email = ${o.heavyEmail}`;
    }

    say(`hashing the password once (Better Auth's scrypt) …`);
    const hash = await hashPassword(o.password);

    const now = Date.now();
    const userIds: string[] = [];
    for (let i = 0; i < o.users; i++) userIds.push(typeid("usr").toString());
    const heavyUserId = userIds[0]!;
    const userCreated = userIds.map(() => new Date(now - YEAR_MS - random() * YEAR_MS).toISOString());

    say(`seeding ${o.users.toLocaleString("en")} users, ${o.sandboxes.toLocaleString("en")} sandboxes (${o.heavy.toLocaleString("en")} for ${o.heavyEmail})`);
    await sql.begin(async (tx) => {
      await copyRows(
        tx,
        "users",
        ["id", "name", "email", "email_verified", "created_at", "updated_at"],
        o.users,
        (i) =>
          row([
            userIds[i]!,
            i === 0 ? "Heavy Bench User" : `Bench User ${i}`,
            i === 0 ? o.heavyEmail : `user-${i}@${DOMAIN}`,
            true,
            userCreated[i]!,
            userCreated[i]!,
          ]),
        (n) => show("users", n, o.users),
      );
      await copyRows(
        tx,
        "accounts",
        ["id", "account_id", "provider_id", "user_id", "password", "created_at", "updated_at"],
        o.users,
        (i) => row([typeid("acc").toString(), userIds[i]!, "credential", userIds[i]!, hash, userCreated[i]!, userCreated[i]!]),
        (n) => show("accounts", n, o.users),
      );

      // The heavy user's sandboxes sit at random positions, as if created over time among everyone
      // else's: packing them into a few heap pages would flatter every plan that reads the table.
      const heavyAt = new Set<number>();
      while (heavyAt.size < o.heavy) heavyAt.add(Math.floor(random() * o.sandboxes));
      const addonRows: string[] = [];
      await copyRows(
        tx,
        "sandboxes",
        [
          "id", "user_id", "name", "slug", "description", "repository_url", "resource_tier_id", "flavor_id", "env",
          "idle_timeout_minutes", "auto_start", "status", "desired_status", "status_reason", "error_message", "version",
          "driver", "image", "applied_limits", "last_activity_at", "started_at", "stopped_at", "created_at", "updated_at",
        ],
        o.sandboxes,
        (i) => {
          // The others' sandboxes are spread at random over users 1..N-1.
          const owner = heavyAt.has(i) ? heavyUserId : userIds[1 + Math.floor(random() * (o.users - 1))]!;
          const id = typeid("sbx").toString();
          const created = now - random() * YEAR_MS;
          const stopped = created + random() * (now - created);
          const word = pick(WORDS);
          const flavor = pick(FLAVORS);
          const failed = random() < 0.1;
          if (random() < 0.33) {
            const first = Math.floor(random() * ADDONS.length);
            addonRows.push(row([id, ADDONS[first]!]));
            if (random() < 0.4) addonRows.push(row([id, ADDONS[(first + 1) % ADDONS.length]!]));
          }
          const envCount = Math.floor(random() * 3);
          const env = Object.fromEntries(Array.from({ length: envCount }, (_, k) => [`VAR_${k}`, `value-${k}`]));
          return row([
            id, owner, `${word} sandbox ${i}`, `${word}-sandbox-${i}`,
            random() < 0.5 ? "" : `Benchmark sandbox number ${i} for the ${word} project.`,
            random() < 0.6 ? `https://github.com/bench-org/${word}-${i}` : null,
            pick(TIERS), flavor, JSON.stringify(env), 30, false,
            failed ? "error" : "stopped", "stopped", failed ? "workload_exited" : "user",
            failed ? "the agent exited with code 1" : null, 3 + Math.floor(random() * 20),
            "local", IMAGES[flavor]!,
            JSON.stringify({ cpuCores: 1, memoryMb: 2048, pidsLimit: 512, openFiles: 4096, storageGb: null, notes: ["cpu not limited: no cgroup delegation"] }),
            new Date(stopped).toISOString(), new Date(created + 1000).toISOString(), new Date(stopped).toISOString(),
            new Date(created).toISOString(), new Date(stopped).toISOString(),
          ]);
        },
        (n) => show("sandboxes", n, o.sandboxes),
      );
      await copyRows(
        tx,
        "sandbox_addons",
        ["sandbox_id", "addon_id"],
        addonRows.length,
        (i) => addonRows[i]!,
        (n) => show("sandbox_addons", n, addonRows.length),
      );
      o.quiet || process.stderr.write(`  (${addonRows.length.toLocaleString("en")} add-on rows)\n`);
    });

    say("VACUUM ANALYZE …");
    for (const t of ["users", "accounts", "sandboxes", "sandbox_addons"]) await sql.unsafe(`vacuum analyze ${t}`);
    const [{ count: addons } = { count: 0 }] = await sql<{ count: number }[]>`select count(*)::int as count from sandbox_addons`;
    const seconds = (performance.now() - started) / 1000;
    say(`seeded in ${seconds.toFixed(1)} s`);
    return {
      heavyUserId,
      heavyEmail: o.heavyEmail,
      password: o.password,
      users: o.users,
      sandboxes: o.sandboxes,
      heavySandboxes: o.heavy,
      sandboxAddons: addons,
      seconds,
    };
  } finally {
    await sql.end({ timeout: 5 });
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      users: { type: "string", default: "1000" },
      sandboxes: { type: "string", default: "10000" },
      heavy: { type: "string", default: "1000" },
      "heavy-email": { type: "string", default: `heavy@${DOMAIN}` },
      password: { type: "string", default: "bench password 1234" },
      replace: { type: "boolean", default: false },
      quiet: { type: "boolean", default: false },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    process.exit(0);
  }
  const int = (name: string, v: string) => numberOption("seed-sandboxes", name, v, 0);
  const databaseUrl = databaseUrlFromEnv("seed-sandboxes");
  try {
    const result = await seedSandboxes({
      databaseUrl,
      users: int("users", values.users!),
      sandboxes: int("sandboxes", values.sandboxes!),
      heavy: int("heavy", values.heavy!),
      heavyEmail: values["heavy-email"]!,
      password: values.password!,
      replace: values.replace!,
      quiet: values.quiet!,
    });
    console.log(JSON.stringify(result));
  } catch (err) {
    console.error(`seed-sandboxes: ${(err as Error).message}`);
    process.exit(1);
  }
}
