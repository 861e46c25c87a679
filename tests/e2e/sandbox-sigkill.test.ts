import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { processesMentioning } from "../helpers/proc";
import { createServerStorage, startServer, type RunningServer, type ServerStorage, reapSandboxes } from "../helpers/server";
import { testUidBase } from "../helpers/uids";

/**
 * Fault test (issue 11): Warren is killed with SIGKILL while several sandboxes are in the middle
 * of transitions (starting, stopping, deleting), with the real local driver (OpenCode under
 * bubblewrap), then restarted on the same storage. After the reconciler and the operation worker
 * have run, every sandbox is in a real state that matches what runs on the host: no transitional
 * status left, no workload of a sandbox that is not running, exactly one workload per running
 * sandbox, none for a deleted one; and the API answers. Finally everything is stopped and no
 * sandbox process is left on the host.
 */
setDefaultTimeout(240_000);

const TRANSITIONAL = ["creating", "starting", "stopping", "deleting"];
const SETTLED = ["running", "stopped", "error"];

let storage: ServerStorage;
let dataDir: string;
let env: Record<string, string>;
let server: RunningServer | undefined;

beforeAll(async () => {
  storage = await createServerStorage();
  dataDir = mkdtempSync(join(tmpdir(), "warren-e2e-sigkill-"));
  env = {
    ...(storage.env.DATA_DIR ? {} : { DATA_DIR: dataDir }),
    // Sandbox uids are host-wide: a range of this run's own, apart from other test files, the same
    // for the restarted server.
    SANDBOX_UID_BASE: String(testUidBase()),
    MAX_RUNNING_SANDBOXES_PER_USER: "10",
    // The shortest settings config allows, so the reconciler acts within the test.
    SANDBOX_TRANSITION_TIMEOUT_SECONDS: "10",
    SANDBOX_RECONCILE_INTERVAL_SECONDS: "1",
    // A killed worker's claim lapses this long after its last renewal; then the operation is
    // handed on (a live worker renews, so a long start is never taken from it).
    SANDBOX_OPERATION_CLAIM_SECONDS: "3",
  };
}, 120_000);

afterAll(async () => {
  await server?.stop();
  // Whatever a failed assertion left behind: no workload of this run outlives the file.
  for (const pid of workloadPids(() => true)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  await storage?.destroy();
  reapSandboxes(dataDir);
  rmSync(dataDir, { recursive: true, force: true });
}, 120_000);

const sandboxRoot = () => storage.env.DATA_DIR ?? dataDir;

/** bubblewrap processes of this run's sandboxes (their command line names the sandbox directory). */
function workloadPids(match: (cmdline: string) => boolean): number[] {
  const root = sandboxRoot();
  return readdirSync("/proc")
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        const cmdline = readFileSync(`/proc/${p}/cmdline`, "utf8");
        return cmdline.includes(root) && match(cmdline);
      } catch {
        return false;
      }
    })
    .map(Number);
}

/**
 * The sandbox's workloads: its outermost bubblewrap processes (bwrap forks itself once inside
 * the new namespaces, so a workload is a bwrap whose parent is not a bwrap of the same sandbox).
 */
function launchersOf(sandboxId: string): number[] {
  const all = workloadPids((c) => c.split("\0")[0]!.endsWith("bwrap") && c.includes(sandboxId));
  const parentOf = (pid: number) => {
    try {
      // /proc/PID/stat: "pid (comm) state ppid …"; comm may hold spaces, so read after the last ")".
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    } catch {
      return -1;
    }
  };
  return all.filter((pid) => !all.includes(parentOf(pid)));
}


type Sandbox = { id: string; status: string; desiredStatus: string; statusReason: string | null };

function client(s: () => RunningServer, token: () => string) {
  return (path: string, init: RequestInit = {}) =>
    fetch(`${s().url}/api/v1${path}`, {
      ...init,
      headers: { authorization: `Bearer ${token()}`, "content-type": "application/json", ...(init.headers ?? {}) },
    });
}

