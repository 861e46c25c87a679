import { spawn } from "node:child_process";
import { chownSync, closeSync, existsSync, mkdirSync, openSync, renameSync } from "node:fs";
import { constants } from "node:os";
import { resolve } from "node:path";
import type { AppliedLimits } from "../../db/schema";
import type { Logger } from "../lib/logger";
import { cgroupPids, removeCgroup, setupCgroup } from "./cgroups";
import { addonUrls, hostAddonAvailability, planServices, superviseArgs, toolPaths, waitForServices, type PlannedService } from "./addons";
import { AddonUnavailableError, availableWith, DriverUnavailableError, type AddonAvailability, type AddonSpec, type Availability, type OrchestratorDriver, type WorkloadFile, type WorkloadInfo, type WorkloadSpec, type WriteOptions } from "./driver";
import { SandboxDisks, type DiskOutcome, type StorageQuota } from "./local-disk";
import { LocalStore, type LocalState } from "./local-store";
import { HELPER_PATH, helperArgv, launcherEnv, scopesSupported, scopeUnavailableNote } from "./landlock";
import { dropGuardTable, GUARD_OFF_NOTE, INSTALL_NFT, LoopbackGuard } from "./loopback-guard";
import { assertUidUnshared, uidInUse } from "./sandbox-uids";
import { KeyedQueue } from "./serial";
import { assertSandboxId, resolveOpencodeBinary, validateFiles, sandboxEnv, SANDBOX_HOME, SANDBOX_WORKSPACE, waitForAgent } from "./opencode";
import { descendantPidNamespace, freeLoopbackPort, isOurProcess, pidNamespace, pidsOfUid, processStartTime, signal, waitUntil } from "./processes";

export { agentAuthHeader } from "./opencode";

/**
 * The local driver: each sandbox is a process tree under bubblewrap.
 *
 * Isolation it gives: own mount, pid, ipc, uts and cgroup namespaces; the host system read-only;
 * /home, /root, /tmp, /var/tmp, /run, Warren's data directory and working directory hidden behind
 * empty tmpfs mounts; its own home and workspace, on a disk of its tier's size where the host
 * allows (local-disk.ts: an ext4 image on a loop device); no capabilities; a host uid of its own (so one
 * sandbox cannot signal or read another's files, and RLIMIT_NPROC counts only its processes).
 *
 * Network: the host's (no network namespace), because Warren reaches the agent and the add-ons on
 * 127.0.0.1 ports. Loopback is guarded by nftables rules keyed by the sandbox's uid
 * (loopback-guard.ts): to any local address (127.0.0.0/8, ::1, the host's own addresses) a
 * sandbox may only open TCP connections to listeners of its own uid (its agent, add-ons, a dev
 * server it runs), DNS on port 53, Warren's own port and SANDBOX_LOOPBACK_ALLOW_PORTS; other
 * sandboxes' add-ons (code-server --auth none) and host services (PostgreSQL) are refused.
 * SANDBOX_LOOPBACK_GUARD=off drops the guard, said in availability() notes and at start.
 * Abstract unix sockets (the network namespace's, unseen by nftables) and signals are scoped with
 * Landlock (landlock.ts, Linux 6.12+): a sandbox may connect only to those its own processes bound.
 * What it does NOT give: outbound traffic to the internet and to other hosts is open (by design:
 * the agent must reach AI providers); on kernels before 6.12 abstract unix sockets are the host's
 * (said in availability() notes); world-readable host files stay readable.
 */

export type LocalDriverOptions = {
  dataDir: string;
  opencodeBin?: string;
  agentStartTimeoutMs: number;
  uidBase: number;
  openFilesLimit: number;
  logMaxBytes: number;
  /** nftables rules that keep sandboxes off each other's loopback listeners (default on). */
  loopbackGuard?: boolean;
  /** Loopback ports every sandbox may reach (Warren's own, a local model server). */
  loopbackAllowPorts?: number[];
  /** Each sandbox's files on an ext4 image of its tier's size (local-disk.ts); default auto. */
  storageQuota?: StorageQuota;
  logger: Logger;
};

