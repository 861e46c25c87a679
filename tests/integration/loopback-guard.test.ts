import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { networkInterfaces, tmpdir } from "node:os";
import { join } from "node:path";
import type { TCPSocketListener } from "bun";
import { createDriver, type OrchestratorDriver, type WorkloadSpec } from "../../src/orchestrator";
import { serviceAddon, workloadSpec } from "../helpers/sandboxes";
import { agentAuthHeader } from "../../src/orchestrator/local-driver";
import { scopeUnavailableNote } from "../../src/orchestrator/landlock";
import { dropOrphanedTables, GUARD_REGISTRY_DIR, guardTableName, LoopbackGuard } from "../../src/orchestrator/loopback-guard";
import { pidsOfUid } from "../../src/orchestrator/processes";
import { orchestratorStatus } from "../../src/routes/orchestrator";
import { memoryLogger, testConfig } from "../helpers/app";
import { TEST_DATABASE_URL } from "../helpers/db";
import { abstractProbe, connectAsRoot, expectAbstractScope, connectOutcome, nftMembers, nftTableExists, tcpConnect } from "../helpers/guard";
import { reapSandboxes } from "../helpers/server";
import { testUidBase } from "../helpers/uids";

// The local driver's loopback guard, for real: two bubblewrap sandboxes running OpenCode and an
// add-on service, the guard's nftables table in the kernel, and connections made from inside
// sandbox A (a process entered into A's mount, pid, ipc and uts namespaces with nsenter, running
// as A's uid with no capabilities, as A's own processes do). The sandbox shares the host's network
// namespace, so what the kernel judges is exactly what it judges for A's agent: the uid that owns
// the connecting socket. No mocks.
setDefaultTimeout(120_000);

const dataDir = mkdtempSync(join(tmpdir(), "warren-loopback-guard-"));
const run = Math.random().toString(36).slice(2, 8);
const uidBase = testUidBase();
const table = guardTableName(dataDir);

// Root-owned loopback listeners: a host service no sandbox should reach (stands in for
// PostgreSQL), a port the operator allow-lists (a local model server), and Warren's own API port.
const listen = (hostname = "127.0.0.1") => Bun.listen({ hostname, port: 0, socket: { data() {}, open(s) { s.end(); } } });
const listeners: TCPSocketListener[] = [];
const keep = (l: TCPSocketListener) => (listeners.push(l), l);
const hostService = keep(listen("0.0.0.0"));
const hostService6 = keep(listen("::1"));
const allowed = keep(listen());
const warrenApi = keep(listen());

const env = {
  DATA_DIR: dataDir,
  ORCHESTRATOR_DRIVER: "local",
  SANDBOX_UID_BASE: String(uidBase),
  SANDBOX_LOOPBACK_ALLOW_PORTS: String(allowed.port),
  PORT: String(warrenApi.port),
};
const newDriver = (extra: Record<string, string> = {}) => createDriver(testConfig({ ...env, ...extra }), memoryLogger().logger);
let driver: OrchestratorDriver = newDriver();

// An add-on service in each sandbox, on the loopback port the driver allocates for it, that also
// probes abstract unix sockets from inside (tests/helpers/guard.ts).
const spec = (sandboxId: string) => workloadSpec(sandboxId, { userId: "usr_guard", addons: [serviceAddon("web", abstractProbe("/usr/bin/bun", sandboxId))] });

type Sandbox = { id: string; spec: WorkloadSpec; uid: number; agentPort: number; addonPort: number };
const state = (id: string) => JSON.parse(readFileSync(join(dataDir, "sandboxes", id, "state.json"), "utf8")) as { uid: number; port: number; addonPorts: Record<string, number> };
const a = { id: `sbx_guard_a_${run}` } as Sandbox;
const b = { id: `sbx_guard_b_${run}` } as Sandbox;

async function startSandbox(s: Sandbox) {
  s.spec = spec(s.id);
  await driver.start(s.spec);
  const st = state(s.id);
  Object.assign(s, { uid: st.uid, agentPort: st.port, addonPort: st.addonPorts.web });
}

/** The sandboxed opencode process: nsenter's way into the sandbox's namespaces. */
function agentPid(uid: number): number {
  const pid = pidsOfUid(uid).find((p) => readFileSync(`/proc/${p}/cmdline`, "utf8").startsWith("/run/warren/opencode\0"));
  if (!pid) throw new Error(`no agent process for uid ${uid}`);
  return pid;
}

/** argv running `cmd` inside sandbox s, as its uid, without capabilities. */
const inside = (s: Sandbox, cmd: string[]) => [
  "nsenter", "-t", String(agentPid(s.uid)), "-m", "-p", "-i", "-u", "--",
  "setpriv", `--reuid=${s.uid}`, `--regid=${s.uid}`, "--clear-groups", "--inh-caps=-all", "--bounding-set=-all", "--",
  ...cmd,
];

