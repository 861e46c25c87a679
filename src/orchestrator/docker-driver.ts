import Docker from "dockerode";
import type { AppliedLimits } from "../../db/schema";
import type { Logger } from "../lib/logger";
import { addonUrls, planServices, requireArgs, superviseArgs, waitForServices } from "./addons";
import { DockerUids, ignoring, LABEL_MANAGED, LABEL_SANDBOX, LABEL_UID, parseUid } from "./docker-uids";
import { availableWith, DriverUnavailableError, type AddonAvailability, type AddonSpec, type Availability, type OrchestratorDriver, type WorkloadFile, type WorkloadInfo, type WorkloadSpec, type WriteOptions } from "./driver";
import { containerHelper, launcherEnv, scopesSupported, scopeUnavailableNote } from "./landlock";
import { assertUidUnshared } from "./sandbox-uids";
import { assertSandboxId, PRUNE_SCRIPT, pruneManifest, sandboxEnv, SANDBOX_HOME, SANDBOX_WORKSPACE, validateFiles, waitForAgent } from "./opencode";
import { dockerGuardTableName, dropGuardTableNamed, GUARD_OFF_NOTE, INSTALL_NFT, LoopbackGuard } from "./loopback-guard";
import { freeLoopbackPort } from "./processes";
import { KeyedQueue } from "./serial";
import { parentDirs, tarArchive, type TarEntry } from "./tar";

export { agentAuthHeader } from "./opencode";

/**
 * The docker driver: one container and one named volume per sandbox, through the Engine API on
 * its unix socket. Networking is the host's only (never a bridge: FIELD-NOTES, private ranges are
 * forbidden here and Warren's proxy reaches the agent on 127.0.0.1). The container is disposable
 * and recreated on every start with the current spec; the volume, mounted at /home, keeps the
 * sandbox's home and workspace across stops.
 *
 * Each sandbox runs as a host uid of its own (docker-uids.ts: from SANDBOX_UID_BASE, on its
 * volume's and container's labels, its files made its own when the volume is new), so on the
 * shared host network the loopback guard (loopback-guard.ts, one nftables table per Docker socket
 * and data directory) lets a sandbox open TCP connections on loopback only to its own listeners
 * (agent, add-ons, a dev server), DNS, Warren's port and SANDBOX_LOOPBACK_ALLOW_PORTS: not to
 * another sandbox's code-server --auth none, nor to host services. Its members are the uids of
 * the running containers: admitted before a container starts, released once it has stopped,
 * rebuilt from the containers' labels on a restarted Warren's first look. SANDBOX_LOOPBACK_GUARD=off
 * drops it, said in availability() notes and at start. Abstract unix sockets (shared with the host
 * on its network namespace, unseen by nftables) are scoped with Landlock like the local driver's
 * (landlock.ts: Warren's helper, bound read-only into the container, runs first). Not guarded:
 * containers started before per-sandbox uids (uid 1000, until their next start).
 */

export type DockerDriverOptions = {
  socketPath: string;
  agentStartTimeoutMs: number;
  logger: Logger;
  openFilesLimit?: number;
  /** Sandbox uids are claimed upwards from here (the local driver's SANDBOX_UID_BASE). */
  uidBase: number;
  /** nftables rules that keep sandboxes off each other's loopback listeners (default on). */
  loopbackGuard?: boolean;
  /** Loopback ports every sandbox may reach (Warren's own, a local model server). */
  loopbackAllowPorts?: number[];
  /** Names the guard's table with the socket (null: DATA_DIR=memory://). */
  dataDir?: string | null;
};

const LABEL_USER = "warren.user-id";
const LABEL_PORT = "warren.agent-port";
/** JSON {addonId: port} of the add-on services the container runs. */
const LABEL_ADDON_PORTS = "warren.addon-ports";
/** The image's unprivileged user (scripts/build-sandbox-image.sh): containers from before per-sandbox uids run as it. */
const LEGACY_UID = 1000;
const LOG_MAX = { "max-size": "5m", "max-file": "1" };

