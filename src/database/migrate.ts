import { readMigrationFiles } from "drizzle-orm/migrator";
import { migrate as migratePglite } from "drizzle-orm/pglite/migrator";
import { migrate as migratePostgres } from "drizzle-orm/postgres-js/migrator";
import { sql } from "drizzle-orm";
import { fileURLToPath } from "node:url";
import type { PgliteDatabase } from "drizzle-orm/pglite";
import type { PostgresJsDatabase } from "drizzle-orm/postgres-js";
import { openPostgres, queryRows, type Database, type Executor } from "./client";

export const MIGRATIONS_FOLDER = fileURLToPath(new URL("../../db/migrations", import.meta.url));

/** Arbitrary but fixed: every Warren instance contends for the same advisory lock. */
const MIGRATION_LOCK_KEY = 7_240_117_001;

/**
 * Applies pending migrations under a session advisory lock, so several instances starting at
 * once apply them exactly once: the first holds the lock, the others wait and then find nothing
 * left to do. On a server the lock and the migrations share one dedicated connection.
 */
export async function migrateDatabase(database: Database, databaseUrl?: string): Promise<void> {
  if (database.engine === "pglite") {
    // PGlite has a single connection; the lock is kept for symmetry and is uncontended.
    const db = database.db as unknown as PgliteDatabase;
    await db.execute(sql`select pg_advisory_lock(${MIGRATION_LOCK_KEY})`);
    try {
      await migratePglite(db, { migrationsFolder: MIGRATIONS_FOLDER });
    } finally {
      await db.execute(sql`select pg_advisory_unlock(${MIGRATION_LOCK_KEY})`);
    }
    return;
  }
  if (!databaseUrl) throw new Error("migrateDatabase: a server database needs its URL");
  const dedicated = openPostgres(databaseUrl, 1);
  try {
    const db = dedicated.db as unknown as PostgresJsDatabase;
    await db.execute(sql`select pg_advisory_lock(${MIGRATION_LOCK_KEY})`);
    try {
      await migratePostgres(db, { migrationsFolder: MIGRATIONS_FOLDER });
    } finally {
      await db.execute(sql`select pg_advisory_unlock(${MIGRATION_LOCK_KEY})`);
    }
  } finally {
    await dedicated.close();
  }
}

export type MigrationState = { applied: number; expected: number; pending: number };

/** Compares the committed migrations with those recorded in the database. */
export async function migrationState(db: Executor): Promise<MigrationState> {
  const expected = committedMigrations();
  let appliedHashes = new Set<string>();
  try {
    const rows = await queryRows<{ hash: string }>(db, sql`select hash from drizzle.__drizzle_migrations`);
    appliedHashes = new Set(rows.map((r) => r.hash));
  } catch (error) {
    // Only "the table does not exist yet" means zero applied; anything else (db down) propagates.
    if (!isUndefinedTable(error)) throw error;
  }
  const applied = expected.filter((m) => appliedHashes.has(m.hash)).length;
  return { applied, expected: expected.length, pending: expected.length - applied };
}

let committed: ReturnType<typeof readMigrationFiles> | undefined;
/** The committed migrations, read from disk once per process (readiness probes call this often). */
function committedMigrations() {
  committed ??= readMigrationFiles({ migrationsFolder: MIGRATIONS_FOLDER });
  return committed;
}

function isUndefinedTable(error: unknown): boolean {
  for (let e: unknown = error; e && typeof e === "object"; e = (e as { cause?: unknown }).cause) {
    const code = (e as { code?: unknown }).code;
    if (code === "42P01" || code === "3F000") return true;
  }
  return false;
}
