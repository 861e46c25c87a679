import { join } from "node:path";
import { PGlite } from "@electric-sql/pglite";
import postgres from "postgres";
import { pgliteExtensions } from "../../src/database/client";
import { startServer, type RunningServer, type ServerStorage } from "./server";

/**
 * Runs raw SQL against the database an e2e server process uses, the honest way for each engine:
 * on a PostgreSQL server, a second connection while Warren keeps running; with embedded PGlite,
 * which a single process owns, Warren is stopped, the data directory opened and closed again, and
 * Warren restarted on the same port (its public URL, and so its OAuth callback, stays the same).
 * Returns the rows and the server to use from then on.
 */
export async function queryServerDatabase<T extends Record<string, unknown>>(
  server: RunningServer,
  storage: ServerStorage,
  restartEnv: Record<string, string>,
  query: string,
  params: unknown[] = [],
): Promise<{ rows: T[]; server: RunningServer }> {
  if (storage.env.DATABASE_URL) {
    const sql = postgres(storage.env.DATABASE_URL, { max: 1, onnotice: () => {} });
    try {
      return { rows: (await sql.unsafe(query, params as never[])) as unknown as T[], server };
    } finally {
      await sql.end({ timeout: 5 });
    }
  }
  const exit = await server.stop();
  if (exit !== 0) throw new Error(`server did not stop cleanly (exit ${exit}):\n${server.output.join("\n")}`);
  const pglite = new PGlite(join(storage.env.DATA_DIR!, "pglite"), { extensions: pgliteExtensions });
  let rows: T[];
  try {
    rows = (await pglite.query<T>(query, params)).rows;
  } finally {
    await pglite.close();
  }
  return { rows, server: await startServer({ storage, env: restartEnv, port: server.port }) };
}
