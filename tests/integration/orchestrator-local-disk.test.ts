import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statfsSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createDriver, type OrchestratorDriver, type WorkloadSpec } from "../../src/orchestrator";
import { workloadSpec } from "../helpers/sandboxes";
import { orchestratorStatus } from "../../src/routes/orchestrator";
import { unmountAllUnder } from "../../src/orchestrator/local-disk";
import { pidsOfUid } from "../../src/orchestrator/processes";
import { memoryLogger, testConfig } from "../helpers/app";
import { reapSandboxes } from "../helpers/server";
import { testUidBase } from "../helpers/uids";

// The local driver's per-sandbox disk (src/orchestrator/local-disk.ts) on real kernel mounts: real
// loop devices, real ext4, real bubblewrap sandboxes running the real opencode binary. No mocks.
setDefaultTimeout(120_000);

const GIB = 1024 ** 3;
const dataDir = mkdtempSync(join(tmpdir(), "warren-local-disk-"));
const run = Math.random().toString(36).slice(2, 8);
const uidBase = testUidBase();
const env = { DATA_DIR: dataDir, ORCHESTRATOR_DRIVER: "local", SANDBOX_UID_BASE: String(uidBase) };
const newDriver = (extra: Record<string, string> = {}) => createDriver(testConfig({ ...env, ...extra }), memoryLogger("warn").logger);
const driver: OrchestratorDriver = newDriver();
const plainDriver: OrchestratorDriver = newDriver({ SANDBOX_STORAGE_QUOTA: "off" });
const started = new Set<string>();

function spec(sandboxId: string, storageGb: number): WorkloadSpec {
  started.add(sandboxId);
  return workloadSpec(sandboxId, { limits: { cpuCores: 1, memoryMb: 1024, pidsLimit: 256, storageGb } });
}

const sandboxDir = (id: string) => join(dataDir, "sandboxes", id);
const stateOf = (id: string) => JSON.parse(readFileSync(join(sandboxDir(id), "state.json"), "utf8")) as { uid: number };

/** Mounts whose mount point is under the data directory, from the kernel's own table. */
function mountsUnder(dir: string): Array<{ mountPoint: string; fsType: string; source: string; options: string }> {
  return readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .filter(Boolean)
    .map((line) => {
      const f = line.split(" ");
      const rest = f.slice(f.indexOf("-") + 1);
      return { mountPoint: f[4]!.replace(/\\040/g, " "), options: f[5]!, fsType: rest[0]!, source: rest[1]! };
    })
    .filter((m) => m.mountPoint.startsWith(`${dir}/`));
}

/** Loop devices whose backing file is under dir (what `losetup -a` would list). */
function loopDevicesUnder(dir: string): string[] {
  return readdirSync("/sys/block")
    .filter((d) => d.startsWith("loop"))
    .flatMap((d) => {
      try {
        const file = readFileSync(`/sys/block/${d}/loop/backing_file`, "utf8").trim();
        return file.startsWith(`${dir}/`) ? [`/dev/${d}: ${file}`] : [];
      } catch {
        return [];
      }
    });
}

/** The sandboxed opencode process (running as the sandbox's uid). */
function agentPid(uid: number): number {
  const pid = pidsOfUid(uid).find((p) => readFileSync(`/proc/${p}/cmdline`, "utf8").startsWith("/run/warren/opencode\0"));
  if (!pid) throw new Error(`no agent process for uid ${uid}`);
  return pid;
}

