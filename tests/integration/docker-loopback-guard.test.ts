import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { readFileSync, statSync } from "node:fs";
import type { TCPSocketListener } from "bun";
import Docker from "dockerode";
import { createDriver, type OrchestratorDriver, type WorkloadSpec } from "../../src/orchestrator";
import { serviceAddon, workloadSpec } from "../helpers/sandboxes";
import { agentAuthHeader, DockerDriver } from "../../src/orchestrator/docker-driver";
import { CONTAINER_HELPER_DIR } from "../../src/orchestrator/landlock";
import { dockerGuardTableName } from "../../src/orchestrator/loopback-guard";
import { orchestratorStatus } from "../../src/routes/orchestrator";
import { memoryLogger, testConfig } from "../helpers/app";
import { TEST_DATABASE_URL } from "../helpers/db";
import { buildSandboxImage, startDockerd, type TestDockerd } from "../helpers/dockerd";
import { abstractProbe, connectAsRoot, connectOutcome, expectAbstractScope, nftMembers, nftTableExists, tcpConnect } from "../helpers/guard";
import { testUidBase } from "../helpers/uids";

// The docker driver's per-sandbox uids and loopback guard, for real: a dockerd of our own
// (tests/helpers/dockerd.ts), the image of scripts/build-sandbox-image.sh, two containers on the
// host network running OpenCode and an add-on service, and the guard's nftables table in the
// kernel. Connections are made from inside container A with `docker exec -u <A's uid>`: the process
// joins A's namespaces (the host's network namespace) and cgroup under A's uid, exactly like A's
// agent, so the kernel judges the same thing it judges for A's own processes: the uid owning the
// connecting socket (`meta skuid`). No mocks. Skipped, saying why, only when dockerd cannot start.
setDefaultTimeout(240_000);

const IMAGE = "warren/sandbox-bare:latest";
const started = await startDockerd();
const skipReason = "skip" in started ? started.skip : null;
if (skipReason) console.error(`docker loopback guard tests skipped: ${skipReason}`);
const dockerd = skipReason ? null : (started as TestDockerd);

const run = Math.random().toString(36).slice(2, 8);
const uidBase = testUidBase();
const table = dockerd ? dockerGuardTableName(dockerd.socket, null) : "";

// Root-owned loopback listeners: a host service no sandbox should reach (stands in for
// PostgreSQL), a port the operator allow-lists (a local model server), and Warren's own API port.
const listen = (hostname = "127.0.0.1") => Bun.listen({ hostname, port: 0, socket: { data() {}, open(s) { s.end(); } } });
const listeners: TCPSocketListener[] = [];
const keep = (l: TCPSocketListener) => (listeners.push(l), l);
const hostService = keep(listen("0.0.0.0"));
const allowed = keep(listen());
const warrenApi = keep(listen());

const env = () => ({
  ORCHESTRATOR_DRIVER: "docker",
  DOCKER_SOCKET: dockerd!.socket,
  SANDBOX_UID_BASE: String(uidBase),
  SANDBOX_LOOPBACK_ALLOW_PORTS: String(allowed.port),
  PORT: String(warrenApi.port),
});
const newDriver = (extra: Record<string, string> = {}) => createDriver(testConfig({ ...env(), ...extra }), memoryLogger().logger);
let driver: OrchestratorDriver;
let docker: Docker;

// An add-on service in each container, on its allocated port, standing in for code-server
// --auth none; it also probes abstract unix sockets from inside (tests/helpers/guard.ts), run by
// the Bun the driver binds into every container for its launch helper.
const spec = (sandboxId: string) => workloadSpec(sandboxId, { userId: "usr_docker_guard", image: IMAGE, addons: [serviceAddon("web", abstractProbe(`${CONTAINER_HELPER_DIR}/bun`, sandboxId))] });

type Sandbox = { id: string; spec: WorkloadSpec; uid: number; agentPort: number; addonPort: number };
const a = { id: `sbx_dguard_a_${run}` } as Sandbox;
const b = { id: `sbx_dguard_b_${run}` } as Sandbox;
const legacy = { id: `sbx_dguard_old_${run}` } as Sandbox;

const containerOf = (id: string) => docker.getContainer(DockerDriver.containerName(id)).inspect();
const volumeUid = async (id: string) => (await docker.getVolume(DockerDriver.volumeName(id)).inspect()).Labels?.["warren.uid"];

async function startSandbox(s: Sandbox, d = driver) {
  s.spec ??= spec(s.id);
  const info = await d.start(s.spec);
  const labels = (await containerOf(s.id)).Config.Labels;
  Object.assign(s, { uid: Number(labels["warren.uid"]), agentPort: Number(new URL(info.agentUrl!).port), addonPort: Number(new URL(info.addonUrls!.web!).port) });
}

const docker$ = (args: string[]) => Bun.spawn(["docker", ...args], { env: { ...process.env, DOCKER_HOST: `unix://${dockerd!.socket}` }, stdout: "pipe", stderr: "pipe" });

