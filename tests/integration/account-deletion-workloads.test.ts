import { expect, setDefaultTimeout, test } from "bun:test";
import { sql } from "drizzle-orm";
import { queryRows } from "../../src/database/client";
import { runWorkloadCleanups } from "../../src/services/account/workload-cleanup";
import type { OrchestratorDriver } from "../../src/orchestrator/driver";
import { json, memoryLogger, signUp } from "../helpers/app";
import { useSandboxApp } from "../helpers/sandboxes";

// Real workloads: the local driver runs OpenCode under bubblewrap.
setDefaultTimeout(180_000);

const app = useSandboxApp();

async function until<T>(what: string, probe: () => Promise<T | undefined>, deadlineMs = 60_000): Promise<T> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`gave up waiting for ${what}`);
    await Bun.sleep(200);
  }
}

test("deleting an account stops and removes its running sandbox's workload", async () => {
  const u = await signUp(app());
  const res = await app().request("/api/v1/sandboxes", { method: "POST", token: u.token, json: { name: "Running" } });
  expect(res.status).toBe(201);
  const id = (await json(res)).id as string;
  expect((await app().request(`/api/v1/sandboxes/${id}/start`, { method: "POST", token: u.token })).status).toBe(202);
  const waited = await json(await app().request(`/api/v1/sandboxes/${id}/wait?status=running&timeoutSeconds=60`, { token: u.token }));
  expect(waited.reached).toBe(true);
  expect((await app().driver.inspect(id)).state).toBe("running");

  const del = await app().request("/api/v1/me/account", { method: "DELETE", token: u.token, json: { confirm: "DELETE MY ACCOUNT" } });
  expect(del.status).toBe(200);
  expect(await json(del)).toEqual({ deleted: true, sandboxesRemoved: 1 });

  // The removal started right after the commit; the cleanup row records when it is done.
  await until("the workload cleanup to complete", async () => {
    const rows = await queryRows<{ completed_at: string | null }>(
      app().database.db,
      sql`select completed_at from workload_cleanups where sandbox_id = ${id}`,
    );
    return rows[0]?.completed_at ? true : undefined;
  });
  expect((await app().driver.inspect(id)).state).toBe("missing");
  expect((await app().driver.listManaged()).map((w) => w.sandboxId)).not.toContain(id);
});

test("a removal that fails is retried by the job until it succeeds", async () => {
  // A driver whose first two removals fail (the orchestrator being unreachable), then the real one.
  let failures = 2;
  const real = app().driver;
  const flaky = new Proxy(real, {
    get(target, prop, receiver) {
      if (prop === "remove") {
        return async (sandboxId: string) => {
          if (failures-- > 0) throw new Error("orchestrator unreachable");
          return target.remove(sandboxId);
        };
      }
      const value = Reflect.get(target, prop, receiver);
      return typeof value === "function" ? value.bind(target) : value;
    },
  }) as OrchestratorDriver;

  const u = await signUp(app());
  const res = await app().request("/api/v1/sandboxes", { method: "POST", token: u.token, json: { name: "Flaky" } });
  const id = (await json(res)).id as string;
  expect((await app().request(`/api/v1/sandboxes/${id}/start`, { method: "POST", token: u.token })).status).toBe(202);
  const waited = await json(await app().request(`/api/v1/sandboxes/${id}/wait?status=running&timeoutSeconds=60`, { token: u.token }));
  expect(waited.reached).toBe(true);

  // Take this sandbox out of the app's own immediate removal: the cleanup row is made by the
  // deletion, and this test drives the job by hand with the flaky driver and a moving clock.
  await app().database.db.execute(sql`create or replace function warren_test_hold_cleanup() returns trigger language plpgsql as $$
    begin new.run_after := new.run_after + interval '1 day'; return new; end; $$`);
  await app().database.db.execute(sql`create trigger warren_test_hold_cleanup before insert on workload_cleanups
    for each row execute function warren_test_hold_cleanup()`);
  try {
    const del = await app().request("/api/v1/me/account", { method: "DELETE", token: u.token, json: { confirm: "DELETE MY ACCOUNT" } });
    expect(del.status).toBe(200);
  } finally {
    await app().database.db.execute(sql`drop trigger warren_test_hold_cleanup on workload_cleanups`);
  }
  expect((await real.inspect(id)).state).toBe("running");

  let clock = Date.now() + 2 * 86_400_000;
  const deps = { db: app().database.db, driver: flaky, logger: memoryLogger().logger, now: () => new Date(clock) };
  const first = await runWorkloadCleanups(deps);
  expect(first.failed.map((f) => f.sandboxId)).toContain(id);
  // Backed off: running again at the same time does nothing.
  expect((await runWorkloadCleanups(deps)).failed).toEqual([]);
  clock += 3_600_000;
  const second = await runWorkloadCleanups(deps);
  expect(second.failed.map((f) => f.sandboxId)).toContain(id);
  clock += 3_600_000;
  const third = await runWorkloadCleanups(deps);
  expect(third.removed).toContain(id);
  expect((await real.inspect(id)).state).toBe("missing");
  const [row] = await queryRows<{ attempts: number; last_error: string | null; completed_at: string | null }>(
    app().database.db,
    sql`select attempts, last_error, completed_at from workload_cleanups where sandbox_id = ${id}`,
  );
  expect(row).toMatchObject({ attempts: 3, last_error: null });
  expect(row!.completed_at).not.toBeNull();
});

test("a workload still being started when the account is deleted is removed once the start returns", async () => {
  // Hold the real driver's start until the account is gone: the deletion commits (and its cleanup
  // finds no workload yet) while the worker is inside driver.start.
  const driver = app().driver;
  const realStart = driver.start.bind(driver);
  let entered!: () => void;
  const inStart = new Promise<void>((resolve) => (entered = resolve));
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let started = false;
  driver.start = async (spec) => {
    entered();
    await gate;
    const info = await realStart(spec);
    started = true;
    return info;
  };
  try {
    const u = await signUp(app());
    const res = await app().request("/api/v1/sandboxes", { method: "POST", token: u.token, json: { name: "Mid-start" } });
    const id = (await json(res)).id as string;
    expect((await app().request(`/api/v1/sandboxes/${id}/start`, { method: "POST", token: u.token })).status).toBe(202);
    await inStart;

    const del = await app().request("/api/v1/me/account", { method: "DELETE", token: u.token, json: { confirm: "DELETE MY ACCOUNT" } });
    expect(del.status).toBe(200);
    release();

    // The deletion's own workload cleanup found nothing yet (or waits for the start: the driver
    // runs one operation per sandbox at a time). The start completes, finds its sandbox gone, and
    // removes what it just started.
    await until("the started workload to be removed", async () => {
      const managed = (await driver.listManaged()).map((w) => w.sandboxId);
      return started && (await driver.inspect(id)).state === "missing" && !managed.includes(id) ? true : undefined;
    });
  } finally {
    release();
    driver.start = realStart;
  }
});