/** A shell command inside the sandbox: its mount namespace, its root and working directory, its uid. */
function inSandbox(id: string, script: string) {
  const { uid } = stateOf(id);
  const r = Bun.spawnSync(["nsenter", `--target=${agentPid(uid)}`, "--mount", "--root", "--wd", "--", "setpriv", `--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", "--", "sh", "-c", script], { stdout: "pipe", stderr: "pipe" });
  return { code: r.exitCode, out: r.stdout.toString(), err: r.stderr.toString() };
}

afterAll(async () => {
  for (const id of started) await driver.remove(id).catch(() => {});
  reapSandboxes(dataDir);
  unmountAllUnder(dataDir);
  rmSync(dataDir, { recursive: true, force: true });
});

describe("local driver: a disk of the tier's size per sandbox", () => {
  const id = `sbx_disk_main_${run}`;
  const disk = join(sandboxDir(id), "disk");

  test("the home and workspace are an ext4 file system of the tier's size, mounted nosuid,nodev, and appliedLimits say so", async () => {
    const t0 = performance.now();
    const info = await driver.start(spec(id, 1));
    console.error(`local sandbox start with a new 1 GB disk: ${Math.round(performance.now() - t0)} ms`);
    expect(info.state).toBe("running");
    const mounts = mountsUnder(dataDir);
    // Two mounts there: the mount point bound onto itself and made shared (see local-disk.ts), and the disk on top.
    expect(mounts.map((m) => m.mountPoint)).toEqual([disk, disk]);
    const loop = mounts.at(-1);
    expect(loop?.fsType).toBe("ext4");
    expect(loop?.source).toMatch(/^\/dev\/loop\d+$/);
    expect(loop?.options.split(",")).toEqual(expect.arrayContaining(["nosuid", "nodev"]));
    expect(readFileSync(`/sys/block/${loop!.source.slice(5)}/loop/backing_file`, "utf8").trim()).toBe(join(sandboxDir(id), "disk.img"));

    // The file system is the image's: 1 GiB, nearly all of it usable (-m 0: nothing reserved for root).
    expect(statSync(join(sandboxDir(id), "disk.img")).size).toBe(GIB);
    const fs = statfsSync(join(disk, "workspace"));
    expect(fs.type).toBe(0xef53);
    expect(fs.blocks * fs.bsize).toBeGreaterThan(0.9 * GIB);
    expect(fs.blocks * fs.bsize).toBeLessThanOrEqual(GIB);
    // -m 0: no blocks reserved for root (the sandbox's uid is not root); ext4 itself keeps at most 4096 back.
    expect(Bun.spawnSync(["dumpe2fs", "-h", join(sandboxDir(id), "disk.img")], { stderr: "ignore" }).stdout.toString()).toMatch(/^Reserved block count:\s+0$/m);
    expect(fs.bfree - fs.bavail).toBeLessThanOrEqual(4096);

    // Seen from inside the sandbox: /home/workspace and /home/sandbox are that file system.
    const { uid } = stateOf(id);
    const root = `/proc/${agentPid(uid)}/root`;
    expect(statSync(join(root, "home/workspace")).dev).toBe(statSync(disk).dev);
    expect(statSync(join(root, "home/sandbox")).dev).toBe(statSync(disk).dev);
    expect(statfsSync(join(root, "home/workspace")).blocks).toBe(fs.blocks);
    expect(existsSync(join(disk, "home/.config/opencode/opencode.json"))).toBe(true);
    const home = statSync(join(disk, "home"));
    expect([home.uid, home.mode & 0o777]).toEqual([uid, 0o700]);
    expect(inSandbox(id, "stat -f -c '%T %b %S' /home/workspace").out.trim()).toBe(`ext2/ext3 ${fs.blocks} ${fs.bsize}`);

    const limits = info.appliedLimits!;
    expect(limits.storageGb).toBe(1);
    expect(limits.notes).toContainEqual(expect.stringMatching(/^storage: ext4 image of 1 GB on a loop device \(0\.9\d GB usable after file system metadata\)$/));
    expect((await driver.inspect(id)).appliedLimits?.storageGb).toBe(1);
  });

  test("writing past the quota from inside the sandbox fails with ENOSPC; the host pays at most the image's size", async () => {
    const img = join(sandboxDir(id), "disk.img");
    // Most of it reserved in one call (fast), then real writes of zeros hit the end.
    const fill = inSandbox(id, "fallocate -l 900M /home/workspace/reserved && head -c 300M /dev/zero > /home/workspace/zeros");
    expect(fill.code).not.toBe(0);
    expect(fill.err).toContain("No space left on device");
    const fs = statfsSync(join(disk, "workspace"));
    expect(fs.bavail).toBeLessThan(4096);
    // A second attempt from the sandbox fails at once too.
    expect(inSandbox(id, "fallocate -l 1G /home/workspace/more").err).toMatch(/No space left on device/);
    // What all of it cost the host's disk: the image's allocated blocks, never more than its size.
    expect(statSync(img).blocks * 512).toBeLessThanOrEqual(GIB);
    expect(inSandbox(id, "rm /home/workspace/reserved /home/workspace/zeros").code).toBe(0);
    expect(statfsSync(join(disk, "workspace")).bavail * fs.bsize).toBeGreaterThan(0.9 * GIB);
  });

  test("a restarted Warren finds the running sandbox with its disk; writeFiles lands inside it; start changes nothing", async () => {
    const again = newDriver();
    const before = mountsUnder(dataDir);
    const info = await again.inspect(id);
    expect(info.state).toBe("running");
    await again.writeFiles(id, [{ path: "notes/after-restart.txt", content: "hi" }]);
    const file = join(disk, "home/notes/after-restart.txt");
    expect(readFileSync(file, "utf8")).toBe("hi");
    expect(statSync(file).dev).toBe(statSync(disk).dev);
    expect((await again.start(spec(id, 1))).workloadId).toBe(info.workloadId);
    expect(mountsUnder(dataDir)).toEqual(before);
  });

  test("stop unmounts and detaches the loop device; writeFiles then refuses; start mounts it again with the data", async () => {
    writeFileSync(join(disk, "workspace/kept.txt"), "still here");
    await driver.stop(id, { timeoutMs: 5_000 });
    expect(mountsUnder(dataDir)).toEqual([]);
    expect(loopDevicesUnder(dataDir)).toEqual([]);
    expect(existsSync(join(sandboxDir(id), "disk.img"))).toBe(true);
    // Nothing may be written into the empty mount point, where it would hide under the disk.
    await expect(driver.writeFiles(id, [{ path: "x.txt", content: "x" }])).rejects.toThrow(/disk is not mounted/);
    expect(readdirSync(disk)).toEqual([]);

    const info = await driver.start(spec(id, 1));
    expect(info.state).toBe("running");
    expect(readFileSync(`/proc/${agentPid(stateOf(id).uid)}/root/home/workspace/kept.txt`, "utf8")).toBe("still here");
    expect(info.appliedLimits?.storageGb).toBe(1);
  });

  test("a bigger tier grows the file system at the next start; a smaller one keeps it and says so", async () => {
    await driver.stop(id, { timeoutMs: 5_000 });
    const grown = await driver.start(spec(id, 2));
    expect(grown.appliedLimits?.storageGb).toBe(2);
    expect(statSync(join(sandboxDir(id), "disk.img")).size).toBe(2 * GIB);
    const fs = statfsSync(join(disk, "workspace"));
    expect(fs.blocks * fs.bsize).toBeGreaterThan(1.9 * GIB);
    expect(readFileSync(join(disk, "workspace/kept.txt"), "utf8")).toBe("still here");
    expect(inSandbox(id, "stat -f -c '%b %S' /home/workspace").out.trim()).toBe(`${fs.blocks} ${fs.bsize}`);

    await driver.stop(id, { timeoutMs: 5_000 });
    const smaller = await driver.start(spec(id, 1));
    expect(smaller.appliedLimits?.storageGb).toBe(2);
    expect(smaller.appliedLimits?.notes).toContainEqual(expect.stringMatching(/^storage: ext4 image of 2 GB .*; the tier asks for 1 GB, but a disk holding data is never shrunk$/));
    expect(statSync(join(sandboxDir(id), "disk.img")).size).toBe(2 * GIB);
    expect(readFileSync(join(disk, "workspace/kept.txt"), "utf8")).toBe("still here");
  });

  test("remove unmounts it and deletes the image", async () => {
    const { uid } = stateOf(id);
    await driver.remove(id);
    expect(pidsOfUid(uid)).toEqual([]);
    expect(existsSync(sandboxDir(id))).toBe(false);
    expect(mountsUnder(dataDir)).toEqual([]);
    expect(loopDevicesUnder(dataDir)).toEqual([]);
  });
});

describe("local driver: sandboxes from before disks", () => {
  const id = `sbx_disk_plain_${run}`;
  const dir = sandboxDir(id);

  test("SANDBOX_STORAGE_QUOTA=off is said where operators look: the driver's availability notes", async () => {
    expect(await driver.availability()).toEqual({ available: true });
    const status = await orchestratorStatus(plainDriver);
    expect(status).toMatchObject({ available: true, notes: ["storage quotas off (SANDBOX_STORAGE_QUOTA=off): new sandboxes' files share the host's disk"] });
  });

  test("SANDBOX_STORAGE_QUOTA=off: plain directories, and appliedLimits say storage is not applied", async () => {
    const info = await plainDriver.start(spec(id, 1));
    expect(info.state).toBe("running");
    expect(info.appliedLimits?.storageGb).toBeNull();
    expect(info.appliedLimits?.notes).toContain("storage: not applied (SANDBOX_STORAGE_QUOTA=off): the sandbox's files share the host's disk");
    expect(existsSync(join(dir, "disk.img"))).toBe(false);
    expect(mountsUnder(dataDir)).toEqual([]);
    await plainDriver.stop(id, { timeoutMs: 5_000 });
  });

  test("their files are moved onto a new disk at the next start, owners, modes and links intact; if they do not fit, nothing moves", async () => {
    const { uid } = stateOf(id);
    const ws = join(dir, "workspace");
    mkdirSync(join(ws, "src"), { recursive: true });
    writeFileSync(join(ws, "src/main.py"), "print('hello')\n");
    chmodSync(join(ws, "src/main.py"), 0o750);
    chownSync(join(ws, "src"), uid, uid);
    chownSync(join(ws, "src/main.py"), uid, uid);
    symlinkSync("/etc/hostname", join(ws, "link-out"));
    // 100 MB of real data: more than a 64 MB disk holds.
    writeFileSync(join(ws, "big.bin"), Buffer.alloc(100 * 1024 * 1024, 1));

    await expect(driver.start(spec(id, 1 / 16))).rejects.toThrow(/do not fit its disk .*nothing was lost: give it a tier with more storage/);
    expect(existsSync(join(dir, "disk.img"))).toBe(false);
    expect(mountsUnder(dataDir)).toEqual([]);
    expect(loopDevicesUnder(dataDir)).toEqual([]);
    expect(readFileSync(join(ws, "src/main.py"), "utf8")).toBe("print('hello')\n");
    expect(statSync(join(ws, "big.bin")).size).toBe(100 * 1024 * 1024);

    const info = await driver.start(spec(id, 0.25));
    expect(info.state).toBe("running");
    expect(info.appliedLimits?.storageGb).toBe(0.25);
    expect(existsSync(join(dir, "workspace"))).toBe(false);
    expect(existsSync(join(dir, "home"))).toBe(false);
    const moved = join(dir, "disk/workspace");
    const main = statSync(join(moved, "src/main.py"));
    expect([main.uid, main.mode & 0o777]).toEqual([uid, 0o750]);
    expect(lstatSync(join(moved, "link-out")).isSymbolicLink()).toBe(true);
    expect(readlinkSync(join(moved, "link-out"))).toBe("/etc/hostname");
    expect(readFileSync(join(moved, "big.bin")).equals(Buffer.alloc(100 * 1024 * 1024, 1))).toBe(true);
    expect(existsSync(join(dir, "disk/home/.config/opencode/opencode.json"))).toBe(true);
    // And the sandbox sees them on its disk.
    const seen = statfsSync(join(dir, "disk/workspace"));
    expect(inSandbox(id, "cat /home/workspace/src/main.py && stat -f -c '%T %b' /home/workspace").out).toBe(`print('hello')\next2/ext3 ${seen.blocks}\n`);
    expect(readdirSync(dir).filter((n) => n.startsWith("."))).toEqual([]);

    await driver.remove(id);
    expect(mountsUnder(dataDir)).toEqual([]);
    expect(loopDevicesUnder(dataDir)).toEqual([]);
  });
});

describe("local driver: disks of concurrent sandboxes", () => {
  test("a sandbox started while another's disk is mounted does not keep that disk alive after it stops", async () => {
    const a = `sbx_disk_a_${run}`;
    const b = `sbx_disk_b_${run}`;
    await driver.start(spec(a, 0.25));
    await driver.start(spec(b, 0.25)); // its namespace is a copy of the host's mounts, a's disk included
    await driver.stop(a, { timeoutMs: 5_000 });
    expect(loopDevicesUnder(dataDir).filter((l) => l.includes(a))).toEqual([]);
    await driver.remove(a);
    expect(mountsUnder(dataDir).map((m) => m.mountPoint)).toEqual([join(sandboxDir(b), "disk"), join(sandboxDir(b), "disk")]);
    await driver.remove(b);
    expect(mountsUnder(dataDir)).toEqual([]);
    expect(loopDevicesUnder(dataDir)).toEqual([]);
  });
});
