import { readdirSync, readFileSync, readlinkSync } from "node:fs";

/**
 * /proc helpers for the local driver. A pid alone is not an identity: after a restart of Warren
 * (or of the host) the number may belong to an unrelated process, so a workload is "ours" only
 * while /proc/<pid>/stat still shows the start time recorded when it was launched.
 */

type Stat = { state: string; startTime: string };

function readStat(pid: number): Stat | null {
  try {
    const raw = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) may contain spaces and parentheses: parse after the last ")".
    const rest = raw.slice(raw.lastIndexOf(")") + 2).split(" ");
    return { state: rest[0] ?? "", startTime: rest[19] ?? "" };
  } catch {
    return null;
  }
}

/** Start time in clock ticks since boot (field 22 of /proc/<pid>/stat). */
export function processStartTime(pid: number): string | null {
  return readStat(pid)?.startTime ?? null;
}

/** Alive and the same process: zombies count as gone (nothing of them runs any more). */
export function isOurProcess(pid: number, startTime: string): boolean {
  const stat = readStat(pid);
  return stat !== null && stat.state !== "Z" && stat.startTime === startTime;
}

export function isAlive(pid: number): boolean {
  const stat = readStat(pid);
  return stat !== null && stat.state !== "Z";
}

/** Live processes whose real uid is `uid`: each sandbox runs under a uid of its own. */
export function pidsOfUid(uid: number): number[] {
  const found: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const status = readFileSync(`/proc/${entry}/status`, "utf8");
      const m = /^Uid:\s+(\d+)/m.exec(status);
      if (m && Number(m[1]) === uid && isAlive(Number(entry))) found.push(Number(entry));
    } catch {
      // Exited while we looked.
    }
  }
  return found;
}

/** e.g. "pid:[4026532301]": the pid namespace a process lives in. */
export function pidNamespace(pid: number): string | null {
  try {
    return readlinkSync(`/proc/${pid}/ns/pid`);
  } catch {
    return null;
  }
}

/** The pid namespace bwrap created: its first child (the sandbox's init) lives in it. */
/**
 * The pid namespace of the sandbox under a launcher: the first process below `pid` whose
 * namespace differs from the launcher's (launcher → outer bwrap → bwrap's init in the new one).
 */
export function descendantPidNamespace(pid: number, maxDepth = 4): string | null {
  const own = pidNamespace(pid);
  let level = [pid];
  for (let depth = 0; depth < maxDepth && level.length > 0; depth++) {
    const next: number[] = [];
    for (const p of level) {
      let children: number[] = [];
      try {
        children = readFileSync(`/proc/${p}/task/${p}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
      } catch {
        continue;
      }
      for (const child of children) {
        const ns = pidNamespace(child);
        if (ns && ns !== own) return ns;
        next.push(child);
      }
    }
    level = next;
  }
  return null;
}

export function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // Already gone.
  }
}

export async function waitUntil(check: () => boolean, timeoutMs: number, stepMs = 50): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (check()) return true;
    if (Date.now() >= deadline) return false;
    await Bun.sleep(stepMs);
  }
}

/** The kernel's range of ephemeral ports (outgoing connections' local ports, `listen(0)`). */
function ephemeralRange(): [number, number] {
  try {
    const [lo, hi] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/).map(Number);
    if (lo && hi) return [lo, hi];
  } catch {
    // not Linux: the IANA range
  }
  return [49152, 65535];
}

const LOWEST_PORT = 10_000;

function canListen(port: number): boolean {
  try {
    Bun.listen({ hostname: "127.0.0.1", port, socket: { data() {} } }).stop(true);
    return true;
  } catch {
    return false;
  }
}

/**
 * A port free on 127.0.0.1 for a listener that binds it a moment later (a sandbox's agent or
 * add-on, a test's server). Picked at random below the kernel's ephemeral range: a port from
 * `listen(0)` comes from the range every outgoing connection takes its local port from, and on a
 * busy host (Warren's own connections to the agents, PostgreSQL) one of them can take it in the
 * moment between the check and the bind. Falls back to the kernel's choice when that range is
 * too small or full.
 */
export function pickLoopbackPort(): number {
  const top = ephemeralRange()[0] - 1;
  if (top - LOWEST_PORT >= 1_000) {
    for (let i = 0; i < 50; i++) {
      const port = LOWEST_PORT + Math.floor(Math.random() * (top - LOWEST_PORT + 1));
      if (canListen(port)) return port;
    }
  }
  const server = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = server.port;
  server.stop(true);
  return port;
}

/** pickLoopbackPort, for callers that take a port allocator returning a promise. */
export async function freeLoopbackPort(): Promise<number> {
  return pickLoopbackPort();
}
