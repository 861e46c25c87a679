import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createDriver, DriverUnavailableError, type OrchestratorDriver, type WorkloadSpec } from "../../src/orchestrator";
import { workloadSpec } from "../helpers/sandboxes";
import { agentAuthHeader } from "../../src/orchestrator/local-driver";
import { cgroupPids } from "../../src/orchestrator/cgroups";
import { SANDBOX_ENV_PREFIX } from "../../src/orchestrator/landlock";
import { pidsOfUid } from "../../src/orchestrator/processes";
import { memoryLogger, testConfig } from "../helpers/app";
import { reapSandboxes } from "../helpers/server";
import { testUidBase } from "../helpers/uids";

// Real bubblewrap sandboxes running the real opencode binary: no mocks. Each start costs seconds.
setDefaultTimeout(120_000);

const dataDir = mkdtempSync(join(tmpdir(), "warren-local-driver-"));
// Sandbox uids and cgroup names are host-wide: a run of its own (two test runs may overlap on one
// machine) keeps both apart from any other run's.
const run = Math.random().toString(36).slice(2, 8);
const uidBase = testUidBase();
const env = { DATA_DIR: dataDir, ORCHESTRATOR_DRIVER: "local", SANDBOX_OPEN_FILES_LIMIT: "1500", SANDBOX_UID_BASE: String(uidBase) };
const newDriver = (extra: Record<string, string> = {}) => createDriver(testConfig({ ...env, ...extra }), memoryLogger().logger);
const driver: OrchestratorDriver = newDriver();
const started: string[] = [];

function spec(sandboxId: string, overrides: Partial<WorkloadSpec> = {}): WorkloadSpec {
  started.push(sandboxId);
  return workloadSpec(sandboxId, { env: { GREETING: "hello" }, ...overrides });
}

type State = { uid: number; pid: number | null };
const stateOf = (id: string) => JSON.parse(readFileSync(join(dataDir, "sandboxes", id, "state.json"), "utf8")) as State;
// On the sandbox's own disk (orchestrator-local-disk.test.ts), mounted while it runs.
const home = (id: string) => join(dataDir, "sandboxes", id, "disk", "home");

/** The sandboxed opencode process itself (the one running as the sandbox's uid, not a helper). */
function agentPid(uid: number): number {
  const pid = pidsOfUid(uid).find((p) => readFileSync(`/proc/${p}/cmdline`, "utf8").startsWith("/run/warren/opencode\0"));
  if (!pid) throw new Error(`no agent process for uid ${uid}`);
  return pid;
}

afterAll(async () => {
  for (const id of started) await driver.remove(id);
  reapSandboxes(dataDir);
  rmSync(dataDir, { recursive: true, force: true });
});

