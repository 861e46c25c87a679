import { $ } from "bun";
import { join } from "node:path";
import { TEST_DATABASE_URL } from "./db";

const SCRIPT = join(import.meta.dir, "..", "..", "scripts", "pg-cluster.sh");

/**
 * A real PostgreSQL server for tests that need one whatever the engine of the run (fault tests
 * need a server that can go away): TEST_DATABASE_URL when set, else a throwaway cluster started
 * with scripts/pg-cluster.sh. Returns null, with the reason, when neither is possible.
 */
export async function postgresServer(): Promise<{ url: string; stop(): Promise<void> } | { unavailable: string }> {
  if (TEST_DATABASE_URL) return { url: TEST_DATABASE_URL, stop: async () => {} };
  const started = await $`bash ${SCRIPT} start`.quiet().nothrow();
  if (started.exitCode !== 0) return { unavailable: `no PostgreSQL server binaries: ${started.stderr.toString().trim()}` };
  const out = started.stdout.toString();
  const dir = /PG_CLUSTER_DIR=(\S+)/.exec(out)![1]!;
  const url = /TEST_DATABASE_URL=(\S+)/.exec(out)![1]!;
  return { url, stop: async () => void (await $`bash ${SCRIPT} stop ${dir}`.quiet().nothrow()) };
}
