import { describe, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import { createApp } from "../../src/app";
import { createAuth } from "../../src/auth/auth";
import { createSessionResolver, type SessionResolver } from "../../src/auth/session-cache";
import { openPostgres, queryRows, type Database } from "../../src/database/client";
import { json, memoryLogger, requester, signInAgain, signUp, useTestApp, type TestApp } from "../helpers/app";
import { expectError } from "../helpers/expect";
import { ENGINE, terminateListeners } from "../helpers/db";

/**
 * The session cache (src/auth/session-cache.ts) must never let a signed-out or revoked session
 * through: not on the instance that signed out, not on another instance, not while its
 * notification connection is down. Every test first warms the cache (and checks it was used),
 * then changes the session and expects the very next request to be refused.
 */

const app = useTestApp();

type Instance = Pick<TestApp, "request" | "config"> & { sessions: SessionResolver };

/** An app instance on `database` whose session resolver the test can observe. */
function instance(database: Database = app().database): Instance {
  const { logger } = memoryLogger();
  const auth = createAuth({ config: app().config, db: database.db, logger });
  const sessions = createSessionResolver({
    auth,
    database,
    secret: app().config.authSecret,
    logger,
    options: { ttlMs: 60_000, maxEntries: 1000 },
  });
  const built = createApp({ config: app().config, database, logger, auth, sessions });
  return { sessions, config: app().config, request: requester((path, init) => built.request(path, init)) };
}

/** Requests until the cache serves `token` (its LISTEN becomes live on first use). */
async function warm(i: Instance, init: { token?: string; cookie?: string }) {
  const before = i.sessions.stats().hits;
  for (let n = 0; n < 50 && i.sessions.stats().hits < before + 2; n++) {
    const res = await i.request("/api/v1/me", { ...(init.token ? { token: init.token } : {}), headers: init.cookie ? { cookie: init.cookie } : {} });
    expect(res.status).toBe(200);
    if (n > 0) await Bun.sleep(5);
  }
  expect(i.sessions.stats().hits).toBeGreaterThanOrEqual(before + 2);
}

describe(`session cache (${ENGINE})`, () => {
  test("a cached bearer session is refused on the very next request after sign-out", async () => {
    const a = instance();
    const u = await signUp(a);
    await warm(a, { token: u.token });
    const out = await a.request("/api/auth/sign-out", { method: "POST", token: u.token, headers: { origin: app().config.publicUrl } });
    expect(out.status).toBe(200);
    await expectError(await a.request("/api/v1/me", { token: u.token }), 401, "UNAUTHENTICATED");
  });

  test("a cached cookie session is refused right after the device is revoked", async () => {
    const a = instance();
    const u = await signUp(a);
    const other = await signInAgain(a, u);
    await warm(a, { cookie: u.cookie });
    const list = await json(await a.request("/api/v1/me/sessions", { token: other }));
    const target = list.data.find((s: { current: boolean }) => !s.current);
    expect(target).toBeDefined();
    const res = await a.request(`/api/v1/me/sessions/${target.id}`, { method: "DELETE", token: other });
    expect(res.status).toBe(204);
    await expectError(await a.request("/api/v1/me", { headers: { cookie: u.cookie } }), 401, "UNAUTHENTICATED");
    // The session that revoked it is untouched.
    expect((await a.request("/api/v1/me", { token: other })).status).toBe(200);
  });

  test("a session deleted behind Warren's back (operator SQL) is dropped from the cache", async () => {
    const a = instance();
    const u = await signUp(a);
    await warm(a, { token: u.token });
    await app().database.db.execute(sql`delete from sessions where user_id = ${u.id}`);
    await a.sessions.settle();
    await expectError(await a.request("/api/v1/me", { token: u.token }), 401, "UNAUTHENTICATED");
  });

  test("/me, answered from the resolved session, shows a profile changed anywhere at once", async () => {
    const a = instance();
    const u = await signUp(a);
    await warm(a, { token: u.token });
    // Through the API: the request settles before it answers.
    const upd = await a.request("/api/v1/me", { method: "PATCH", token: u.token, json: { name: "Renamed Once" } });
    expect(upd.status).toBe(200);
    expect((await json(await a.request("/api/v1/me", { token: u.token }))).name).toBe("Renamed Once");
    // Behind Warren's back (operator SQL): the trigger's notification drops the cached user.
    await app().database.db.execute(sql`update users set name = 'Renamed Twice' where id = ${u.id}`);
    await a.sessions.settle();
    expect((await json(await a.request("/api/v1/me", { token: u.token }))).name).toBe("Renamed Twice");
  });

  test("an expired session is refused even when cached, and Better Auth removes it", async () => {
    const a = instance();
    const u = await signUp(a);
    await warm(a, { token: u.token });
    await app().database.db.execute(sql`update sessions set expires_at = now() - interval '1 second' where user_id = ${u.id}`);
    await a.sessions.settle();
    await expectError(await a.request("/api/v1/me", { token: u.token }), 401, "UNAUTHENTICATED");
    const rows = await queryRows(app().database.db, sql`select id from sessions where user_id = ${u.id}`);
    expect(rows).toHaveLength(0);
  });

  test("a session due for its sliding refresh is extended by Better Auth, and keeps working", async () => {
    const a = instance();
    const u = await signUp(a);
    // 29 days old out of 30: past Better Auth's one-day update age.
    await app().database.db.execute(sql`update sessions set expires_at = now() + interval '1 day' where user_id = ${u.id}`);
    expect((await a.request("/api/v1/me", { token: u.token })).status).toBe(200);
    const [row] = await queryRows<{ days: number }>(
      app().database.db,
      sql`select extract(epoch from expires_at - now()) / 86400 as days from sessions where user_id = ${u.id}`,
    );
    expect(Number(row!.days)).toBeGreaterThan(29);
    await warm(a, { token: u.token });
  });

  test("a forged signature is refused, a bare token is accepted as the bearer plugin does", async () => {
    const a = instance();
    const u = await signUp(a);
    const [token] = u.token.split(".");
    await expectError(await a.request("/api/v1/me", { token: `${token}.${"A".repeat(43)}=` }), 401, "UNAUTHENTICATED");
    expect((await a.request("/api/v1/me", { token: token! })).status).toBe(200);
    await expectError(await a.request("/api/v1/me", { headers: { cookie: `better-auth.session_token=${token}` } }), 401, "UNAUTHENTICATED");
  });

  test("with the cache off (TTL 0) every request reads the database", async () => {
    const { logger } = memoryLogger();
    const auth = createAuth({ config: app().config, db: app().database.db, logger });
    const sessions = createSessionResolver({
      auth,
      database: app().database,
      secret: app().config.authSecret,
      logger,
      options: { ttlMs: 0, maxEntries: 1000 },
    });
    const built = createApp({ config: app().config, database: app().database, logger, auth, sessions });
    const off = { request: requester((path, init) => built.request(path, init)) };
    const u = await signUp(off);
    for (let n = 0; n < 3; n++) expect((await off.request("/api/v1/me", { token: u.token })).status).toBe(200);
    expect(sessions.stats()).toMatchObject({ hits: 0, enabled: false });
  });
});

describe.skipIf(ENGINE !== "postgres")("session cache across instances (postgres)", () => {
  test("a sign-out on one instance is refused at once by another instance's warm cache", async () => {
    const second = openPostgres(app().database.url!, 2);
    try {
      const a = instance();
      const b = instance(second);
      const u = await signUp(a);
      await warm(a, { token: u.token });
      await warm(b, { token: u.token });
      const out = await a.request("/api/auth/sign-out", { method: "POST", token: u.token, headers: { origin: app().config.publicUrl } });
      expect(out.status).toBe(200);
      // a answered once its own LISTEN connection had the sign-out's notification (settle). b's
      // connection gets the same notification from PostgreSQL at the same commit, but nothing
      // orders the two deliveries: under load b's can come a few milliseconds later, and a read on
      // b inside that window is still served from its cache. Once the notification has reached b
      // (its own settle: every notification committed before it has arrived), b refuses the token.
      await b.sessions.settle();
      await expectError(await b.request("/api/v1/me", { token: u.token }), 401, "UNAUTHENTICATED");
    } finally {
      await second.close();
    }
  });

  test("while the LISTEN connection is down the cache is bypassed; it comes back by itself", async () => {
    const second = openPostgres(app().database.url!, 2);
    try {
      const b = instance(second);
      const u = await signUp(b);
      await warm(b, { token: u.token });
      expect(b.sessions.stats().enabled).toBe(true);
      await terminateListeners(app().database.db);
      const deadline = Date.now() + 5000;
      while (b.sessions.stats().enabled && Date.now() < deadline) await Bun.sleep(5);
      // Whether or not it has reconnected yet, a revocation now must be seen.
      await app().database.db.execute(sql`delete from sessions where user_id = ${u.id}`);
      await expectError(await b.request("/api/v1/me", { token: u.token }), 401, "UNAUTHENTICATED");
      const v = await signInAgain(b, u);
      const back = Date.now() + 10_000;
      while (!b.sessions.stats().enabled && Date.now() < back) await Bun.sleep(20);
      expect(b.sessions.stats().enabled).toBe(true);
      await warm(b, { token: v });
    } finally {
      await second.close();
    }
  });
});
