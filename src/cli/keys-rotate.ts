import { parseArgs } from "node:util";
import { SingleBar, Presets } from "cli-progress";
import { ConfigError, loadConfig } from "../config";
import { KEY_ID_PATTERN } from "../crypto/keyring";
import { openDatabase } from "../database/client";
import { createLogger } from "../lib/logger";
import { keyUsage, rotateKeys, type RotationProgress } from "../services/credentials/rotation";

const HELP = `Usage: bun run keys:rotate [--batch-size N]
       bun run keys:rotate --check KEYID

Re-encrypts every stored secret (provider credentials, device codes) that is not on the active
key (ENCRYPTION_ACTIVE_KEY) to that key, in batches that commit one by one. Interrupted, it
resumes where it stopped when run again. The API keeps working meanwhile: new writes already
use the active key. Keep an old key in ENCRYPTION_KEYS until --check says it is unused.

Options:
  --batch-size N  rows per transaction (default 100)
  --check KEYID   report how many values still use KEYID; exit 0 if none (safe to remove the
                  key), 1 if some still do
  -h, --help      show this help

Exit codes: 0 done (or key unused), 1 values left behind (or key in use), 2 bad usage.
`;

let values: { help?: boolean; check?: string; "batch-size"?: string };
try {
  ({ values } = parseArgs({
    options: { help: { type: "boolean", short: "h" }, check: { type: "string" }, "batch-size": { type: "string" } },
  }));
} catch (err) {
  console.error(`keys:rotate: ${(err as Error).message}`);
  process.exit(2);
}
if (values.help) {
  process.stdout.write(HELP);
  process.exit(0);
}
if (values.check !== undefined && !KEY_ID_PATTERN.test(values.check)) {
  console.error("keys:rotate: --check needs a key id (letters, digits, _ or -)");
  process.exit(2);
}
const batchSize = values["batch-size"] === undefined ? 100 : Number(values["batch-size"]);
if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 10_000) {
  console.error("keys:rotate: --batch-size must be a whole number from 1 to 10000");
  process.exit(2);
}

try {
  const config = loadConfig();
  const logger = createLogger(config.logLevel === "info" ? "warn" : config.logLevel, process.stderr);
  const database = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, poolSize: 2 });
  try {
    if (values.check !== undefined) {
      const inUse = (await keyUsage(database.db))[values.check] ?? 0;
      console.log(inUse === 0 ? `key ${values.check}: not in use` : `key ${values.check}: in use by ${inUse} value(s)`);
      process.exitCode = inUse === 0 ? 0 : 1;
    } else {
      // A bar on a terminal; one line per table elsewhere (CI logs, pipes), never a wall of redraws.
      const tty = Boolean(process.stdout.isTTY);
      const bar = new SingleBar({ format: " {table} [{bar}] {value}/{total}", hideCursor: true }, Presets.shades_classic);
      let current = "";
      const onProgress = (p: RotationProgress) => {
        if (!tty) {
          if (p.done === 0) console.log(`${p.table}: ${p.total} value(s) to re-encrypt`);
          return;
        }
        if (p.table !== current) {
          if (current) bar.stop();
          current = p.table;
          bar.start(p.total, p.done, { table: p.table });
        } else {
          bar.setTotal(p.total);
          bar.update(p.done, { table: p.table });
        }
      };
      const report = await rotateKeys({ db: database.db, keyring: config.keyring, logger, batchSize, onProgress });
      if (tty && current) bar.stop();
      console.log(
        `active key ${config.keyring.activeKeyId}: ${report.rotated} re-encrypted, ${report.skipped} rewritten meanwhile, ` +
          `${report.failed} failed, ${report.remaining} still on other keys`,
      );
      process.exitCode = report.failed > 0 || report.remaining > 0 ? 1 : 0;
    }
  } finally {
    await database.close();
  }
} catch (err) {
  console.error(`keys:rotate: ${err instanceof ConfigError ? err.message : (err as Error).message}`);
  process.exit(1);
}