/** A TCP connect from inside container s, as its uid: "open", "refused" or what else happened. */
const connectFrom = (s: Sandbox, host: string, port: number) =>
  connectOutcome(["env", `DOCKER_HOST=unix://${dockerd!.socket}`, "docker", "exec", "-u", `${s.uid}:${s.uid}`, DockerDriver.containerName(s.id), ...tcpConnect(host, port)]);

const nftMembersNow = () => nftMembers(table);
const tableExists = () => nftTableExists(table);
const statusUid = (pid: number) => Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]);

beforeAll(async () => {
  if (!dockerd) return;
  docker = new Docker({ socketPath: dockerd.socket });
  buildSandboxImage(dockerd.socket, IMAGE);
  driver = newDriver();
  expect(await driver.availability()).toEqual({ available: true });
  // Two starts at the same moment in one process: they must still get different uids.
  await Promise.all([startSandbox(a), startSandbox(b)]);
});

afterAll(async () => {
  for (const l of listeners) l.stop(true);
  if (!dockerd) return;
  for (const s of [a, b, legacy]) await driver.remove(s.id).catch(() => undefined);
  const left = await docker.listContainers({ all: true });
  const volumes = (await docker.listVolumes()).Volumes ?? [];
  const tableLeft = await tableExists();
  await dockerd.stop();
  expect(left).toEqual([]);
  expect(volumes).toEqual([]);
  expect(tableLeft).toBe(false);
});

describe.skipIf(skipReason !== null)("docker driver: a host uid per sandbox", () => {
  test("two sandboxes get different uids from SANDBOX_UID_BASE, on the volume and the container; their processes run as it", async () => {
    expect(a.uid).toBeGreaterThanOrEqual(uidBase);
    expect(b.uid).toBeGreaterThanOrEqual(uidBase);
    expect(a.uid).not.toBe(b.uid);
    for (const s of [a, b]) {
      const c = await containerOf(s.id);
      expect(c.Config.User).toBe(`${s.uid}:${s.uid}`);
      expect(await volumeUid(s.id)).toBe(String(s.uid));
      expect(statusUid(c.State.Pid)).toBe(s.uid);
    }
  });

  test("the volume's files are the sandbox's; OpenCode starts and answers", async () => {
    for (const s of [a, b]) {
      const root = `/proc/${(await containerOf(s.id)).State.Pid}/root`;
      for (const path of ["/home/sandbox", "/home/workspace", "/home/sandbox/.config/opencode/opencode.json", "/home/sandbox/.local/share/opencode"]) {
        expect(statSync(`${root}${path}`).uid).toBe(s.uid);
      }
      // The volume's root stays root's, as before.
      expect(statSync(`${root}/home`).uid).toBe(0);
      expect(statSync(`${root}/home/sandbox`).mode & 0o777).toBe(0o700);
      const res = await fetch(`http://127.0.0.1:${s.agentPort}/global/health`, { headers: { authorization: agentAuthHeader(s.spec.agentPassword) } });
      expect(res.status).toBe(200);
      // Files written later land as the sandbox's uid too.
      await driver.writeFiles(s.id, [{ path: ".local/share/opencode/auth.json", content: "{}" }]);
      expect(statSync(`${root}/home/sandbox/.local/share/opencode/auth.json`).uid).toBe(s.uid);
    }
  });
});

