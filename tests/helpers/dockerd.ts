import { spawn } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import Docker from "dockerode";
import { join } from "node:path";

/**
 * A real, private Docker daemon for tests, started as FIELD-NOTES says: its own data root and
 * socket in a temp dir, no bridge and no firewall rules (a bridge's 172.17.x range is forbidden on
 * these machines). Returns the reason instead when dockerd cannot start here, so the caller can
 * skip and say why.
 */

export type TestDockerd = { socket: string; dir: string; stop(): Promise<void> };

export async function startDockerd(): Promise<TestDockerd | { skip: string }> {
  if (!Bun.which("dockerd")) return { skip: "dockerd is not installed (apt-get install -y docker.io)" };
  if (process.getuid?.() !== 0) return { skip: "dockerd needs root here" };
  // Short path: a unix socket path must stay under 108 bytes.
  const dir = mkdtempSync("/tmp/wdk-");
  const socket = join(dir, "docker.sock");
  const log = openSync(join(dir, "dockerd.log"), "a");
  const child = spawn(
    "dockerd",
    [
      "--data-root", join(dir, "data"),
      "--exec-root", join(dir, "exec"),
      "--pidfile", join(dir, "docker.pid"),
      "--host", `unix://${socket}`,
      "--bridge=none", "--iptables=false", "--ip6tables=false",
    ],
    { stdio: ["ignore", log, log] },
  );
  closeSync(log);
  let exited = false;
  child.on("exit", () => (exited = true));
  const stop = async () => {
    if (!exited) {
      child.kill("SIGTERM");
      const deadline = Date.now() + 30_000;
      while (!exited && Date.now() < deadline) await Bun.sleep(100);
      if (!exited) child.kill("SIGKILL");
      while (!exited) await Bun.sleep(50);
    }
    // dockerd leaves its default network namespace mounted under the exec root when it exits.
    const mounts = readFileSync("/proc/mounts", "utf8").split("\n").map((l) => l.split(" ")[1] ?? "");
    for (const mount of mounts.filter((m) => m.startsWith(`${dir}/`)).reverse()) {
      Bun.spawnSync(["umount", "-l", mount]);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const docker = new Docker({ socketPath: socket });
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline && !exited) {
    try {
      await docker.ping();
      return { socket, dir, stop };
    } catch {
      await Bun.sleep(200);
    }
  }
  const tail = readFileSync(join(dir, "dockerd.log"), "utf8").split("\n").slice(-5).join(" | ");
  await stop();
  return { skip: `dockerd did not start: ${tail}` };
}

/** Builds (or finds cached) the sandbox image in that daemon with the project's own script. */
export function buildSandboxImage(socket: string, tag = "warren/sandbox-bare:latest"): void {
  const result = Bun.spawnSync(["bash", "scripts/build-sandbox-image.sh", tag], {
    env: { ...process.env, DOCKER_HOST: `unix://${socket}` },
    stdout: "pipe",
    stderr: "pipe",
  });
  if (result.exitCode !== 0) throw new Error(`build-sandbox-image.sh failed: ${result.stderr.toString().slice(-2000)}`);
}
