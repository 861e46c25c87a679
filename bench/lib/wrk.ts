/**
 * wrk runs (bench/wrk/rotate.lua) and one measured run of a route: warm-up, wrk, CPU per request
 * of the server and of PostgreSQL, how busy the box was before. Shared by bench/sandboxes.ts and
 * bench/api.ts.
 */
import { join } from "node:path";
import { cpuMsOf, postgresCpuMs, waitQuiet } from "./machine";
import { log, ROOT } from "./processes";

export type Latency = { min: number; mean: number; stdev: number; p50: number; p90: number; p99: number; p999: number; max: number };
export type WrkErrors = { connect: number; read: number; write: number; status: number; timeout: number };
export type WrkResult = { requests: number; durationUs: number; bytes: number; errors: WrkErrors; latencyUs: Latency; wrkCpuMs: number };

/** How a client authenticates: a bearer token, a session cookie ("name=value"), or nothing. */
export type Credential = { token?: string | null; cookie?: string | null };

export type WrkLoad = {
  url: string;
  /** Paths, or "METHOD path body" lines (see bench/wrk/rotate.lua). */
  paths: string[];
  auth: Credential;
  seconds: number;
  connections: number;
  threads: number;
};

export function errorCount(e: WrkErrors): number {
  return e.connect + e.read + e.write + e.status + e.timeout;
}

export async function wrk(load: WrkLoad): Promise<WrkResult> {
  const cmd = ["wrk", "-t", String(load.threads), "-c", String(load.connections), "-d", `${load.seconds}s`, "--latency", "-s", join(ROOT, "bench/wrk/rotate.lua"), `${load.url}/`];
  const env = { ...process.env, BENCH_TOKEN: load.auth.token ?? "", BENCH_COOKIE: load.auth.cookie ?? "", BENCH_PATHS: load.paths.join("\n") };
  const proc = Bun.spawn(cmd, { cwd: ROOT, env, stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) throw new Error(`${cmd.join(" ")} exited with ${code}:\n${out}${err}`);
  const line = out.split("\n").find((l) => l.startsWith("BENCH_JSON "));
  if (!line) throw new Error(`wrk printed no BENCH_JSON line:\n${out}`);
  const usage = proc.resourceUsage();
  const wrkCpuMs = usage ? Number(usage.cpuTime.user + usage.cpuTime.system) / 1000 : 0;
  return { ...(JSON.parse(line.slice("BENCH_JSON ".length)) as Omit<WrkResult, "wrkCpuMs">), wrkCpuMs };
}

export type RouteSpec = {
  route: string;
  what: string;
  kind: "target" | "diagnostic" | "baseline";
  url: string;
  paths: string[];
  auth: Credential;
  /** The process serving it (its CPU time is measured). */
  pid: number;
};

export type Measured = {
  route: string;
  what: string;
  kind: RouteSpec["kind"];
  connections: number;
  threads: number;
  seconds: number;
  requests: number;
  rps: number;
  latencyMs: { p50: number; p90: number; p99: number; p999: number; max: number; mean: number };
  errors: WrkErrors;
  /** CPU use of the whole box in the second before the run (0–100 %), while the bench itself was idle. */
  busyBeforePct: number;
  /** CPU time per request (ms) of the server under test, of the cluster's PostgreSQL processes, and of wrk. */
  cpuMsPerRequest: { server: number; postgres: number; wrk: number };
};

/** Waits for a quiet box (unless `waitForQuiet` is false), warms up, then measures one route. */
export async function measure(
  spec: RouteSpec,
  o: { connections: number; threads: number; seconds: number; warmup: number; postmasterPid: number; waitForQuiet: boolean },
): Promise<Measured> {
  const busyBeforePct = await waitQuiet(o.waitForQuiet);
  const load = { url: spec.url, paths: spec.paths, auth: spec.auth, connections: o.connections, threads: o.threads };
  if (o.warmup > 0) await wrk({ ...load, seconds: o.warmup });
  const serverBefore = cpuMsOf(spec.pid);
  const pgBefore = postgresCpuMs(o.postmasterPid);
  const r = await wrk({ ...load, seconds: o.seconds });
  const per = (ms: number) => (r.requests ? Math.round((ms / r.requests) * 1000) / 1000 : 0);
  const cpuMsPerRequest = { server: per(cpuMsOf(spec.pid) - serverBefore), postgres: per(postgresCpuMs(o.postmasterPid) - pgBefore), wrk: per(r.wrkCpuMs) };
  const ms = (us: number) => Math.round(us / 10) / 100;
  const rec: Measured = {
    route: spec.route,
    what: spec.what,
    kind: spec.kind,
    connections: o.connections,
    threads: o.threads,
    seconds: o.seconds,
    requests: r.requests,
    rps: Math.round(r.requests / (r.durationUs / 1e6)),
    latencyMs: { p50: ms(r.latencyUs.p50), p90: ms(r.latencyUs.p90), p99: ms(r.latencyUs.p99), p999: ms(r.latencyUs.p999), max: ms(r.latencyUs.max), mean: ms(r.latencyUs.mean) },
    errors: r.errors,
    busyBeforePct,
    cpuMsPerRequest,
  };
  const errs = errorCount(r.errors);
  log(
    `  ${spec.route.padEnd(12)} c=${String(o.connections).padEnd(3)} ${String(rec.rps).padStart(6)} req/s  p50 ${rec.latencyMs.p50} ms  p99 ${rec.latencyMs.p99} ms` +
      (errs ? `  ERRORS ${JSON.stringify(r.errors)}` : "") +
      `  CPU ms/req: server ${cpuMsPerRequest.server}, postgres ${cpuMsPerRequest.postgres}, wrk ${cpuMsPerRequest.wrk}  (box ${busyBeforePct}% busy before)`,
  );
  return rec;
}

/** A plain-text table: the first `left` columns left-aligned, the rest right-aligned. */
export function table(header: string[], rows: string[][], left = 2): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) => cells.map((c, i) => (i < left ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}
