import { readFileSync } from "node:fs";
import { pidsOfUid } from "./processes";

/**
 * Host uids for sandboxes, shared by the drivers: each sandbox runs as a uid of its own, claimed
 * upwards from SANDBOX_UID_BASE (local: a claim file per uid in the data directory; docker: a label
 * on the sandbox's volume). The loopback guard and file ownership both rest on no two sandboxes
 * ever sharing one.
 */

/** How far above the base uids are looked for. */
export const UID_SPAN = 60_000;

/** The lowest uid from base that `take` accepts (it may claim it as a side effect, atomically). */
export function firstFreeUid(base: number, take: (uid: number) => boolean, span = UID_SPAN): number {
  for (let uid = base; uid < base + span; uid++) if (take(uid)) return uid;
  throw new Error(`no free sandbox uid in ${base}..${base + span}`);
}

/**
 * A uid that belongs to an account, or that some process runs as (another Warren's sandbox, say),
 * must never be handed to a sandbox: it would own that account's files and processes.
 */
export function uidInUse(uid: number): boolean {
  let accounts = "";
  try {
    accounts = readFileSync("/etc/passwd", "utf8");
  } catch {
    // No passwd file: only running processes can tell.
  }
  return accounts.split("\n").some((line) => line.split(":")[2] === String(uid)) || pidsOfUid(uid).length > 0;
}

/**
 * Checked right before a sandbox's processes are spawned, its own leftovers already swept: any
 * process still running as its uid is someone else's, most likely a sandbox of another Warren on
 * this host that claims from an overlapping SANDBOX_UID_BASE (claims are per data directory or per
 * Docker daemon). Two running sandboxes under one uid would reach each other's loopback listeners
 * (add-ons without a password), and each Warren's guard would refuse the other's allow-listed
 * connections. The start fails, naming the setting to change, instead.
 */
export function assertUidUnshared(uid: number): void {
  const pids = pidsOfUid(uid);
  if (pids.length === 0) return;
  throw new Error(
    `host uid ${uid}, this sandbox's, is in use by ${pids.length === 1 ? "another process" : `${pids.length} other processes`} (pid ${pids.slice(0, 5).join(", ")}): ` +
      "another Warren on this host hands out uids from an overlapping range; give each one its own SANDBOX_UID_BASE, 100,000 or more apart",
  );
}
