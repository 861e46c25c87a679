import { describe, expect, test } from "bun:test";
import { eq, inArray, sql } from "drizzle-orm";
import { activityLog, activityLogArchive } from "../../db/schema";
import { archiveExpiredActivity } from "../../src/services/activity/retention";
import { memoryLogger, signUp, testConfig, useTestApp } from "../helpers/app";

const app = useTestApp();
const DAY = 86_400_000;
// The injectable clock: "now" for the job is fixed, whatever the wall clock says.
// (Anchored to the wall clock so that the sign-up entries of the test users are never expired.)
const NOW = new Date();

let run = 0;
/** Entries at given ages (days before NOW) for one user; ids say which run made them. */
async function seed(userId: string | null, ages: number[], extra: Partial<typeof activityLog.$inferInsert> = {}) {
  const tag = `r${++run}`;
  const rows = ages.map((age, i) => ({
    id: `act_${tag}_${String(i).padStart(4, "0")}`,
    userId,
    action: "sandbox.start",
    entityType: "sandbox",
    entityId: `sbx_${i}`,
    ipAddress: "203.0.113.9",
    userAgent: "agent/1.0",
    requestId: "req_1",
    metadata: { email: "someone@example.com", nested: { ipAddress: "1.2.3.4", keep: "yes" }, count: i },
    createdAt: new Date(NOW.getTime() - age * DAY),
    ...extra,
  }));
  for (let i = 0; i < rows.length; i += 500) await app().database.db.insert(activityLog).values(rows.slice(i, i + 500));
  return rows.map((r) => r.id);
}

const deps = (over: Partial<Parameters<typeof archiveExpiredActivity>[0]> = {}) => ({
  db: app().database.db,
  logger: memoryLogger().logger,
  now: () => NOW,
  retentionDays: 90,
  batchSize: 50,
  ...over,
});

const liveIds = async (ids: string[]) => (await app().database.db.select({ id: activityLog.id }).from(activityLog).where(inArray(activityLog.id, ids))).map((r) => r.id);
const archived = (ids: string[]) => app().database.db.select().from(activityLogArchive).where(inArray(activityLogArchive.id, ids));

test("the retention period is 90 days unless configured", () => {
  expect(testConfig().activity.retentionDays).toBe(90);
  expect(testConfig({ ACTIVITY_RETENTION_DAYS: "30" }).activity.retentionDays).toBe(30);
  expect(() => testConfig({ ACTIVITY_RETENTION_DAYS: "0" })).toThrow("ACTIVITY_RETENTION_DAYS");
});

