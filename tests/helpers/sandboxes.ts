import { afterAll, beforeAll } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AddonSpec, WorkloadSpec } from "../../src/orchestrator";
import { LocalDriver, type LocalDriverOptions } from "../../src/orchestrator/local-driver";
import { startOperationWorker, type OperationWorker } from "../../src/services/sandboxes/operation-worker";
import type { SandboxRuntime } from "../../src/services/sandboxes/runtime";
import { buildSandboxRuntime } from "../../src/services/sandboxes/setup";
import { createTestApp, memoryLogger, type TestApp } from "./app";
import { reapSandboxes } from "./server";
import { testUidBase } from "./uids";

/**
 * A test app with the real local driver (bubblewrap + OpenCode) in a temporary directory of its
 * own, and the operation worker running. `clock` is the runtime's injectable clock: tests move it
 * forward instead of sleeping. Every workload is removed when the file is done. `driverOptions` is
 * read when the app is built (beforeAll), so it may name ports of servers the file starts at load:
 * the loopback guard keeps sandboxes off host loopback ports unless they are allow-listed.
 */
export type SandboxTestApp = TestApp & {
  rt: SandboxRuntime;
  worker: OperationWorker;
  driver: LocalDriver;
  clock: { offsetMs: number };
  /** The driver's data directory: sandboxes live in <dataDir>/sandboxes/<id>/disk/{home,workspace} (their own disk, mounted while they run). */
  dataDir: string;
};

export function useSandboxApp(env: Record<string, string> = {}, driverOptions: () => Partial<LocalDriverOptions> = () => ({})): () => SandboxTestApp {
  let current: SandboxTestApp | undefined;
  let dir: string | undefined;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "warren-sbx-"));
    const clock = { offsetMs: 0 };
    const now = () => new Date(Date.now() + clock.offsetMs);
    const { logger } = memoryLogger("warn");
    const driver = new LocalDriver({
      dataDir: dir,
      opencodeBin: undefined,
      agentStartTimeoutMs: 60_000,
      uidBase: testUidBase(),
      openFilesLimit: 4096,
      logMaxBytes: 1024 * 1024,
      logger,
      ...driverOptions(),
    });
    let rt!: ReturnType<typeof buildSandboxRuntime>;
    const t = await createTestApp({
      env: { MAX_SANDBOXES_PER_USER: "200", MAX_RUNNING_SANDBOXES_PER_USER: "3", ...env },
      sandboxes: (base) => {
        rt = buildSandboxRuntime({ ...base, driver, now });
        return rt;
      },
    });
    const worker = startOperationWorker(rt, { holder: "test-worker", pollMs: 100 });
    rt.attachWorker(worker);
    current = { ...t, rt, worker, driver, clock, dataDir: dir };
  }, 120_000);
  afterAll(async () => {
    if (current) {
      await current.worker.stop();
      for (const w of await current.driver.listManaged()) await current.driver.remove(w.sandboxId);
      await current.driver.close();
      await current.close();
    }
    if (dir) {
      reapSandboxes(dir);
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
  return () => {
    if (!current) throw new Error("useSandboxApp: built in beforeAll");
    return current;
  };
}

/**
 * What the sandbox service hands a driver to start a workload, with the defaults the driver tests
 * share (the bare flavor, a small tier, an empty opencode.json, a fresh agent password); each test
 * overrides what it is about.
 */
export function workloadSpec(sandboxId: string, overrides: Partial<WorkloadSpec> = {}): WorkloadSpec {
  return {
    sandboxId,
    userId: "usr_test",
    flavorId: "bare",
    image: "warren/sandbox-bare:latest",
    limits: { cpuCores: 1, memoryMb: 1024, pidsLimit: 256, storageGb: 10 },
    addons: [],
    env: {},
    agentPassword: `pw-${sandboxId}-${Math.random().toString(36).slice(2)}`,
    files: [{ path: ".config/opencode/opencode.json", content: '{"$schema":"https://opencode.ai/config.json"}' }],
    repositoryUrl: null,
    ...overrides,
  };
}

/** An add-on whose service is `command` (HTTP, ready on "/"), on a port the driver allocates. */
export const serviceAddon = (id: string, command: string): AddonSpec => ({
  id,
  port: null,
  service: { command, protocol: "http", readinessPath: "/" },
  tools: [],
  requires: [],
  installHint: null,
});
