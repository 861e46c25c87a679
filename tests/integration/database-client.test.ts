import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sql } from "drizzle-orm";
import { loadConfig } from "../../src/config";
import { openDatabase, queryRows } from "../../src/database/client";
import { postgresServer } from "../helpers/postgres-server";

// src/database/client.ts as start-up uses it: the engine and storage chosen by the config, the
// same queries on both. A cold file-backed PGlite takes a few seconds.
setDefaultTimeout(90_000);

describe("without DATABASE_URL: embedded PGlite", () => {
  test("lives in DATA_DIR/pglite and keeps its data across a close and reopen", async () => {
    const dataDir = join(mkdtempSync(join(tmpdir(), "warren-dbclient-")), "data");
    try {
      const config = loadConfig({ DATA_DIR: dataDir });
      expect(config.databaseUrl).toBeUndefined();
      const first = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir });
      expect(first.engine).toBe("pglite");
      expect(first.location).toBe(join(dataDir, "pglite"));
      // The directory is claimed for this process while it is open.
      expect(existsSync(join(dataDir, "pglite", "warren.pid"))).toBe(true);
      // A table of its own: migrating a cold embedded database is slow, and other tests cover it.
      await first.db.execute(sql`create table probe (holder text not null)`);
      await first.db.execute(sql`insert into probe (holder) values ('me')`);
      await first.close();
      expect(existsSync(join(dataDir, "pglite", "warren.pid"))).toBe(false);

      const second = await openDatabase({ databaseUrl: undefined, dataDir });
      try {
        const rows = await queryRows<{ holder: string }>(second.db, sql`select holder from probe`);
        expect(rows).toEqual([{ holder: "me" }]);
      } finally {
        await second.close();
      }
    } finally {
      rmSync(join(dataDir, ".."), { recursive: true, force: true });
    }
  });

  test("DATA_DIR=memory:// keeps it in memory and writes nothing", async () => {
    const config = loadConfig({ DATA_DIR: "memory://" });
    expect(config.dataDir).toBeNull();
    const database = await openDatabase({ databaseUrl: undefined, dataDir: config.dataDir });
    try {
      expect(database).toMatchObject({ engine: "pglite", location: "memory" });
      expect(await queryRows(database.db, sql`select 1 as one`)).toEqual([{ one: 1 }]);
    } finally {
      await database.close();
    }
    expect(existsSync("memory:")).toBe(false);
  });
});

// Needs a server whatever the engine of this run: TEST_DATABASE_URL, or a throwaway cluster.
describe("with DATABASE_URL: postgres.js", () => {
  let pg: Awaited<ReturnType<typeof postgresServer>>;
  beforeAll(async () => {
    pg = await postgresServer();
    if ("unavailable" in pg) console.error(`database-client: server part skipped, ${pg.unavailable}`);
  }, 60_000);
  afterAll(async () => {
    if (!("unavailable" in pg)) await pg.stop();
  }, 60_000);

  test("the pool is bounded by DATABASE_POOL_SIZE, and the location hides the password", async () => {
    if ("unavailable" in pg) return;
    const url = new URL(pg.url);
    url.password = "pool-secret"; // the test cluster trusts local connections; never checked
    const config = loadConfig({ DATA_DIR: "memory://", DATABASE_URL: url.toString(), DATABASE_POOL_SIZE: "2" });
    expect(config.poolSize).toBe(2);
    const database = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, poolSize: config.poolSize });
    try {
      expect(database.engine).toBe("postgres");
      expect(database.location).not.toContain("pool-secret");
      // Six queries at once, each holding its connection for a moment: they share two backends.
      const rows = await Promise.all(
        Array.from({ length: 6 }, () =>
          queryRows<{ pid: number }>(database.db, sql`select pg_backend_pid() as pid, pg_sleep(0.2)`),
        ),
      );
      expect(new Set(rows.map((r) => r[0]!.pid)).size).toBe(2);
    } finally {
      await database.close();
    }
  });
});
