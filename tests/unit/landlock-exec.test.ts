import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HELPER_PATH, helperArgv, launcherEnv, scopesSupported } from "../../src/orchestrator/landlock";
import { abstractHostListener } from "../helpers/guard";

// The local driver's launch helper, run the way the launcher runs it (a Bun process with the
// renamed environment), on this machine's kernel. The sandbox-level checks are in
// tests/integration/loopback-guard.test.ts.

const run = (args: string[], env: Record<string, string> = launcherEnv({})) => {
  const p = Bun.spawnSync([process.execPath, HELPER_PATH, ...args], { env, stdout: "pipe", stderr: "pipe" });
  return { code: p.exitCode, out: p.stdout.toString(), err: p.stderr.toString() };
};

const name = `warren-landlock-unit-${process.pid}`;
let server: { stop(): void };
beforeAll(async () => {
  server = await abstractHostListener(name, "hi");
});
afterAll(() => server.stop());

// A client in a child process: prints "open" or the error code of connecting to the abstract socket.
const CLIENT = `const s = require("node:net").connect({ path: "\\0" + process.argv[1] });
s.on("connect", () => { console.log("open"); s.destroy(); });
s.on("error", (e) => console.log(e.code));`;

describe("landlock-exec.ts", () => {
  test("--help, and a usage error for anything else", () => {
    expect(run(["--help"])).toMatchObject({ code: 0, out: expect.stringContaining("usage: landlock-exec.ts") });
    expect(run(["--scope", "env"])).toMatchObject({ code: 2, err: expect.stringContaining("usage:") });
    expect(run(["--sideways", "--", "env"]).code).toBe(2);
  });

  test("the command gets the sandbox's variables back under their own names, and only them", () => {
    // Read by Bun itself if it arrived unrenamed: the helper would fail to start.
    const env = launcherEnv({ GREETING: "hello", BUN_OPTIONS: "--preload /nonexistent/warren.ts" });
    const r = run(["--no-scope", "--", "env"], env);
    expect(r.code).toBe(0);
    expect(r.out.trim().split("\n").sort()).toEqual(["BUN_OPTIONS=--preload /nonexistent/warren.ts", "GREETING=hello"]);
  });

  test("--chdir: the command runs there; a usage error without a directory", () => {
    const r = run(["--chdir", tmpdir(), "--no-scope", "--", "pwd"]);
    expect(r).toMatchObject({ code: 0 });
    expect(r.out.trim()).toBe(realpathSync(tmpdir()));
    expect(run(["--chdir"]).code).toBe(2);
  });

  test("started as the drivers start it, a user's bunfig.toml preload and .env in the working directory are not read", () => {
    // A workspace the user controls (the docker driver's containers start in it).
    const dir = mkdtempSync(join(tmpdir(), "warren-landlock-ws-"));
    try {
      writeFileSync(join(dir, "evil.ts"), 'console.log("USER CODE RAN AS THE LAUNCHER")');
      writeFileSync(join(dir, "bunfig.toml"), `preload = ["${join(dir, "evil.ts")}"]\n`);
      writeFileSync(join(dir, ".env"), "WARREN_SANDBOX_ENV_INJECTED=1\n");
      const argv = helperArgv({ bun: process.execPath, helper: HELPER_PATH, scope: false, chdir: dir });
      const p = Bun.spawnSync([...argv, "env"], { cwd: dir, env: launcherEnv({ GREETING: "hello" }), stdout: "pipe", stderr: "pipe" });
      const out = p.stdout.toString();
      expect(p.exitCode).toBe(0);
      expect(out).not.toContain("USER CODE RAN");
      expect(out.trim().split("\n").sort()).toEqual(["GREETING=hello"]);
      // The same helper started plainly in that directory would have run it: the check is real.
      const plain = Bun.spawnSync([process.execPath, HELPER_PATH, "--no-scope", "--", "true"], { cwd: dir, env: launcherEnv({}), stdout: "pipe" });
      expect(plain.stdout.toString()).toContain("USER CODE RAN");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a command that cannot run is exit 127, named", () => {
    expect(run(["--no-scope", "--", "/nonexistent/warren-cmd"])).toMatchObject({ code: 127, err: expect.stringContaining("cannot run /nonexistent/warren-cmd") });
  });

  test("--scope: the command cannot connect to an abstract socket bound outside; --no-scope can", () => {
    const client = (mode: string) => run([mode, "--", process.execPath, "-e", CLIENT, name], launcherEnv({})).out.trim();
    expect(client("--no-scope")).toBe("open");
    if (scopesSupported()) expect(client("--scope")).not.toBe("open");
    else expect(run(["--scope", "--", "true"]).code).toBe(126); // never runs unscoped when asked to scope
  });
});