const SCRATCH = ["/tmp", "/var/tmp"];
const INSTALL = "apt-get install -y bubblewrap util-linux && bun install";

// Constant scripts: every value reaches them as an argument, never spliced into the code.
// The launcher joins the sandbox's cgroups before starting bwrap, so no child is ever born outside
// them. It stays as bwrap's parent (it does not exec): bwrap's --die-with-parent follows its
// parent, and that must be this launcher, not Warren, or a Warren crash would take every sandbox
// with it (sandboxes outlive Warren restarts; the reconciler finds them again).
const LAUNCH_SCRIPT = 'for f do shift; [ "$f" = -- ] && break; echo $$ > "$f" || exit 97; done; "$@" & wait $!';
// Time-stamps each output line inside the sandbox, so logs(since) works after a Warren restart.
const PUMP_SCRIPT =
  'set -o pipefail; "$@" 2>&1 | while IFS= read -r line || [ -n "$line" ]; do printf "%s %s\\n" "$EPOCHREALTIME" "$line"; done';

export class LocalDriver implements OrchestratorDriver {
  readonly name = "local" as const;
  private readonly store: LocalStore;
  private readonly disks: SandboxDisks;
  private readonly dataDir: string;
  private readonly guard: LoopbackGuard | null;
  private guardOffCleared = false;

  constructor(private readonly options: LocalDriverOptions) {
    this.dataDir = resolve(options.dataDir);
    this.store = new LocalStore(resolve(this.dataDir, "sandboxes"));
    this.disks = new SandboxDisks({ quota: options.storageQuota ?? "auto", logger: options.logger });
    const guarded = options.loopbackGuard ?? true;
    this.guard = guarded
      ? new LoopbackGuard(
          { dataDir: this.dataDir, allowPorts: options.loopbackAllowPorts ?? [], logger: options.logger },
          () => this.runningUids(),
        )
      : null;
    if (!guarded) options.logger.warn(GUARD_OFF_NOTE);
  }

  /** Uids of this data directory's sandboxes whose processes run now (the guard's members). */
  private runningUids(): number[] {
    return this.store.ids().flatMap((id) => {
      const s = this.store.read(id);
      return s && s.pid !== null && s.pidStartTime !== null && isOurProcess(s.pid, s.pidStartTime) ? [s.uid] : [];
    });
  }

  async availability(): Promise<Availability> {
    if (process.platform !== "linux") return { available: false, reason: "the local driver needs Linux", install: "use ORCHESTRATOR_DRIVER=docker" };
    if (process.getuid?.() !== 0) {
      return { available: false, reason: "the local driver runs each sandbox under its own uid and needs root", install: "run Warren as root or use ORCHESTRATOR_DRIVER=docker" };
    }
    for (const tool of ["bwrap", "prlimit", "setpriv", "bash"]) {
      if (!Bun.which(tool)) return { available: false, reason: `${tool} is not installed`, install: INSTALL };
    }
    const bin = resolveOpencodeBinary(this.options.opencodeBin);
    if ("problem" in bin) return { available: false, reason: bin.problem, install: "bun install" };
    if (this.guard) {
      const guard = await this.guard.check();
      if (!guard.ok) return { available: false, reason: guard.reason, install: INSTALL_NFT };
    }
    // Available, but an operator should know what is not enforced (GET /api/v1/orchestrator).
    return availableWith([this.guard ? null : GUARD_OFF_NOTE, scopeUnavailableNote(), this.disks.hostNote()]);
  }

  async addonAvailability(addons: AddonSpec[]): Promise<AddonAvailability[]> {
    return hostAddonAvailability(addons);
  }

