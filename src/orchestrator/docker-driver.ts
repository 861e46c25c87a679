import Docker from "dockerode";
import type { AppliedLimits } from "../../db/schema";
import type { Logger } from "../lib/logger";
import { addonUrls, planServices, requireArgs, superviseArgs, waitForServices } from "./addons";
import { DriverUnavailableError, type AddonAvailability, type AddonSpec, type Availability, type OrchestratorDriver, type WorkloadFile, type WorkloadInfo, type WorkloadSpec, type WriteOptions } from "./driver";
import { assertSandboxId, PRUNE_SCRIPT, pruneManifest, sandboxEnv, SANDBOX_HOME, SANDBOX_WORKSPACE, validateFiles, waitForAgent } from "./opencode";
import { freeLoopbackPort } from "./processes";
import { parentDirs, tarArchive, type TarEntry } from "./tar";

export { agentAuthHeader } from "./opencode";

/**
 * The docker driver: one container and one named volume per sandbox, through the Engine API on
 * its unix socket. Networking is the host's only (never a bridge: FIELD-NOTES, private ranges are
 * forbidden here and Warren's proxy reaches the agent on 127.0.0.1). The container is disposable
 * and recreated on every start with the current spec; the volume, mounted at /home, keeps the
 * sandbox's home and workspace across stops.
 */

export type DockerDriverOptions = { socketPath: string; agentStartTimeoutMs: number; logger: Logger; openFilesLimit?: number };

const LABEL_MANAGED = "warren.managed";
const LABEL_SANDBOX = "warren.sandbox-id";
const LABEL_USER = "warren.user-id";
const LABEL_PORT = "warren.agent-port";
/** JSON {addonId: port} of the add-on services the container runs. */
const LABEL_ADDON_PORTS = "warren.addon-ports";
/** The image's unprivileged user (scripts/build-sandbox-image.sh). */
const SANDBOX_UID = 1000;
const LOG_MAX = { "max-size": "5m", "max-file": "1" };

type HttpError = { statusCode?: number };
const statusOf = (err: unknown) => (err as HttpError)?.statusCode;

async function ignoring<T>(codes: number[], fn: () => Promise<T>): Promise<T | undefined> {
  try {
    return await fn();
  } catch (err) {
    if (codes.includes(statusOf(err) ?? -1)) return undefined;
    throw err;
  }
}

export class DockerDriver implements OrchestratorDriver {
  readonly name = "docker" as const;
  private readonly docker: Docker;
  private readonly openFiles: number;

  constructor(private readonly options: DockerDriverOptions) {
    this.docker = new Docker({ socketPath: options.socketPath });
    this.openFiles = options.openFilesLimit ?? 4096;
  }

  static containerName = (id: string) => `warren-${id}`;
  static volumeName = (id: string) => `warren-${id}-home`;

  async availability(): Promise<Availability> {
    try {
      await this.docker.ping();
      return { available: true };
    } catch (err) {
      return {
        available: false,
        reason: `no Docker daemon answers on ${this.options.socketPath} (${(err as Error).message})`,
        install: "apt-get install -y docker.io, start dockerd with --bridge=none --iptables=false, set DOCKER_SOCKET",
      };
    }
  }

  /**
   * The image, not the host, must hold what add-ons need, and images are only inspected by
   * running them: the container checks every requirement before the agent starts and ends at
   * once, naming the missing package, when one fails (REQUIRE_SCRIPT). Nothing to check here.
   */
  async addonAvailability(addons: AddonSpec[]): Promise<AddonAvailability[]> {
    return addons.map((a) => ({ id: a.id, available: true }));
  }

