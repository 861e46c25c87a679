import { existsSync, statSync } from "node:fs";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { Presets, SingleBar } from "cli-progress";
import { ConfigError, loadConfig } from "../config";
import { openDatabase } from "../database/client";
import { migrateDatabase } from "../database/migrate";
import { DEFAULT_KNOWLEDGE_DIR, SeedError, seedKnowledge, type SeedProgress } from "../services/knowledge/seed";

const HELP = `Usage: bun run knowledge:seed [--dir DIR] [--source NAME] [--prune] [--dry-run]

Loads knowledge documents (Markdown files with YAML front matter) into the knowledge base that
GET /api/v1/knowledge and the sandboxes' MCP server read. Idempotent: a new file is added, a
changed file updates its document (and bumps its version unless the front matter pins one), an
unchanged file writes nothing. Every file is checked before anything is written, and all of it
is written in one transaction: one bad file leaves the base as it was.

Front matter: category and title (required), slug (default: the file's path), description,
tags, applicability {projectTypes, languages, frameworks}, version; agent {name, description,
mode} for agent patterns, command {name, description} for command templates, defaults
{testCommand, buildCommand, lintCommand, runCommand} for project templates. README.md files are
ignored. Uses DATABASE_URL (or the embedded database in DATA_DIR) and applies pending migrations.

Options:
  --dir DIR      folder to read, recursively (default: the starter set in knowledge/)
  --source NAME  label stored with the documents (default: seed); --prune acts on it only
  --prune        delete documents of this source whose file is gone
  --dry-run      check the files and report, write nothing
  -h, --help     show this help

Exit codes: 0 done, 1 invalid files or a failure (nothing written), 2 bad usage.
`;

let values: { help?: boolean; dir?: string; source?: string; prune?: boolean; "dry-run"?: boolean };
try {
  ({ values } = parseArgs({
    options: {
      help: { type: "boolean", short: "h" },
      dir: { type: "string" },
      source: { type: "string" },
      prune: { type: "boolean" },
      "dry-run": { type: "boolean" },
    },
  }));
} catch (err) {
  console.error(`knowledge:seed: ${(err as Error).message}`);
  process.exit(2);
}
if (values.help) {
  process.stdout.write(HELP);
  process.exit(0);
}
const dir = resolve(values.dir ?? DEFAULT_KNOWLEDGE_DIR);
if (!existsSync(dir) || !statSync(dir).isDirectory()) {
  console.error(`knowledge:seed: --dir ${dir} is not a folder`);
  process.exit(2);
}
const source = values.source ?? "seed";
if (!/^[a-z0-9][a-z0-9_-]{0,49}$/.test(source)) {
  console.error("knowledge:seed: --source must be 1–50 lowercase letters, digits, _ or -");
  process.exit(2);
}

if (values["dry-run"]) {
  const { readKnowledgeDir } = await import("../services/knowledge/seed");
  const { files, problems } = readKnowledgeDir(dir);
  for (const p of problems) console.error(`  ${p.path}: ${p.message}`);
  console.log(`${files.length} valid file(s), ${problems.length} invalid in ${dir}; nothing written (--dry-run)`);
  process.exit(problems.length > 0 ? 1 : 0);
}

try {
  const config = loadConfig();
  const database = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, poolSize: 2 });
  try {
    await migrateDatabase(database, config.databaseUrl);
    // A bar on a terminal; a few plain lines elsewhere (CI logs, pipes).
    const tty = Boolean(process.stdout.isTTY);
    const bar = new SingleBar({ format: " knowledge [{bar}] {value}/{total} {slug}", hideCursor: true }, Presets.shades_classic);
    const onProgress = (p: SeedProgress) => {
      if (p.phase === "read") {
        if (tty) bar.start(p.total, 0, { slug: "" });
        else console.log(`${p.total} document(s) in ${dir}`);
      } else if (tty) {
        bar.update(p.done, { slug: p.slug });
      }
    };
    const result = await seedKnowledge(database.db, { dir, source, prune: Boolean(values.prune), onProgress });
    if (tty) bar.stop();
    console.log(
      `source ${source}: ${result.created.length} created, ${result.updated.length} updated, ${result.unchanged.length} unchanged` +
        (values.prune ? `, ${result.pruned.length} pruned` : ""),
    );
  } finally {
    await database.close();
  }
} catch (err) {
  if (err instanceof SeedError) {
    console.error(`knowledge:seed: ${err.message}`);
    process.exit(1);
  }
  console.error(`knowledge:seed: ${err instanceof ConfigError ? err.message : (err as Error).message}`);
  process.exit(1);
}
