import { parseArgs } from "node:util";
import { ConfigError, loadConfig } from "../config";
import { openDatabase } from "../database/client";
import { migrateDatabase, migrationState } from "../database/migrate";

const HELP = `Usage: bun run db:migrate [--status]

Applies Warren's pending database migrations (db/migrations) to DATABASE_URL, or to the embedded
database in DATA_DIR (default .data) when DATABASE_URL is unset. Safe to run while other
instances start: migrations run under a PostgreSQL advisory lock. The server also applies them
at start-up, so this is only needed to migrate ahead of a deploy.

Options:
  --status   print applied / expected counts and exit (non-zero if any are pending)
  -h, --help show this help
`;

const { values } = parseArgs({
  options: { status: { type: "boolean" }, help: { type: "boolean", short: "h" } },
});
if (values.help) {
  process.stdout.write(HELP);
  process.exit(0);
}

try {
  const config = loadConfig();
  const database = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, poolSize: 2 });
  try {
    if (!values.status) await migrateDatabase(database, config.databaseUrl);
    const state = await migrationState(database.db);
    console.log(`${database.engine} ${database.location}: ${state.applied}/${state.expected} migrations applied`);
    process.exitCode = state.pending > 0 ? 1 : 0;
  } finally {
    await database.close();
  }
} catch (err) {
  console.error(`db:migrate: ${err instanceof ConfigError ? err.message : (err as Error).message}`);
  process.exit(1);
}
