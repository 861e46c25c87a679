import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { PGlite } from "@electric-sql/pglite";
import { pg_trgm } from "@electric-sql/pglite/contrib/pg_trgm";
import { sql, type SQL } from "drizzle-orm";
import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";
import { drizzle as drizzlePglite } from "drizzle-orm/pglite";
import { drizzle as drizzlePostgres } from "drizzle-orm/postgres-js";
import postgres from "postgres";
import * as schema from "../../db/schema";
import { createPgliteListener, createPostgresListener, type DatabaseListener } from "./listener";

export type Schema = typeof schema;
/** The one database API the services see, whichever engine is underneath. */
export type Db = PgDatabase<PgQueryResultHKT, Schema>;
/** A transaction handle has the same query API as Db. */
export type Tx = Parameters<Parameters<Db["transaction"]>[0]>[0];
export type Executor = Db | Tx;

export type DatabaseEngine = "postgres" | "pglite";

export type Database = {
  db: Db;
  engine: DatabaseEngine;
  /** Where it lives, for logs: the data directory, "memory", or the server (without credentials). */
  location: string;
  /** LISTEN for cross-instance signals: one dedicated connection, opened on first use. */
  listener(): DatabaseListener;
  close(): Promise<void>;
};

/** Extensions PGlite must load for the migrations to apply (they create pg_trgm). */
export const pgliteExtensions = { pg_trgm };

export type OpenOptions = {
  databaseUrl?: string | undefined;
  /** Directory for embedded PGlite; null keeps it in memory. */
  dataDir: string | null;
  poolSize?: number;
};

export async function openDatabase(options: OpenOptions): Promise<Database> {
  if (options.databaseUrl) return openPostgres(options.databaseUrl, options.poolSize ?? 10);
  if (!options.dataDir) return wrapPglite(new PGlite({ extensions: pgliteExtensions }), "memory");
  const dir = join(options.dataDir, "pglite");
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const release = lockDataDir(dir);
  try {
    const database = await wrapPglite(new PGlite(dir, { extensions: pgliteExtensions }), dir);
    return {
      ...database,
      close: async () => {
        await database.close();
        release();
      },
    };
  } catch (err) {
    release();
    throw err;
  }
}

export class DataDirInUseError extends Error {
  override name = "DataDirInUseError";
}

/**
 * PGlite is a single-process database: a second process opening the same directory would
 * corrupt it. A pid file claims the directory; a claim left by a dead process is taken over.
 */
function lockDataDir(dir: string): () => void {
  const file = join(dir, "warren.pid");
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(file, String(process.pid), { flag: "wx", mode: 0o600 });
      return () => rmSync(file, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      const holder = Number(readFileSync(file, "utf8").trim());
      if (holder && holder !== process.pid && isAlive(holder)) {
        throw new DataDirInUseError(
          `${dir} is in use by process ${holder}; stop it first (the embedded database allows one process)`,
        );
      }
      rmSync(file, { force: true });
    }
  }
  throw new DataDirInUseError(`could not claim ${dir}`);
}

/** Whether a process with this pid exists on this host (one of another user counts). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

export function openPostgres(url: string, poolSize: number): Database {
  const client = postgres(url, {
    max: poolSize,
    idle_timeout: 30,
    connect_timeout: 5,
    // postgres.js waits up to 20 s between reconnect attempts after repeated failures (3^n/100 s),
    // and queries queued meanwhile wait with it: after a short database outage requests hung for
    // that long. One second at most keeps recovery within seconds.
    backoff: (retries: number) => Math.min(0.05 * 2 ** retries, 1),
    // Server NOTICEs (e.g. "extension already exists") are not application logs.
    onnotice: () => {},
    connection: { application_name: "warren" },
  });
  let listener: DatabaseListener | undefined;
  return {
    db: drizzlePostgres({ client, schema }) as unknown as Db,
    engine: "postgres",
    location: redactUrl(url),
    listener: () => (listener ??= createPostgresListener(url)),
    close: async () => {
      await listener?.close();
      await client.end({ timeout: 5 });
    },
  };
}

export async function wrapPglite(client: PGlite, location: string): Promise<Database> {
  await client.waitReady;
  let listener: DatabaseListener | undefined;
  return {
    db: drizzlePglite({ client, schema }) as unknown as Db,
    engine: "pglite",
    location,
    listener: () => (listener ??= createPgliteListener(client)),
    close: async () => {
      await listener?.close();
      await client.close();
    },
  };
}

/** Rows of a raw statement; the two drivers shape `execute` results differently. */
export async function queryRows<T extends Record<string, unknown>>(db: Executor, query: SQL): Promise<T[]> {
  const result = (await db.execute(query)) as unknown;
  if (Array.isArray(result)) return result as T[];
  return ((result as { rows?: T[] }).rows ?? []) as T[];
}

export async function ping(db: Executor): Promise<void> {
  await db.execute(sql`select 1`);
}

export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "postgres://(unparseable)";
  }
}

/**
 * A time as a raw SQL parameter. Drizzle's query builder converts Dates for timestamp columns,
 * but a Date inside a raw sql`` template reaches postgres.js unconverted and fails there (PGlite
 * accepts it): raw templates pass times through this.
 */
export function ts(date: Date): SQL {
  return sql`${date.toISOString()}::timestamptz`;
}
