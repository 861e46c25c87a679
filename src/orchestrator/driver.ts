import type { AddonRequirement, AddonService, AppliedLimits } from "../../db/schema";

/**
 * The orchestrator driver interface (ARCHITECTURE.md: src/orchestrator). One driver per
 * deployment, chosen by configuration: `local` (bubblewrap-isolated process trees, the default)
 * or `docker` (Docker Engine API). Every operation is keyed by the sandbox id, which is embedded
 * in the workload's names and labels, so a driver can find its workloads again after Warren
 * restarts. Operations are idempotent: stopping a stopped workload or removing a missing one
 * succeeds.
 */

export type DriverName = "local" | "docker";

/** A file handed to the workload, relative to the sandbox's home directory inside it. */
export type WorkloadFile = {
  /** e.g. ".config/opencode/opencode.json" or ".local/share/opencode/auth.json"; no "..". */
  path: string;
  content: string;
  /** Defaults to 0o600: files may hold credentials and are readable only inside the sandbox. */
  mode?: number;
};

export type WorkloadSpec = {
  sandboxId: string;
  userId: string;
  flavorId: string;
  /** The image (docker) for the flavor; the local driver maps the flavor to toolchain mounts. */
  image: string;
  /** The tier's limits: the numbers users see are the numbers the driver applies. */
  limits: { cpuCores: number; memoryMb: number; pidsLimit: number; storageGb: number };
  /** The sandbox's add-ons from the catalogue: services to run next to the agent, tools to mount. */
  addons: AddonSpec[];
  /** The user's environment variables for the workload (names already validated). */
  env: Record<string, string>;
  /** OPENCODE_SERVER_PASSWORD for this sandbox's agent server. */
  agentPassword: string;
  /** Agent configuration and credentials, written before the agent starts. */
  files: WorkloadFile[];
  /** Directories (relative to the home) whose whole content `files` describes: see WriteOptions. */
  replaceDirectories?: string[];
  repositoryUrl: string | null;
};

export type AddonSpec = {
  id: string;
  /** The catalogue's nominal port (informative: drivers allocate a free one per sandbox). */
  port: number | null;
  service: AddonService | null;
  tools: string[];
  requires: AddonRequirement[];
  installHint: string | null;
};

export type AddonAvailability = { id: string; available: true } | { id: string; available: false; reason: string; install: string };

export type WriteOptions = {
  /**
   * Directories whose whole content the written files are: anything else directly inside them
   * (a custom agent deleted through the API) is removed, as the sandbox's own uid, after writing.
   */
  replaceDirectories?: string[];
};

export type WorkloadState = "running" | "stopped" | "missing";

export type WorkloadInfo = {
  sandboxId: string;
  state: WorkloadState;
  /** Container id or process id, for operators. */
  workloadId: string | null;
  /** Where Warren's proxy reaches the agent server (never exposed to users). */
  agentUrl: string | null;
  image: string | null;
  appliedLimits: AppliedLimits | null;
  startedAt: Date | null;
  /** Exit code when the workload stopped on its own. */
  exitCode: number | null;
  /** Where Warren's proxy reaches each add-on service of a running workload (never exposed to users). */
  addonUrls?: Record<string, string>;
};

/** notes: what an operator should know about a working driver (an isolation measure turned off, say). */
export type Availability = { available: true; notes?: string[] } | { available: false; reason: string; install: string };

/** Available, with what an operator should know is not enforced (the null entries are dropped). */
export function availableWith(notes: Array<string | null>): Availability {
  const said = notes.filter((n) => n !== null);
  return said.length ? { available: true, notes: said } : { available: true };
}

export interface OrchestratorDriver {
  readonly name: DriverName;
  /** Whether the driver can run workloads here; never throws. */
  availability(): Promise<Availability>;
  /**
   * Whether each add-on's requirements hold where this driver runs workloads; never throws. A
   * sandbox whose add-on is unavailable is never started without it (start throws
   * AddonUnavailableError).
   */
  addonAvailability(addons: AddonSpec[]): Promise<AddonAvailability[]>;
  /**
   * Creates (if needed) and starts the workload, writes spec.files, and resolves once the agent
   * server answers on agentUrl. Starting a running workload returns its info unchanged.
   */
  start(spec: WorkloadSpec): Promise<WorkloadInfo>;
  /** Stops the workload (graceful, then forced after timeoutMs); keeps its data. */
  stop(sandboxId: string, options?: { timeoutMs?: number }): Promise<void>;
  /** Stops and deletes the workload and all its data (directories, volumes). */
  remove(sandboxId: string): Promise<void>;
  inspect(sandboxId: string): Promise<WorkloadInfo>;
  /** Every workload this driver manages for Warren, running or stopped. */
  listManaged(): Promise<WorkloadInfo[]>;
  /** The workload's recent output, oldest first. */
  logs(sandboxId: string, options?: { tail?: number; since?: Date }): Promise<string[]>;
  /** Writes files into a workload's home (e.g. changed agent configuration). */
  writeFiles(sandboxId: string, files: WorkloadFile[], options?: WriteOptions): Promise<void>;
  /** Releases resources held by the driver itself (not the workloads). */
  close(): Promise<void>;
}

export class DriverUnavailableError extends Error {
  override name = "DriverUnavailableError";
  constructor(
    readonly driver: DriverName,
    readonly reason: string,
    readonly install: string,
  ) {
    super(`${driver} driver unavailable: ${reason}`);
  }
}

export class AddonUnavailableError extends Error {
  override name = "AddonUnavailableError";
  constructor(readonly problems: Array<{ id: string; reason: string; install: string }>) {
    super(`add-on unavailable: ${problems.map((p) => `${p.id} (${p.reason}; install: ${p.install})`).join("; ")}`);
  }
}