  async start(spec: WorkloadSpec): Promise<WorkloadInfo> {
    assertSandboxId(spec.sandboxId);
    const replacing = spec.replaceDirectories?.length ? pruneManifest(spec.files, spec.replaceDirectories) : null;
    const files = validateFiles(replacing ? [...spec.files, replacing.manifest] : spec.files);
    const availability = await this.availability();
    if (!availability.available) throw new DriverUnavailableError("docker", availability.reason, availability.install);
    const current = await this.inspect(spec.sandboxId);
    if (current.state === "running") return current;

    const id = spec.sandboxId;
    if (!(await ignoring([404], () => this.docker.getImage(spec.image).inspect()))) {
      throw new Error(`image ${spec.image} is not on this Docker host (build it: scripts/build-sandbox-image.sh ${spec.image})`);
    }
    const labels = { [LABEL_MANAGED]: "true", [LABEL_SANDBOX]: id, [LABEL_USER]: spec.userId };
    // Creating an existing volume returns it: start stays idempotent.
    await this.docker.createVolume({ Name: DockerDriver.volumeName(id), Labels: labels });
    await ignoring([404], () => this.docker.getContainer(DockerDriver.containerName(id)).remove({ force: true }));

    const port = await freeLoopbackPort();
    // Host networking: add-on services get free loopback ports of their own, like the agent.
    const services = await planServices(spec.addons, freeLoopbackPort);
    const agent = ["/usr/local/bin/opencode", "serve", "--port", String(port), "--hostname", "127.0.0.1"];
    const env = sandboxEnv(spec);
    const container = await this.docker.createContainer({
      name: DockerDriver.containerName(id),
      Image: spec.image,
      Labels: { ...labels, [LABEL_PORT]: String(port), [LABEL_ADDON_PORTS]: JSON.stringify(Object.fromEntries(services.map((s) => [s.id, s.port]))) },
      Env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
      User: `${SANDBOX_UID}:${SANDBOX_UID}`,
      WorkingDir: SANDBOX_WORKSPACE,
      // With replaced directories, the agent starts only after what they should no longer hold
      // (a custom agent deleted while the sandbox was stopped) is gone from the volume.
      // Then the add-ons' requirements are checked and their services started before the agent.
      Cmd: [
        ...(replacing ? ["/bin/sh", "-c", PRUNE_SCRIPT, "sh", SANDBOX_HOME, ...replacing.directories, "--"] : []),
        ...(requireArgs(spec.addons).length ? ["/bin/sh", ...requireArgs(spec.addons)] : []),
        ...(services.length ? ["/bin/bash", ...superviseArgs(services, agent)] : agent),
      ],
      HostConfig: {
        NetworkMode: "host",
        // opencode as PID 1 would ignore SIGTERM (no default handlers there) and every stop
        // would wait for the SIGKILL: a tiny init forwards signals and reaps the agent's children.
        Init: true,
        Mounts: [{ Type: "volume", Source: DockerDriver.volumeName(id), Target: "/home" }],
        ReadonlyRootfs: true,
        Tmpfs: { "/tmp": "rw,nosuid,nodev,mode=1777", "/var/tmp": "rw,nosuid,nodev,mode=1777" },
        CapDrop: ["ALL"],
        SecurityOpt: ["no-new-privileges"],
        Memory: spec.limits.memoryMb * 1024 * 1024,
        MemorySwap: spec.limits.memoryMb * 1024 * 1024,
        NanoCpus: Math.round(spec.limits.cpuCores * 1e9),
        PidsLimit: spec.limits.pidsLimit,
        Ulimits: [{ Name: "nofile", Soft: this.openFiles, Hard: this.openFiles }],
        LogConfig: { Type: "json-file", Config: LOG_MAX },
      },
    });
    if (files.length) await this.putFiles(container, files);
    await container.start();

    let running = true;
    const poll = setInterval(() => {
      container.inspect().then((c) => (running = c.State.Running), () => (running = false));
    }, 500);
    const agentUrl = `http://127.0.0.1:${port}`;
    let up: boolean;
    let failed: string | null = null;
    try {
      up = await waitForAgent(agentUrl, spec.agentPassword, this.options.agentStartTimeoutMs, () => running);
      if (up) {
        const late = await waitForServices(services, this.options.agentStartTimeoutMs, () => running);
        if (late) failed = `the add-on "${late.id}" ${running ? `did not answer on GET ${late.readinessPath} within ${this.options.agentStartTimeoutMs} ms` : "exited with the container"}`;
      }
    } finally {
      clearInterval(poll);
    }
    if (!up || failed) {
      const why = failed ?? `the agent ${running ? `did not answer within ${this.options.agentStartTimeoutMs} ms` : "exited during start-up"}`;
      const tail = (await this.logs(id, { tail: 20 })).join("\n");
      await this.stop(id, { timeoutMs: 1_000 });
      throw new Error(`sandbox ${id}: ${why}; last output:\n${tail || "(none)"}`);
    }
    this.options.logger.info({ sandboxId: id, container: container.id.slice(0, 12), port }, "docker sandbox started");
    return this.inspect(id);
  }

