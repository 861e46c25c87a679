/**
 * A throwaway PostgreSQL cluster for a benchmark (scripts/pg-cluster.sh, fsync off), stopped at
 * cleanup unless kept.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import postgres from "postgres";
import { log, onCleanup, ROOT, run } from "./processes";

export type Cluster = {
  dir: string;
  url: string;
  /** One connection to the cluster's default database, for CREATE DATABASE and settings. */
  admin: postgres.Sql;
  version: string;
  /** The postmaster's pid: its children are this cluster's processes (other clusters on the box are not). */
  postmasterPid: number;
  /** The URL of another database on the same cluster. */
  dbUrl(name: string): string;
};

/** `settings`: server settings for the cluster's whole life, as name=value (postgres -c). */
export async function startCluster(o: { keep: boolean; settings?: string[] }): Promise<Cluster> {
  const settings = o.settings ?? [];
  log(`starting a throwaway PostgreSQL cluster (scripts/pg-cluster.sh)${settings.length ? ` with ${settings.join(", ")}` : ""} …`);
  const exports = await run(["bash", join(ROOT, "scripts/pg-cluster.sh"), "start"], {
    PG_CLUSTER_OPTIONS: settings.map((s) => `-c ${s}`).join(" "),
  });
  const dir = /PG_CLUSTER_DIR=(\S+)/.exec(exports)?.[1];
  const url = /TEST_DATABASE_URL=(\S+)/.exec(exports)?.[1];
  if (!dir || !url) throw new Error(`unexpected pg-cluster.sh output:\n${exports}`);
  const admin = postgres(url, { max: 1, onnotice: () => {} });
  onCleanup(async () => {
    await admin.end({ timeout: 2 }).catch(() => {});
    if (o.keep) log(`cluster kept: ${url} (stop it with: bash scripts/pg-cluster.sh stop ${dir})`);
    else Bun.spawnSync(["bash", join(ROOT, "scripts/pg-cluster.sh"), "stop", dir]);
  });
  const [{ version } = { version: "" }] = await admin<{ version: string }[]>`select version()`;
  const [{ pid } = { pid: 0 }] = await admin<{ pid: number }[]>`select pg_backend_pid() as pid`;
  const postmasterPid = Number(readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")[1]);
  // The application name in every log line, so that Warren's statements can be counted apart.
  await admin`alter system set log_line_prefix = '%m [%p] app=%a '`;
  await admin`select pg_reload_conf()`;
  return { dir, url, admin, version, postmasterPid, dbUrl: (name) => url.replace(/\/[^/]*$/, `/${name}`) };
}