export class DockerDriver implements OrchestratorDriver {
  readonly name = "docker" as const;
  private readonly docker: Docker;
  private readonly openFiles: number;
  private readonly uids: DockerUids;
  private readonly guard: LoopbackGuard | null;
  private readonly guardTable: string;
  private guardOffCleared = false;
  /** Starts in progress here: the guard's table is not dropped under one (removeNow). */
  private starting = 0;
  // start, stop and remove of one sandbox run one at a time in this process: a stop landing in
  // the middle of a start would release the uid of a container about to run, unguarded.
  private readonly queues = new KeyedQueue();

  constructor(private readonly options: DockerDriverOptions) {
    this.docker = new Docker({ socketPath: options.socketPath });
    this.openFiles = options.openFilesLimit ?? 4096;
    this.uids = new DockerUids(this.docker, options.uidBase, options.logger);
    this.guardTable = dockerGuardTableName(options.socketPath, options.dataDir ?? null);
    const guarded = options.loopbackGuard ?? true;
    this.guard = guarded
      ? new LoopbackGuard({ table: this.guardTable, allowPorts: options.loopbackAllowPorts ?? [], logger: options.logger }, () => this.runningUids())
      : null;
    if (!guarded) options.logger.warn(GUARD_OFF_NOTE);
  }

  /** Uids of this daemon's running sandbox containers (the guard's members). */
  private async runningUids(): Promise<number[]> {
    const running = await this.docker.listContainers({ filters: { label: [`${LABEL_MANAGED}=true`], status: ["running"] } });
    return running.flatMap((c) => (c.Labels[LABEL_SANDBOX] ? [parseUid(c.Labels[LABEL_UID])] : [])).filter((u): u is number => u !== null);
  }

  static containerName = (id: string) => `warren-${id}`;
  static volumeName = (id: string) => `warren-${id}-home`;

  async availability(): Promise<Availability> {
    try {
      await this.docker.ping();
    } catch (err) {
      return {
        available: false,
        reason: `no Docker daemon answers on ${this.options.socketPath} (${(err as Error).message})`,
        install: "apt-get install -y docker.io, start dockerd with --bridge=none --iptables=false, set DOCKER_SOCKET",
      };
    }
    if (!this.guard) return availableWith([GUARD_OFF_NOTE, scopeUnavailableNote()]);
    // With user-namespace remapping (or a rootless daemon) a container's uid is not the host uid
    // the kernel's `meta skuid` sees: the guard would admit the wrong uids and guard nothing.
    const { SecurityOptions } = (await this.docker.info()) as { SecurityOptions?: string[] };
    const remap = (SecurityOptions ?? []).find((o) => /name=(userns|rootless)\b/.test(o));
    if (remap) {
      return { available: false, reason: `the Docker daemon remaps container uids (${remap}); the loopback guard needs container uids to be host uids`, install: "run dockerd without --userns-remap and not rootless, or set SANDBOX_LOOPBACK_GUARD=off" };
    }
    const guard = await this.guard.check();
    if (!guard.ok) return { available: false, reason: guard.reason, install: INSTALL_NFT };
    return availableWith([scopeUnavailableNote()]);
  }

  /**
   * The image, not the host, must hold what add-ons need, and images are only inspected by
   * running them: the container checks every requirement before the agent starts and ends at
   * once, naming the missing package, when one fails (REQUIRE_SCRIPT). Nothing to check here.
   */
  async addonAvailability(addons: AddonSpec[]): Promise<AddonAvailability[]> {
    return addons.map((a) => ({ id: a.id, available: true }));
  }

  start(spec: WorkloadSpec): Promise<WorkloadInfo> {
    assertSandboxId(spec.sandboxId);
    this.starting++;
    return this.queues.run(spec.sandboxId, () => this.startNow(spec)).finally(() => this.starting--);
  }