describe("archiveExpiredActivity", () => {
  test("moves only entries past the period, with every piece of personal data removed", async () => {
    const u = await signUp(app());
    const old = await seed(u.id, [91, 120, 400]);
    const fresh = await seed(u.id, [89, 1]);
    const userEntity = await seed(u.id, [200], { action: "account.update", entityType: "user", entityId: u.id });
    // Entries anonymised by an account deletion are archived like the rest.
    const anonymised = await seed(null, [95], { anonymized: true, ipAddress: null, userAgent: null });

    const report = await archiveExpiredActivity(deps());
    expect(report.cutoff).toBe(new Date(NOW.getTime() - 90 * DAY).toISOString());
    expect(await liveIds([...old, ...userEntity, ...anonymised])).toEqual([]);
    expect((await liveIds(fresh)).sort()).toEqual([...fresh].sort());

    const rows = await archived([...old, ...userEntity, ...anonymised, ...fresh]);
    expect(rows.map((r) => r.id).sort()).toEqual([...old, ...userEntity, ...anonymised].sort());
    for (const r of rows) {
      const text = JSON.stringify(r);
      for (const personal of [u.id, "203.0.113.9", "agent/1.0", "someone@example.com", "1.2.3.4", "req_1"]) expect(text).not.toContain(personal);
      expect(r.metadata).toMatchObject({ nested: { keep: "yes" } });
    }
    const byId = new Map(rows.map((r) => [r.id, r]));
    expect(byId.get(old[1]!)!).toMatchObject({ action: "sandbox.start", entityType: "sandbox", entityId: "sbx_1", originalCreatedAt: new Date(NOW.getTime() - 120 * DAY) });
    expect(byId.get(userEntity[0]!)!.entityId).toBeNull();
  });

  test("a crash between batches loses nothing and duplicates nothing: the next run carries on", async () => {
    const u = await signUp(app());
    const ids = await seed(u.id, Array.from({ length: 230 }, (_, i) => 100 + (i % 7)));
    let batches = 0;
    const crashed = await archiveExpiredActivity(
      deps({
        afterBatch: () => {
          if (++batches === 2) throw new Error("process killed between batches");
        },
      }),
    ).catch((err: Error) => err.message);
    expect(crashed).toBe("process killed between batches");
    // Two whole batches made it; the rest is still where it was.
    expect((await archived(ids)).length).toBe(100);
    expect((await liveIds(ids)).length).toBe(130);

    const report = await archiveExpiredActivity(deps());
    expect(report.archived).toBeGreaterThanOrEqual(130);
    const rows = await archived(ids);
    expect(rows.length).toBe(230);
    expect(new Set(rows.map((r) => r.id)).size).toBe(230);
    expect(await liveIds(ids)).toEqual([]);
  });

  test("a crash inside a batch rolls the whole batch back (one transaction per batch)", async () => {
    const u = await signUp(app());
    const ids = await seed(u.id, Array.from({ length: 120 }, () => 300));
    const poisoned = ids[70]!; // in the second batch of 50
    const db = app().database.db;
    // Forced honestly: the database refuses to delete one row, after that batch's archive insert.
    await db.execute(
      sql.raw(`create or replace function warren_test_refuse_archive() returns trigger language plpgsql as $$
               begin raise exception 'forced failure inside a batch'; end; $$`),
    );
    await db.execute(
      sql.raw(`create trigger warren_test_refuse_archive before delete on activity_log for each row
               when (old.id = '${poisoned}') execute function warren_test_refuse_archive()`),
    );
    try {
      await expect(archiveExpiredActivity(deps())).rejects.toThrow();
    } finally {
      await db.execute(sql.raw("drop trigger warren_test_refuse_archive on activity_log"));
    }
    const firstBatch = ids.slice(0, 50);
    const secondBatch = ids.slice(50, 100);
    expect((await archived(firstBatch)).length).toBe(50);
    // Nothing of the failed batch reached the archive, and all of it is still live.
    expect(await archived(secondBatch)).toEqual([]);
    expect((await liveIds(secondBatch)).length).toBe(50);

    await archiveExpiredActivity(deps());
    expect((await archived(ids)).length).toBe(120);
    expect(await liveIds(ids)).toEqual([]);
  });

  test("two runners at once share the work without duplicates", async () => {
    const u = await signUp(app());
    const ids = await seed(u.id, Array.from({ length: 300 }, () => 150));
    const [a, b] = await Promise.all([archiveExpiredActivity(deps({ batchSize: 40 })), archiveExpiredActivity(deps({ batchSize: 40 }))]);
    expect(a.archived + b.archived).toBeGreaterThanOrEqual(300);
    const rows = await archived(ids);
    expect(rows.length).toBe(300);
    expect(await liveIds(ids)).toEqual([]);
  });

  test("the clock decides: moving it forward archives what has now expired", async () => {
    const u = await signUp(app());
    const ids = await seed(u.id, [80]);
    await archiveExpiredActivity(deps());
    expect(await liveIds(ids)).toEqual(ids);
    await archiveExpiredActivity(deps({ now: () => new Date(NOW.getTime() + 11 * DAY) }));
    expect(await liveIds(ids)).toEqual([]);
    const [row] = await app().database.db.select().from(activityLogArchive).where(eq(activityLogArchive.id, ids[0]!));
    expect(row!.archivedAt.toISOString()).toBe(new Date(NOW.getTime() + 11 * DAY).toISOString());
  });
});
