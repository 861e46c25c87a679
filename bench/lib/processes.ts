/**
 * The processes a benchmark starts (servers, the PostgreSQL cluster), stopped on the way out
 * whatever happens: normal end, an error, or Ctrl-C. Shared by bench/sandboxes.ts and bench/api.ts.
 */
import { mkdirSync, mkdtempSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs, type ParseArgsConfig } from "node:util";
import type { Subprocess } from "bun";

export const ROOT = join(import.meta.dir, "../..");

export const log = (msg: string) => process.stderr.write(`${msg}\n`);

const children = new Set<Subprocess>();
const finalizers: (() => void | Promise<void>)[] = [];
let cleaning: Promise<void> | null = null;
let work: string | null = null;

/** A temporary folder for this run's server logs (kept when the run fails). */
export function workDir(): string {
  work ??= mkdtempSync(join(tmpdir(), "warren-bench-"));
  return work;
}

/** Runs `fn` at cleanup, after every child process has been stopped (e.g. stopping the cluster). */
export function onCleanup(fn: () => void | Promise<void>) {
  handleSignals();
  finalizers.push(fn);
}

/** Stops every process started through startProcess, then runs the onCleanup functions. Idempotent. */
export function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (const child of children) {
      if (child.exitCode === null) child.kill("SIGTERM");
      await Promise.race([child.exited, Bun.sleep(5000)]);
      if (child.exitCode === null) child.kill("SIGKILL");
    }
    children.clear();
    for (const fn of finalizers.splice(0)) await fn();
  })();
  return cleaning;
}

/**
 * Ctrl-C stops what this module started. Registered on first use (a process started, a cleanup
 * step added), so that a script importing only the pure helpers keeps its own signal handling.
 */
let handlingSignals = false;
function handleSignals() {
  if (handlingSignals) return;
  handlingSignals = true;
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, () => {
      log(`\n${signal}: stopping everything this run started …`);
      void cleanup().then(() => process.exit(130));
    });
  }
}

export function freePort(): number {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = s.port;
  s.stop(true);
  return port;
}

/** Runs a command to completion in the repository root; its stdout, or an error with its output. */
export async function run(cmd: string[], env: Record<string, string | undefined> = {}): Promise<string> {
  const proc = Bun.spawn(cmd, { cwd: ROOT, env: { ...process.env, ...env }, stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) throw new Error(`${cmd.join(" ")} exited with ${code}:\n${out}${err}`);
  return out;
}

export type Started = { proc: Subprocess; logFile: string };

/** Starts a long-running process with its output in a log file; resolves when `ready()` says so. */
export async function startProcess(name: string, cmd: string[], env: Record<string, string>, ready: () => Promise<boolean>): Promise<Started> {
  const logFile = join(workDir(), `${name}.log`);
  const fd = openSync(logFile, "a");
  const proc = Bun.spawn(cmd, { cwd: ROOT, env, stdin: "ignore", stdout: fd, stderr: fd });
  handleSignals();
  children.add(proc);
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`${name} exited with ${proc.exitCode}:\n${readFileSync(logFile, "utf8")}`);
    if (await ready().catch(() => false)) return { proc, logFile };
    await Bun.sleep(100);
  }
  throw new Error(`${name} did not become ready in 60 s:\n${readFileSync(logFile, "utf8")}`);
}

export async function stopProcess(proc: Subprocess) {
  if (proc.exitCode === null) proc.kill("SIGTERM");
  await Promise.race([proc.exited, Bun.sleep(15_000)]);
  if (proc.exitCode === null) proc.kill("SIGKILL");
  children.delete(proc);
}

/** Git commit, whether src/ or db/ differ from it, and wrk's version: for the results file. */
export async function provenance() {
  const commit = (await run(["git", "rev-parse", "HEAD"]).catch(() => "")).trim();
  const srcOrDbDirty = (await run(["git", "status", "--porcelain", "--", "src", "db"]).catch(() => "")).trim().length > 0;
  const v = Bun.spawnSync(["wrk", "-v"]);
  const wrk = (v.stdout.toString() + v.stderr.toString()).split("\n")[0]!.trim();
  return { git: { commit, srcOrDbDirty }, wrk };
}

/** A numeric command-line option, or exit 2 naming it: a whole number ≥ min unless `fraction`. */
export function numberOption(command: string, name: string, v: string | undefined, min: number, fraction = false): number {
  const n = Number(v);
  if (v === undefined || v.trim() === "" || !Number.isFinite(n) || n < min || (!fraction && !Number.isInteger(n))) {
    console.error(`${command}: --${name} must be a ${fraction ? "number" : "whole number"} ≥ ${min}, got ${JSON.stringify(v)}`);
    process.exit(2);
  }
  return n;
}

/** DATABASE_URL for a seeder or driver run on its own, or exit 2 naming it. */
export function databaseUrlFromEnv(command: string): string {
  const url = process.env.DATABASE_URL;
  if (!url) {
    console.error(`${command}: DATABASE_URL is not set (see --help)`);
    process.exit(2);
  }
  return url;
}

/** Runs a benchmark's main(); on failure prints the error, keeps the server logs, stops everything, exits 1. */
export async function runMain(command: string, main: () => Promise<void>) {
  try {
    await main();
  } catch (err) {
    log(`${command}: ${(err as Error).stack ?? err}`);
    log(`server and baseline logs kept in ${workDir()}`);
    await cleanup();
    process.exit(1);
  }
}

/** Writes bench/results/<name>-<stamp>.json (pretty-printed), prints and returns its path. */
export function writeResults(name: string, stamp: string, data: unknown): string {
  const dir = join(ROOT, "bench/results");
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${name}-${stamp}.json`);
  writeFileSync(file, JSON.stringify(data, null, 2));
  console.log(`results: ${file}`);
  return file;
}

/** parseArgs for a benchmark's command line: a bad option exits 2 with one line, not a stack trace. */
export function parseCli<const O extends NonNullable<ParseArgsConfig["options"]>>(command: string, options: O) {
  try {
    return parseArgs({ options, strict: true, allowPositionals: false }).values;
  } catch (err) {
    console.error(`${command}: ${(err as Error).message.split("\n")[0]} (see --help)`);
    process.exit(2);
  }
}