describe("SIGKILL in the middle of sandbox transitions", () => {
  test("after a restart every sandbox is in a real state that matches the host, then nothing is left", async () => {
    server = await startServer({ storage, env });
    const signUp = await fetch(`${server.url}/api/auth/sign-up/email`, {
      method: "POST",
      headers: { "content-type": "application/json", origin: server.url },
      body: JSON.stringify({ email: `sigkill.${Date.now()}@example.com`, password: "sigkill password", name: "Sigkill" }),
    });
    expect(signUp.status).toBe(200);
    let token = signUp.headers.get("set-auth-token")!;
    const api = client(() => server!, () => token);

    const create = async (name: string) => {
      const res = await api("/sandboxes", { method: "POST", body: JSON.stringify({ name, resourceTierId: "micro" }) });
      expect(res.status).toBe(201);
      return ((await res.json()) as Sandbox).id;
    };
    const waitFor = async (id: string, status: string) => {
      const res = await api(`/sandboxes/${id}/wait?status=${status}&timeoutSeconds=90`);
      const body = (await res.json()) as { reached: boolean; sandbox: Sandbox };
      if (!body.reached) throw new Error(`${id} did not reach ${status}: ${JSON.stringify(body.sandbox)}`);
    };
    const post = async (id: string, action: string) => {
      const res = await api(`/sandboxes/${id}${action ? `/${action}` : ""}`, { method: action ? "POST" : "DELETE" });
      expect(res.status).toBe(202);
    };

    // Two running sandboxes to stop and delete mid-flight; four stopped ones to start and delete.
    const [runA, runB, idleA, idleB, idleC, idleD] = await Promise.all(["run-a", "run-b", "idle-a", "idle-b", "idle-c", "idle-d"].map(create));
    await post(runA!, "start");
    await post(runB!, "start");
    await waitFor(runA!, "running");
    await waitFor(runB!, "running");
    expect(launchersOf(runA!)).toHaveLength(1);

    // Transitions under way all at once: starting, stopping, deleting (a running and a stopped one).
    await Promise.all([post(idleA!, "start"), post(idleB!, "start"), post(runA!, "stop"), post(runB!, ""), post(idleC!, "")]);
    // Let the worker get into them (an agent takes seconds to boot), then kill Warren outright.
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && launchersOf(idleA!).length + launchersOf(idleB!).length === 0) await Bun.sleep(50);
    const before = (await (await api("/sandboxes?limit=100")).json()) as { data: Sandbox[] };
    const inFlight = before.data.filter((s) => TRANSITIONAL.includes(s.status)).map((s) => `${s.id}:${s.status}`);
    expect(inFlight.length).toBeGreaterThan(0);
    console.error(`sigkill: killing Warren with ${inFlight.join(", ")} in flight`);
    expect(await server.stop("SIGKILL")).not.toBe(0);

    // Restart on the same storage (the session lives in the database: the same token works).
    server = await startServer({ storage, env });
    let sandboxes: Sandbox[] = [];
    const settleBy = Date.now() + 150_000;
    for (;;) {
      const res = await api("/sandboxes?limit=100");
      expect(res.status).toBe(200);
      sandboxes = ((await res.json()) as { data: Sandbox[] }).data;
      if (sandboxes.every((s) => SETTLED.includes(s.status))) break;
      if (Date.now() > settleBy) throw new Error(`still in transition after the restart: ${JSON.stringify(sandboxes)}`);
      await Bun.sleep(500);
    }

    console.error(`sigkill: after the restart: ${sandboxes.map((s) => `${s.id}:${s.status}(${s.statusReason})`).join(", ")}`);
    // What was being deleted is gone, from the API and from the host.
    const ids = sandboxes.map((s) => s.id);
    expect(ids).not.toContain(runB);
    expect(ids).not.toContain(idleC);
    expect((await api(`/sandboxes/${runB}`)).status).toBe(404);
    expect(processesMentioning(runB!)).toEqual([]);
    expect(processesMentioning(idleC!)).toEqual([]);
    // Every remaining sandbox matches what runs: one launcher when running, none otherwise.
    for (const s of sandboxes) {
      expect({ id: s.id, status: s.status, launchers: launchersOf(s.id).length }).toEqual({
        id: s.id,
        status: s.status,
        launchers: s.status === "running" ? 1 : 0,
      });
    }
    // The untouched sandbox is still stopped; the stopped one is stopped (desired stopped).
    expect(sandboxes.find((s) => s.id === idleD)?.status).toBe("stopped");
    expect(sandboxes.find((s) => s.id === runA)?.status).toBe("stopped");
    // Those asked to start are running, or honestly in error with a reason; never stuck.
    for (const id of [idleA!, idleB!]) {
      const s = sandboxes.find((x) => x.id === id)!;
      expect(["running", "error"]).toContain(s.status);
    }
    // The API answers normally.
    expect((await api("/me")).status).toBe(200);

    // Stop everything, delete everything: nothing of this run is left on the host.
    for (const s of sandboxes.filter((x) => x.status === "running")) await post(s.id, "stop");
    for (const s of sandboxes.filter((x) => x.status === "running")) await waitFor(s.id, "stopped");
    for (const s of sandboxes) await post(s.id, "");
    const goneBy = Date.now() + 60_000;
    while (Date.now() < goneBy && ((await (await api("/sandboxes?limit=100")).json()) as { data: Sandbox[] }).data.length > 0) await Bun.sleep(300);
    expect(((await (await api("/sandboxes?limit=100")).json()) as { data: Sandbox[] }).data).toEqual([]);
    await server.stop();
    server = undefined;
    expect(workloadPids(() => true)).toEqual([]);
    for (const id of [runA!, runB!, idleA!, idleB!, idleC!, idleD!]) expect(processesMentioning(id)).toEqual([]);
    token = "";
  });
});