  // start, stop and remove of one sandbox run one at a time in this process: a removal (say, the
  // cleanup after an account deletion) that lands in the middle of a start would otherwise delete
  // the directory under it and leave its freshly spawned processes with no state to find them by.
  private readonly queues = new KeyedQueue();
  private exclusive<T>(sandboxId: string, fn: () => Promise<T>): Promise<T> {
    return this.queues.run(sandboxId, fn);
  }

  start(spec: WorkloadSpec): Promise<WorkloadInfo> {
    assertSandboxId(spec.sandboxId);
    return this.exclusive(spec.sandboxId, () => this.startNow(spec).catch((err: unknown) => this.unmountAfterFailedStart(spec.sandboxId, err)));
  }

  /** A start that failed before its sandbox ran (a file it could not write, say) leaves no disk mounted. */
  private async unmountAfterFailedStart(sandboxId: string, err: unknown): Promise<never> {
    const s = this.store.read(sandboxId);
    if (!(s && s.pid !== null && s.pidStartTime !== null && isOurProcess(s.pid, s.pidStartTime))) {
      await this.disks.detach(this.store.dir(sandboxId)).catch((e: unknown) => this.options.logger.warn({ sandboxId, err: { message: (e as Error).message } }, "sandbox storage: unmounting after a failed start failed"));
    }
    throw err;
  }

  stop(sandboxId: string, options: { timeoutMs?: number } = {}): Promise<void> {
    assertSandboxId(sandboxId);
    return this.exclusive(sandboxId, () => this.stopNow(sandboxId, options));
  }

  remove(sandboxId: string): Promise<void> {
    assertSandboxId(sandboxId);
    return this.exclusive(sandboxId, () => this.removeNow(sandboxId));
  }