/** A TCP connect from inside sandbox s: "open", "refused" or what else happened. */
const connectFrom = (s: Sandbox, host: string, port: number) => connectOutcome(inside(s, tcpConnect(host, port)));

const nftMembersNow = () => nftMembers(table);
const tableExists = () => nftTableExists(table);

const hostAddress = Object.values(networkInterfaces())
  .flat()
  .find((i) => i && i.family === "IPv4" && !i.internal)?.address;

beforeAll(async () => {
  const unscoped = scopeUnavailableNote(); // null on Linux 6.12+
  expect(await driver.availability()).toEqual(unscoped ? { available: true, notes: [unscoped] } : { available: true });
  await startSandbox(a);
  await startSandbox(b);
});

afterAll(async () => {
  for (const s of [a, b]) await driver.remove(s.id).catch(() => undefined);
  reapSandboxes(dataDir);
  rmSync(dataDir, { recursive: true, force: true });
  for (const l of listeners) l.stop(true);
});

describe("loopback guard (local driver, real nftables)", () => {
  test("the table holds exactly the running sandboxes' uids", async () => {
    expect(await nftMembersNow()).toEqual([a.uid, b.uid].sort());
  });

  test("a sandbox reaches its own agent and add-on, and a server it starts itself", async () => {
    expect(await connectFrom(a, "127.0.0.1", a.agentPort)).toBe("open");
    expect(await connectFrom(a, "127.0.0.1", a.addonPort)).toBe("open");
    // A dev server on a port no one allocated (npm run dev, a test suite's server), then curl-like.
    const script = `const s = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("dev") }); console.log(s.port); await Bun.sleep(30000);`;
    const dev = Bun.spawn(inside(a, ["env", "HOME=/home/sandbox", "/usr/bin/bun", "-e", script]), { stdout: "pipe", stderr: "inherit" });
    try {
      const reader = dev.stdout.getReader();
      const { value } = await reader.read();
      const port = Number(new TextDecoder().decode(value).trim());
      expect(port).toBeGreaterThan(0);
      expect(await connectFrom(a, "127.0.0.1", port)).toBe("open");
      // ... which another sandbox cannot reach.
      expect(await connectFrom(b, "127.0.0.1", port)).toBe("refused");
    } finally {
      dev.kill("SIGKILL");
      await dev.exited;
    }
  });

  test("a sandbox is refused on another sandbox's agent and add-on (code-server has no password)", async () => {
    expect(await connectFrom(a, "127.0.0.1", b.agentPort)).toBe("refused");
    expect(await connectFrom(a, "127.0.0.1", b.addonPort)).toBe("refused");
    expect(await connectFrom(b, "127.0.0.1", a.addonPort)).toBe("refused");
    // Any loopback address is the same host: 127.0.0.2 is no way around it.
    expect(await connectFrom(a, "127.0.0.2", b.addonPort)).toBe("refused");
  });

  test("a sandbox is refused on host loopback services, over IPv4, IPv6 and the host's own address", async () => {
    expect(await connectFrom(a, "127.0.0.1", hostService.port)).toBe("refused");
    expect(await connectFrom(a, "::1", hostService6.port)).toBe("refused");
    if (hostAddress) expect(await connectFrom(a, hostAddress, hostService.port)).toBe("refused");
    // The PostgreSQL server of this run (trust auth on 127.0.0.1), when the tests use one.
    if (TEST_DATABASE_URL) {
      const port = Number(new URL(TEST_DATABASE_URL).port || 5432);
      expect(await connectFrom(a, "127.0.0.1", port)).toBe("refused");
    }
  });

  test("allow-listed ports and Warren's own port stay reachable; root (Warren) reaches everything", async () => {
    expect(await connectFrom(a, "127.0.0.1", allowed.port)).toBe("open");
    expect(await connectFrom(b, "127.0.0.1", allowed.port)).toBe("open");
    expect(await connectFrom(a, "127.0.0.1", warrenApi.port)).toBe("open");
    for (const port of [a.agentPort, a.addonPort, b.agentPort, b.addonPort, hostService.port]) expect(await connectAsRoot(port)).toBe("open");
    // The agents' replies to Warren pass: the proxy's view of both agents works.
    for (const s of [a, b]) {
      const res = await fetch(`http://127.0.0.1:${s.agentPort}/global/health`, { headers: { authorization: agentAuthHeader(s.spec.agentPassword) } });
      expect(res.status).toBe(200);
      expect(await (await fetch(`http://127.0.0.1:${s.addonPort}/`)).text()).toBe("addon");
    }
  });

  test("abstract unix sockets: a sandbox reaches its own, not the host's nor another sandbox's (Landlock scope)", async () => {
    await expectAbstractScope(a, b, driver);
  });

  test("stopping a sandbox removes its uid; a restarted Warren rebuilds the table from the running sandboxes", async () => {
    await driver.stop(a.id, { timeoutMs: 5_000 });
    expect(await nftMembersNow()).toEqual([b.uid]);

    // The table lost (a flushed ruleset, a reboot of nftables): a new driver instance puts it back
    // on its first look at the sandboxes, with B (still running) in it.
    expect((await Bun.spawn(["nft", "delete", "table", "inet", table]).exited)).toBe(0);
    driver = newDriver();
    expect((await driver.listManaged()).find((w) => w.sandboxId === b.id)?.state).toBe("running");
    expect(await nftMembersNow()).toEqual([b.uid]);
    expect(await connectFrom(b, "127.0.0.1", b.addonPort)).toBe("open");
    expect(await connectFrom(b, "127.0.0.1", hostService.port)).toBe("refused");

    // A starts again (new ports): it is back in, and B is still kept out of A's new ports.
    await startSandbox(a);
    expect(await nftMembersNow()).toEqual([a.uid, b.uid].sort());
    expect(await connectFrom(a, "127.0.0.1", a.addonPort)).toBe("open");
    expect(await connectFrom(b, "127.0.0.1", a.addonPort)).toBe("refused");
  });

  test("removing the last sandbox deletes the table", async () => {
    await driver.remove(a.id);
    expect(await tableExists()).toBe(true);
    await driver.remove(b.id);
    expect(await tableExists()).toBe(false);
  });
});