  /** Writes into the volume through the container (created or running): no shell, no exec. */
  private async putFiles(container: Docker.Container, files: ReturnType<typeof validateFiles>): Promise<void> {
    const owner = { uid: SANDBOX_UID, gid: SANDBOX_UID };
    const entries: TarEntry[] = [
      ...parentDirs(files.map((f) => f.path)).map((path): TarEntry => ({ type: "dir", path, mode: 0o700, ...owner })),
      ...files.map((f): TarEntry => ({ type: "file", path: f.path, content: f.content, mode: f.mode, ...owner })),
    ];
    await container.putArchive(tarArchive(entries), { path: SANDBOX_HOME });
  }

  async stop(sandboxId: string, options: { timeoutMs?: number } = {}): Promise<void> {
    assertSandboxId(sandboxId);
    const t = Math.ceil((options.timeoutMs ?? 10_000) / 1000);
    // 304: already stopped; 404: no container. Both mean "stopped" to the caller.
    await ignoring([304, 404], () => this.docker.getContainer(DockerDriver.containerName(sandboxId)).stop({ t }));
  }

  async remove(sandboxId: string): Promise<void> {
    assertSandboxId(sandboxId);
    await ignoring([404], () => this.docker.getContainer(DockerDriver.containerName(sandboxId)).remove({ force: true, v: true }));
    await ignoring([404], () => this.docker.getVolume(DockerDriver.volumeName(sandboxId)).remove());
  }

  async inspect(sandboxId: string): Promise<WorkloadInfo> {
    assertSandboxId(sandboxId);
    const c = await ignoring([404], () => this.docker.getContainer(DockerDriver.containerName(sandboxId)).inspect());
    if (!c) {
      const volume = await ignoring([404], () => this.docker.getVolume(DockerDriver.volumeName(sandboxId)).inspect());
      const state = volume ? "stopped" : "missing";
      return { sandboxId, state, workloadId: null, agentUrl: null, image: null, appliedLimits: null, startedAt: null, exitCode: null };
    }
    const running = c.State.Running;
    const port = c.Config.Labels?.[LABEL_PORT];
    return {
      sandboxId,
      state: running ? "running" : "stopped",
      workloadId: c.Id,
      agentUrl: running && port ? `http://127.0.0.1:${port}` : null,
      addonUrls: running ? addonUrls(parsePorts(c.Config.Labels?.[LABEL_ADDON_PORTS])) : {},
      image: c.Config.Image,
      appliedLimits: limitsOf(c.HostConfig),
      startedAt: running ? new Date(c.State.StartedAt) : null,
      exitCode: running ? null : c.State.ExitCode,
    };
  }

  async listManaged(): Promise<WorkloadInfo[]> {
    const ids = new Set<string>();
    const containers = await this.docker.listContainers({ all: true, filters: { label: [`${LABEL_MANAGED}=true`] } });
    for (const c of containers) if (c.Labels[LABEL_SANDBOX]) ids.add(c.Labels[LABEL_SANDBOX]);
    const volumes = await this.docker.listVolumes({ filters: { label: [`${LABEL_MANAGED}=true`] } });
    for (const v of volumes.Volumes ?? []) if (v.Labels?.[LABEL_SANDBOX]) ids.add(v.Labels[LABEL_SANDBOX]);
    return Promise.all([...ids].map((id) => this.inspect(id)));
  }

