import { closeSync, existsSync, ftruncateSync, mkdirSync, openSync, readFileSync, readSync, renameSync, rmSync, statSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import type { AppliedLimits } from "../../db/schema";
import type { WorkloadFile, WriteOptions } from "./driver";
import { assertDiskMounted, dataRoot } from "./local-disk";
import { PRUNE_SCRIPT, pruneManifest, validateFiles } from "./opencode";
import { firstFreeUid, UID_SPAN } from "./sandbox-uids";

/**
 * On-disk layout of a local sandbox, the only memory the local driver has, so that a restarted
 * Warren finds its workloads again:
 *
 *   DATA_DIR/sandboxes/<id>/disk.img    its own ext4 file system of the tier's size (local-disk.ts)
 *   DATA_DIR/sandboxes/<id>/disk/home   → /home/sandbox inside (mounted while it runs)
 *   DATA_DIR/sandboxes/<id>/disk/workspace → /home/workspace inside
 *     (without an image, where the host cannot mount one: DATA_DIR/sandboxes/<id>/{home,workspace})
 *   DATA_DIR/sandboxes/<id>/state.json  pid, its /proc start time, ports (agent, add-ons), uid, limits
 *   DATA_DIR/sandboxes/<id>/workload.log  "<epoch seconds.micros> <line>" per output line
 *   DATA_DIR/sandboxes/.uids/<uid>      claims: one host uid per sandbox
 */

// A constant script: the path and mode arrive as arguments ($1, $2), never spliced into code.
// umask 077 keeps created parent directories private; the file is replaced, not written through.
const WRITE_FILE_SCRIPT = 'umask 077 && mkdir -p -- "$(dirname -- "$1")" && rm -f -- "$1" && cat > "$1" && chmod -- "$2" "$1"';

export type LocalState = {
  sandboxId: string;
  userId: string;
  uid: number;
  pid: number | null;
  /** /proc/<pid>/stat start time when launched: proves the pid is still ours. */
  pidStartTime: string | null;
  /** The sandbox's pid namespace: the uid sweep on stop touches only processes inside it. */
  pidNs: string | null;
  port: number | null;
  /** Loopback ports of the add-on services of this run, by add-on id (absent in older state files). */
  addonPorts?: Record<string, number> | null;
  startedAt: string | null;
  image: string | null;
  appliedLimits: AppliedLimits | null;
  exitCode: number | null;
};

export class LocalStore {
  constructor(readonly root: string) {}

  dir(id: string): string {
    return join(this.root, id);
  }
  home(id: string): string {
    return join(dataRoot(this.dir(id)), "home");
  }
  workspace(id: string): string {
    return join(dataRoot(this.dir(id)), "workspace");
  }
  logFile(id: string): string {
    return join(this.dir(id), "workload.log");
  }

  exists(id: string): boolean {
    return existsSync(join(this.dir(id), "state.json"));
  }

  read(id: string): LocalState | null {
    try {
      return JSON.parse(readFileSync(join(this.dir(id), "state.json"), "utf8")) as LocalState;
    } catch {
      return null;
    }
  }

  /** Written to a temporary file and renamed: a crash never leaves half a state file. */
  write(state: LocalState): void {
    const file = join(this.dir(state.sandboxId), "state.json");
    writeFileSync(`${file}.tmp`, JSON.stringify(state), { mode: 0o600 });
    renameSync(`${file}.tmp`, file);
  }

  /** Claims the lowest free uid from base (skipping any `inUse` says the host uses): the "wx" create is atomic, so two starts never share one. */
  claimUid(base: number, inUse: (uid: number) => boolean, span = UID_SPAN): number {
    const dir = join(this.root, ".uids");
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    return firstFreeUid(
      base,
      (uid) => {
        if (existsSync(join(dir, String(uid))) || inUse(uid)) return false;
        try {
          writeFileSync(join(dir, String(uid)), "", { flag: "wx", mode: 0o600 });
          return true;
        } catch {
          return false; // Taken.
        }
      },
      span,
    );
  }

  releaseUid(uid: number): void {
    rmSync(join(this.root, ".uids", String(uid)), { force: true });
  }

  /** Sandbox directories present on disk (each one a workload this driver manages). */
  ids(): string[] {
    try {
      return Array.from(new Bun.Glob("*/state.json").scanSync({ cwd: this.root, onlyFiles: true }), (p) => p.split("/")[0]!);
    } catch {
      return [];
    }
  }

  /**
   * Files land owned by the sandbox's uid and, by default, readable by nobody else. They are
   * written by a process running as that uid, not by Warren (root): a symlink the workload planted
   * in its home (say .config -> /etc) then reaches only what the workload could write itself.
   */
  writeFiles(id: string, uid: number, files: WorkloadFile[], options: WriteOptions = {}): void {
    // Never into the empty mount point of a stopped sandbox's disk, where the files would hide.
    assertDiskMounted(this.dir(id));
    const replacing = options.replaceDirectories?.length ? pruneManifest(files, options.replaceDirectories) : null;
    for (const file of validateFiles(replacing ? [...files, replacing.manifest] : files)) {
      const result = Bun.spawnSync(
        ["setpriv", `--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", "--", "sh", "-c", WRITE_FILE_SCRIPT, "sh", file.path, file.mode.toString(8)],
        { cwd: this.home(id), stdin: Buffer.from(file.content), stdout: "ignore", stderr: "pipe", env: { PATH: "/usr/bin:/bin" } },
      );
      if (result.exitCode !== 0) throw new Error(`writing ${file.path} failed: ${result.stderr.toString().trim()}`);
    }
    if (replacing) {
      const result = Bun.spawnSync(
        ["setpriv", `--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", "--", "sh", "-c", PRUNE_SCRIPT, "sh", ".", ...replacing.directories, "--"],
        { cwd: this.home(id), stdout: "ignore", stderr: "pipe", env: { PATH: "/usr/bin:/bin" } },
      );
      if (result.exitCode !== 0) throw new Error(`pruning ${replacing.directories.join(", ")} failed: ${result.stderr.toString().trim()}`);
    }
  }

  /**
   * Keeps the log under maxBytes by dropping its older half. The workload appends (O_APPEND), so
   * truncating under it is safe; lines written during the copy may be lost, which is acceptable
   * for a bounded operator log.
   */
  boundLog(id: string, maxBytes: number): void {
    const file = this.logFile(id);
    let size: number;
    try {
      size = statSync(file).size;
    } catch {
      return;
    }
    if (size <= maxBytes) return;
    const keep = Math.floor(maxBytes / 2);
    const fd = openSync(file, "r+");
    try {
      const buf = Buffer.alloc(keep);
      const n = readSync(fd, buf, 0, keep, size - keep);
      const text = buf.subarray(0, n);
      const firstNewline = text.indexOf(10);
      const tail = firstNewline >= 0 ? text.subarray(firstNewline + 1) : text;
      ftruncateSync(fd, 0);
      writeSync(fd, tail, 0, tail.length, 0);
    } finally {
      closeSync(fd);
    }
  }

  readLog(id: string, options: { tail?: number; since?: Date }): string[] {
    let raw: string;
    try {
      raw = readFileSync(this.logFile(id), "utf8");
    } catch {
      return [];
    }
    const sinceSeconds = options.since ? options.since.getTime() / 1000 : null;
    const lines: string[] = [];
    for (const line of raw.split("\n")) {
      if (!line) continue;
      const space = line.indexOf(" ");
      const stamp = Number(line.slice(0, space));
      if (space < 0 || !Number.isFinite(stamp)) {
        lines.push(line);
        continue;
      }
      if (sinceSeconds !== null && stamp < sinceSeconds) continue;
      lines.push(line.slice(space + 1));
    }
    return options.tail !== undefined ? lines.slice(Math.max(0, lines.length - options.tail)) : lines;
  }

  removeDir(id: string): void {
    rmSync(this.dir(id), { recursive: true, force: true });
  }
}
