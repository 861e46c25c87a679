import { existsSync } from "node:fs";
import { isAbsolute, normalize } from "node:path";
import type { AddonAvailability, AddonSpec } from "./driver";

/**
 * Add-ons in a workload (issue 4: "add-ons decide extra services and ports"), shared by the
 * drivers. An add-on's service is started inside the sandbox, next to the agent, by a constant
 * supervisor script; the driver allocates its loopback port and waits until it answers.
 */

/** The PATH a sandbox's processes get (sandboxEnv): requirements are looked up on it. */
export const SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin";

/** A service with its allocated port, ready for the supervisor. */
export type PlannedService = { id: string; port: number; command: string; readinessPath: string };

/**
 * A tool path is bound at the same place inside the sandbox. Only clean absolute paths, and none
 * that is, contains or lies inside a `protectedPaths` entry (Warren's data directory, the
 * sandbox's own mounts): binding a parent of a hidden directory would uncover it again.
 */
export function toolPaths(addons: AddonSpec[], protectedPaths: string[]): string[] {
  const paths = new Set<string>();
  const related = (a: string, b: string) => a === b || a.startsWith(`${b}/`) || b.startsWith(`${a}/`);
  for (const addon of addons) {
    for (const tool of addon.tools) {
      if (!isAbsolute(tool) || tool.includes("\0") || tool.split("/").includes("..")) continue;
      const clean = normalize(tool).replace(/\/+$/, "");
      if (!clean || clean === "/" || protectedPaths.some((p) => related(clean, p))) continue;
      paths.add(clean);
    }
  }
  return [...paths];
}

/** Host check (local driver): every required command on the sandbox's PATH, every required path present. */
export function hostAddonAvailability(addons: AddonSpec[]): AddonAvailability[] {
  return addons.map((addon) => {
    const missing = addon.requires.filter((r) =>
      r.command ? !Bun.which(r.command, { PATH: SANDBOX_PATH }) : r.path ? !existsSync(r.path) : false,
    );
    if (missing.length === 0) return { id: addon.id, available: true };
    const what = missing.map((r) => (r.command ? `the command ${r.command}` : `${r.path}`)).join(", ");
    const packages = [...new Set(missing.map((r) => r.package))].join(", ");
    return {
      id: addon.id,
      available: false,
      reason: `add-on "${addon.id}" needs ${what} on the host (package${missing.length > 1 ? "s" : ""}: ${packages})`,
      install: addon.installHint ?? `install ${packages}`,
    };
  });
}

/** The add-on services of a spec, each with a port from `allocate`. {port} is replaced by digits only. */
export async function planServices(addons: AddonSpec[], allocate: () => Promise<number>): Promise<PlannedService[]> {
  const planned: PlannedService[] = [];
  for (const addon of addons) {
    if (!addon.service) continue;
    const port = await allocate();
    planned.push({
      id: addon.id,
      port,
      command: addon.service.command.replaceAll("{port}", String(port)),
      readinessPath: readinessPathOf(addon.service.readinessPath),
    });
  }
  return planned;
}

/**
 * The supervisor, a constant bash script (every value arrives as an argument): arguments are
 * `id port command` triples, "--", then the agent's argv. Each service is kept by a keeper
 * subshell: the service runs in a session of its own (so its whole process group can be
 * signalled) without the agent's password in its environment, and when it exits the keeper logs
 * its status and starts it again after a back-off (1 s, doubling up to 30 s, back to 1 s once it
 * has stayed up for a minute), like a process supervisor would: a crashed code-server comes back
 * without the user restarting the sandbox. The agent runs in the foreground. When the agent ends,
 * the keepers stop their services and the script exits with the agent's status, so a dead agent
 * still ends the workload; a SIGTERM (docker stop, the local driver's stop) is passed on to the agent.
 */
export const SUPERVISE_SCRIPT = [
  "keep() {",
  "  id=$1; port=$2; cmd=$3; delay=1; svc=; nap=",
  "  trap 'kill -TERM -- -$svc $nap 2>/dev/null; exit 0' TERM",
  "  while :; do",
  "    began=$SECONDS",
  '    WARREN_ADDON_PORT=$port env -u OPENCODE_SERVER_PASSWORD setsid sh -c "$cmd" </dev/null & svc=$!',
  '    echo "warren: add-on $id started on port $port"',
  "    wait $svc; rc=$?",
  "    [ $((SECONDS - began)) -ge 60 ] && delay=1",
  '    echo "warren: add-on $id exited with status $rc; restarting in ${delay}s"',
  "    sleep $delay & nap=$!; wait $nap; nap=",
  "    delay=$((delay * 2)); [ $delay -gt 30 ] && delay=30",
  "  done",
  "}",
  "keepers=",
  'while [ "$#" -gt 0 ] && [ "$1" != -- ]; do',
  '  keep "$1" "$2" "$3" & keepers="$keepers $!"',
  "  shift 3",
  "done",
  "shift",
  '"$@" & agent=$!',
  "trap 'kill -TERM $agent 2>/dev/null' TERM INT",
  "wait $agent; rc=$?",
  "while kill -0 $agent 2>/dev/null; do wait $agent; rc=$?; done",
  "for k in $keepers; do kill -TERM $k 2>/dev/null; done",
  "wait",
  "exit $rc",
].join("\n");

