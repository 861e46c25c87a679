import { dlopen, FFIType, ptr, read } from "bun:ffi";
import { closeSync, realpathSync } from "node:fs";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * Landlock scoping for the sandboxes of both drivers (Linux 6.12+, Landlock ABI 6).
 *
 * A sandbox shares the host's network namespace (Warren reaches its agent and add-ons on
 * loopback ports; TCP and UDP are judged by the loopback guard), and with it the namespace of
 * *abstract* unix sockets: names with no file behind them, so no file permission protects them
 * and nftables never sees them. Without more, a sandbox could connect to any abstract socket on
 * the host (a desktop session's D-Bus or X server, another sandbox's). Landlock's scopes close
 * that: once a process restricts itself with LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET, it and every
 * descendant may connect only to abstract sockets bound inside the same Landlock domain (the
 * sandbox's own processes); LANDLOCK_SCOPE_SIGNAL does the same for signals. Processes outside
 * (Warren) still reach in: Warren's stop signals are unaffected.
 *
 * The restriction is applied by a tiny helper (landlock-exec.ts) run first thing: by the local
 * driver's launcher just before bubblewrap, by the docker driver as the container's command under
 * its init; it calls landlock_restrict_self and then execs the rest, so the whole sandbox is born
 * inside the domain. Each sandbox gets a domain of its own. On a kernel without ABI 6 the drivers
 * still run, and availability() says what is not enforced.
 */

/** The first Landlock ABI with scopes (abstract unix sockets, signals): Linux 6.12. */
export const SCOPE_ABI = 6;
const LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET = 1n;
const LANDLOCK_SCOPE_SIGNAL = 2n;
const LANDLOCK_CREATE_RULESET_VERSION = 1n;
const PR_SET_NO_NEW_PRIVS = 38;
// x86_64 and aarch64 share these numbers (the generic syscall table since Linux 5.13).
const SYS_landlock_create_ruleset = 444n;
const SYS_landlock_restrict_self = 446n;

/**
 * Variables of the sandbox travel to the helper under this prefix, so that nothing a user sets
 * (BUN_OPTIONS, NODE_OPTIONS, …) is read by the root-side programs of the launch (sh, bun); the
 * helper strips it before it execs the sandbox. WARREN_* names are reserved for users, so no user
 * variable can collide with it.
 */
export const SANDBOX_ENV_PREFIX = "WARREN_SANDBOX_ENV_";

export const HELPER_PATH = fileURLToPath(new URL("./landlock-exec.ts", import.meta.url));
const MODULE_PATH = fileURLToPath(import.meta.url);

/**
 * The helper's command line, ending in "--" (the command to exec follows). Bun itself must not be
 * steerable by anything a user controls: --no-env-file (no .env of the working directory), and
 * --cwd at the helper's own directory (no bunfig.toml of a user's workspace: its `preload` would
 * run before the helper). `chdir` is where the command then runs.
 */
export function helperArgv(o: { bun: string; helper: string; scope: boolean; chdir?: string }): string[] {
  return [o.bun, "--no-env-file", `--cwd=${dirname(o.helper)}`, o.helper, ...(o.chdir ? ["--chdir", o.chdir] : []), o.scope ? "--scope" : "--no-scope", "--"];
}

/** Where the docker driver mounts Warren's Bun and the helper in a container (read-only). */
export const CONTAINER_HELPER_DIR = "/run/warren/landlock";

/**
 * The docker driver's way to the same helper: containers on the host network share the abstract
 * socket namespace just the same. Warren's own Bun binary (glibc, like the opencode binary every
 * sandbox image already needs) and the two helper files, bound read-only into the container.
 */
export function containerHelper(scope: boolean, chdir: string): { binds: Array<{ source: string; target: string }>; argv: string[] } {
  const at = (name: string) => `${CONTAINER_HELPER_DIR}/${name}`;
  return {
    binds: [
      { source: realpathSync(process.execPath), target: at("bun") },
      { source: HELPER_PATH, target: at("landlock-exec.ts") },
      { source: MODULE_PATH, target: at("landlock.ts") },
    ],
    argv: helperArgv({ bun: at("bun"), helper: at("landlock-exec.ts"), scope, chdir }),
  };
}

type Libc = ReturnType<typeof openLibc>;
let libc: Libc | null | undefined;

function openLibc() {
  return dlopen("libc.so.6", {
    prctl: { args: [FFIType.i32, FFIType.u64, FFIType.u64, FFIType.u64, FFIType.u64], returns: FFIType.i32 },
    // syscall(2) is variadic; integer arguments pass in the same registers either way.
    syscall: { args: [FFIType.i64, FFIType.i64, FFIType.i64, FFIType.i64], returns: FFIType.i64 },
    execvpe: { args: [FFIType.ptr, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
    __errno_location: { args: [], returns: FFIType.ptr },
    strerror: { args: [FFIType.i32], returns: FFIType.cstring },
  });
}

/** libc, opened on first use (only the drivers on Linux need it). */
function lib(): Libc | null {
  if (libc === undefined) {
    try {
      libc = process.platform === "linux" ? openLibc() : null;
    } catch {
      libc = null; // not glibc (musl names it differently), or no FFI: treated as no Landlock
    }
  }
  return libc;
}

function lastError(l: Libc): string {
  return String(l.symbols.strerror(read.i32(l.symbols.__errno_location()!, 0)));
}

let abi: number | undefined;

/** The kernel's Landlock ABI version; 0 when Landlock is absent or disabled. */
export function landlockAbi(): number {
  if (abi === undefined) {
    const l = lib();
    const v = l ? Number(l.symbols.syscall(SYS_landlock_create_ruleset, 0n, 0n, LANDLOCK_CREATE_RULESET_VERSION)) : -1;
    abi = v > 0 ? v : 0;
  }
  return abi;
}

/** Whether this kernel can scope a sandbox's abstract unix sockets and signals (landlock-exec.ts --scope). */
export function scopesSupported(): boolean {
  return landlockAbi() >= SCOPE_ABI;
}

/** Why abstract unix sockets are not scoped here, or null when they are. */
export function scopeUnavailableNote(): string | null {
  if (scopesSupported()) return null;
  const v = landlockAbi();
  return `abstract unix sockets are shared with the host: scoping them needs Landlock ABI ${SCOPE_ABI} (Linux 6.12), this kernel has ${v ? `ABI ${v}` : "no Landlock"}`;
}

/**
 * Restricts the calling thread (and all it will exec or fork) to its own Landlock domain for
 * abstract unix sockets and signals. Sets no_new_privs, which Landlock requires without
 * CAP_SYS_ADMIN (bubblewrap sets it too). Throws with the kernel's reason.
 */
export function restrictSelf(): void {
  const l = lib();
  if (!l) throw new Error("Landlock: libc could not be loaded");
  if (l.symbols.prctl(PR_SET_NO_NEW_PRIVS, 1n, 0n, 0n, 0n) !== 0) throw new Error(`Landlock: no_new_privs: ${lastError(l)}`);
  // struct landlock_ruleset_attr { u64 handled_access_fs; u64 handled_access_net; u64 scoped; }
  const attr = new BigUint64Array([0n, 0n, LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | LANDLOCK_SCOPE_SIGNAL]);
  const fd = Number(l.symbols.syscall(SYS_landlock_create_ruleset, BigInt(ptr(attr)), BigInt(attr.byteLength), 0n));
  if (fd < 0) throw new Error(`Landlock: create_ruleset: ${lastError(l)}`);
  if (Number(l.symbols.syscall(SYS_landlock_restrict_self, BigInt(fd), 0n, 0n)) !== 0) throw new Error(`Landlock: restrict_self: ${lastError(l)}`);
  closeSync(fd);
}

/** Replaces this process with `argv` (looked up on PATH) and environment `env`; returns only on failure. */
export function execvpe(argv: string[], env: Record<string, string>): string {
  const l = lib();
  if (!l) return "libc could not be loaded";
  const strings = (list: string[]) => {
    const buffers = list.map((s) => Buffer.from(`${s}\0`));
    const pointers = new BigUint64Array(buffers.length + 1);
    buffers.forEach((b, i) => (pointers[i] = BigInt(ptr(b))));
    return { buffers, pointers };
  };
  const args = strings(argv);
  const envp = strings(Object.entries(env).map(([k, v]) => `${k}=${v}`));
  l.symbols.execvpe(args.buffers[0]!, args.pointers, envp.pointers);
  return lastError(l);
}

/**
 * The launcher's environment: the sandbox's, renamed for the trip (see SANDBOX_ENV_PREFIX), and
 * what the helper's Bun reads set to values no user controls: HOME "/" (a container image's HOME
 * is the user's writable home), no transpiler cache (it would live there).
 */
export function launcherEnv(sandboxEnv: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {
    PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    HOME: "/",
    BUN_RUNTIME_TRANSPILER_CACHE_PATH: "0",
  };
  for (const [k, v] of Object.entries(sandboxEnv)) env[`${SANDBOX_ENV_PREFIX}${k}`] = v;
  return env;
}

/** The inverse of launcherEnv, for the helper. */
export function sandboxEnvFromLauncher(env: Record<string, string | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) {
    if (k.startsWith(SANDBOX_ENV_PREFIX) && v !== undefined) out[k.slice(SANDBOX_ENV_PREFIX.length)] = v;
  }
  return out;
}