  async logs(sandboxId: string, options: { tail?: number; since?: Date } = {}): Promise<string[]> {
    assertSandboxId(sandboxId);
    const raw = await ignoring([404], () =>
      this.docker.getContainer(DockerDriver.containerName(sandboxId)).logs({
        follow: false,
        stdout: true,
        stderr: true,
        ...(options.tail !== undefined ? { tail: options.tail } : {}),
        since: options.since ? options.since.getTime() / 1000 : 0,
      }),
    );
    if (!raw) return [];
    return demux(Buffer.from(raw)).split("\n").filter((l) => l.length > 0);
  }

  async writeFiles(sandboxId: string, files: WorkloadFile[], options: WriteOptions = {}): Promise<void> {
    assertSandboxId(sandboxId);
    const replacing = options.replaceDirectories?.length ? pruneManifest(files, options.replaceDirectories) : null;
    const valid = validateFiles(replacing ? [...files, replacing.manifest] : files);
    const container = this.docker.getContainer(DockerDriver.containerName(sandboxId));
    const info = await ignoring([404], () => container.inspect());
    if (!info) throw new Error(`sandbox ${sandboxId} has no container`);
    await this.putFiles(container, valid);
    // A stopped container prunes on its next start (its command does); a running one, now.
    if (replacing && info.State.Running) {
      const exec = await container.exec({
        Cmd: ["/bin/sh", "-c", PRUNE_SCRIPT, "sh", SANDBOX_HOME, ...replacing.directories, "--"],
        User: `${SANDBOX_UID}:${SANDBOX_UID}`,
        AttachStdout: true,
        AttachStderr: true,
      });
      const stream = await exec.start({ hijack: true, stdin: false });
      await new Promise<void>((resolve, reject) => {
        stream.on("end", () => resolve());
        stream.on("error", reject);
        stream.resume();
      });
      const { ExitCode } = await exec.inspect();
      if (ExitCode !== 0) throw new Error(`pruning ${replacing.directories.join(", ")} in ${sandboxId} failed (exit ${ExitCode})`);
    }
  }

  async close(): Promise<void> {}
}

/** What the daemon really holds for the container: the numbers users are shown. */
function limitsOf(h: Docker.HostConfig): AppliedLimits {
  const nofile = h.Ulimits?.find((u) => u.Name === "nofile");
  return {
    cpuCores: h.NanoCpus ? h.NanoCpus / 1e9 : null,
    memoryMb: h.Memory ? h.Memory / (1024 * 1024) : null,
    pidsLimit: h.PidsLimit && h.PidsLimit > 0 ? h.PidsLimit : null,
    openFiles: nofile?.Hard ?? null,
    storageGb: null,
    notes: ["cpu, memory, pids: enforced by dockerd (cgroups)", "storage: not applied (no volume quota on this storage driver)"],
  };
}

/** Without a TTY, Docker frames each chunk: [stream, 0, 0, 0, size(4, big-endian)] + payload. */
function demux(buf: Buffer): string {
  let out = "";
  let i = 0;
  while (i + 8 <= buf.length) {
    const size = buf.readUInt32BE(i + 4);
    out += buf.subarray(i + 8, i + 8 + size).toString("utf8");
    i += 8 + size;
  }
  return out;
}

function parsePorts(label: string | undefined): Record<string, number> {
  try {
    const parsed = JSON.parse(label ?? "{}") as Record<string, unknown>;
    return Object.fromEntries(Object.entries(parsed).filter((e): e is [string, number] => Number.isInteger(e[1])));
  } catch {
    return {};
  }
}
