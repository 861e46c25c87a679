/**
 * What the box is doing, from /proc: CPU time of a process and of a PostgreSQL cluster, how busy
 * all CPUs are, waiting for the rest of a shared box to go quiet, and a process's resident memory.
 */
import { readdirSync, readFileSync } from "node:fs";
import { log } from "./processes";

function statFields(pid: number): string[] {
  return readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
}

/** CPU time (ms, user + system) of one process; 0 when it is gone. */
export function cpuMsOf(pid: number): number {
  try {
    const f = statFields(pid);
    return ((Number(f[11]) + Number(f[12])) * 1000) / 100; // utime, stime in clock ticks (100/s)
  } catch {
    return 0;
  }
}

/**
 * CPU time (ms) of one PostgreSQL cluster: its postmaster (with what exited children left to it,
 * cutime + cstime) and its live children. Other PostgreSQL servers on the box are not counted.
 */
export function postgresCpuMs(postmasterPid: number): number {
  let total = 0;
  try {
    const f = statFields(postmasterPid);
    total += ((Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) * 1000) / 100;
  } catch {
    return 0;
  }
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (Number(statFields(Number(entry))[1]) === postmasterPid) total += cpuMsOf(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return total;
}

/** Percentage of all CPUs busy over `ms`, from /proc/stat. */
export async function cpuBusy(ms = 1000): Promise<number> {
  const read = () => {
    const f = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
    return { idle: f[3]! + (f[4] ?? 0), total: f.reduce((a, b) => a + b, 0) };
  };
  const a = read();
  await Bun.sleep(ms);
  const b = read();
  return Math.round((1 - (b.idle - a.idle) / Math.max(1, b.total - a.total)) * 100);
}

/**
 * The box is shared: wait (up to 30 s) until the rest of it uses under 20% of the CPUs, and return
 * what was seen last (the "busy before" of a run). With `wait: false`, only measures.
 */
export async function waitQuiet(wait: boolean): Promise<number> {
  let busy = await cpuBusy();
  if (!wait) return busy;
  const deadline = Date.now() + 30_000;
  let said = false;
  while (busy >= 20 && Date.now() < deadline) {
    if (!said) log(`  (machine busy: ${busy}% of the CPUs used by other processes; waiting up to 30 s for it to go quiet)`);
    said = true;
    busy = await cpuBusy();
  }
  if (busy >= 20) log(`  (still ${busy}% busy: measuring anyway, figures will be low)`);
  return busy;
}

/** Load average over the last minute. */
export function loadAverage(): number {
  return Number(readFileSync("/proc/loadavg", "utf8").split(" ")[0]);
}

/** Resident memory of a process in MiB (VmRSS of /proc/PID/status), or null when it is gone. */
export function rssMb(pid: number): number | null {
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Math.round((Number(m[1]) / 1024) * 10) / 10 : null;
  } catch {
    return null;
  }
}

export type RssSample = { atMs: number; mb: number };

/** Samples a process's RSS every `everyMs` until stopped; `stop()` returns the samples. */
export function sampleRss(pid: number, everyMs = 1000) {
  const started = Date.now();
  const samples: RssSample[] = [];
  const take = () => {
    const mb = rssMb(pid);
    if (mb !== null) samples.push({ atMs: Date.now() - started, mb });
  };
  take();
  const timer = setInterval(take, everyMs);
  return {
    samples,
    stop(): RssSample[] {
      clearInterval(timer);
      take();
      return samples;
    },
  };
}

export function rssRange(samples: RssSample[]) {
  const mbs = samples.map((s) => s.mb);
  return mbs.length ? { minMb: Math.min(...mbs), maxMb: Math.max(...mbs), samples: mbs.length } : { minMb: 0, maxMb: 0, samples: 0 };
}
