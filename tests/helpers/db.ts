import { PGlite } from "@electric-sql/pglite";
import postgres from "postgres";
import { openPostgres, pgliteExtensions, wrapPglite, type Database } from "../../src/database/client";
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

function serverTemplateName(): Promise<string> {
  serverTemplate ??= (async () => {
    const name = `warren_tpl_${RUN_ID}`;
    await withAdmin((sql) => sql.unsafe(`create database "${name}"`));
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

/** Drops the server template at the end of the run (registered by the preload). */
export async function dropServerTemplate(): Promise<void> {
  if (!TEST_DATABASE_URL || !serverTemplate) return;
  const name = await serverTemplate;
  await withAdmin((sql) => sql.unsafe(`drop database if exists "${name}" with (force)`));
}

export function createTestDatabase(): Promise<TestDatabase> {
  return TEST_DATABASE_URL ? createServerDatabase() : createPglite();
}
