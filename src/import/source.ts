import { Database } from "bun:sqlite";
import { existsSync, statSync } from "node:fs";

export type LegacyRow = Record<string, unknown>;

/**
 * The legacy SQLite file, opened read-only with Bun's driver: the importer never writes to it
 * (not even a WAL checkpoint). Rows are streamed in rowid order, one statement per table, so
 * memory stays bounded whatever the table's size.
 */
export class LegacySource {
  readonly path: string;
  private readonly db: Database;

  private constructor(path: string, db: Database) {
    this.path = path;
    this.db = db;
  }

  static open(path: string): LegacySource {
    if (!existsSync(path)) throw new LegacySourceError(`${path}: no such file`);
    if (statSync(path).isDirectory()) throw new LegacySourceError(`${path}: a directory; --from takes the legacy database file (database.sqlite)`);
    let db: Database;
    try {
      db = new Database(path, { readonly: true, strict: true });
      // Reading the schema proves it is an SQLite file (a text file opens fine and fails here).
      db.query("select count(*) from sqlite_master").get();
    } catch (err) {
      throw new LegacySourceError(`${path}: not a readable SQLite database (${(err as Error).message})`);
    }
    return new LegacySource(path, db);
  }

  tables(): string[] {
    return this.db
      .query<{ name: string }, []>("select name from sqlite_master where type = 'table' and name not like 'sqlite_%' order by name")
      .all()
      .map((r) => r.name);
  }

  has(table: string): boolean {
    return this.db.query<{ n: number }, [string]>("select count(*) as n from sqlite_master where type = 'table' and name = ?").get(table)!.n > 0;
  }

  columns(table: string): Set<string> {
    return new Set(this.db.query<{ name: string }, []>(`select name from pragma_table_info(${quoteLiteral(table)})`).all().map((r) => r.name));
  }

  count(table: string, where = ""): number {
    return this.db.query<{ n: number }, []>(`select count(*) as n from ${quoteIdent(table)} ${where ? `where ${where}` : ""}`).get()!.n;
  }

  /** Every row of a table, oldest first (rowid order), streamed. */
  *rows(table: string, where = ""): Generator<LegacyRow> {
    const stmt = this.db.prepare<LegacyRow, []>(`select * from ${quoteIdent(table)} ${where ? `where ${where}` : ""} order by rowid`);
    try {
      for (const row of stmt.iterate()) yield row;
    } finally {
      stmt.finalize();
    }
  }

  /** The rows whose text `column` is one of `values`, oldest first (an index on it is used). */
  rowsWhereIn(table: string, column: string, values: string[]): LegacyRow[] {
    return this.db
      .query<LegacyRow, [string]>(`select * from ${quoteIdent(table)} where ${quoteIdent(column)} in (select value from json_each(?)) order by rowid`)
      .all(JSON.stringify(values));
  }

  /** The distinct non-NULL values of one column, as text, streamed. */
  *distinct(table: string, column: string): Generator<string> {
    const c = quoteIdent(column);
    const stmt = this.db.prepare<{ v: unknown }, []>(`select distinct ${c} as v from ${quoteIdent(table)} where ${c} is not null`);
    try {
      for (const row of stmt.iterate()) yield String(row.v);
    } finally {
      stmt.finalize();
    }
  }

  close(): void {
    this.db.close();
  }
}

export class LegacySourceError extends Error {
  override name = "LegacySourceError";
}

export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

function quoteLiteral(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}