describe("loopback guard, the table's lifetime", () => {
  test("the last removal does not drop the table while a start admitted by this process is in flight", async () => {
    // The race the driver's remove() had: its count of sandboxes misses one whose start has been
    // admitted but has not written its state yet; dropping then would leave that sandbox unguarded.
    const dir = mkdtempSync(join(tmpdir(), "warren-guard-drop-"));
    const name = guardTableName(dir);
    const guard = new LoopbackGuard({ dataDir: dir, allowPorts: [], logger: memoryLogger().logger }, () => []);
    try {
      await guard.admit(uidBase + 999);
      await guard.drop();
      expect(await nftTableExists(name)).toBe(true);
      await guard.release(uidBase + 999);
      await guard.drop();
      expect(await nftTableExists(name)).toBe(false);
    } finally {
      reapSandboxes(dir);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("loopback guard, tables left behind", () => {
  test("a table whose data directory was deleted (a crashed Warren's) is dropped; one whose directory exists is kept", async () => {
    // Two data directories whose Warren crashed with a sandbox admitted (nothing released, nothing
    // dropped); then one directory is deleted. Its table would go on judging the uid it holds,
    // which another Warren on this host may hand out again.
    const gone = mkdtempSync(join(tmpdir(), "warren-guard-gone-"));
    const kept = mkdtempSync(join(tmpdir(), "warren-guard-kept-"));
    const { logger, lines } = memoryLogger();
    try {
      for (const dir of [gone, kept]) await new LoopbackGuard({ dataDir: dir, allowPorts: [], logger }, () => []).admit(uidBase + 998);
      expect(readFileSync(join(GUARD_REGISTRY_DIR, guardTableName(gone)), "utf8")).toBe(gone);
      rmSync(gone, { recursive: true, force: true });

      // What the first table a Warren process writes does first (rebuild), with its own table's name.
      const dropped = await dropOrphanedTables(table, logger);
      expect(dropped).toContain(guardTableName(gone));
      expect(dropped).not.toContain(guardTableName(kept));
      expect(await nftTableExists(guardTableName(gone))).toBe(false);
      expect(existsSync(join(GUARD_REGISTRY_DIR, guardTableName(gone)))).toBe(false);
      expect(await nftTableExists(guardTableName(kept))).toBe(true);
      expect(lines.some((l) => l.includes("no longer exists") && l.includes(guardTableName(gone)))).toBe(true);
    } finally {
      const guard = new LoopbackGuard({ dataDir: kept, allowPorts: [], logger }, () => []);
      await guard.release(uidBase + 998);
      await guard.drop();
      expect(await nftTableExists(guardTableName(kept))).toBe(false);
      expect(existsSync(join(GUARD_REGISTRY_DIR, guardTableName(kept)))).toBe(false);
      rmSync(gone, { recursive: true, force: true });
      rmSync(kept, { recursive: true, force: true });
    }
  });
});

describe("loopback guard turned off", () => {
  test("availability says so (GET /api/v1/orchestrator shows the note) and start-up logs a warning", async () => {
    const { logger, lines } = memoryLogger("info");
    const offDir = mkdtempSync(join(tmpdir(), "warren-guard-off-"));
    const off = createDriver(testConfig({ ...env, DATA_DIR: offDir, SANDBOX_LOOPBACK_GUARD: "off" }), logger);
    rmSync(offDir, { recursive: true, force: true });
    const availability = await off.availability();
    expect(availability.available).toBe(true);
    const status = await orchestratorStatus(off);
    expect(status.notes).toHaveLength(1);
    expect(status.notes[0]).toContain("SANDBOX_LOOPBACK_GUARD=off");
    expect(lines.some((l) => JSON.parse(l).level === "warn" && l.includes("loopback guard off"))).toBe(true);
  });
});
