import { afterAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createServerStorage, freePort, startServer, type ServerStorage } from "../helpers/server";

// Each test starts real server processes (a cold embedded database takes a few seconds).
setDefaultTimeout(60_000);

const cleanups: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
}, 60_000);

const signUpOverHttp = async (url: string, email: string, password: string) => {
  const res = await fetch(`${url}/api/auth/sign-up/email`, {
    method: "POST",
    headers: { "content-type": "application/json", origin: url },
    body: JSON.stringify({ email, password, name: "Restart Tester" }),
  });
  expect(res.status).toBe(200);
  return { id: ((await res.json()) as { user: { id: string } }).user.id, token: res.headers.get("set-auth-token")! };
};

const signInOverHttp = async (url: string, email: string, password: string) =>
  fetch(`${url}/api/auth/sign-in/email`, {
    method: "POST",
    headers: { "content-type": "application/json", origin: url },
    body: JSON.stringify({ email, password }),
  });

describe("restart", () => {
  test("a user and their session survive a restart on the same data (development defaults)", async () => {
    const storage: ServerStorage = await createServerStorage();
    cleanups.push(storage.destroy);
    // Development mode with no AUTH_SECRET: the secret generated on first start must be reused,
    // or every session would die with the process.
    const dataDir = mkdtempSync(join(tmpdir(), "warren-restart-"));
    cleanups.push(async () => rmSync(dataDir, { recursive: true, force: true }));
    const env = { NODE_ENV: "development", AUTH_SECRET: "", DATA_DIR: dataDir, ...storage.env };
    const port = freePort();

    const first = await startServer({ storage, env, port });
    const email = `restart.${Date.now()}@example.com`;
    const { id, token } = await signUpOverHttp(first.url, email, "restart password 1");
    expect(await first.stop("SIGTERM")).toBe(0);
    expect(first.output.some((l) => l.includes('"msg":"stopped"'))).toBe(true);

    const second = await startServer({ storage, env, port });
    try {
      if (!storage.env.DATABASE_URL) {
        // The embedded database belongs to one process: a second server on the same data
        // directory refuses to start instead of corrupting it.
        const intruder = Bun.spawn([process.execPath, "src/index.ts"], {
          cwd: join(import.meta.dir, "..", ".."),
          env: { PATH: process.env.PATH ?? "", ...env, PORT: String(freePort()) },
          stdout: "pipe",
          stderr: "pipe",
        });
        expect(await intruder.exited).toBe(1);
        expect(await new Response(intruder.stderr).text()).toContain("is in use by process");
      }
      const me = await fetch(`${second.url}/api/v1/me`, { headers: { authorization: `Bearer ${token}` } });
      expect(me.status).toBe(200);
      expect(((await me.json()) as { id: string }).id).toBe(id);
      const signIn = await signInOverHttp(second.url, email, "restart password 1");
      expect(signIn.status).toBe(200);
      expect(((await signIn.json()) as { user: { id: string } }).user.id).toBe(id);
    } finally {
      expect(await second.stop("SIGINT")).toBe(0);
    }
  });

  test("SIGTERM lets an in-flight request finish before the process exits", async () => {
    const storage = await createServerStorage();
    cleanups.push(storage.destroy);
    const server = await startServer({ storage });
    const { token } = await signUpOverHttp(server.url, `inflight.${Date.now()}@example.com`, "inflight password");
    // A request whose body is still arriving when the signal comes.
    let push!: (s: string) => void;
    let finish!: () => void;
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        push = (s) => controller.enqueue(new TextEncoder().encode(s));
        finish = () => controller.close();
      },
    });
    const pending = fetch(`${server.url}/api/v1/me`, {
      method: "PATCH",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body,
    });
    push('{"name": "Finished ');
    await Bun.sleep(300);
    const exited = server.stop("SIGTERM");
    await Bun.sleep(300);
    push('after the signal"}');
    finish();
    const res = await pending;
    expect(res.status).toBe(200);
    expect(((await res.json()) as { name: string }).name).toBe("Finished after the signal");
    expect(await exited).toBe(0);
    // And no new connection is accepted any more.
    await expect(fetch(`${server.url}/health`)).rejects.toThrow();
  });
});

describe("start-up configuration errors", () => {
  const run = async (env: Record<string, string>) => {
    const proc = Bun.spawn([process.execPath, "src/index.ts"], {
      cwd: join(import.meta.dir, "..", ".."),
      env: { PATH: process.env.PATH ?? "", DATA_DIR: "memory://", ...env },
      stdout: "pipe",
      stderr: "pipe",
    });
    const code = await proc.exited;
    return { code, stderr: (await new Response(proc.stderr).text()).trim() };
  };

  test("a bad value stops start-up with one line naming the variable", async () => {
    const bad = await run({ PORT: "eighty" });
    expect(bad.code).toBe(1);
    expect(bad.stderr.split("\n")).toHaveLength(1);
    expect(bad.stderr).toStartWith("warren: Invalid environment variable PORT:");
  });

  test("production refuses to start without an auth secret", async () => {
    const bad = await run({ NODE_ENV: "production", PUBLIC_URL: "https://api.example.com" });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toBe("warren: Invalid environment variable AUTH_SECRET: is required in production");
  });
});
