import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, readFileSync, realpathSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import Docker from "dockerode";
import { createDriver, type OrchestratorDriver, type WorkloadSpec } from "../../src/orchestrator";
import { workloadSpec } from "../helpers/sandboxes";
import { agentAuthHeader, DockerDriver } from "../../src/orchestrator/docker-driver";
import { CONTAINER_HELPER_DIR, HELPER_PATH, SANDBOX_ENV_PREFIX } from "../../src/orchestrator/landlock";
import { pidsOfUid } from "../../src/orchestrator/processes";
import { memoryLogger, testConfig } from "../helpers/app";
import { buildSandboxImage, startDockerd, type TestDockerd } from "../helpers/dockerd";
import { testUidBase } from "../helpers/uids";

// A real dockerd of our own (tests/helpers/dockerd.ts) and the image built by
// scripts/build-sandbox-image.sh: no mocks. Skipped, saying why, only when dockerd cannot start.
setDefaultTimeout(240_000);

const IMAGE = "warren/sandbox-bare:latest";
const started = await startDockerd();
const skipReason = "skip" in started ? started.skip : null;
if (skipReason) console.error(`orchestrator-docker tests skipped: ${skipReason}`);
const dockerd = skipReason ? null : (started as TestDockerd);

let driver: OrchestratorDriver;
let docker: Docker;
const used: string[] = [];

const uidBase = testUidBase();
const newDriver = () =>
  createDriver(
    testConfig({ ORCHESTRATOR_DRIVER: "docker", DOCKER_SOCKET: dockerd!.socket, SANDBOX_OPEN_FILES_LIMIT: "1500", SANDBOX_UID_BASE: String(uidBase) }),
    memoryLogger().logger,
  );

function spec(sandboxId: string): WorkloadSpec {
  used.push(sandboxId);
  return workloadSpec(sandboxId, {
    image: IMAGE,
    env: { GREETING: "hello" },
    files: [
      { path: ".config/opencode/opencode.json", content: "{}" },
      { path: ".config/opencode/agents/keeper.md", content: "# keeper\n" },
    ],
    // The command then prunes before exec'ing the agent: the agent still starts under it.
    replaceDirectories: [".config/opencode/agents"],
  });
}

const containerOf = (id: string) => docker.getContainer(DockerDriver.containerName(id)).inspect();
/** The container's opencode process (its sandbox uid's), seen from the host. */
const agentPid = (uid: number) => pidsOfUid(uid).find((p) => readFileSync(`/proc/${p}/cmdline`, "utf8").startsWith("/usr/local/bin/opencode\0"))!;

beforeAll(async () => {
  if (!dockerd) return;
  docker = new Docker({ socketPath: dockerd.socket });
  const t0 = performance.now();
  buildSandboxImage(dockerd.socket, IMAGE);
  console.error(`sandbox image ready in ${Math.round(performance.now() - t0)} ms`);
  driver = newDriver();
});

afterAll(async () => {
  if (!dockerd) return;
  for (const id of used) await driver.remove(id).catch(() => {});
  const left = await docker.listContainers({ all: true });
  await dockerd.stop();
  expect(left).toEqual([]);
});