describe.skipIf(skipReason !== null)("docker driver: loopback guard (real nftables)", () => {
  test("the table holds exactly the running sandboxes' uids", async () => {
    expect(await nftMembersNow()).toEqual([a.uid, b.uid].sort());
  });

  test("a sandbox reaches its own agent and add-on; another's are refused (code-server has no password)", async () => {
    expect(await connectFrom(a, "127.0.0.1", a.agentPort)).toBe("open");
    expect(await connectFrom(a, "127.0.0.1", a.addonPort)).toBe("open");
    expect(await connectFrom(a, "127.0.0.1", b.agentPort)).toBe("refused");
    expect(await connectFrom(a, "127.0.0.1", b.addonPort)).toBe("refused");
    expect(await connectFrom(b, "127.0.0.1", a.addonPort)).toBe("refused");
    expect(await connectFrom(a, "127.0.0.2", b.addonPort)).toBe("refused");
  });

  test("host loopback services are refused; allow-listed ports and Warren's port answer; root reaches everything", async () => {
    expect(await connectFrom(a, "127.0.0.1", hostService.port)).toBe("refused");
    if (TEST_DATABASE_URL) expect(await connectFrom(a, "127.0.0.1", Number(new URL(TEST_DATABASE_URL).port || 5432))).toBe("refused");
    expect(await connectFrom(a, "127.0.0.1", allowed.port)).toBe("open");
    expect(await connectFrom(b, "127.0.0.1", allowed.port)).toBe("open");
    expect(await connectFrom(a, "127.0.0.1", warrenApi.port)).toBe("open");
    for (const port of [a.agentPort, a.addonPort, b.agentPort, b.addonPort, hostService.port]) expect(await connectAsRoot(port)).toBe("open");
    // Warren's proxy path: the add-ons answer root.
    for (const s of [a, b]) expect(await (await fetch(`http://127.0.0.1:${s.addonPort}/`)).text()).toBe("addon");
  });

  test("abstract unix sockets (the host network's): a container reaches its own, not the host's nor another's (Landlock scope)", async () => {
    await expectAbstractScope(a, b, driver);
  });

  test("stop takes the uid out; it is kept across stop/start and a restarted Warren, which rebuilds the table", async () => {
    const uidA = a.uid;
    await driver.stop(a.id, { timeoutMs: 5_000 });
    expect(await nftMembersNow()).toEqual([b.uid]);
    expect(await volumeUid(a.id)).toBe(String(uidA));

    await startSandbox(a);
    expect(a.uid).toBe(uidA);
    expect(await nftMembersNow()).toEqual([a.uid, b.uid].sort());

    // The table lost, and Warren restarted: the new driver puts it back on its first look.
    expect(await Bun.spawn(["nft", "delete", "table", "inet", table]).exited).toBe(0);
    driver = newDriver();
    expect((await driver.listManaged()).filter((w) => w.state === "running").map((w) => w.sandboxId).sort()).toEqual([a.id, b.id].sort());
    expect(await nftMembersNow()).toEqual([a.uid, b.uid].sort());
    expect(await connectFrom(b, "127.0.0.1", a.addonPort)).toBe("refused");

    // ... and gives the same uid to a sandbox it stops and starts again.
    await driver.stop(a.id, { timeoutMs: 5_000 });
    await startSandbox(a);
    expect(a.uid).toBe(uidA);
    expect(await connectFrom(a, "127.0.0.1", a.addonPort)).toBe("open");
    expect(await connectFrom(b, "127.0.0.1", a.addonPort)).toBe("refused");
  });

  test("a volume from before per-sandbox uids (uid 1000's, no label) gets a new uid and its files", async () => {
    // What an earlier Warren left: a labelled volume without warren.uid, its files uid 1000's.
    const volume = DockerDriver.volumeName(legacy.id);
    await docker.createVolume({ Name: volume, Labels: { "warren.managed": "true", "warren.sandbox-id": legacy.id, "warren.user-id": "usr_docker_guard" } });
    const seed = docker$(["run", "--rm", "--network", "none", "-u", "1000:1000", "-v", `${volume}:/home`, IMAGE, "sh", "-c", "echo old > /home/sandbox/old.txt"]);
    expect(await seed.exited).toBe(0);

    await startSandbox(legacy);
    expect([a.uid, b.uid]).not.toContain(legacy.uid);
    expect(legacy.uid).toBeGreaterThanOrEqual(uidBase);
    expect(await volumeUid(legacy.id)).toBeUndefined();
    const root = `/proc/${(await containerOf(legacy.id)).State.Pid}/root`;
    expect(statSync(`${root}/home/sandbox/old.txt`).uid).toBe(legacy.uid);
    expect(readFileSync(`${root}/home/sandbox/old.txt`, "utf8")).toBe("old\n");
    expect(await connectFrom(legacy, "127.0.0.1", legacy.addonPort)).toBe("open");
    expect(await connectFrom(legacy, "127.0.0.1", a.addonPort)).toBe("refused");

    // Its uid lives on its container's labels: the same after a stop and start.
    const uid = legacy.uid;
    await driver.stop(legacy.id, { timeoutMs: 5_000 });
    expect(await nftMembersNow()).toEqual([a.uid, b.uid].sort());
    await startSandbox(legacy);
    expect(legacy.uid).toBe(uid);
  });

  test("removing the last sandbox deletes the table; nothing of the sandboxes is left", async () => {
    await driver.remove(legacy.id);
    await driver.remove(a.id);
    expect(await nftMembersNow()).toEqual([b.uid]);
    await driver.remove(b.id);
    expect(await tableExists()).toBe(false);
    expect(await docker.listContainers({ all: true })).toEqual([]);
    expect((await docker.listVolumes()).Volumes ?? []).toEqual([]);
  });
});

describe.skipIf(skipReason !== null)("docker driver: loopback guard turned off", () => {
  test("availability says so (GET /api/v1/orchestrator shows the note) and start-up logs a warning", async () => {
    const { logger, lines } = memoryLogger("info");
    const off = createDriver(testConfig({ ...env(), SANDBOX_LOOPBACK_GUARD: "off" }), logger);
    const status = await orchestratorStatus(off);
    expect(status.available).toBe(true);
    expect(status.notes).toHaveLength(1);
    expect(status.notes[0]).toContain("SANDBOX_LOOPBACK_GUARD=off");
    expect(lines.some((l) => JSON.parse(l).level === "warn" && l.includes("loopback guard off"))).toBe(true);
  });
});
