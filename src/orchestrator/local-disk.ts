import { chmodSync, closeSync, existsSync, lstatSync, mkdirSync, openSync, readFileSync, readSync, realpathSync, renameSync, rmSync, statfsSync, statSync, truncateSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "../lib/logger";

/**
 * The local driver's storage limit: each sandbox's home and workspace live on an ext4 file system
 * of its own, in a sparse image file on a loop device, so one sandbox filling its disk gets ENOSPC
 * instead of filling the host's (and every other sandbox's, and Warren's own database's).
 *
 *   DATA_DIR/sandboxes/<id>/disk.img   sparse image of the tier's storageGb (GiB), ext4, -m 0
 *   DATA_DIR/sandboxes/<id>/disk/      mounted loop,nosuid,nodev while the sandbox runs
 *   DATA_DIR/sandboxes/<id>/disk/home, disk/workspace   what bubblewrap binds
 *
 * Mounted at start, unmounted at stop once no process of the sandbox is left, deleted on remove.
 * The mount lives in the host's mount namespace, so it outlives a Warren restart or crash with the
 * sandbox; a start finds it in /proc/self/mountinfo and reuses it.
 *
 * Propagation: a sandbox's bubblewrap namespace is a copy of the host's mounts, so every sandbox
 * started while another one's disk is mounted holds a (hidden) copy of that mount. On a host whose
 * mounts are private (containers), unmounting it at stop would then leave the file system and its
 * loop device alive until all those sandboxes stop, and the space of a removed sandbox would not
 * come back. The mount point is therefore first bound onto itself and made shared: the copies are
 * slaves of it and the unmount reaches them.
 *
 * Where the host cannot do this (not root, no loop devices, no e2fsprogs) a new sandbox keeps plain
 * directories and its applied limits say why; SANDBOX_STORAGE_QUOTA=off does the same on purpose.
 * A sandbox that already has an image is never started without it: its files are inside.
 * Images are sparse: the host pays for what is written, so the tiers of all sandboxes together may
 * promise more than the host's disk holds.
 */

export type StorageQuota = "auto" | "off";
/** What start reports in appliedLimits: storageGb is the file system's real size, or null. */
export type DiskOutcome = { storageGb: number | null; note: string };

export const DISK_IMAGE = "disk.img";
export const DISK_MOUNT = "disk";
const DATA_DIRS = ["home", "workspace"] as const;
const GIB = 1024 ** 3;
const MIB = 1024 ** 2;
const SBIN_PATH = "/usr/sbin:/usr/bin:/sbin:/bin";
const INSTALL_E2FS = "apt-get install -y e2fsprogs";

/** Where a sandbox's home and workspace live: inside its disk once it has an image. */
export function dataRoot(sandboxDir: string): string {
  return existsSync(join(sandboxDir, DISK_IMAGE)) ? join(sandboxDir, DISK_MOUNT) : sandboxDir;
}

/** Thrown by writes into a sandbox whose files are on a disk that is not mounted (it is stopped). */
export function assertDiskMounted(sandboxDir: string): void {
  if (!existsSync(join(sandboxDir, DISK_IMAGE))) return;
  if (!loopMountAt(join(sandboxDir, DISK_MOUNT))) throw new Error("the sandbox's disk is not mounted (the sandbox is stopped): its files can be written while it runs");
}

export class SandboxDisks {
  constructor(private readonly options: { quota: StorageQuota; logger: Logger }) {}

  /** For the driver's availability notes: why new sandboxes get no storage limit here, or null. */
  hostNote(): string | null {
    if (this.options.quota === "off") return "storage quotas off (SANDBOX_STORAGE_QUOTA=off): new sandboxes' files share the host's disk";
    const problem = hostProblem();
    return problem ? `storage quotas not applied on this host (${problem}): new sandboxes' files share the host's disk` : null;
  }

  /**
   * Before anything is written into the sandbox's home or workspace: creates (first start), grows
   * (the tier grew), mounts (or reuses the mount) and moves plain directories of an older sandbox
   * in. Throws only when the sandbox cannot start without data loss; otherwise a host that cannot
   * mount leaves plain directories and the outcome says why.
   */
  async attach(sandboxDir: string, storageGb: number, label: string): Promise<DiskOutcome> {
    const img = join(sandboxDir, DISK_IMAGE);
    const mnt = join(sandboxDir, DISK_MOUNT);
    const want = Math.max(64, Math.ceil((storageGb * GIB) / MIB)) * MIB;
    for (const name of DATA_DIRS) rmSync(join(sandboxDir, `.${name}.moved`), { recursive: true, force: true });
    rmSync(`${img}.new`, { force: true });

    let created = false;
    if (!existsSync(img)) {
      if (this.options.quota === "off") return { storageGb: null, note: "storage: not applied (SANDBOX_STORAGE_QUOTA=off): the sandbox's files share the host's disk" };
      const problem = hostProblem() ?? makeImage(img, want);
      if (problem) return { storageGb: null, note: `storage: not applied (${problem}): the sandbox's files share the host's disk` };
      created = true;
    } else {
      const problem = hostProblem();
      if (problem) throw new Error(`${label}: its files are on its disk image, which cannot be mounted here: ${problem}`);
    }

    let dev: string;
    try {
      // A bigger tier grows it (never while mounted: a Warren restart found it in use); a smaller
      // one never shrinks a disk holding data.
      if (!created && !loopMountAt(mnt) && ext4Bytes(img) < want) grow(img, want);
      dev = mount(img, mnt);
    } catch (err) {
      await this.detach(sandboxDir).catch(() => {});
      const why = (err as Error).message;
      if (!created) throw new Error(`${label}: mounting its disk image failed: ${why}`);
      rmSync(img, { force: true });
      this.options.logger.warn({ err: { message: why } }, "sandbox storage: mounting a loop device failed; this sandbox keeps plain directories");
      return { storageGb: null, note: `storage: not applied (mounting an ext4 image on a loop device failed here: ${why}): the sandbox's files share the host's disk` };
    }
    chmodSync(mnt, 0o700);

    const plain = DATA_DIRS.filter((name) => isPlainDir(join(sandboxDir, name)));
    try {
      moveIn(sandboxDir, mnt, plain, label);
    } catch (err) {
      await this.detach(sandboxDir).catch(() => {});
      // Nothing was moved yet: the sandbox stays as it was, plain directories and no image.
      if (created && plain.every((name) => isPlainDir(join(sandboxDir, name)))) rmSync(img, { force: true });
      throw err;
    }

    const size = ext4Bytes(dev);
    const usable = statfsSync(mnt);
    const note = `storage: ext4 image of ${gb(size)} GB on a loop device (${gb(usable.blocks * usable.bsize)} GB usable after file system metadata)`;
    const shrunk = size > want + MIB ? `; the tier asks for ${gb(want)} GB, but a disk holding data is never shrunk` : "";
    return { storageGb: Number(gb(size)), note: note + shrunk };
  }

  /** Unmounts the disk (and the shared bind under it); only once none of the sandbox's processes is left. */
  async detach(sandboxDir: string): Promise<void> {
    const mnt = join(sandboxDir, DISK_MOUNT);
    const umount = tool("umount") ?? "umount";
    let failures = 0;
    let last = "";
    while (mountsAt(mnt).length > 0) {
      const r = run([umount, mnt]);
      if (r.ok) continue;
      last = r.err;
      if (++failures < 8) {
        await Bun.sleep(100 * failures);
        continue;
      }
      // Something on the host holds a file open in it: detach it from the tree now; the kernel
      // frees the file system (and the loop device, autoclear) when the last user lets go.
      this.options.logger.warn({ mountPoint: mnt, err: { message: last } }, "sandbox storage: the disk stayed busy; lazily unmounted");
      for (let i = mountsAt(mnt).length; i > 0; i--) run([umount, "-l", mnt]);
      break;
    }
    if (mountsAt(mnt).length > 0) throw new Error(`could not unmount ${mnt}: ${last}`);
  }
}

/** Lazily unmounts every mount under dir, innermost first (test and crash clean-up). */
export function unmountAllUnder(dir: string): number {
  const prefix = `${dir.replace(/\/$/, "")}/`;
  const under = mountTable().filter((m) => m.mountPoint.startsWith(prefix));
  for (const m of under.reverse()) run([tool("umount") ?? "umount", "-l", m.mountPoint]);
  return under.length;
}

/** Why this host cannot give a sandbox a disk of its own, or null. */
function hostProblem(): string | null {
  if (process.getuid?.() !== 0) return "mounting a loop device needs root";
  if (!existsSync("/dev/loop-control")) return "no loop devices here (/dev/loop-control is missing; a container needs them passed in)";
  for (const name of ["mkfs.ext4", "e2fsck", "resize2fs"]) if (!tool(name)) return `${name} is not installed (${INSTALL_E2FS})`;
  for (const name of ["mount", "umount"]) if (!tool(name)) return `${name} is not installed (apt-get install -y mount)`;
  return null;
}

/**
 * A sparse file and an ext4 file system in it, made under a temporary name and renamed: a crash
 * never leaves an image without a file system. -m 0: the sandbox's uid is not root, blocks
 * reserved for root would only shrink its disk. The journal stays (sandboxes outlive Warren; after
 * a host crash the journal, not a full e2fsck, makes the disk consistent); lazy_journal_init and
 * lazy_itable_init keep mkfs at a few milliseconds: the sparse file already reads as zeros.
 */
function makeImage(img: string, bytes: number): string | null {
  const tmp = `${img}.new`;
  closeSync(openSync(tmp, "wx", 0o600));
  truncateSync(tmp, bytes);
  const r = run([tool("mkfs.ext4")!, "-q", "-F", "-m", "0", "-E", "lazy_itable_init=1,lazy_journal_init=1,root_owner=0:0", tmp]);
  if (!r.ok) {
    rmSync(tmp, { force: true });
    return `mkfs.ext4 failed: ${r.err}`;
  }
  renameSync(tmp, img);
  return null;
}

/**
 * Mounts img at mnt unless it already is (a Warren restart while the sandbox ran); returns the
 * loop device. noinit_itable: the kernel would otherwise zero every inode table in the background,
 * writing ~1.6 GB into each 100 GB sparse image for blocks that already read as zeros.
 */
function mount(img: string, mnt: string): string {
  mkdirSync(mnt, { recursive: true, mode: 0o700 });
  const existing = loopMountAt(mnt);
  if (existing) {
    if (existing.backingFile !== realpathSync(img)) throw new Error(`${mnt} holds another file system (${existing.device} of ${existing.backingFile})`);
    return existing.device;
  }
  const mountBin = tool("mount")!;
  if (mountsAt(mnt).length === 0) {
    const bind = run([mountBin, "--bind", mnt, mnt]);
    if (!bind.ok) throw new Error(bind.err);
  }
  const shared = run([mountBin, "--make-shared", mnt]);
  if (!shared.ok) throw new Error(shared.err);
  const r = run([mountBin, "-t", "ext4", "-o", "loop,nosuid,nodev,noinit_itable", img, mnt]);
  if (!r.ok) throw new Error(r.err);
  const mounted = loopMountAt(mnt);
  if (!mounted) throw new Error(`mount said it mounted ${img}, but ${mnt} holds no loop device`);
  return mounted.device;
}

/**
 * Offline, before the mount: online growth needs CAP_SYS_RESOURCE, which containers often drop.
 * resize2fs wants a fresh check first; e2fsck -f costs about a second per few hundred thousand
 * files, paid only on the start after a tier grew. A crash in between is redone at the next start
 * (the file system is still smaller than the tier).
 */
function grow(img: string, bytes: number): void {
  if (statSync(img).size < bytes) truncateSync(img, bytes);
  const fsck = run([tool("e2fsck")!, "-f", "-p", img]);
  if (fsck.code !== 0 && fsck.code !== 1) throw new Error(`e2fsck before growing the disk failed: ${fsck.err || fsck.out}`);
  const r = run([tool("resize2fs")!, img]);
  if (!r.ok) throw new Error(`resize2fs failed: ${r.err}`);
}

/**
 * A sandbox from before disks (or from a host without them) has plain home and workspace
 * directories: they are copied in, put in place by a rename, and only then removed, so a crash at
 * any point loses nothing (a copy that did not finish is made again from the originals).
 */
function moveIn(sandboxDir: string, mnt: string, plain: string[], label: string): void {
  if (plain.length === 0) return;
  const du = run(["du", "-s", "-x", "-B1", "-c", ...plain.map((name) => join(sandboxDir, name))]);
  const needed = Number(du.out.trim().split("\n").at(-1)?.split(/\s+/)[0]);
  const fs = statfsSync(mnt);
  const free = fs.bavail * fs.bsize;
  const tooBig = () => new Error(`${label}: its files (${gb(needed)} GB) do not fit its disk (${gb(free)} GB free); nothing was lost: give it a tier with more storage`);
  if (!du.ok || !Number.isFinite(needed)) throw new Error(`${label}: measuring its files failed: ${du.err}`);
  if (needed > free) throw tooBig();
  for (const name of plain) {
    const staging = join(mnt, `.${name}.moving`);
    rmSync(staging, { recursive: true, force: true });
    // cp -a keeps owners, modes, times, symlinks (as links, never followed), hard links and holes.
    const cp = run(["cp", "-a", "--", join(sandboxDir, name), staging]);
    if (!cp.ok) {
      rmSync(staging, { recursive: true, force: true });
      if (/No space left/i.test(cp.err)) throw tooBig();
      throw new Error(`${label}: copying its ${name} onto its disk failed: ${cp.err}`);
    }
    rmSync(join(mnt, name), { recursive: true, force: true });
    renameSync(staging, join(mnt, name));
    renameSync(join(sandboxDir, name), join(sandboxDir, `.${name}.moved`));
    rmSync(join(sandboxDir, `.${name}.moved`), { recursive: true, force: true });
  }
}

function isPlainDir(path: string): boolean {
  try {
    return lstatSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** Size of the ext4 file system in an image or on a device, from its superblock (through the device: current even while mounted). */
function ext4Bytes(dev: string): number {
  const fd = openSync(dev, "r");
  try {
    const sb = Buffer.alloc(1024);
    readSync(fd, sb, 0, 1024, 1024);
    if (sb.readUInt16LE(0x38) !== 0xef53) throw new Error(`${dev} holds no ext4 file system`);
    const blockSize = 1024 * 2 ** sb.readUInt32LE(0x18);
    const is64 = (sb.readUInt32LE(0x60) & 0x80) !== 0;
    return (sb.readUInt32LE(0x04) + (is64 ? sb.readUInt32LE(0x150) * 2 ** 32 : 0)) * blockSize;
  } finally {
    closeSync(fd);
  }
}

type MountEntry = { mountPoint: string; fsType: string; source: string };

/** /proc/self/mountinfo, in mount order (later entries on top of earlier ones at one path). */
function mountTable(): MountEntry[] {
  const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
  return readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .filter(Boolean)
    .map((line) => {
      const fields = line.split(" ");
      const rest = fields.slice(fields.indexOf("-") + 1);
      return { mountPoint: unescape(fields[4]!), fsType: rest[0]!, source: unescape(rest[1]!) };
    });
}

function mountsAt(path: string): MountEntry[] {
  return mountTable().filter((m) => m.mountPoint === path);
}

/** The loop file system on top at path, with the file behind its device. */
function loopMountAt(path: string): { device: string; backingFile: string } | null {
  const top = mountsAt(path).at(-1);
  if (!top || !/^\/dev\/loop\d+$/.test(top.source)) return null;
  let backingFile = "";
  try {
    backingFile = readFileSync(`/sys/block/${top.source.slice(5)}/loop/backing_file`, "utf8").trim();
  } catch {
    // Detached under us.
  }
  return { device: top.source, backingFile };
}

function tool(name: string): string | null {
  return Bun.which(name, { PATH: `${SBIN_PATH}:${process.env.PATH ?? ""}` });
}

function run(argv: string[]): { ok: boolean; code: number | null; out: string; err: string } {
  const r = Bun.spawnSync(argv, { stdout: "pipe", stderr: "pipe", env: { PATH: SBIN_PATH, LC_ALL: "C" } });
  return { ok: r.exitCode === 0, code: r.exitCode, out: r.stdout.toString(), err: r.stderr.toString().trim().split("\n").slice(0, 3).join("; ") };
}

/** Bytes as GiB with at most two decimals ("10", "0.25"): the unit tiers are sold in. */
function gb(bytes: number): string {
  return String(Math.round((bytes / GIB) * 100) / 100);
}
