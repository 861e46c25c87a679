import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { eq } from "drizzle-orm";
import { sandboxes, sandboxOperations } from "../../db/schema";
import { reconcile, stopIdleSandboxes } from "../../src/services/sandboxes/reconcile";
import { json, signUp, type TestUser } from "../helpers/app";
import { useSandboxApp } from "../helpers/sandboxes";

// The reconciler and the idle reaper against real workloads, with the runtime's clock moved
// forward instead of sleeping.
setDefaultTimeout(120_000);

const app = useSandboxApp();

const startRunning = async (u: TestUser, body: Record<string, unknown> = {}) => {
  const s = await json(await app().request("/api/v1/sandboxes", { method: "POST", token: u.token, json: { name: "r", resourceTierId: "micro", ...body } }));
  await app().request(`/api/v1/sandboxes/${s.id}/start`, { method: "POST", token: u.token });
  const w = await json(await app().request(`/api/v1/sandboxes/${s.id}/wait?status=running&timeoutSeconds=25`, { token: u.token }));
  expect(w.reached).toBe(true);
  return s.id as string;
};

const row = async (id: string) => (await app().database.db.select().from(sandboxes).where(eq(sandboxes.id, id)))[0]!;

describe("reconciler", () => {
  test("a workload that died is marked error with a reason", async () => {
    const u = await signUp(app());
    const id = await startRunning(u);
    await app().driver.stop(id); // dies behind Warren's back
    const report = await reconcile(app().rt);
    expect(report.died).toContain(id);
    expect(await row(id)).toMatchObject({ status: "error", statusReason: "workload_exited" });
  });

  test("a transition stuck past the timeout is resolved to the workload's real state", async () => {
    const u = await signUp(app());
    const running = await startRunning(u);
    const s2 = await json(await app().request("/api/v1/sandboxes", { method: "POST", token: u.token, json: { name: "stuck" } }));
    const db = app().database.db;
    // As if an instance died mid-transition: statuses left transitional, operations gone.
    await db.update(sandboxes).set({ status: "starting", desiredStatus: "running", transitionStartedAt: new Date(Date.now() - 60_000) }).where(eq(sandboxes.id, running));
    await db.update(sandboxes).set({ status: "stopping", desiredStatus: "stopped", transitionStartedAt: new Date(Date.now() - 60_000) }).where(eq(sandboxes.id, s2.id));
    app().clock.offsetMs = 60 * 60_000;
    try {
      const report = await reconcile(app().rt);
      expect(report.resolved).toEqual(
        expect.arrayContaining([
          { sandboxId: running, from: "starting", to: "running" },
          { sandboxId: s2.id, from: "stopping", to: "stopped" },
        ]),
      );
    } finally {
      app().clock.offsetMs = 0;
    }
    expect((await row(running)).status).toBe("running");
    expect(await row(s2.id)).toMatchObject({ status: "stopped", statusReason: "reconciled" });
    await app().request(`/api/v1/sandboxes/${running}/stop`, { method: "POST", token: u.token });
  });

  test("an operation whose worker died is handed on", async () => {
    const u = await signUp(app());
    const s = await json(await app().request("/api/v1/sandboxes", { method: "POST", token: u.token, json: { name: "orphan-op" } }));
    const db = app().database.db;
    await db.insert(sandboxOperations).values({ id: `sop_dead_${s.id}`, sandboxId: s.id, kind: "stop", status: "running", claimedBy: "dead-instance", claimedUntil: new Date(Date.now() - 1000) });
    const report = await reconcile(app().rt);
    expect(report.requeued).toBeGreaterThanOrEqual(1);
  });

  test("a workload Warren does not know is stopped and reported", async () => {
    const u = await signUp(app());
    const id = await startRunning(u);
    // Forget it in the database only (as after a restore from an old backup).
    await app().database.db.delete(sandboxes).where(eq(sandboxes.id, id));
    const report = await reconcile(app().rt);
    expect(report.orphansStopped).toContain(id);
    expect((await app().driver.inspect(id)).state).not.toBe("running");
  });
});

describe("idle auto-stop", () => {
  test("a sandbox idle past its timeout is stopped with reason idle_timeout; an active one is not", async () => {
    const u = await signUp(app());
    const idle = await startRunning(u, { idleTimeoutMinutes: 5 });
    const busy = await startRunning(u, { idleTimeoutMinutes: 120 });
    app().clock.offsetMs = 30 * 60_000;
    try {
      const stopped = await stopIdleSandboxes(app().rt);
      expect(stopped).toContain(idle);
      expect(stopped).not.toContain(busy);
      const w = await json(await app().request(`/api/v1/sandboxes/${idle}/wait?status=stopped&timeoutSeconds=25`, { token: u.token }));
      expect(w.reached).toBe(true);
      expect(w.sandbox.statusReason).toBe("idle_timeout");
    } finally {
      app().clock.offsetMs = 0;
    }
    await app().request(`/api/v1/sandboxes/${busy}/stop`, { method: "POST", token: u.token });
  });

  test("reading a running sandbox is use of it: it postpones the idle stop, marked at most every 30 s", async () => {
    const u = await signUp(app());
    const id = await startRunning(u, { idleTimeoutMinutes: 5 });
    // Untouched for 10 minutes: due for its idle stop.
    const old = new Date(Date.now() - 10 * 60_000);
    await app().database.db.update(sandboxes).set({ lastActivityAt: old }).where(eq(sandboxes.id, id));
    const get = async () => json(await app().request(`/api/v1/sandboxes/${id}`, { token: u.token }));
    expect((await get()).lastActivityAt).toBe(old.toISOString()); // the view read before the mark

    const marked = (await row(id)).lastActivityAt!;
    expect(Date.now() - marked.getTime()).toBeLessThan(10_000);
    expect(await stopIdleSandboxes(app().rt)).not.toContain(id);
    // Read again within 30 s: the mark stays as it was.
    expect((await get()).lastActivityAt).toBe(marked.toISOString());
    expect((await row(id)).lastActivityAt).toEqual(marked);
    await app().request(`/api/v1/sandboxes/${id}/stop`, { method: "POST", token: u.token });
  });
});
