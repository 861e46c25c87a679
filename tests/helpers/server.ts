import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll } from "bun:test";
import type { Subprocess } from "bun";
import { createTestDatabase, TEST_DATABASE_URL, type TestDatabase } from "./db";
import { TEST_SECRET } from "./app";
import { guardTableName, nftBinary } from "../../src/orchestrator/loopback-guard";
import { unmountAllUnder } from "../../src/orchestrator/local-disk";
import { pickLoopbackPort } from "../../src/orchestrator/processes";
import { testUidBase } from "./uids";

const ROOT = join(import.meta.dir, "..", "..");

/** A free loopback port, below the ephemeral range (src/orchestrator/processes.ts); startServer also retries. */
export const freePort = pickLoopbackPort;

/**
 * Where an e2e server keeps its data: with TEST_DATABASE_URL a fresh database on that server,
 * else a temporary data directory for the embedded PGlite. Reusable across restarts.
 */
export type ServerStorage = { env: Record<string, string>; destroy(): Promise<void> };

export async function createServerStorage(): Promise<ServerStorage> {
  if (TEST_DATABASE_URL) {
    const db: TestDatabase = await createTestDatabase();
    await db.close(); // the server process opens its own pool; keep the database itself
    return {
      env: { DATABASE_URL: db.url! },
      destroy: () => db.destroy(),
    };
  }
  const dir = mkdtempSync(join(tmpdir(), "warren-e2e-"));
  return {
    env: { DATA_DIR: dir },
    destroy: async () => {
      reapSandboxes(dir);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export type RunningServer = {
  url: string;
  port: number;
  proc: Subprocess<"ignore", "pipe", "pipe">;
  /** Everything the process wrote, line by line (stdout JSON logs and stderr). */
  output: string[];
  /** Sends a signal and waits for the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number>;
};

class PortInUse extends Error {}

/**
 * Starts `bun src/index.ts` and waits for /ready. The port freePort() picked can still be taken
 * before the server binds it (by another test worker's listener: ports below the ephemeral range
 * are safe from connections only): then the start is tried again, on a new port, or on the same
 * one a moment later when the caller chose it (a restart on the same address).
 */
export async function startServer(options: { storage: ServerStorage; env?: Record<string, string>; port?: number }): Promise<RunningServer> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startServerOn(options.port ?? freePort(), options);
    } catch (err) {
      if (!(err instanceof PortInUse) || attempt >= 5) throw err;
      await Bun.sleep(options.port === undefined ? 0 : 500);
    }
  }
}

async function startServerOn(port: number, options: { storage: ServerStorage; env?: Record<string, string> }): Promise<RunningServer> {
  const url = `http://127.0.0.1:${port}`;
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? "",
    HOME: process.env.HOME ?? "/tmp",
    NODE_ENV: "production",
    HOST: "127.0.0.1",
    PORT: String(port),
    PUBLIC_URL: url,
    AUTH_SECRET: TEST_SECRET,
    // Production refuses to start without a keyring; a fixed test key, never a real one.
    ENCRYPTION_KEYS: `test1:${Buffer.alloc(32, 7).toString("base64")}`,
    LOG_LEVEL: "info",
    AUTH_RATE_LIMIT_MAX: "100000",
    AUTH_SIGN_IN_RATE_LIMIT_MAX: "100000",
    API_RATE_LIMIT_MAX: "100000",
    SANDBOX_UID_BASE: String(testUidBase()),
    ...options.storage.env,
    ...options.env,
  };
  const proc = Bun.spawn([process.execPath, "src/index.ts"], { cwd: ROOT, env, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const output: string[] = [];
  // Reading the pipes to their end, so that stop() returns only once every line is in `output`.
  const drained = Promise.all([collect(proc.stdout, output), collect(proc.stderr, output)]);
  const server: RunningServer = {
    url,
    port,
    proc,
    output,
    async stop(signal = "SIGTERM") {
      if (proc.exitCode === null) proc.kill(signal);
      const code = await proc.exited;
      await drained;
      return code;
    },
  };
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) {
      await drained;
      const message = `server exited with ${proc.exitCode}:\n${output.join("\n")}`;
      throw /EADDRINUSE|Is port \d+ in use/.test(message) ? new PortInUse(message) : new Error(message);
    }
    try {
      const res = await fetch(`${url}/ready`);
      if (res.status === 200) return server;
    } catch {
      // not listening yet
    }
    await Bun.sleep(100);
  }
  await server.stop("SIGKILL");
  throw new Error(`server did not become ready:\n${output.join("\n")}`);
}

/**
 * One real server process for the calling test file, on fresh storage: started in beforeAll,
 * stopped and its storage destroyed in afterAll. Returns an accessor, like useTestApp.
 */
export function useServer(env: Record<string, string> = {}): () => RunningServer {
  let storage: ServerStorage | undefined;
  let server: RunningServer | undefined;
  beforeAll(async () => {
    storage = await createServerStorage();
    server = await startServer({ storage, env });
  }, 120_000);
  afterAll(async () => {
    await server?.stop();
    await storage?.destroy();
  }, 60_000);
  return () => {
    if (!server) throw new Error("useServer: the server is started in beforeAll");
    return server;
  };
}

async function collect(stream: ReadableStream<Uint8Array>, into: string[]) {
  const decoder = new TextDecoder();
  let buffer = "";
  const reader = stream.getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    const lines = buffer.split("\n");
    buffer = lines.pop() ?? "";
    into.push(...lines.filter(Boolean));
  }
  if (buffer) into.push(buffer);
}

/**
 * Sandboxes outlive the Warren that started them (as they must: a crash or restart leaves them
 * running for the reconciler). A test that fails midway never stops its own, so every test that
 * runs real sandboxes calls this before deleting its data directory: it kills, by process group,
 * each sandbox launcher whose directories are under `dir` (bwrap's --die-with-parent then takes
 * the rest of the sandbox with it), and deletes the data directory's loopback guard table (a host
 * resource that would outlive the test otherwise).
 */
export function reapSandboxes(dir: string): number {
  const marker = `${dir.replace(/\/$/, "")}/sandboxes/`;
  let reaped = 0;
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let cmdline: string;
    try {
      cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8");
    } catch {
      continue;
    }
    if (!cmdline.includes("warren-launch\0") || !cmdline.includes(marker)) continue;
    try {
      process.kill(-Number(entry), "SIGKILL");
      reaped++;
    } catch {
      // already gone
    }
  }
  const nft = nftBinary();
  if (nft) {
    const table = `inet ${guardTableName(dir)}`;
    Bun.spawnSync([nft, "-f", "-"], { stdin: Buffer.from(`table ${table}\ndelete table ${table}\n`), stdout: "ignore", stderr: "ignore" });
  }
  // Sandbox disks left mounted (lazily: the killed processes may still hold them; their loop
  // devices go with the last user), so that removing the directory never reaches into one.
  unmountAllUnder(dir);
  return reaped;
}