describe.skipIf(skipReason !== null)("docker driver", () => {
  const id = "sbx_docker_main";
  const s = spec(id);

  test("start: labelled container on the host network; the agent needs its password", async () => {
    expect(await driver.availability()).toEqual({ available: true });
    const t0 = performance.now();
    const info = await driver.start(s);
    console.error(`docker sandbox start: ${Math.round(performance.now() - t0)} ms`);
    expect(info).toMatchObject({ sandboxId: id, state: "running", image: IMAGE, exitCode: null });
    const ok = await fetch(`${info.agentUrl}/global/health`, { headers: { authorization: agentAuthHeader(s.agentPassword) } });
    expect(ok.status).toBe(200);
    expect((await fetch(`${info.agentUrl}/session`)).status).toBe(401);
    expect((await fetch(`${info.agentUrl}/session`, { headers: { authorization: agentAuthHeader("nope") } })).status).toBe(401);

    const c = await containerOf(id);
    expect(c.Config.Labels).toMatchObject({ "warren.sandbox-id": id, "warren.user-id": "usr_test", "warren.managed": "true" });
    expect(c.HostConfig.NetworkMode).toBe("host");
    // A host uid of its own (docker-loopback-guard.test.ts checks more), never the image's 1000.
    expect(c.Config.User).toBe(`${c.Config.Labels["warren.uid"]}:${c.Config.Labels["warren.uid"]}`);
    expect(Number(c.Config.Labels["warren.uid"])).toBeGreaterThanOrEqual(uidBase);
    // The container's command starts with the launch helper (Warren's Bun and two files, bound
    // read-only), which gets the variables renamed and hands them back to the agent.
    expect(c.Config.Env).toContain(`${SANDBOX_ENV_PREFIX}OPENCODE_SERVER_PASSWORD=${s.agentPassword}`);
    expect(c.Config.Env).toContain(`${SANDBOX_ENV_PREFIX}GREETING=hello`);
    expect(c.Config.Env).not.toContain("GREETING=hello");
    expect(c.Config.Env).toContain("HOME=/"); // not the image's /home/sandbox, which the user can write
    expect(c.Config.Cmd.slice(0, 4)).toEqual([`${CONTAINER_HELPER_DIR}/bun`, "--no-env-file", `--cwd=${CONTAINER_HELPER_DIR}`, `${CONTAINER_HELPER_DIR}/landlock-exec.ts`]);
    expect(c.Mounts.map((m) => [m.Type, m.Type === "volume" ? m.Name : m.Source, m.Destination, m.RW]).sort()).toEqual(
      [
        ["volume", DockerDriver.volumeName(id), "/home", true],
        ["bind", realpathSync(process.execPath), `${CONTAINER_HELPER_DIR}/bun`, false],
        ["bind", HELPER_PATH, `${CONTAINER_HELPER_DIR}/landlock-exec.ts`, false],
        ["bind", join(dirname(HELPER_PATH), "landlock.ts"), `${CONTAINER_HELPER_DIR}/landlock.ts`, false],
      ].sort(),
    );
    const agent = readFileSync(`/proc/${agentPid(Number(c.Config.Labels["warren.uid"]))}/environ`, "utf8").split("\0");
    expect(agent).toContain(`OPENCODE_SERVER_PASSWORD=${s.agentPassword}`);
    expect(agent).toContain("GREETING=hello");
    expect(agent.filter((e) => e.startsWith(SANDBOX_ENV_PREFIX))).toEqual([]);
    expect((await driver.start(s)).workloadId).toBe(info.workloadId);
  });

  test("the tier's limits are applied by the daemon and visible from the container's process", async () => {
    const info = await driver.inspect(id);
    expect(info.appliedLimits).toMatchObject({ cpuCores: 1, memoryMb: 1024, pidsLimit: 256, openFiles: 1500, storageGb: null });
    const c = await containerOf(id);
    expect(c.HostConfig).toMatchObject({ Memory: 1024 * 1024 * 1024, NanoCpus: 1e9, PidsLimit: 256 });
    const pid = c.State.Pid;
    // With Init the container's pid 1 is docker-init: the agent is its child, same limits.
    expect(readFileSync(`/proc/${pid}/limits`, "utf8")).toMatch(/Max open files\s+1500\s+1500/);
    const memPath = /:memory:(.*)$/m.exec(readFileSync(`/proc/${pid}/cgroup`, "utf8"))?.[1];
    if (memPath && existsSync(`/sys/fs/cgroup/memory${memPath}/memory.limit_in_bytes`)) {
      expect(readFileSync(`/sys/fs/cgroup/memory${memPath}/memory.limit_in_bytes`, "utf8").trim()).toBe(String(1024 ** 3));
    }
    const pidsPath = /:pids:(.*)$/m.exec(readFileSync(`/proc/${pid}/cgroup`, "utf8"))?.[1];
    if (pidsPath && existsSync(`/sys/fs/cgroup/pids${pidsPath}/pids.max`)) {
      expect(readFileSync(`/sys/fs/cgroup/pids${pidsPath}/pids.max`, "utf8").trim()).toBe("256");
    }
  });

  test("files land in the volume, owned by the sandbox user, 0600; traversal is refused", async () => {
    await driver.writeFiles(id, [{ path: ".local/share/opencode/auth.json", content: '{"k":"v"}' }]);
    const c = await containerOf(id);
    const uid = Number(c.Config.Labels["warren.uid"]);
    const root = `/proc/${c.State.Pid}/root`;
    const auth = `${root}/home/sandbox/.local/share/opencode/auth.json`;
    expect(readFileSync(auth, "utf8")).toBe('{"k":"v"}');
    expect(statSync(auth).mode & 0o777).toBe(0o600);
    expect(statSync(auth).uid).toBe(uid);
    // Written before start (opencode itself then rewrites it, adding its "$schema" key).
    expect(statSync(`${root}/home/sandbox/.config/opencode/opencode.json`).uid).toBe(uid);
    // Replacing a directory in the running container removes what the new set no longer has.
    await driver.writeFiles(id, [{ path: ".config/opencode/agents/other.md", content: "# other\n" }], { replaceDirectories: [".config/opencode/agents"] });
    expect(existsSync(`${root}/home/sandbox/.config/opencode/agents/keeper.md`)).toBe(false);
    expect(readFileSync(`${root}/home/sandbox/.config/opencode/agents/other.md`, "utf8")).toBe("# other\n");
    for (const path of ["/etc/passwd", "../x", "a/../../x"]) {
      await expect(driver.writeFiles(id, [{ path, content: "x" }])).rejects.toThrow(/unsafe file path/);
    }
  });

  test("logs with tail and since", async () => {
    const lines = await driver.logs(id);
    expect(lines.some((l) => l.includes("opencode server listening on http://127.0.0.1:"))).toBe(true);
    expect(await driver.logs(id, { tail: 1 })).toEqual(lines.slice(-1));
    expect(await driver.logs(id, { since: new Date(Date.now() + 60_000) })).toEqual([]);
  });

  test("a second driver instance finds the workload; stop, start again keeps data; remove", async () => {
    const again = newDriver();
    const before = await driver.inspect(id);
    expect(await again.inspect(id)).toMatchObject({ state: "running", workloadId: before.workloadId });
    expect((await again.listManaged()).map((w) => [w.sandboxId, w.state])).toContainEqual([id, "running"]);

    const pid = (await containerOf(id)).State.Pid;
    writeFileSync(`/proc/${pid}/root/home/workspace/kept.txt`, "still here");
    const t0 = performance.now();
    await driver.stop(id, { timeoutMs: 10_000 });
    console.error(`docker sandbox stop: ${Math.round(performance.now() - t0)} ms`);
    expect(await driver.inspect(id)).toMatchObject({ state: "stopped", agentUrl: null });
    expect(existsSync(`/proc/${pid}`)).toBe(false);
    await driver.stop(id);

    // Something else running as the sandbox's uid (another Warren's sandbox from an overlapping
    // SANDBOX_UID_BASE): the start is refused, nothing runs; once it is gone the start goes ahead.
    const uid = Number((await containerOf(id)).Config.Labels["warren.uid"]);
    const bystander = Bun.spawn(["setpriv", `--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", "sleep", "60"]);
    await expect(driver.start(s)).rejects.toThrow(/host uid \d+, this sandbox's, is in use .*SANDBOX_UID_BASE/);
    expect(pidsOfUid(uid)).toEqual([bystander.pid]);
    bystander.kill("SIGKILL");
    await bystander.exited;

    await driver.start(s);
    const pid2 = (await containerOf(id)).State.Pid;
    expect(readFileSync(`/proc/${pid2}/root/home/workspace/kept.txt`, "utf8")).toBe("still here");

    await driver.remove(id);
    expect(existsSync(`/proc/${pid2}`)).toBe(false);
    expect((await driver.inspect(id)).state).toBe("missing");
    expect((await docker.listVolumes()).Volumes ?? []).toEqual([]);
    expect((await driver.listManaged()).map((w) => w.sandboxId)).not.toContain(id);
    await driver.remove(id);
  });

  test("an image that is not there is a clear error", async () => {
    await expect(driver.start({ ...spec("sbx_docker_noimage"), image: "warren/sandbox-nope:latest" })).rejects.toThrow(
      /image warren\/sandbox-nope:latest is not on this Docker host/,
    );
  });
});

// Add-ons in a container: the image holds what they need, and the container's command checks the
// requirements and starts the services before the agent. The bare image has no code-server or
// websockify, so a second `opencode serve` stands in for an add-on service here (any HTTP server
// on {port} would do); its lack of a password also shows the agent's is not handed to services.
describe.skipIf(skipReason !== null)("docker driver: add-ons", () => {
  // Its own HOME and XDG directories: two OpenCode servers migrating one SQLite database at the
  // same moment fail ("Failed query: CREATE TABLE workspace"), which made this test flaky.
  const service = {
    command:
      "mkdir -p /tmp/standin && HOME=/tmp/standin XDG_DATA_HOME=/tmp/standin/data XDG_CONFIG_HOME=/tmp/standin/config XDG_STATE_HOME=/tmp/standin/state XDG_CACHE_HOME=/tmp/standin/cache exec /usr/local/bin/opencode serve --port {port} --hostname 127.0.0.1",
    protocol: "http" as const,
    readinessPath: "/global/health",
  };

  test("a service starts in the container on a port of its own, recorded on the container, and stops with it", async () => {
    const id = "sbx_docker_addon";
    const s = { ...spec(id), addons: [{ id: "standin", port: 8080, service, tools: [], requires: [{ command: "opencode", package: "opencode-ai" }], installHint: null }] };
    const info = await driver.start(s);
    const url = info.addonUrls?.standin;
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(url).not.toBe(info.agentUrl);
    expect((await fetch(`${url}/global/health`)).status).toBe(200);
    expect((await containerOf(id)).Config.Labels["warren.addon-ports"]).toBe(JSON.stringify({ standin: Number(new URL(url!).port) }));
    // A second driver (Warren restarted) finds the service again.
    expect((await newDriver().inspect(id)).addonUrls).toEqual({ standin: url! });
    await driver.stop(id, { timeoutMs: 10_000 });
    expect((await driver.inspect(id)).addonUrls).toEqual({});
    await expect(fetch(`${url}/global/health`)).rejects.toThrow();
    await driver.remove(id);
  });

  test("a requirement the image lacks ends the start with an error naming the package", async () => {
    const id = "sbx_docker_addon_missing";
    const s = { ...spec(id), addons: [{ id: "needs", port: null, service: null, tools: [], requires: [{ command: "warren-no-such-tool", package: "warren-standin-package" }], installHint: null }] };
    await expect(driver.start(s)).rejects.toThrow(/warren-no-such-tool \(package: warren-standin-package\)/);
    expect((await driver.inspect(id)).state).not.toBe("running");
    await driver.remove(id);
  });
});
