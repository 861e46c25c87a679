import { sql } from "drizzle-orm";
import type { Db } from "./client";

/**
 * Hot reads run as prepared statements (Drizzle `.prepare()`): postgres.js then parses each shape
 * once per connection and sends Bind+Execute in one round trip, instead of Parse+Describe and a
 * second round trip on every request (measured in bench/). One statement per shape of a query
 * (which optional filters it has), built on first use and kept per database handle. Keys are
 * shared by every module: start them with the module's noun ("sandboxes:…", "messages:…").
 *
 * Keep LIMIT a placeholder (`p("limit")`): after five executions PostgreSQL may switch to a
 * generic plan, and with a constant LIMIT the generic plan of a per-user page is a bitmap scan of
 * all the user's rows plus a sort (it assumes every user has the average number of rows), which a
 * user with thousands of rows pays on every page. With the LIMIT a parameter it reads the page off
 * the index (checked in bench/README.md, "generic plans").
 */
export type Prepared<R> = { execute(values?: Record<string, unknown>): Promise<R> };

const preparedByDb = new WeakMap<object, Map<string, Prepared<unknown>>>();

export function prepared<R>(db: Db, key: string, build: () => Prepared<R>): Prepared<R> {
  let map = preparedByDb.get(db);
  if (!map) preparedByDb.set(db, (map = new Map()));
  let q = map.get(key);
  if (!q) map.set(key, (q = build() as Prepared<unknown>));
  return q as Prepared<R>;
}

/** A named placeholder, bound at execute(). */
export const p = (name: string) => sql.placeholder(name);

/** A statement name PostgreSQL accepts, from a shape key such as "sessions:st". */
export const statementName = (prefix: string, shape: string) => `${prefix}_${shape.replace(/[^a-z0-9_]/gi, "_")}`;
