import { MultiBar, Presets, type SingleBar } from "cli-progress";
import { ConfigError, loadConfig } from "../config";
import { openDatabase } from "../database/client";
import { migrateDatabase } from "../database/migrate";
import { ImportUsageError, importLegacy } from "../import/run";
import { renderText } from "../import/report";
import { LegacySource, LegacySourceError } from "../import/source";
import type { Progress } from "../import/writer";
import { createLogger } from "../lib/logger";
import { commandLine } from "./args";

const HELP = `Usage: bun run import:legacy --from path/to/database.sqlite [options]

Imports everything the legacy system kept in its SQLite file into Warren's database
(DATABASE_URL, or the embedded database in DATA_DIR), after applying Warren's migrations.
One transaction: all or nothing. Safe to run again: rows already imported are reported as
already present; a newer file adds only its new rows; what was deleted in Warren since an
earlier run (an account, a sandbox, a purged chat, an agent file, a credential) is reported
as deleted and not brought back. The file is opened read-only.

Options:
  --from PATH                        the legacy database.sqlite (required)
  --dry-run                          do everything, verify, then roll back
  --assign-credentials-to EMAIL      the user who gets the legacy global provider credentials
                                     (required when the file holds any; never guessed)
  --legacy-encryption-key-env NAME   environment variable holding the legacy ENCRYPTION_KEY
                                     (default LEGACY_ENCRYPTION_KEY)
  --batch-size N                     rows per batch (default 20000 into PostgreSQL, which
                                     takes them by COPY; 2000 into the embedded database)
  --json                             print the report as JSON on stdout
  -h, --help                         show this help

Exit codes: 0 imported and verified (or dry run verified), 1 failed or counts did not balance
(nothing written), 2 bad usage or a refusal before anything was written.
`;

const { values, usage } = commandLine("import:legacy", HELP, {
  from: { type: "string" },
  "dry-run": { type: "boolean" },
  "assign-credentials-to": { type: "string" },
  "legacy-encryption-key-env": { type: "string" },
  "batch-size": { type: "string" },
  json: { type: "boolean" },
});
if (!values.from) usage("--from PATH is required (see --help)");
const batchRows = values["batch-size"] === undefined ? undefined : Number(values["batch-size"]);
if (batchRows !== undefined && (!Number.isInteger(batchRows) || batchRows < 1 || batchRows > 100_000)) usage("--batch-size must be a whole number from 1 to 100000");
const keyEnv = values["legacy-encryption-key-env"];
if (keyEnv !== undefined && !/^[A-Za-z_][A-Za-z0-9_]*$/.test(keyEnv)) usage("--legacy-encryption-key-env needs a variable name");

// The file is checked before the configuration is read and Warren's database opened: a
// mistyped path must not create anything in DATA_DIR (generated secrets, an embedded database),
// nor touch the server's database.
try {
  LegacySource.open(values.from!).close();
} catch (err) {
  usage(err instanceof LegacySourceError ? err.message : (err as Error).message);
}

let config: ReturnType<typeof loadConfig>;
try {
  config = loadConfig();
} catch (err) {
  usage(err instanceof ConfigError ? err.message : (err as Error).message);
}
const legacyKey = keyEnv ? process.env[keyEnv] || null : config!.legacyEncryptionKey ?? null;
const logger = createLogger(config!.logLevel === "info" ? "warn" : config!.logLevel, process.stderr);

// Progress: a bar per table on a terminal (stderr, so --json output stays clean); elsewhere one
// line per table when it starts, never a wall of redraws in a CI log.
const tty = Boolean(process.stderr.isTTY);
const multibar = tty
  ? new MultiBar({ format: " {table} [{bar}] {value}/{total} {step}", barsize: 20, hideCursor: true, clearOnComplete: false, stream: process.stderr }, Presets.shades_classic)
  : null;
const bars = new Map<string, SingleBar>();
const onProgress = (p: Progress) => {
  if (!multibar) {
    if (p.step) console.error(`import:legacy: ${p.table}: ${p.step}`);
    else if (p.done === 0) console.error(`import:legacy: ${p.table}: ${p.total} row(s)`);
    return;
  }
  let bar = bars.get(p.table);
  if (!bar) {
    bar = multibar.create(p.total, 0, { table: p.table.padEnd(22), step: "" });
    bars.set(p.table, bar);
  }
  bar.setTotal(Math.max(p.total, p.done));
  // A table's last progress (all rows in, indexes built) clears the step.
  bar.update(p.done, { step: p.step ?? "" });
};

const database = await openDatabase({ databaseUrl: config!.databaseUrl, dataDir: config!.dataDir, poolSize: 2 });
let exitCode = 1;
try {
  await migrateDatabase(database, config!.databaseUrl);
  const report = await importLegacy({
    database,
    sourcePath: values.from!,
    dryRun: values["dry-run"],
    assignCredentialsTo: values["assign-credentials-to"] ?? null,
    legacyKey,
    legacyKeyEnv: keyEnv,
    keyring: config!.keyring,
    authSecret: config!.authSecret,
    logger,
    batchRows,
    onProgress,
  });
  multibar?.stop();
  if (values.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  else process.stdout.write(renderText(report));
  exitCode = report.ok ? 0 : 1;
} catch (err) {
  multibar?.stop();
  if (err instanceof ImportUsageError) {
    console.error(`import:legacy: ${err.message}`);
    exitCode = 2;
  } else {
    console.error(`import:legacy: ${(err as Error).message}`);
    exitCode = 1;
  }
} finally {
  await database.close();
}
process.exit(exitCode);