describe("local driver", () => {
  const id = `sbx_local_main_${run}`;
  const s = spec(id);

  beforeAll(async () => {
    expect(await driver.availability()).toEqual({ available: true });
  });

  test("start: the agent answers with the password and refuses without it", async () => {
    const t0 = performance.now();
    const info = await driver.start(s);
    console.error(`local sandbox start: ${Math.round(performance.now() - t0)} ms`);
    expect(info).toMatchObject({ sandboxId: id, state: "running", image: "local:bare", exitCode: null });
    expect(info.agentUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const ok = await fetch(`${info.agentUrl}/global/health`, { headers: { authorization: agentAuthHeader(s.agentPassword) } });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({ healthy: true });
    expect((await fetch(`${info.agentUrl}/session`)).status).toBe(401);
    const wrong = await fetch(`${info.agentUrl}/session`, { headers: { authorization: agentAuthHeader("not-it") } });
    expect(wrong.status).toBe(401);
    const sessions = await fetch(`${info.agentUrl}/session`, { headers: { authorization: agentAuthHeader(s.agentPassword) } });
    expect(sessions.status).toBe(200);
    // Starting a running workload changes nothing.
    expect((await driver.start(s)).workloadId).toBe(info.workloadId);
  });

  test("inspect reports the limits applied, and they are visible in the sandbox's processes", async () => {
    const info = await driver.inspect(id);
    expect(info.state).toBe("running");
    const limits = info.appliedLimits!;
    expect(limits).toMatchObject({ pidsLimit: 256, openFiles: 1500, storageGb: 10 });
    const pid = agentPid(stateOf(id).uid);
    const procLimits = readFileSync(`/proc/${pid}/limits`, "utf8");
    expect(procLimits).toMatch(/Max open files\s+1500\s+1500/);
    expect(procLimits).toMatch(/Max processes\s+256\s+256/);
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    expect(status).toMatch(/^CapEff:\s+0+$/m);
    expect(status).toMatch(new RegExp(`^Uid:\\s+${stateOf(id).uid}\\s`, "m"));
    if (limits.memoryMb !== null) {
      // Reported as applied only when the cgroup holds it: check the cgroup really does.
      expect(limits.memoryMb).toBe(1024);
      expect(cgroupPids(id)).toContain(pid);
      expect(readFileSync(`/sys/fs/cgroup/memory/warren/${id}/memory.limit_in_bytes`, "utf8").trim()).toBe(String(1024 * 1024 * 1024));
    } else {
      expect(limits.notes.join(" ")).toContain("memory: not applied");
    }
    // Its view of the file system: its own home, Warren's data directory hidden.
    const root = `/proc/${pid}/root`;
    expect(existsSync(join(root, "home/sandbox/.config/opencode/opencode.json"))).toBe(true);
    expect(existsSync(join(root, dataDir, "sandboxes"))).toBe(false);
    const environ = readFileSync(`/proc/${pid}/environ`, "utf8").split("\0");
    expect(environ).toContain("HOME=/home/sandbox");
    expect(environ).toContain("GREETING=hello");
    expect(environ).toContain("XDG_CONFIG_HOME=/home/sandbox/.config");
    expect(environ.filter((e) => e.startsWith(SANDBOX_ENV_PREFIX))).toEqual([]);
    // The root-side launcher (sh, then the Landlock helper on Bun) gets the user's variables only
    // renamed, so none of them (BUN_OPTIONS, NODE_OPTIONS, …) is read by a program outside the sandbox.
    const launcher = readFileSync(`/proc/${stateOf(id).pid}/environ`, "utf8").split("\0").filter(Boolean);
    expect(launcher).toContain(`${SANDBOX_ENV_PREFIX}GREETING=hello`);
    expect(launcher.filter((e) => !e.startsWith(SANDBOX_ENV_PREFIX)).map((e) => e.split("=")[0]).sort()).toEqual(["BUN_RUNTIME_TRANSPILER_CACHE_PATH", "HOME", "PATH"]);
    expect(launcher).toContain("HOME=/");
  });

  test("writeFiles lands in the home, owned by the sandbox, mode 0600 by default", async () => {
    await driver.writeFiles(id, [
      { path: ".local/share/opencode/auth.json", content: '{"k":"v"}' },
      { path: "notes/readme.txt", content: "hi", mode: 0o644 },
    ]);
    const auth = statSync(join(home(id), ".local/share/opencode/auth.json"));
    expect(auth.mode & 0o777).toBe(0o600);
    expect(auth.uid).toBe(stateOf(id).uid);
    expect(readFileSync(join(home(id), ".local/share/opencode/auth.json"), "utf8")).toBe('{"k":"v"}');
    expect(statSync(join(home(id), "notes/readme.txt")).mode & 0o777).toBe(0o644);
  });

  test("writeFiles refuses absolute paths and traversal, and symlinks do not lead out", async () => {
    for (const path of ["/etc/passwd", "../escape", "a/../../escape", "..", "", "a/\0b"]) {
      await expect(driver.writeFiles(id, [{ path, content: "x" }])).rejects.toThrow(/unsafe file path/);
    }
    expect(existsSync(join(dataDir, "sandboxes", "escape"))).toBe(false);
    // A workload could plant this link in its home: writing through it must not reach /etc.
    symlinkSync("/etc", join(home(id), "evil"));
    await expect(driver.writeFiles(id, [{ path: "evil/warren-pwned", content: "x" }])).rejects.toThrow();
    expect(existsSync("/etc/warren-pwned")).toBe(false);
    await expect(driver.start({ ...s, sandboxId: `sbx_bad_files_${run}`, files: [{ path: "../x", content: "" }] })).rejects.toThrow(/unsafe/);
    await expect(driver.inspect("../etc")).rejects.toThrow(/invalid sandbox id/);
  });

  test("logs: the workload's output, with tail and since", async () => {
    const lines = await driver.logs(id);
    expect(lines.some((l) => l.includes("opencode server listening on http://127.0.0.1:"))).toBe(true);
    expect(await driver.logs(id, { tail: 1 })).toEqual(lines.slice(-1));
    expect(await driver.logs(id, { since: new Date(Date.now() + 60_000) })).toEqual([]);
    expect((await driver.logs(id, { since: new Date(Date.now() - 600_000) })).length).toBe(lines.length);
  });

  test("a second driver instance (Warren restarted) finds the running workload", async () => {
    const before = await driver.inspect(id);
    const again = newDriver();
    const found = await again.inspect(id);
    expect(found).toMatchObject({ state: "running", workloadId: before.workloadId, agentUrl: before.agentUrl });
    expect((await again.listManaged()).map((w) => [w.sandboxId, w.state])).toContainEqual([id, "running"]);
  });

  test("a sandbox outlives the process that started it being SIGKILLed (Warren crashing)", async () => {
    const crashId = `sbx_local_crash_${run}`;
    const crashSpec = spec(crashId);
    const child = Bun.spawn([process.execPath, join(import.meta.dir, "../helpers/start-local-sandbox.ts"), JSON.stringify(env), JSON.stringify(crashSpec)], {
      stdout: "pipe",
      stderr: "inherit",
    });
    const reader = child.stdout.getReader();
    let out = "";
    while (!out.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      out += new TextDecoder().decode(value);
    }
    const { agentUrl } = JSON.parse(out) as { agentUrl: string };
    child.kill("SIGKILL");
    await child.exited;
    await Bun.sleep(500);
    const found = await driver.inspect(crashId);
    expect(found).toMatchObject({ state: "running", agentUrl });
    const res = await fetch(`${agentUrl}/global/health`, { headers: { authorization: agentAuthHeader(crashSpec.agentPassword) } });
    expect(res.status).toBe(200);
    // The driver that did not start it can still stop it, leaving nothing behind.
    const { uid } = stateOf(crashId);
    await driver.remove(crashId);
    expect(pidsOfUid(uid)).toEqual([]);
    expect(cgroupPids(crashId)).toEqual([]);
  });

  test("stop leaves no process; start again keeps the workspace; remove deletes everything", async () => {
    const { uid } = stateOf(id);
    const agentUrl = (await driver.inspect(id)).agentUrl!;
    writeFileSync(join(dataDir, "sandboxes", id, "disk", "workspace", "kept.txt"), "still here");
    // A process of the same uid outside the sandbox (another Warren's sandbox could have it): stop
    // must kill only what is inside this sandbox.
    const bystander = Bun.spawn(["setpriv", `--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", "sleep", "60"]);
    await driver.stop(id, { timeoutMs: 5_000 });
    expect(await driver.inspect(id)).toMatchObject({ state: "stopped", workloadId: null, agentUrl: null });
    expect(pidsOfUid(uid)).toEqual([bystander.pid]);
    // Nor will it start again under a uid something else runs as: the two would reach each
    // other's loopback listeners. The error names the setting that keeps two Warrens apart.
    await expect(driver.start(s)).rejects.toThrow(/host uid \d+, this sandbox's, is in use .*SANDBOX_UID_BASE/);
    expect(pidsOfUid(uid)).toEqual([bystander.pid]);
    expect((await driver.inspect(id)).state).toBe("stopped");
    bystander.kill("SIGKILL");
    await bystander.exited;
    expect(pidsOfUid(uid)).toEqual([]);
    expect(cgroupPids(id)).toEqual([]);
    await expect(fetch(`${agentUrl}/global/health`)).rejects.toThrow();
    await driver.stop(id); // idempotent

    const restarted = await driver.start(s);
    expect(restarted.state).toBe("running");
    expect(stateOf(id).uid).toBe(uid);
    const pid = agentPid(uid);
    expect(readFileSync(`/proc/${pid}/root/home/workspace/kept.txt`, "utf8")).toBe("still here");

    await driver.remove(id);
    expect(pidsOfUid(uid)).toEqual([]);
    expect(existsSync(join(dataDir, "sandboxes", id))).toBe(false);
    expect(existsSync(`/sys/fs/cgroup/pids/warren/${id}`)).toBe(false);
    expect((await driver.inspect(id)).state).toBe("missing");
    expect((await driver.listManaged()).map((w) => w.sandboxId)).not.toContain(id);
    await driver.remove(id); // idempotent
  });
});

describe("local driver concurrency", () => {
  test("a remove issued in the middle of a start waits for it, then leaves nothing", async () => {
    const id = `sbx_local_race_${run}`;
    // Not awaited: the removal is issued while the start is creating the sandbox.
    const starting = driver.start(spec(id));
    await Bun.sleep(50);
    const removing = driver.remove(id);
    const info = await starting;
    expect(info.state).toBe("running");
    await removing;
    expect((await driver.inspect(id)).state).toBe("missing");
    expect(existsSync(join(dataDir, "sandboxes", id))).toBe(false);
    // Nothing of the sandbox runs: no agent answers on its port, no process is in its cgroup.
    await expect(fetch(`${info.agentUrl}/global/health`)).rejects.toThrow();
    expect(cgroupPids(id)).toEqual([]);
    expect((await driver.listManaged()).map((w) => w.sandboxId)).not.toContain(id);
  });
});

describe("local driver failures", () => {
  test("an agent that never answers fails start with its last output and leaves nothing", async () => {
    const slow = newDriver({ SANDBOX_AGENT_START_TIMEOUT_MS: "1000" });
    const id = `sbx_local_slow_${run}`;
    const error = await slow.start(spec(id)).then(
      () => null,
      (e: Error) => e,
    );
    expect(error?.message).toMatch(/sbx_local_slow_\w+: the agent did not answer within 1000 ms; last output:/);
    const { uid } = stateOf(id);
    expect(pidsOfUid(uid)).toEqual([]);
    expect((await slow.inspect(id)).state).toBe("stopped");
    await slow.remove(id);
  });

  test("a missing opencode binary makes the driver unavailable, never an unsandboxed fallback", async () => {
    const broken = newDriver({ OPENCODE_BIN: "/nonexistent/opencode" });
    const availability = await broken.availability();
    expect(availability).toMatchObject({ available: false, install: "bun install" });
    const error = await broken.start(spec(`sbx_local_nobin_${run}`)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DriverUnavailableError);
    expect(existsSync(join(dataDir, "sandboxes", `sbx_local_nobin_${run}`))).toBe(false);
  });
});
