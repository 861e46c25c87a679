import { PGlite } from "@electric-sql/pglite";
import { sql } from "drizzle-orm";
import { hostname } from "node:os";
import postgres from "postgres";
import { isAlive, openPostgres, pgliteExtensions, queryRows, wrapPglite, type Database } from "../../src/database/client";
import { migrateDatabase } from "../../src/database/migrate";

/**
 * Every test file gets its own fresh, migrated database:
 * - default: an in-memory PGlite restored from a template migrated once per run (a cold PGlite
 *   plus migrations costs seconds; restoring a dump costs ~0.3 s);
 * - TEST_DATABASE_URL set: a new database on that server, created from a migrated template
 *   (CREATE DATABASE … TEMPLATE) and dropped when the file is done.
 */

export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL || undefined;
export const ENGINE = TEST_DATABASE_URL ? "postgres" : "pglite";

export type TestDatabase = Database & {
  /** Server databases only: a URL for another process (the e2e server) to use. */
  url: string | undefined;
  /** Closes the connections and, on a server, drops the database. */
  destroy(): Promise<void>;
};

const RUN_ID = `${process.pid}_${Date.now().toString(36)}`;
let counter = 0;

/**
 * Under `bun test --parallel` each worker process runs many files, and the preload's afterAll runs
 * after every one of them, so a worker keeps its template until it exits and no hook runs then.
 * Templates of runs that are over are dropped by the next run on the same host (tagged with it).
 */
export const PARALLEL_WORKER = process.env.BUN_TEST_WORKER_ID !== undefined;
const HOST_TAG = Bun.hash(hostname()).toString(16).slice(0, 6);
const TEMPLATE_PREFIX = "warren_tpl_";
/** A template older than this is dropped whatever host made it (one left by a machine that went away). */
const TEMPLATE_MAX_AGE_MS = 24 * 3600_000;

// ---- PGlite -----------------------------------------------------------------------------------

let pgliteTemplate: Promise<File | Blob> | undefined;

function pgliteDump(): Promise<File | Blob> {
  pgliteTemplate ??= (async () => {
    const client = new PGlite({ extensions: pgliteExtensions });
    const database = await wrapPglite(client, "memory");
    await migrateDatabase(database);
    const dump = await client.dumpDataDir("none");
    await client.close();
    return dump;
  })();
  return pgliteTemplate;
}

async function createPglite(): Promise<TestDatabase> {
  const client = new PGlite({ loadDataDir: await pgliteDump(), extensions: pgliteExtensions });
  const database = await wrapPglite(client, "memory");
  return { ...database, url: undefined, destroy: () => database.close() };
}

// ---- PostgreSQL server -------------------------------------------------------------------------

let serverTemplate: Promise<string> | undefined;

export function databaseUrl(base: string, name: string): string {
  const u = new URL(base);
  u.pathname = `/${name}`;
  return u.toString();
}

async function withAdmin<T>(fn: (sql: postgres.Sql) => Promise<T>): Promise<T> {
  const sql = postgres(TEST_DATABASE_URL!, { max: 1, onnotice: () => {} });
  try {
    return await fn(sql);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/** Drops the templates of earlier runs that are over: on this host, their process is gone. */
async function dropStaleTemplates(sql: postgres.Sql): Promise<void> {
  const rows = await sql<{ datname: string }[]>`select datname from pg_database where datname like ${`${TEMPLATE_PREFIX}%`}`;
  for (const { datname } of rows) {
    const [pid, time, host] = datname.slice(TEMPLATE_PREFIX.length).split("_");
    const age = Date.now() - parseInt(time ?? "", 36);
    const over = (host === HOST_TAG && !isAlive(Number(pid))) || !(age < TEMPLATE_MAX_AGE_MS);
    if (over) await sql.unsafe(`drop database if exists "${datname}" with (force)`);
  }
}

function serverTemplateName(): Promise<string> {
  serverTemplate ??= (async () => {
    const name = `${TEMPLATE_PREFIX}${RUN_ID}_${HOST_TAG}`;
    await withAdmin(async (sql) => {
      await dropStaleTemplates(sql);
      await sql.unsafe(`create database "${name}"`);
    });
    const url = databaseUrl(TEST_DATABASE_URL!, name);
    const database = openPostgres(url, 1);
    try {
      await migrateDatabase(database, url);
    } finally {
      await database.close();
    }
    return name;
  })();
  return serverTemplate;
}

async function createServerDatabase(): Promise<TestDatabase> {
  const template = await serverTemplateName();
  const name = `warren_t_${RUN_ID}_${++counter}`;
  await withAdmin((sql) => sql.unsafe(`create database "${name}" template "${template}"`));
  const url = databaseUrl(TEST_DATABASE_URL!, name);
  const database = openPostgres(url, 5);
  return {
    ...database,
    url,
    destroy: async () => {
      await database.close();
      await withAdmin((sql) => sql.unsafe(`drop database if exists "${name}" with (force)`));
    },
  };
}

/** Drops the server template at the end of a serial run (registered by the preload). */
export async function dropServerTemplate(): Promise<void> {
  if (!TEST_DATABASE_URL || !serverTemplate || PARALLEL_WORKER) return;
  const name = await serverTemplate;
  await withAdmin((sql) => sql.unsafe(`drop database if exists "${name}" with (force)`));
}

export function createTestDatabase(): Promise<TestDatabase> {
  return TEST_DATABASE_URL ? createServerDatabase() : createPglite();
}

/**
 * Ends every Warren LISTEN connection to `db`'s database from the server side (a failover, an
 * idle-killer), as src/database/listener.ts must survive; returns how many were ended.
 */
export async function terminateListeners(db: Database["db"]): Promise<number> {
  const rows = await queryRows(
    db,
    sql`select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'warren-listener' and datname = current_database()`,
  );
  return rows.length;
}