  private async startNow(spec: WorkloadSpec): Promise<WorkloadInfo> {
    validateFiles(spec.files);
    const availability = await this.availability();
    if (!availability.available) throw new DriverUnavailableError("local", availability.reason, availability.install);
    // Never a sandbox silently started without one of its add-ons.
    const missing = hostAddonAvailability(spec.addons).filter((a) => !a.available);
    if (missing.length) throw new AddonUnavailableError(missing.map((a) => ({ id: a.id, reason: a.reason, install: a.install })));
    const current = await this.inspect(spec.sandboxId);
    if (current.state === "running") return current;
    await this.stopNow(spec.sandboxId, { timeoutMs: 2_000 }); // sweeps leftovers of a crashed run

    const id = spec.sandboxId;
    const previous = this.store.read(id);
    mkdirSync(this.store.dir(id), { recursive: true, mode: 0o700 });
    const uid = previous?.uid ?? this.store.claimUid(this.options.uidBase, uidInUse);
    assertUidUnshared(uid);
    // Before anything runs as the uid: from now on it may reach its own loopback listeners only.
    if (this.guard) await this.guard.admit(uid);
    else if (!this.guardOffCleared) {
      // Turned off: a table left from a guarded run would keep refusing this data directory's sandboxes.
      await dropGuardTable(this.dataDir, this.options.logger);
      this.guardOffCleared = true;
    }
    // Its own file system of the tier's size, mounted before anything is written into home or workspace.
    const disk = await this.disks.attach(this.store.dir(id), spec.limits.storageGb, `sandbox ${id}`);
    for (const dir of [this.store.home(id), this.store.workspace(id)]) {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      chownSync(dir, uid, uid);
    }
    const state: LocalState = { sandboxId: id, userId: spec.userId, uid, pid: null, pidStartTime: null, pidNs: null, port: null, addonPorts: null, startedAt: null, image: `local:${spec.flavorId}`, appliedLimits: null, exitCode: null };
    this.store.write(state);
    this.store.writeFiles(id, uid, spec.files, { replaceDirectories: spec.replaceDirectories ?? [] });

    const cgroup = setupCgroup(id, spec.limits);
    state.appliedLimits = this.appliedLimits(spec, cgroup.applied, cgroup.problems, disk);
    state.port = await freeLoopbackPort();
    // Each add-on service gets a loopback port of its own, like the agent's.
    const services = await planServices(spec.addons, freeLoopbackPort);
    state.addonPorts = Object.fromEntries(services.map((s) => [s.id, s.port]));
    const argv = this.launchArgv(spec, uid, state.port, cgroup.procsFiles, spec.limits.pidsLimit, services);

    // The previous run's output stays readable as workload.log.1; one generation is enough.
    if (existsSync(this.store.logFile(id))) renameSync(this.store.logFile(id), `${this.store.logFile(id)}.1`);
    const logFd = openSync(this.store.logFile(id), "a", 0o600);
    let exited = false;
    try {
      // The sandbox's variables reach bwrap through the launch helper, renamed on the way (landlock.ts).
      const child = spawn("sh", argv, { detached: true, stdio: ["ignore", logFd, logFd], env: launcherEnv(sandboxEnv(spec)) });
      const pid = child.pid;
      if (pid === undefined) throw new Error("could not launch the sandbox (spawn returned no pid)");
      child.on("exit", (code, sig) => {
        exited = true;
        const latest = this.store.read(id);
        if (latest?.pid === pid) this.store.write({ ...latest, exitCode: code ?? (sig ? 128 + (constants.signals[sig] ?? 0) : null) });
      });
      child.unref();
      state.pid = pid;
      state.pidStartTime = processStartTime(pid);
      state.startedAt = new Date().toISOString();
      this.store.write(state);
    } finally {
      closeSync(logFd);
    }

    const agentUrl = `http://127.0.0.1:${state.port}`;
    let up = await waitForAgent(agentUrl, spec.agentPassword, this.options.agentStartTimeoutMs, () => !exited);
    let failed: string | null = null;
    if (up) {
      const late = await waitForServices(services, this.options.agentStartTimeoutMs, () => !exited);
      if (late) {
        up = false;
        failed = `the add-on "${late.id}" ${exited ? "exited with the sandbox" : `did not answer on GET ${late.readinessPath} within ${this.options.agentStartTimeoutMs} ms`}`;
      }
    }
    const latest = this.store.read(id) ?? state;
    if (latest.pid === state.pid) this.store.write({ ...latest, pidNs: descendantPidNamespace(state.pid!) });
    if (!up) {
      const why = failed ?? `the agent ${exited ? "exited during start-up" : `did not answer within ${this.options.agentStartTimeoutMs} ms`}`;
      const tail = this.store.readLog(id, { tail: 20 }).join("\n");
      await this.stopNow(id, { timeoutMs: 1_000 });
      throw new Error(`sandbox ${id}: ${why}; last output:\n${tail || "(none)"}`);
    }
    this.options.logger.info({ sandboxId: id, pid: state.pid, port: state.port, addonPorts: state.addonPorts, uid }, "local sandbox started");
    return this.info(id, this.store.read(id) ?? state);
  }

