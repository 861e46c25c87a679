import { accessSync, constants, readFileSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, normalize, isAbsolute } from "node:path";
import type { WorkloadFile } from "./driver";

/**
 * What every driver needs to know about the workload, OpenCode (`opencode serve`, npm package
 * opencode-ai, pinned in package.json).
 */

/**
 * OpenCode's server checks HTTP basic auth when OPENCODE_SERVER_PASSWORD is set, with the fixed
 * user name "opencode" (measured on 1.18.33: any other name or no header is a 401 with
 * `www-authenticate: Basic`). Warren's proxy adds this header itself; users never see it.
 */
export const AGENT_USERNAME = "opencode";

export function agentAuthHeader(password: string): string {
  return `Basic ${Buffer.from(`${AGENT_USERNAME}:${password}`).toString("base64")}`;
}

/** Cheap authenticated endpoint answering {"healthy":true,…} once the server is ready. */
export const AGENT_HEALTH_PATH = "/global/health";

/** Resolves when the agent answers its health check with the password; false on timeout. */
export async function waitForAgent(
  agentUrl: string,
  password: string,
  timeoutMs: number,
  stillStarting: () => boolean,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && stillStarting()) {
    try {
      const res = await fetch(`${agentUrl}${AGENT_HEALTH_PATH}`, {
        headers: { authorization: agentAuthHeader(password) },
        signal: AbortSignal.timeout(2_000),
      });
      await res.arrayBuffer();
      if (res.ok) return true;
    } catch {
      // Not listening yet.
    }
    await Bun.sleep(100);
  }
  return false;
}

/**
 * The opencode-ai package ships a 479-byte placeholder as bin/opencode.exe and replaces it in a
 * postinstall script (only run by Bun when listed in trustedDependencies). The real binary is in
 * the platform package it depends on, so resolve that directly: it works whether or not the
 * script ran.
 */
export function resolveOpencodeBinary(override: string | undefined): { path: string } | { problem: string } {
  const candidates: string[] = [];
  if (override) candidates.push(override);
  else {
    const require = createRequire(import.meta.url);
    const arch = process.arch === "arm64" ? "arm64" : "x64";
    const avx2 = arch === "x64" && /(^|\s)avx2(\s|$)/.test(safeRead("/proc/cpuinfo"));
    const names =
      arch === "x64" && !avx2 ? [`opencode-linux-x64-baseline`, `opencode-linux-x64`] : [`opencode-linux-${arch}`];
    for (const name of names) {
      try {
        candidates.push(join(dirname(require.resolve(`${name}/package.json`)), "bin", "opencode"));
      } catch {
        // That platform package is not installed.
      }
    }
  }
  for (const path of candidates) {
    try {
      accessSync(path, constants.X_OK);
      // A placeholder script is a few hundred bytes; the real binary is ~185 MB.
      if (statSync(path).size > 1_000_000) return { path };
    } catch {
      // Try the next one.
    }
  }
  return {
    problem: override
      ? `OPENCODE_BIN=${override} is not an executable opencode binary`
      : "the opencode binary (npm package opencode-ai and its platform package) is not installed",
  };
}

function safeRead(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

export class UnsafePathError extends Error {
  override name = "UnsafePathError";
}

/**
 * A workload file's path relative to the home directory. Absolute paths and ".." are refused:
 * the caller's path must never reach outside the sandbox's home.
 */
export function safeRelativePath(path: string): string {
  if (!path || isAbsolute(path) || path.includes("\0")) throw new UnsafePathError(`unsafe file path: ${JSON.stringify(path)}`);
  if (path.split(/[\\/]/).includes("..")) throw new UnsafePathError(`unsafe file path: ${JSON.stringify(path)}`);
  const clean = normalize(path);
  if (clean === "." || clean.startsWith("..")) throw new UnsafePathError(`unsafe file path: ${JSON.stringify(path)}`);
  return clean;
}

export function validateFiles(files: WorkloadFile[]): Array<WorkloadFile & { path: string; mode: number }> {
  return files.map((f) => ({ ...f, path: safeRelativePath(f.path), mode: f.mode ?? 0o600 }));
}

/**
 * Replacing directories (WriteOptions.replaceDirectories). The kept entries are listed in a
 * manifest file written with the others; a constant script, run as the sandbox's uid inside the
 * home, removes every other entry directly inside each directory. Arguments: the home, the
 * directories, "--", and optionally a command to exec afterwards (docker: the agent itself).
 * A directory that is a symlink is left alone: what it points to is not Warren's to prune.
 */
export const MANAGED_MANIFEST = ".warren-managed";
export const PRUNE_SCRIPT =
  // "." is the caller's working directory already: dash's `cd .` fails when an ancestor is not
  // searchable by the sandbox's uid (it re-resolves the path), so it is not cd'ed into.
  'p=1; [ "$1" = . ] || cd "$1" 2>/dev/null || p=0; shift; ' +
  'for d do shift; [ "$d" = -- ] && break; [ $p = 1 ] && [ -d "$d" ] && [ ! -L "$d" ] || continue; ' +
  'for f in "$d"/* "$d"/.[!.]* "$d"/..?*; do { [ -e "$f" ] || [ -L "$f" ]; } || continue; ' +
  `grep -qxF -- "$f" ${MANAGED_MANIFEST} 2>/dev/null || rm -rf -- "$f"; done; done; ` +
  '[ $# -gt 0 ] && exec "$@"; exit 0';

/** The manifest of what stays in the replaced directories, and the directories, checked. */
export function pruneManifest(files: Array<{ path: string }>, directories: string[]): { manifest: WorkloadFile; directories: string[] } {
  const dirs = directories.map(safeRelativePath);
  const kept = files
    .map((f) => safeRelativePath(f.path))
    .filter((path) => dirs.some((d) => path.startsWith(`${d}/`) && !path.slice(d.length + 1).includes("/")));
  return { manifest: { path: MANAGED_MANIFEST, content: kept.map((k) => `${k}\n`).join(""), mode: 0o600 }, directories: dirs };
}

/** In-sandbox home and workspace paths; the same in both drivers so agent configs are portable. */
export const SANDBOX_HOME = "/home/sandbox";
export const SANDBOX_WORKSPACE = "/home/workspace";

export function sandboxEnv(spec: { env: Record<string, string>; agentPassword: string }): Record<string, string> {
  return {
    ...spec.env,
    HOME: SANDBOX_HOME,
    USER: "sandbox",
    PATH: "/usr/local/bin:/usr/bin:/bin",
    LANG: "C.UTF-8",
    XDG_CONFIG_HOME: `${SANDBOX_HOME}/.config`,
    XDG_DATA_HOME: `${SANDBOX_HOME}/.local/share`,
    XDG_STATE_HOME: `${SANDBOX_HOME}/.local/state`,
    XDG_CACHE_HOME: `${SANDBOX_HOME}/.cache`,
    OPENCODE_SERVER_PASSWORD: spec.agentPassword,
  };
}

export const SANDBOX_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

export function assertSandboxId(id: string): void {
  // The id becomes a directory, a cgroup and a container name: nothing that could escape them.
  if (!SANDBOX_ID_PATTERN.test(id)) throw new UnsafePathError(`invalid sandbox id: ${JSON.stringify(id)}`);
}