  private async startNow(spec: WorkloadSpec): Promise<WorkloadInfo> {
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
    const volume = DockerDriver.volumeName(id);
    const previous = await ignoring([404], () => this.docker.getContainer(DockerDriver.containerName(id)).inspect());
    const previousUid = parseUid(previous?.Config.Labels?.[LABEL_UID]);
    // Nothing of the sandbox runs while its volume may change hands.
    await ignoring([404], () => this.docker.getContainer(DockerDriver.containerName(id)).remove({ force: true }));
    // The volume (created here, labelled with a new uid, if there is none) and the sandbox's uid.
    const { uid, created } = await this.uids.claim(id, volume, labels, previousUid);
    // A new volume gets the image's /home (uid 1000's) on first mount; an old one is 1000's too. A
    // previous container with this uid means it was already done.
    assertUidUnshared(uid);
    if (created || previousUid !== uid) await this.uids.chownVolume(id, spec.image, volume, uid);
    // Before anything runs as the uid: from now on it may reach its own loopback listeners only.
    if (this.guard) await this.guard.admit(uid);
    else if (!this.guardOffCleared) {
      // Turned off: a table left from a guarded run would keep refusing this daemon's sandboxes.
      await dropGuardTableNamed(this.guardTable, this.options.logger);
      this.guardOffCleared = true;
    }

    const port = await freeLoopbackPort();
    // Host networking: add-on services get free loopback ports of their own, like the agent.
    const services = await planServices(spec.addons, freeLoopbackPort);
    const agent = ["/usr/local/bin/opencode", "serve", "--port", String(port), "--hostname", "127.0.0.1"];
    // The sandbox's own Landlock domain (abstract unix sockets: the host network's), entered by
    // Warren's helper before anything else runs; its variables travel renamed (landlock.ts).
    const helper = containerHelper(scopesSupported(), SANDBOX_WORKSPACE);
    const env = launcherEnv(sandboxEnv(spec));
    const container = await this.docker.createContainer({
      name: DockerDriver.containerName(id),
      Image: spec.image,
      Labels: { ...labels, [LABEL_UID]: String(uid), [LABEL_PORT]: String(port), [LABEL_ADDON_PORTS]: JSON.stringify(Object.fromEntries(services.map((s) => [s.id, s.port]))) },
      Env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
      User: `${uid}:${uid}`,
      WorkingDir: SANDBOX_WORKSPACE,
      // With replaced directories, the agent starts only after what they should no longer hold
      // (a custom agent deleted while the sandbox was stopped) is gone from the volume.
      // Then the add-ons' requirements are checked and their services started before the agent.
      Cmd: [
        ...helper.argv,
        ...(replacing ? ["/bin/sh", "-c", PRUNE_SCRIPT, "sh", SANDBOX_HOME, ...replacing.directories, "--"] : []),
        ...(requireArgs(spec.addons).length ? ["/bin/sh", ...requireArgs(spec.addons)] : []),
        ...(services.length ? ["/bin/bash", ...superviseArgs(services, agent)] : agent),
      ],
      HostConfig: {
        NetworkMode: "host",
        // opencode as PID 1 would ignore SIGTERM (no default handlers there) and every stop
        // would wait for the SIGKILL: a tiny init forwards signals and reaps the agent's children.
        Init: true,
        Mounts: [{ Type: "volume", Source: volume, Target: "/home" }, ...helper.binds.map((b) => ({ Type: "bind" as const, Source: b.source, Target: b.target, ReadOnly: true }))],
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
    // The uid is on the container's labels now. (After a failed start the reservation stays until
    // this sandbox's next claim replaces it: one uid kept from other sandboxes, never one shared.)
    this.uids.settle(id);
    if (files.length) await this.putFiles(container, files, uid);
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
      await this.stopNow(id, { timeoutMs: 1_000 });
      throw new Error(`sandbox ${id}: ${why}; last output:\n${tail || "(none)"}`);
    }
    this.options.logger.info({ sandboxId: id, container: container.id.slice(0, 12), port, uid }, "docker sandbox started");
    return this.inspect(id);
  }

  /** Writes into the volume through the container (created or running): no shell, no exec. */
  private async putFiles(container: Docker.Container, files: ReturnType<typeof validateFiles>, uid: number): Promise<void> {
    const owner = { uid, gid: uid };
    const entries: TarEntry[] = [
      ...parentDirs(files.map((f) => f.path)).map((path): TarEntry => ({ type: "dir", path, mode: 0o700, ...owner })),
      ...files.map((f): TarEntry => ({ type: "file", path: f.path, content: f.content, mode: f.mode, ...owner })),
    ];
    await container.putArchive(tarArchive(entries), { path: SANDBOX_HOME });
  }

  stop(sandboxId: string, options: { timeoutMs?: number } = {}): Promise<void> {
    assertSandboxId(sandboxId);
    return this.queues.run(sandboxId, () => this.stopNow(sandboxId, options));
  }

  private async stopNow(sandboxId: string, options: { timeoutMs?: number } = {}): Promise<void> {
    const t = Math.ceil((options.timeoutMs ?? 10_000) / 1000);
    const container = this.docker.getContainer(DockerDriver.containerName(sandboxId));
    const info = await ignoring([404], () => container.inspect());
    // 304: already stopped; 404: no container. Both mean "stopped" to the caller.
    await ignoring([304, 404], () => container.stop({ t }));
    // Only now that its processes are gone (the stop returns once the container has exited, and
    // exec'd processes end with it): its uid keeps no loopback permission.
    const uid = parseUid(info?.Config.Labels?.[LABEL_UID]);
    if (uid !== null) await this.guard?.release(uid);
  }

  remove(sandboxId: string): Promise<void> {
    assertSandboxId(sandboxId);
    return this.queues.run(sandboxId, () => this.removeNow(sandboxId));
  }

  private async removeNow(sandboxId: string): Promise<void> {
    const container = this.docker.getContainer(DockerDriver.containerName(sandboxId));
    const info = await ignoring([404], () => container.inspect());
    await ignoring([404], () => container.remove({ force: true, v: true }));
    const uid = parseUid(info?.Config.Labels?.[LABEL_UID]);
    if (uid !== null) await this.guard?.release(uid);
    await ignoring([404], () => this.docker.getVolume(DockerDriver.volumeName(sandboxId)).remove());
    // No sandbox left on the daemon: no table either (never under a start in progress here).
    if (this.guard && (await this.listManaged()).length === 0 && this.starting === 0) await this.guard.drop();
  }

  async inspect(sandboxId: string): Promise<WorkloadInfo> {
    assertSandboxId(sandboxId);
    const c = await ignoring([404], () => this.docker.getContainer(DockerDriver.containerName(sandboxId)).inspect());
    if (!c) {
      const volume = await ignoring([404], () => this.docker.getVolume(DockerDriver.volumeName(sandboxId)).inspect());
      const state = volume ? "stopped" : "missing";
      return { sandboxId, state, workloadId: null, agentUrl: null, image: null, appliedLimits: null, startedAt: null, exitCode: null };
    }
    // After a restart the table is rebuilt on first look at the sandboxes, not only on a start.
    await this.guard?.restoreOrLog();
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
    const uid = parseUid(info.Config.Labels?.[LABEL_UID]) ?? LEGACY_UID;
    await this.putFiles(container, valid, uid);
    // A stopped container prunes on its next start (its command does); a running one, now.
    if (replacing && info.State.Running) {
      const exec = await container.exec({
        Cmd: ["/bin/sh", "-c", PRUNE_SCRIPT, "sh", SANDBOX_HOME, ...replacing.directories, "--"],
        User: `${uid}:${uid}`,
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
