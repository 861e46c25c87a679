import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { processesMentioning } from "../helpers/proc";
import { createServerStorage, startServer, type RunningServer, type ServerStorage, reapSandboxes } from "../helpers/server";

// The product end to end: the real server process with the real local driver (OpenCode under
// bubblewrap), driven over HTTP the way an app does.
setDefaultTimeout(120_000);

let storage: ServerStorage;
let server: RunningServer;
let dataDir: string;

beforeAll(async () => {
  storage = await createServerStorage();
  dataDir = mkdtempSync(join(tmpdir(), "warren-e2e-sbx-"));
  // In PGlite mode the storage is a data directory already; the driver keeps sandboxes there too.
  server = await startServer({ storage, env: storage.env.DATA_DIR ? {} : { DATA_DIR: dataDir } });
}, 120_000);

afterAll(async () => {
  await server?.stop();
  await storage?.destroy();
  reapSandboxes(dataDir);
  rmSync(dataDir, { recursive: true, force: true });
}, 60_000);


describe("sandbox lifecycle over HTTP", () => {
  test("sign up, create, start, wait, list OpenCode sessions through the proxy, stop, delete; nothing left", async () => {
    const url = server.url;
    const signUp = await fetch(`${url}/api/auth/sign-up/email`, {
      method: "POST",
      headers: { "content-type": "application/json", origin: url },
      body: JSON.stringify({ email: `sbx.${Date.now()}@example.com`, password: "sandbox password", name: "Sandbox User" }),
    });
    expect(signUp.status).toBe(200);
    const auth = { authorization: `Bearer ${signUp.headers.get("set-auth-token")}` };
    const call = (path: string, init: RequestInit = {}) =>
      fetch(`${url}/api/v1${path}`, { ...init, headers: { ...auth, "content-type": "application/json", ...(init.headers ?? {}) } });

    const created = await call("/sandboxes", { method: "POST", body: JSON.stringify({ name: "e2e", resourceTierId: "micro" }) });
    expect(created.status).toBe(201);
    const { id } = (await created.json()) as { id: string };

    // The list page, read (and cached) while the start is under way, shows the sandbox running as
    // soon as /wait says it is, although the worker's change reached the cache by notification.
    const listed = async () => ((await (await call("/sandboxes")).json()) as { data: Array<{ id: string; status: string }> }).data.find((s) => s.id === id)?.status;
    expect((await call(`/sandboxes/${id}/start`, { method: "POST" })).status).toBe(202);
    expect(["starting", "running"]).toContain((await listed())!);
    expect(["starting", "running"]).toContain((await listed())!);
    const waited = (await (await call(`/sandboxes/${id}/wait?status=running&timeoutSeconds=60`)).json()) as { reached: boolean };
    expect(waited.reached).toBe(true);
    expect(await listed()).toBe("running");
    expect(processesMentioning(id).length).toBeGreaterThan(0);

    const sessions = await call(`/sandboxes/${id}/agent/session`);
    expect(sessions.status).toBe(200);
    expect(Array.isArray(await sessions.json())).toBe(true);
    // Without Warren's session there is no way in.
    expect((await fetch(`${url}/api/v1/sandboxes/${id}/agent/session`)).status).toBe(401);

    expect((await call(`/sandboxes/${id}/stop`, { method: "POST" })).status).toBe(202);
    const stopped = (await (await call(`/sandboxes/${id}/wait?status=stopped&timeoutSeconds=60`)).json()) as { reached: boolean };
    expect(stopped.reached).toBe(true);
    expect(await listed()).toBe("stopped");
    expect(processesMentioning(id)).toEqual([]);

    expect((await call(`/sandboxes/${id}`, { method: "DELETE" })).status).toBe(202);
    let gone = false;
    for (let i = 0; i < 100 && !gone; i++) {
      gone = (await call(`/sandboxes/${id}`)).status === 404;
      if (!gone) await Bun.sleep(200);
    }
    expect(gone).toBe(true);
    expect(processesMentioning(id)).toEqual([]);
    const sandboxDir = join(storage.env.DATA_DIR ?? dataDir, "sandboxes", id);
    expect(existsSync(sandboxDir)).toBe(false);
  });
});