  private launchArgv(spec: WorkloadSpec, uid: number, port: number, procsFiles: string[], nproc: number, services: PlannedService[]): string[] {
    const bin = resolveOpencodeBinary(this.options.opencodeBin);
    if ("problem" in bin) throw new DriverUnavailableError("local", bin.problem, "bun install");
    const nofile = this.options.openFilesLimit;
    const agent = ["/run/warren/opencode", "serve", "--port", String(port), "--hostname", "127.0.0.1"];
    // Add-on tools: host paths bound read-only where they are (absent ones are skipped). Never
    // Warren's own directories, nor a parent that would uncover them.
    const tools = toolPaths(spec.addons, [this.dataDir, resolve(process.cwd()), "/run/warren", SANDBOX_HOME, SANDBOX_WORKSPACE, "/proc", "/dev"]);
    return [
      "-c", LAUNCH_SCRIPT, "warren-launch", ...procsFiles, "--",
      // Its own Landlock domain (abstract unix sockets, signals), then the sandbox's environment back.
      ...helperArgv({ bun: process.execPath, helper: HELPER_PATH, scope: scopesSupported() }),
      "prlimit", `--nofile=${nofile}:${nofile}`, `--nproc=${nproc}:${nproc}`, "--core=0", "--",
      "bwrap",
      "--unshare-ipc", "--unshare-pid", "--unshare-uts", "--unshare-cgroup-try",
      // The namespace's processes die with the outer bwrap, so killing its group leaves nothing.
      "--die-with-parent",
      "--hostname", "sandbox",
      "--ro-bind", "/", "/",
      // World-writable and sticky where the system expects a shared scratch directory.
      ...this.masks().flatMap((path) => (SCRATCH.includes(path) ? ["--perms", "1777", "--tmpfs", path] : ["--tmpfs", path])),
      ...tools.flatMap((path) => ["--ro-bind-try", path, path]),
      "--dev", "/dev",
      "--proc", "/proc",
      "--bind", this.store.home(spec.sandboxId), SANDBOX_HOME,
      "--bind", this.store.workspace(spec.sandboxId), SANDBOX_WORKSPACE,
      "--perms", "0755", "--dir", "/run/warren",
      "--ro-bind", bin.path, "/run/warren/opencode",
      "--chdir", SANDBOX_WORKSPACE,
      // Only to drop to the sandbox's uid just below; setpriv clears every capability after that.
      "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID",
      "--",
      "setpriv", `--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", "--inh-caps=-all", "--bounding-set=-all", "--",
      "bash", "-c", PUMP_SCRIPT, "warren-pump",
      // Add-on services run next to the agent, in the same namespaces, limits, uid and HOME.
      ...(services.length ? ["bash", ...superviseArgs(services, agent)] : agent),
    ];
  }

  /** Host paths hidden inside the sandbox; nested ones are already covered by their parent. */
  private masks(): string[] {
    const wanted = ["/home", "/root", "/tmp", "/var/tmp", "/run", this.dataDir, process.cwd()]
      .map((p) => resolve(p))
      .filter((p) => p !== "/" && existsSync(p))
      .sort((a, b) => a.length - b.length);
    const masks: string[] = [];
    for (const path of wanted) {
      if (!masks.some((m) => path === m || path.startsWith(`${m}/`))) masks.push(path);
    }
    return masks;
  }

  private appliedLimits(spec: WorkloadSpec, cg: ReturnType<typeof setupCgroup>["applied"], problems: string[], disk: DiskOutcome): AppliedLimits {
    const notes = [...problems];
    if (cg.memory) notes.push(`memory: ${cg.memory}`);
    else notes.push("memory: not applied (RLIMIT_AS cannot cap OpenCode, which reserves ~74 GB of address space)");
    if (cg.cpu) notes.push(`cpu: ${cg.cpu}`);
    else notes.push("cpu: not applied (needs a writable cpu cgroup)");
    notes.push(`pids: RLIMIT_NPROC on the sandbox's own uid${cg.pids ? ` and ${cg.pids}` : ""}`);
    notes.push(`open files: RLIMIT_NOFILE ${this.options.openFilesLimit}`);
    notes.push(disk.note);
    return {
      cpuCores: cg.cpu ? spec.limits.cpuCores : null,
      memoryMb: cg.memory ? spec.limits.memoryMb : null,
      pidsLimit: spec.limits.pidsLimit,
      openFiles: this.options.openFilesLimit,
      storageGb: disk.storageGb,
      notes,
    };
  }

  private async stopNow(sandboxId: string, options: { timeoutMs?: number } = {}): Promise<void> {
    const state = this.store.read(sandboxId);
    if (!state) return;
    const timeoutMs = options.timeoutMs ?? 10_000;
    const ours = state.pid !== null && state.pidStartTime !== null && isOurProcess(state.pid, state.pidStartTime);
    // Everything the sandbox could have started: its launcher's group, its cgroups, and its uid's
    // processes inside its own pid namespace (never another Warren's sandbox that got the same uid
    // from another DATA_DIR). When bwrap's init dies, the kernel kills the rest of the namespace.
    const inOurNs = (pid: number) => state.pidNs !== null && pidNamespace(pid) === state.pidNs;
    const leftovers = () => [...new Set([...pidsOfUid(state.uid).filter(inOurNs), ...cgroupPids(sandboxId)])];
    if (ours) signal(-state.pid!, "SIGTERM");
    for (const pid of leftovers()) signal(pid, "SIGTERM");
    const gone = () => !(ours && isOurProcess(state.pid!, state.pidStartTime!)) && leftovers().length === 0;
    if (!(await waitUntil(gone, timeoutMs))) {
      if (ours) signal(-state.pid!, "SIGKILL");
      for (const pid of leftovers()) signal(pid, "SIGKILL");
      if (!(await waitUntil(gone, 5_000))) throw new Error(`sandbox ${sandboxId}: processes survived SIGKILL: ${leftovers().join(", ")}`);
    }
    await removeCgroup(sandboxId);
    // Only now that none of its processes is left: its uid keeps no loopback permission.
    await this.guard?.release(state.uid);
    await this.disks.detach(this.store.dir(sandboxId));
    const latest = this.store.read(sandboxId) ?? state;
    if (latest.pid !== null) this.store.write({ ...latest, pid: null, pidStartTime: null, pidNs: null, addonPorts: null });
  }

  private async removeNow(sandboxId: string): Promise<void> {
    const state = this.store.read(sandboxId);
    await this.stopNow(sandboxId, { timeoutMs: 5_000 });
    await this.disks.detach(this.store.dir(sandboxId)); // also with no state file (a start that crashed early)
    this.store.removeDir(sandboxId);
    if (state) this.store.releaseUid(state.uid);
    if (this.store.ids().length === 0) await this.guard?.drop();
  }

  async inspect(sandboxId: string): Promise<WorkloadInfo> {
    assertSandboxId(sandboxId);
    const state = this.store.read(sandboxId);
    if (!state) return { sandboxId, state: "missing", workloadId: null, agentUrl: null, image: null, appliedLimits: null, startedAt: null, exitCode: null };
    // After a restart the table is rebuilt on first look at the sandboxes, not only on a start.
    await this.guard?.restoreOrLog();
    this.store.boundLog(sandboxId, this.options.logMaxBytes);
    return this.info(sandboxId, state);
  }

  private info(sandboxId: string, state: LocalState): WorkloadInfo {
    const running = state.pid !== null && state.pidStartTime !== null && isOurProcess(state.pid, state.pidStartTime);
    return {
      sandboxId,
      state: running ? "running" : "stopped",
      workloadId: running ? String(state.pid) : null,
      agentUrl: running && state.port ? `http://127.0.0.1:${state.port}` : null,
      addonUrls: running ? addonUrls(state.addonPorts) : {},
      image: state.image,
      appliedLimits: state.appliedLimits,
      startedAt: running && state.startedAt ? new Date(state.startedAt) : null,
      exitCode: running ? null : state.exitCode,
    };
  }

  async listManaged(): Promise<WorkloadInfo[]> {
    return Promise.all(this.store.ids().map((id) => this.inspect(id)));
  }

  async logs(sandboxId: string, options: { tail?: number; since?: Date } = {}): Promise<string[]> {
    assertSandboxId(sandboxId);
    this.store.boundLog(sandboxId, this.options.logMaxBytes);
    return this.store.readLog(sandboxId, options);
  }

  async writeFiles(sandboxId: string, files: WorkloadFile[], options: WriteOptions = {}): Promise<void> {
    assertSandboxId(sandboxId);
    const state = this.store.read(sandboxId);
    if (!state) throw new Error(`sandbox ${sandboxId} has no workload`);
    this.store.writeFiles(sandboxId, state.uid, files, options);
  }

  async close(): Promise<void> {}
}
