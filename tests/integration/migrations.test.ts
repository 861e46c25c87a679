import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { eq, sql } from "drizzle-orm";
import postgres from "postgres";
import { resourceTiers } from "../../db/schema";
import { openPostgres, queryRows } from "../../src/database/client";
import { migrateDatabase, migrationState } from "../../src/database/migrate";
import { databaseUrl } from "../helpers/db";
import { useTestApp } from "../helpers/app";
import { postgresServer } from "../helpers/postgres-server";
import { startServer } from "../helpers/server";

setDefaultTimeout(90_000);

const app = useTestApp();
const ROOT = join(import.meta.dir, "..", "..");

describe("committed migrations", () => {
  test("match db/schema: drizzle-kit generate finds nothing to add", async () => {
    // drizzle-kit writes into its --out folder (and only takes a relative one), so it runs in a
    // scratch directory holding a copy of the migrations and a link to the real schema.
    const scratch = mkdtempSync(join(tmpdir(), "warren-drift-"));
    try {
      mkdirSync(join(scratch, "db"));
      symlinkSync(join(ROOT, "db", "schema"), join(scratch, "db", "schema"));
      cpSync(join(ROOT, "db", "migrations"), join(scratch, "db", "migrations"), { recursive: true });
      const kit = Bun.spawn(
        [process.execPath, join(ROOT, "node_modules", "drizzle-kit", "bin.cjs"), "generate", "--dialect", "postgresql",
          "--schema", "./db/schema/index.ts", "--out", "./db/migrations"],
        { cwd: scratch, env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp" }, stdout: "pipe", stderr: "pipe" },
      );
      const [code, out, err] = await Promise.all([kit.exited, new Response(kit.stdout).text(), new Response(kit.stderr).text()]);
      expect({ code, said: `${out}${err}`.includes("No schema changes") }).toEqual({ code: 0, said: true });
      expect(readdirSync(join(scratch, "db", "migrations")).sort()).toEqual(readdirSync(join(ROOT, "db", "migrations")).sort());
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  });

  test("the database has what the schema declares where a migration says it differently: the search index's pending-list limit", async () => {
    // 0016 sets it with ALTER INDEX (no rebuild) where drizzle-kit would drop and re-create.
    const rows = await queryRows<{ options: string[] | null }>(
      app().database.db,
      sql`select reloptions as options from pg_class where relname = 'chat_messages_search_idx'`,
    );
    expect(rows[0]?.options).toEqual(["gin_pending_list_limit=64"]);
  });
});

describe("seed data", () => {
  test("the catalog is seeded once; an operator's edit survives another migration run", async () => {
    const { db } = app().database;
    const tiers = await db.select().from(resourceTiers).orderBy(resourceTiers.sortOrder);
    expect(tiers.map((t) => [t.id, t.cpuCores, t.memoryMb, t.storageGb, t.priceMonthly, t.isDefault])).toEqual([
      ["micro", 1, 1024, 10, 0, false],
      ["starter", 1, 2048, 20, 0, true],
      ["builder", 2, 4096, 30, 10, false],
      ["creator", 4, 8192, 50, 25, false],
      ["power", 8, 16384, 100, 50, false],
    ]);
    await db.update(resourceTiers).set({ priceMonthly: 12.5 }).where(eq(resourceTiers.id, "builder"));
    await migrateDatabase(app().database, app().database.url);
    const [builder] = await db.select().from(resourceTiers).where(eq(resourceTiers.id, "builder"));
    expect(builder!.priceMonthly).toBe(12.5);
    expect((await migrationState(db)).pending).toBe(0);
  });

  test("the schema enforces one default tier", async () => {
    const { db } = app().database;
    const promote = async () => db.update(resourceTiers).set({ isDefault: true }).where(eq(resourceTiers.id, "power"));
    await expect(promote()).rejects.toThrow();
  });
});

// Instances racing to migrate need a server with real concurrent sessions, whatever the engine
// of this run: TEST_DATABASE_URL, or a throwaway cluster.
describe("concurrent start-up on a server database", () => {
  let pg: Awaited<ReturnType<typeof postgresServer>>;
  const created: string[] = [];
  beforeAll(async () => {
    pg = await postgresServer();
    if ("unavailable" in pg) console.error(`migrations: server part skipped, ${pg.unavailable}`);
  }, 60_000);
  afterAll(async () => {
    if ("unavailable" in pg) return;
    const admin = postgres(pg.url, { max: 1, onnotice: () => {} });
    for (const name of created) await admin.unsafe(`drop database if exists "${name}" with (force)`);
    await admin.end();
    await pg.stop();
  }, 60_000);

  const freshDatabase = async () => {
    if ("unavailable" in pg) throw new Error("no server");
    const name = `warren_mig_${process.pid}_${created.length}_${Date.now().toString(36)}`;
    const admin = postgres(pg.url, { max: 1, onnotice: () => {} });
    await admin.unsafe(`create database "${name}"`);
    await admin.end();
    created.push(name);
    return databaseUrl(pg.url, name);
  };

  test("five migrators at once apply every migration exactly once", async () => {
    if ("unavailable" in pg) return;
    const url = await freshDatabase();
    const databases = Array.from({ length: 5 }, () => openPostgres(url, 1));
    try {
      await Promise.all(databases.map((d) => migrateDatabase(d, url)));
      const rows = await queryRows<{ n: number }>(databases[0]!.db, sql`select count(*)::int as n from drizzle.__drizzle_migrations`);
      const state = await migrationState(databases[0]!.db);
      expect(rows[0]!.n).toBe(state.expected);
      expect(state.pending).toBe(0);
      const tiers = await databases[0]!.db.select().from(resourceTiers);
      expect(tiers).toHaveLength(5);
    } finally {
      await Promise.all(databases.map((d) => d.close()));
    }
  });

  test("bun run db:migrate migrates a new database, --status reports, --help explains", async () => {
    if ("unavailable" in pg) return;
    // The test cluster trusts every local connection, so this password is never checked: it is
    // there to show that the CLI's output does not repeat it.
    const url = new URL(await freshDatabase());
    url.password = "cli-secret-password";
    const run = async (...args: string[]) => {
      const proc = Bun.spawn([process.execPath, "run", "db:migrate", ...args], {
        cwd: ROOT,
        env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", DATABASE_URL: url.toString(), DATA_DIR: "memory://" },
        stdout: "pipe",
        stderr: "pipe",
      });
      const [code, out, err] = await Promise.all([proc.exited, new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
      expect(`${out}${err}`).not.toContain("cli-secret-password");
      return { code, out };
    };
    const help = await run("--help");
    expect(help).toMatchObject({ code: 0, out: expect.stringContaining("Usage: bun run db:migrate") });
    const before = await run("--status");
    expect(before.code).toBe(1);
    expect(before.out).toMatch(/^postgres .*: 0\/\d+ migrations applied$/m);
    const applied = await run();
    expect(applied.code).toBe(0);
    const [, done, total] = /: (\d+)\/(\d+) migrations applied/.exec(applied.out)!;
    expect(done).toBe(total);
    expect(await run("--status")).toMatchObject({ code: 0 });
  });

  test("two server processes starting together on a new database both become ready", async () => {
    if ("unavailable" in pg) return;
    const url = await freshDatabase();
    const storage = { env: { DATABASE_URL: url }, destroy: async () => {} };
    const servers = await Promise.all([startServer({ storage }), startServer({ storage })]);
    try {
      for (const s of servers) {
        const ready = (await (await fetch(`${s.url}/ready`)).json()) as { migrations: { pending: number } };
        expect(ready.migrations.pending).toBe(0);
      }
    } finally {
      await Promise.all(servers.map((s) => s.stop()));
    }
  });
});