/** argv (after the interpreter) that runs `agent` under the supervisor with these services. */
export function superviseArgs(services: PlannedService[], agent: string[]): string[] {
  return ["-c", SUPERVISE_SCRIPT, "warren-supervise", ...services.flatMap((s) => [s.id, String(s.port), s.command]), "--", ...agent];
}

/** A service's readiness path as the catalogue gives it, with the leading slash it may lack. */
export const readinessPathOf = (path: string) => (path.startsWith("/") ? path : `/${path}`);

/** How long one readiness probe may take: at start (waitForServices) and in the health check. */
export const PROBE_TIMEOUT_MS = 2_000;

export type ProbeResult = { up: true } | { up: false; failure: "timeout" | "unreachable" | "status"; status: number | null };

/**
 * One GET of a service's readiness path. Up means it answered with any status below 500: a
 * redirect or a 401 login page is a service that runs; a 5xx or no answer is one that does not.
 */
export async function probeService(baseUrl: string, readinessPath: string, timeoutMs = PROBE_TIMEOUT_MS): Promise<ProbeResult> {
  try {
    const res = await fetch(`${baseUrl}${readinessPath}`, { signal: AbortSignal.timeout(timeoutMs), redirect: "manual" });
    await res.arrayBuffer();
    return res.status < 500 ? { up: true } : { up: false, failure: "status", status: res.status };
  } catch (err) {
    const timedOut = err instanceof Error && (err.name === "TimeoutError" || err.name === "AbortError");
    return { up: false, failure: timedOut ? "timeout" : "unreachable", status: null };
  }
}

/** A probe failure in words users may see: the path, never the address or port. */
export function describeProbeFailure(result: Extract<ProbeResult, { up: false }>, readinessPath: string, timeoutMs = PROBE_TIMEOUT_MS): string {
  if (result.failure === "status") return `GET ${readinessPath} answered HTTP ${result.status}`;
  if (result.failure === "timeout") return `did not answer GET ${readinessPath} within ${timeoutMs / 1000} s`;
  return `refused or dropped the connection on GET ${readinessPath}`;
}

/**
 * Resolves once every service answers GET readinessPath (any status below 500) on its port;
 * returns the first service that did not within the timeout, or null when all are up.
 */
export async function waitForServices(services: PlannedService[], timeoutMs: number, stillStarting: () => boolean): Promise<PlannedService | null> {
  const deadline = Date.now() + timeoutMs;
  for (const service of services) {
    let up = false;
    while (!up && Date.now() < deadline && stillStarting()) {
      // Not listening yet, or not ready: probed again shortly.
      up = (await probeService(`http://127.0.0.1:${service.port}`, service.readinessPath)).up;
      if (!up) await Bun.sleep(100);
    }
    if (!up) return service;
  }
  return null;
}

export const addonUrls = (ports: Record<string, number> | null | undefined): Record<string, string> =>
  Object.fromEntries(Object.entries(ports ?? {}).map(([id, port]) => [id, `http://127.0.0.1:${port}`]));

/**
 * For images (docker): a constant script that checks the add-ons' requirements inside the
 * container before anything starts, then execs the rest of its arguments. Arguments: `kind value
 * package` triples (kind: command | path), "--", the command. A missing one ends the container
 * with status 96 and a line naming the package, which start() reports.
 */
export const REQUIRE_SCRIPT = [
  'while [ "$#" -gt 0 ] && [ "$1" != -- ]; do',
  '  if [ "$1" = command ]; then command -v "$2" >/dev/null 2>&1; else [ -e "$2" ]; fi ||',
  '    { echo "warren: add-on requirement missing in the image: $2 (package: $3)"; exit 96; }',
  "  shift 3",
  "done",
  'shift; exec "$@"',
].join("\n");

export function requireArgs(addons: AddonSpec[]): string[] {
  const triples = addons.flatMap((a) =>
    a.requires.flatMap((r) => (r.command ? ["command", r.command, r.package] : r.path ? ["path", r.path, r.package] : [])),
  );
  return triples.length ? ["-c", REQUIRE_SCRIPT, "warren-require", ...triples, "--"] : [];
}
