import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { TEST_SECRET } from "../helpers/app";
import { ENGINE } from "../helpers/db";
import { createServerStorage, startServer, type RunningServer, type ServerStorage } from "../helpers/server";

/**
 * The operator's password reset as it is run: a separate process on the server's own storage
 * (the embedded database's data directory, or PostgreSQL), with the server stopped for it, as
 * --help says the embedded database needs. Then the real server: old sessions and the old
 * password are refused, the new one signs in, and the user's activity log says what happened.
 */
const ROOT = join(import.meta.dir, "..", "..");
const EMAIL = "forgetful@example.com";
const OLD = "the old password, forgotten";
const NEW = "a brand new password";

let storage: ServerStorage;
let server: RunningServer | undefined;
beforeAll(async () => {
  storage = await createServerStorage();
}, 60_000);
afterAll(async () => {
  await server?.stop();
  await storage?.destroy();
}, 60_000);

async function cli(args: string[], stdin?: string) {
  const p = Bun.spawn([process.execPath, "src/cli/reset-password.ts", ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", NODE_ENV: "test", AUTH_SECRET: TEST_SECRET, ...storage.env },
    stdin: stdin === undefined ? "ignore" : new TextEncoder().encode(stdin),
    stdout: "pipe",
    stderr: "pipe",
  });
  const [code, stdout, stderr] = await Promise.all([p.exited, new Response(p.stdout).text(), new Response(p.stderr).text()]);
  return { code, stdout, stderr };
}

/** Better Auth's email endpoints on the real server, as a browser app on its origin calls them. */
const authPost = (url: string, endpoint: "sign-in" | "sign-up", body: Record<string, string>) =>
  fetch(`${url}/api/auth/${endpoint}/email`, { method: "POST", headers: { "content-type": "application/json", origin: url }, body: JSON.stringify(body) });
const signIn = (url: string, password: string) => authPost(url, "sign-in", { email: EMAIL, password });

describe("user:reset-password CLI", () => {
  test("--help explains it; bad usage exits 2 without touching anything", async () => {
    const help = await cli(["--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("--password-stdin");
    expect(help.stdout).toContain("stop the server first");
    expect((await cli([])).code).toBe(2);
    expect((await cli(["--email", EMAIL])).stderr).toContain("one of --password-stdin or --generate");
    expect((await cli(["--email", EMAIL, "--password-stdin", "--generate"])).code).toBe(2);
    const short = await cli(["--email", EMAIL, "--password-stdin"], "short\n");
    expect(short.code).toBe(2);
    expect(short.stderr).toContain("8 to 256 characters");
  }, 30_000);

  test("a forgotten password is replaced: every session signed out, the new one works, the activity log says so", async () => {
    server = await startServer({ storage });
    const signUp = await authPost(server.url, "sign-up", { email: EMAIL, password: OLD, name: "Forgetful" });
    expect(signUp.status).toBe(200);
    const tokens = [signUp.headers.get("set-auth-token")!, (await signIn(server.url, OLD)).headers.get("set-auth-token")!];
    await server.stop();

    expect(await cli(["--email", "nobody@example.com", "--password-stdin"], `${NEW}\n`)).toMatchObject({ code: 1 });
    const reset = await cli(["--email", "Forgetful@Example.com", "--password-stdin"], `${NEW}\n`);
    expect(reset).toMatchObject({ code: 0, stdout: `${EMAIL}: password replaced; 2 session(s) signed out\n` });

    server = await startServer({ storage });
    for (const token of tokens) {
      expect((await fetch(`${server.url}/api/v1/me`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(401);
    }
    expect((await signIn(server.url, OLD)).status).toBe(401);
    const fresh = await signIn(server.url, NEW);
    expect(fresh.status).toBe(200);
    const token = fresh.headers.get("set-auth-token")!;
    const activity = await fetch(`${server.url}/api/v1/me/activity?action=auth.password_reset`, { headers: { authorization: `Bearer ${token}` } });
    const entries = ((await activity.json()) as { data: Array<Record<string, unknown>> }).data;
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({ actorType: "system", metadata: { via: "cli", change: "replaced", sessionsSignedOut: 2 } });
    expect(JSON.stringify(entries)).not.toContain(NEW);
    await server.stop();
    server = undefined;

    // --generate: a password made up and shown once, which signs in.
    const generated = await cli(["--email", EMAIL, "--generate", "--json"]);
    expect(generated.code).toBe(0);
    const result = JSON.parse(generated.stdout) as { password: string; sessionsSignedOut: number };
    expect(result.password).toMatch(/^[A-Za-z0-9_-]{24}$/);
    expect(result.sessionsSignedOut).toBe(1);
    server = await startServer({ storage });
    expect((await signIn(server.url, result.password)).status).toBe(200);
    await server.stop();
    server = undefined;
  }, 120_000);
});

describe("user:reset-password beside a running server", () => {
  test("a server database: the server refuses the user's cached sessions once the command commits; the embedded one: the command refuses to open it", async () => {
    const running = await startServer({ storage });
    try {
      const email = "busy@example.com";
      const signUp = await authPost(running.url, "sign-up", { email, password: OLD, name: "Busy" });
      const token = signUp.headers.get("set-auth-token")!;
      const me = async () => (await fetch(`${running.url}/api/v1/me`, { headers: { authorization: `Bearer ${token}` } })).status;
      // Verified once, so the session is now in the server's session cache (30 s by default).
      expect(await me()).toBe(200);
      const reset = await cli(["--email", email, "--password-stdin"], `${NEW}\n`);
      if (ENGINE === "pglite") {
        // One process at a time may open the embedded database: the server's pid file says so.
        expect(reset.code).toBe(1);
        expect(reset.stderr).toContain(`is in use by process ${running.proc.pid}; stop it first`);
        expect(await me()).toBe(200);
        return;
      }
      expect(reset.code).toBe(0);
      // The sessions table's trigger tells the server at commit; allow its notification a moment.
      const deadline = Date.now() + 5_000;
      let status = await me();
      while (status === 200 && Date.now() < deadline) {
        await Bun.sleep(50);
        status = await me();
      }
      expect(status).toBe(401);
    } finally {
      await running.stop();
    }
  }, 60_000);
});
