import { describe, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import { createApp } from "../../src/app";
import { createAuth } from "../../src/auth/auth";
import { openPostgres, queryRows, type Database } from "../../src/database/client";
import { createPageCache, noneMatch, type PageCache } from "../../src/lib/page-cache";
import { json, memoryLogger, readUntilCached, requester, signUp, useTestApp, type TestApp, type TestUser } from "../helpers/app";
import { ENGINE, terminateListeners } from "../helpers/db";

/**
 * The page cache (src/lib/page-cache.ts) may serve a list page again only while nothing it shows
 * has changed. Each test first has a page served from the cache (and checks it was), then changes
 * what the page shows by some path — the API, operator SQL, another instance, the catalogue — and
 * expects the next read to show the change.
 */

const app = useTestApp();

type Instance = Pick<TestApp, "request"> & { pages: PageCache };

function instance(database: Database = app().database, options = { ttlMs: 60_000, maxBytes: 8 * 1024 * 1024 }, now?: () => Date): Instance {
  const { logger } = memoryLogger();
  const auth = createAuth({ config: app().config, db: database.db, logger });
  const pages = createPageCache({ database, logger, options });
  const built = createApp({ config: app().config, database, logger, auth, pages, ...(now ? { now } : {}) });
  return { pages, request: requester((path, init) => built.request(path, init)) };
}

async function createSandbox(i: Instance, u: TestUser, name: string): Promise<string> {
  const res = await i.request("/api/v1/sandboxes", { method: "POST", token: u.token, json: { name } });
  expect(res.status).toBe(201);
  return (await json(res)).id;
}

/** Reads `path` until the cache serves it (its LISTEN becomes live on first use); returns the body. */
const warm = (i: Instance, u: TestUser, path: string) => readUntilCached(i, u.token, path);

const names = (page: { data: Array<{ name: string }> }) => page.data.map((s) => s.name);

/** Changes the user's activity entries (sign-up wrote one) behind the API, and waits until `i` knows. */
async function touchActivity(i: Instance, u: TestUser) {
  await app().database.db.execute(sql`update activity_log set reason = reason where user_id = ${u.id}`);
  await i.pages.settle();
}

describe(`page cache (${ENGINE})`, () => {
  test("a page is served again with its ETag; If-None-Match gets 304 without a body", async () => {
    const a = instance();
    const u = await signUp(a);
    await createSandbox(a, u, "one");
    await warm(a, u, "/api/v1/sandboxes");
    const first = await a.request("/api/v1/sandboxes", { token: u.token });
    const second = await a.request("/api/v1/sandboxes", { token: u.token });
    const etag = first.headers.get("etag");
    expect(etag).toMatch(/^"p[0-9a-z]+"$/);
    expect(second.headers.get("etag")).toBe(etag);
    expect(first.headers.get("cache-control")).toBe("private, no-cache");
    expect(first.headers.get("content-type")).toStartWith("application/json");
    expect(await first.text()).toBe(await second.text());

    for (const header of [etag!, `W/${etag}`, `"other", ${etag}`, "*"]) {
      const res = await a.request("/api/v1/sandboxes", { token: u.token, headers: { "if-none-match": header } });
      expect(res.status).toBe(304);
      expect(await res.text()).toBe("");
      expect(res.headers.get("etag")).toBe(etag);
    }
    const stale = await a.request("/api/v1/sandboxes", { token: u.token, headers: { "if-none-match": '"pold"' } });
    expect(stale.status).toBe(200);
    expect(names(await json(stale))).toEqual(["one"]);
  });

  test("a write through the API shows on the very next read, and changes the ETag", async () => {
    const a = instance();
    const u = await signUp(a);
    const id = await createSandbox(a, u, "before");
    await warm(a, u, "/api/v1/sandboxes");
    const etag = (await a.request("/api/v1/sandboxes", { token: u.token })).headers.get("etag");
    expect((await a.request(`/api/v1/sandboxes/${id}`, { method: "PATCH", token: u.token, json: { name: "after" } })).status).toBe(200);
    const res = await a.request("/api/v1/sandboxes", { token: u.token, headers: { "if-none-match": etag! } });
    expect(res.status).toBe(200);
    expect(names(await json(res))).toEqual(["after"]);
    // The activity page, cached before the write, shows the write's entry too.
    const activity = await warm(a, u, "/api/v1/me/activity?limit=1");
    expect(activity.data[0].action).toBe("sandbox.update");
  });

  test("changes made outside any request (operator SQL here; jobs write the same tables) reach cached pages at commit", async () => {
    const a = instance();
    const u = await signUp(a);
    const id = await createSandbox(a, u, "sql");
    await warm(a, u, "/api/v1/sandboxes");
    await warm(a, u, "/api/v1/me/activity");
    await app().database.db.execute(sql`update sandboxes set name = 'renamed by sql' where id = ${id}`);
    await app().database.db.execute(sql`delete from activity_log where user_id = ${u.id}`);
    await a.pages.settle();
    expect(names(await json(await a.request("/api/v1/sandboxes", { token: u.token })))).toEqual(["renamed by sql"]);
    expect((await json(await a.request("/api/v1/me/activity", { token: u.token }))).data).toEqual([]);
    // A sandbox's add-ons, changed alone, reach its owner's pages as well.
    await warm(a, u, "/api/v1/sandboxes");
    await app().database.db.execute(sql`insert into sandbox_addons (sandbox_id, addon_id) values (${id}, 'cloud')`);
    await a.pages.settle();
    expect((await json(await a.request("/api/v1/sandboxes", { token: u.token }))).data[0].addonIds).toEqual(["cloud"]);
  });

  test("one sandbox is a cached page too; reading a running one from the cache still postpones its idle stop", async () => {
    let clock = Date.now();
    const a = instance(app().database, undefined, () => new Date(clock));
    const u = await signUp(a);
    const id = await createSandbox(a, u, "single");
    const path = `/api/v1/sandboxes/${id}`;
    await warm(a, u, path);
    const etag = (await a.request(path, { token: u.token })).headers.get("etag");
    expect(etag).toMatch(/^"p[0-9a-z]+"$/);
    const again = await a.request(path, { token: u.token, headers: { "if-none-match": etag! } });
    expect(again.status).toBe(304);
    expect(await again.text()).toBe("");
    // Another user gets 404, never the cached page.
    const other = await signUp(a);
    expect((await a.request(path, { token: other.token })).status).toBe(404);
    await app().database.db.execute(sql`update sandboxes set description = 'by sql' where id = ${id}`);
    await a.pages.settle();
    expect((await json(await a.request(path, { token: u.token }))).description).toBe("by sql");

    // Running, last used ten minutes ago: the next read (a miss) marks it used now …
    const lastUse = async () =>
      new Date((await queryRows<{ at: string | Date }>(app().database.db, sql`select last_activity_at as at from sandboxes where id = ${id}`))[0]!.at).getTime();
    const tenMinutesAgo = new Date(clock - 10 * 60_000).toISOString();
    await app().database.db.execute(
      sql`update sandboxes set status = 'running', desired_status = 'running', last_activity_at = ${tenMinutesAgo}::timestamptz where id = ${id}`,
    );
    await a.pages.settle();
    expect((await json(await a.request(path, { token: u.token }))).lastActivityAt).toBe(tenMinutesAgo);
    expect(await lastUse()).toBe(clock);
    await a.pages.settle();
    expect((await json(await a.request(path, { token: u.token }))).lastActivityAt).toBe(new Date(clock).toISOString());
    // … and five minutes on, a read served from the cache marks it used again.
    await warm(a, u, path);
    clock += 5 * 60_000;
    const hits = a.pages.stats().hits;
    expect((await a.request(path, { token: u.token })).status).toBe(200);
    expect(a.pages.stats().hits).toBe(hits + 1);
    expect(await lastUse()).toBe(clock);
  });

  test("the preferences document is cached with its version as ETag; writes by any path reach it", async () => {
    const a = instance();
    const u = await signUp(a);
    const path = "/api/v1/me/preferences";
    expect((await warm(a, u, path)).version).toBe(0);
    const cached = await a.request(path, { token: u.token });
    expect(cached.headers.get("etag")).toBe('"0"');
    expect((await a.request(path, { token: u.token, headers: { "if-none-match": '"0"' } })).status).toBe(304);
    // A write through the API: the next read shows it, with the ETag that If-Match takes.
    const patched = await a.request(path, { method: "PATCH", token: u.token, json: { themeMode: "dark" } });
    expect(patched.status).toBe(200);
    const after = await a.request(path, { token: u.token, headers: { "if-none-match": '"0"' } });
    expect(after.status).toBe(200);
    expect(after.headers.get("etag")).toBe('"1"');
    expect(await json(after)).toMatchObject({ themeMode: "dark", version: 1 });
    // Operator SQL.
    await warm(a, u, path);
    await app().database.db.execute(sql`update user_preferences set theme_mode = 'light', version = 2 where user_id = ${u.id}`);
    await a.pages.settle();
    expect(await json(await a.request(path, { token: u.token }))).toMatchObject({ themeMode: "light", version: 2 });
    const conditional = await a.request(path, { method: "PATCH", token: u.token, json: { themeMode: "system" }, headers: { "if-match": '"2"' } });
    expect(conditional.status).toBe(200);
  });

  test("a change drops only pages of its kind: a preferences change leaves the sandbox list cached", async () => {
    const a = instance();
    const u = await signUp(a);
    const id = await createSandbox(a, u, "steady");
    await warm(a, u, "/api/v1/sandboxes");
    await warm(a, u, "/api/v1/me/activity?limit=1");
    // A write of another kind (its activity entry is the only page-visible change).
    expect((await a.request("/api/v1/me/preferences", { method: "PATCH", token: u.token, json: { themeMode: "dark" } })).status).toBe(200);
    const hits = a.pages.stats().hits;
    expect(names(await json(await a.request("/api/v1/sandboxes", { token: u.token })))).toEqual(["steady"]);
    expect(a.pages.stats().hits).toBe(hits + 1);
    expect((await json(await a.request("/api/v1/me/activity?limit=1", { token: u.token }))).data[0].action).toBe("preferences.update");
    expect(a.pages.stats().hits).toBe(hits + 1);
    // A chat page of the sandbox: a change to the sandbox drops it (its chat lists answer for it).
    await warm(a, u, `/api/v1/sandboxes/${id}/chat/sessions`);
    await app().database.db.execute(sql`update sandboxes set name = 'renamed' where id = ${id}`);
    await a.pages.settle();
    const before = a.pages.stats().hits;
    expect((await a.request(`/api/v1/sandboxes/${id}/chat/sessions`, { token: u.token })).status).toBe(200);
    expect(a.pages.stats().hits).toBe(before);
  });

  test("pages are the caller's own: another user never gets them, and their writes leave them cached", async () => {
    const a = instance();
    const u = await signUp(a);
    const v = await signUp(a);
    await createSandbox(a, u, "mine");
    await warm(a, u, "/api/v1/sandboxes");
    expect((await json(await a.request("/api/v1/sandboxes", { token: v.token }))).data).toEqual([]);
    await createSandbox(a, v, "theirs");
    await a.pages.settle();
    const hits = a.pages.stats().hits;
    expect(names(await json(await a.request("/api/v1/sandboxes", { token: u.token })))).toEqual(["mine"]);
    expect(a.pages.stats().hits).toBe(hits + 1);
    expect(names(await json(await a.request("/api/v1/sandboxes", { token: v.token })))).toEqual(["theirs"]);
  });

  test("a change to the add-on catalogue drops every page", async () => {
    const a = instance();
    const u = await signUp(a);
    await createSandbox(a, u, "catalogue");
    await warm(a, u, "/api/v1/sandboxes");
    expect(a.pages.stats().entries).toBeGreaterThan(0);
    await app().database.db.execute(sql`update container_addons set description = description where id = 'cloud'`);
    await a.pages.settle();
    expect(a.pages.stats().entries).toBe(0);
  });

  test("a read that overlaps a change of its user does not keep what it read", async () => {
    const a = instance();
    const u = await signUp(a);
    await warm(a, u, "/api/v1/me/activity");
    let renders = 0;
    const render = async () => {
      renders++;
      // The change lands while this read is in flight.
      await touchActivity(a, u);
      return { n: renders };
    };
    expect(JSON.parse((await a.pages.get(u.id, "activity", "/raced", render)).body)).toEqual({ n: 1 });
    expect(JSON.parse((await a.pages.get(u.id, "activity", "/raced", render)).body)).toEqual({ n: 2 });
    // Without a change in flight the second read is a hit.
    let quiet = 0;
    const calm = async () => ({ n: ++quiet });
    await a.pages.get(u.id, "activity", "/calm", calm);
    await a.pages.get(u.id, "activity", "/calm", calm);
    expect(quiet).toBe(1);
  });

  test("concurrent misses of one page share one render, unless the user changed in between", async () => {
    const a = instance();
    const u = await signUp(a);
    await warm(a, u, "/api/v1/me/activity");
    let renders = 0;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const slow = async () => {
      const n = ++renders;
      await gate;
      return { n };
    };
    const first = a.pages.get(u.id, "activity", "/flight", slow);
    const second = a.pages.get(u.id, "activity", "/flight", slow);
    await touchActivity(a, u);
    // Arrives after the change: it must not be handed the render that began before it.
    const third = a.pages.get(u.id, "activity", "/flight", slow);
    release();
    const bodies = (await Promise.all([first, second, third])).map((p) => JSON.parse(p.body));
    expect(bodies).toEqual([{ n: 1 }, { n: 1 }, { n: 2 }]);
    expect(renders).toBe(2);
    expect(a.pages.stats().shared).toBeGreaterThanOrEqual(1);
  });

  test("memory is bounded by bytes: the least recently used pages go first", async () => {
    const a = instance(app().database, { ttlMs: 60_000, maxBytes: 400_000 });
    const u = await signUp(a);
    await warm(a, u, "/api/v1/me/activity");
    const big = async () => ({ text: "x".repeat(40_000) });
    for (let n = 0; n < 10; n++) await a.pages.get(u.id, "activity", `/big/${n}`, big);
    const { bytes, entries } = a.pages.stats();
    expect(bytes).toBeLessThanOrEqual(400_000);
    expect(entries).toBeLessThan(10);
    // The newest is still there, the oldest is gone.
    let renders = 0;
    const counted = async () => {
      renders++;
      return { text: "x".repeat(40_000) };
    };
    await a.pages.get(u.id, "activity", "/big/9", counted);
    expect(renders).toBe(0);
    await a.pages.get(u.id, "activity", "/big/0", counted);
    expect(renders).toBe(1);
  });

  test("a waiter hears its user's sandbox changes from any writer (nextChange), and /wait answers on one", async () => {
    const a = instance();
    const u = await signUp(a);
    const other = await signUp(a);
    const id = await createSandbox(a, u, "watched");
    const theirs = await createSandbox(a, other, "not watched");
    await warm(a, u, "/api/v1/sandboxes");
    const next = a.pages.nextChange(u.id, "sandboxes")!;
    expect(next).not.toBeNull();
    let heard = false;
    void next.changed.then(() => (heard = true));
    // Another user's sandbox, and this user's preferences, are not what it waits for.
    await app().database.db.execute(sql`update sandboxes set name = 'theirs renamed' where id = ${theirs}`);
    await a.request("/api/v1/me/preferences", { method: "PATCH", token: u.token, json: { themeMode: "dark" } });
    await a.pages.settle();
    await Bun.sleep(0);
    expect(heard).toBe(false);
    // A change by operator SQL (as another instance's worker writes a status) wakes it.
    await app().database.db.execute(sql`update sandboxes set name = 'renamed' where id = ${id}`);
    await a.pages.settle();
    await next.changed;
    next.cancel();

    // /wait sleeps on those changes: a status written behind the API ends it, reached.
    await app().database.db.execute(sql`update sandboxes set status = 'starting' where id = ${id}`);
    const wait = a.request(`/api/v1/sandboxes/${id}/wait?status=running&timeoutSeconds=60`, { token: u.token });
    await Bun.sleep(200);
    await app().database.db.execute(sql`update sandboxes set status = 'running' where id = ${id}`);
    const answer = await json(await wait);
    expect(answer).toMatchObject({ reached: true, sandbox: { id, status: "running" } });
    await app().database.db.execute(sql`update sandboxes set status = 'stopped' where id = ${id}`);
  });

  test("with the cache off (TTL 0) every page is read from the database", async () => {
    const off = instance(app().database, { ttlMs: 0, maxBytes: 1024 * 1024 });
    const u = await signUp(off);
    await createSandbox(off, u, "uncached");
    for (let n = 0; n < 3; n++) {
      const res = await off.request("/api/v1/sandboxes", { token: u.token });
      expect(res.status).toBe(200);
      expect(res.headers.get("etag")).toMatch(/^"p/);
    }
    expect(off.pages.stats()).toMatchObject({ hits: 0, entries: 0, enabled: false });
    // Nothing to sleep on: a waiter polls.
    expect(off.pages.nextChange(u.id, "sandboxes")).toBeNull();
  });

  test("If-None-Match follows RFC 9110's weak comparison", () => {
    expect(noneMatch(undefined, '"pa"')).toBe(false);
    expect(noneMatch('"pa"', '"pa"')).toBe(true);
    expect(noneMatch('W/"pa"', '"pa"')).toBe(true);
    expect(noneMatch(' "pb" , "pa" ', '"pa"')).toBe(true);
    expect(noneMatch('"pb"', '"pa"')).toBe(false);
    expect(noneMatch("*", '"pa"')).toBe(true);
  });
});

describe.skipIf(ENGINE !== "postgres")("page cache across instances (postgres)", () => {
  test("a write on one instance reaches another instance's cached page at commit", async () => {
    const second = openPostgres(app().database.url!, 2);
    try {
      const a = instance();
      const b = instance(second);
      const u = await signUp(a);
      const id = await createSandbox(a, u, "shared");
      await warm(b, u, "/api/v1/sandboxes");
      expect((await a.request(`/api/v1/sandboxes/${id}`, { method: "PATCH", token: u.token, json: { name: "seen everywhere" } })).status).toBe(200);
      await b.pages.settle();
      expect(names(await json(await b.request("/api/v1/sandboxes", { token: u.token })))).toEqual(["seen everywhere"]);
    } finally {
      await second.close();
    }
  });

  test("while the LISTEN connection is down pages are read from the database; the cache comes back by itself", async () => {
    const second = openPostgres(app().database.url!, 2);
    try {
      const b = instance(second);
      const u = await signUp(b);
      const id = await createSandbox(b, u, "listening");
      await warm(b, u, "/api/v1/sandboxes");
      expect(b.pages.stats().enabled).toBe(true);
      await terminateListeners(app().database.db);
      const deadline = Date.now() + 5000;
      while (b.pages.stats().enabled && Date.now() < deadline) await Bun.sleep(5);
      // Whether or not it has reconnected yet, a change made now must be seen.
      await app().database.db.execute(sql`update sandboxes set name = 'changed while deaf' where id = ${id}`);
      expect(names(await json(await b.request("/api/v1/sandboxes", { token: u.token })))).toEqual(["changed while deaf"]);
      const back = Date.now() + 10_000;
      while (!b.pages.stats().enabled && Date.now() < back) await Bun.sleep(20);
      expect(b.pages.stats().enabled).toBe(true);
      await warm(b, u, "/api/v1/sandboxes");
    } finally {
      await second.close();
    }
  });
});
