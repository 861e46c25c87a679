import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/**
 * Per-sandbox cgroups for the local driver, on whichever hierarchy the host gives us: cgroup v2
 * (one tree at /sys/fs/cgroup) or v1 (one tree per controller). Only what is really writable is
 * used, and the caller reports each limit as applied or not: users must see the limits they get.
 */

export type CgroupLimits = { memoryMb: number; pidsLimit: number; cpuCores: number };

export type CgroupSetup = {
  /** The cgroup.procs files the launcher writes its own pid into before exec'ing the sandbox. */
  procsFiles: string[];
  applied: { memory: string | null; pids: string | null; cpu: string | null };
  problems: string[];
};

const ROOT = "/sys/fs/cgroup";
const GROUP = "warren";
const CPU_PERIOD_US = 100_000;

type Controller = "memory" | "pids" | "cpu";

function isV2(): boolean {
  return existsSync(join(ROOT, "cgroup.controllers"));
}

/** Directories of this sandbox's cgroup, per controller (v2: the same directory for all). */
function groupDirs(sandboxId: string): Record<Controller, string> {
  if (isV2()) {
    const dir = join(ROOT, GROUP, sandboxId);
    return { memory: dir, pids: dir, cpu: dir };
  }
  return {
    memory: join(ROOT, "memory", GROUP, sandboxId),
    pids: join(ROOT, "pids", GROUP, sandboxId),
    cpu: join(ROOT, "cpu", GROUP, sandboxId),
  };
}

function tryWrite(file: string, value: string): boolean {
  try {
    writeFileSync(file, value);
    return true;
  } catch {
    return false;
  }
}

function ensureDir(dir: string): boolean {
  try {
    mkdirSync(dir, { recursive: true });
    return existsSync(join(dir, "cgroup.procs"));
  } catch {
    return false;
  }
}

/** v2 only hands a controller to children that the parent lists in cgroup.subtree_control. */
function enableV2Controllers(): void {
  const parent = join(ROOT, GROUP);
  if (!ensureDir(parent)) return;
  const available = readFileSync(join(ROOT, "cgroup.controllers"), "utf8").split(/\s+/);
  for (const c of ["memory", "pids", "cpu"]) {
    if (available.includes(c)) {
      tryWrite(join(ROOT, "cgroup.subtree_control"), `+${c}`);
      tryWrite(join(parent, "cgroup.subtree_control"), `+${c}`);
    }
  }
}

export function setupCgroup(sandboxId: string, limits: CgroupLimits): CgroupSetup {
  const v2 = isV2();
  const dirs = groupDirs(sandboxId);
  const setup: CgroupSetup = { procsFiles: [], applied: { memory: null, pids: null, cpu: null }, problems: [] };
  if (v2) enableV2Controllers();
  const memBytes = String(limits.memoryMb * 1024 * 1024);
  const quota = Math.round(limits.cpuCores * CPU_PERIOD_US);
  const attempts: Record<Controller, () => string | null> = {
    memory: () => {
      if (v2) return tryWrite(join(dirs.memory, "memory.max"), memBytes) ? "cgroup v2 memory.max" : null;
      if (!tryWrite(join(dirs.memory, "memory.limit_in_bytes"), memBytes)) return null;
      // Without the memsw cap a process could page out past the limit where swap exists.
      tryWrite(join(dirs.memory, "memory.memsw.limit_in_bytes"), memBytes);
      return "cgroup v1 memory.limit_in_bytes";
    },
    pids: () =>
      tryWrite(join(dirs.pids, "pids.max"), String(limits.pidsLimit)) ? `cgroup ${v2 ? "v2" : "v1"} pids.max` : null,
    cpu: () => {
      if (v2) return tryWrite(join(dirs.cpu, "cpu.max"), `${quota} ${CPU_PERIOD_US}`) ? "cgroup v2 cpu.max" : null;
      if (!tryWrite(join(dirs.cpu, "cpu.cfs_period_us"), String(CPU_PERIOD_US))) return null;
      return tryWrite(join(dirs.cpu, "cpu.cfs_quota_us"), String(quota)) ? "cgroup v1 cpu.cfs_quota_us" : null;
    },
  };
  for (const controller of ["memory", "pids", "cpu"] as const) {
    const dir = dirs[controller];
    if (!ensureDir(dir)) {
      setup.problems.push(`${controller}: no writable cgroup at ${dir}`);
      continue;
    }
    const how = attempts[controller]();
    if (!how) {
      setup.problems.push(`${controller}: the cgroup at ${dir} refused the limit`);
      continue;
    }
    setup.applied[controller] = how;
    const procs = join(dir, "cgroup.procs");
    if (!setup.procsFiles.includes(procs)) setup.procsFiles.push(procs);
  }
  return setup;
}

/** Pids still in any of the sandbox's cgroups (the ground truth for "nothing left running"). */
export function cgroupPids(sandboxId: string): number[] {
  const pids = new Set<number>();
  for (const dir of new Set(Object.values(groupDirs(sandboxId)))) {
    try {
      for (const line of readFileSync(join(dir, "cgroup.procs"), "utf8").split("\n")) {
        if (line.trim()) pids.add(Number(line));
      }
    } catch {
      // No such group: nothing of ours there.
    }
  }
  return [...pids];
}

/**
 * Removes the sandbox's cgroups. An exited task can hold a v1 cgroup for a moment until its
 * parent reaps it (rmdir answers EBUSY meanwhile), hence the short retry.
 */
export async function removeCgroup(sandboxId: string): Promise<void> {
  for (const dir of new Set(Object.values(groupDirs(sandboxId)))) {
    for (let attempt = 0; attempt < 40; attempt++) {
      try {
        rmdirSync(dir);
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EBUSY") break; // missing: nothing to do
        await Bun.sleep(50);
      }
    }
  }
}
