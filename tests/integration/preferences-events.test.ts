import { describe, expect, test } from "bun:test";
import postgres from "postgres";
import { createApp } from "../../src/app";
import { createAuth } from "../../src/auth/auth";
import { openPostgres, type Database } from "../../src/database/client";
import { CHANGE_CHANNEL, createChangeNotifier, type ChangeEvent, type ChangeNotifier } from "../../src/services/events/notifier";
import { memoryLogger, requester, signInAgain, signUp, useTestApp, type TestApp, type TestUser } from "../helpers/app";
import { ENGINE, terminateListeners } from "../helpers/db";
import { expectError } from "../helpers/expect";
import { openEventStream } from "../helpers/sse";

const app = useTestApp({ env: { EVENTS_HEARTBEAT_MS: "100" } });
const PATH = "/api/v1/me/preferences";

const secondDevice = (u: TestUser) => signInAgain(app(), u);

const patch = (t: Pick<TestApp, "request">, token: string, body: unknown) => t.request(PATH, { method: "PATCH", token, json: body });

/** A second app on the same database with its own notifier, as another Warren instance would be. */
function secondInstance(events: ChangeNotifier, database: Database = app().database): Pick<TestApp, "request"> & { app: ReturnType<typeof createApp> } {
  const { logger } = memoryLogger();
  const auth = createAuth({ config: app().config, db: database.db, logger });
  const instance = createApp({ config: app().config, database, logger, auth, events });
  return {
    app: instance,
    request: requester((path, init) => instance.request(path, init)),
  };
}

/** Wraps a notifier to count live subscriptions, so a test can see a stream let go of its own. */
function counting(inner: ChangeNotifier): ChangeNotifier & { active(): number } {
  let active = 0;
  return {
    transaction: (db, fn) => inner.transaction(db, fn),
    close: () => inner.close(),
    async subscribe(topic, userId, subscriber) {
      const unsubscribe = await inner.subscribe(topic, userId, subscriber);
      active++;
      let done = false;
      return () => {
        if (!done) active--;
        done = true;
        unsubscribe();
      };
    },
    active: () => active,
  };
}

async function eventually(check: () => boolean, timeoutMs = 2000) {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("condition not reached in time");
    await Bun.sleep(10);
  }
}

describe(`event stream (${ENGINE})`, () => {
  test("pushes a change made through another session; another user's change is not sent", async () => {
    const u = await signUp(app());
    const other = await signUp(app());
    const phone = await secondDevice(u);
    const stream = await openEventStream(app(), `${PATH}/events`, { token: u.token });
    try {
      expect(stream.res.status).toBe(200);
      expect(stream.res.headers.get("content-type")).toContain("text/event-stream");
      const first = await stream.nextEvent();
      expect(first.event).toBe("preferences");
      expect(first.id).toBe("0");
      await patch(app(), other.token, { themeMode: "dark" });
      await patch(app(), phone, { themePreset: "from-phone" });
      const pushed = await stream.nextEvent(1500);
      expect(pushed.id).toBe("1");
      expect(JSON.parse(pushed.data!)).toMatchObject({ themePreset: "from-phone", version: 1 });
      expect(pushed.data).not.toContain(u.email);
    } finally {
      stream.close();
    }
  });

  test("changes made outside the preferences routes (default model, deleting its credential) reach the stream too", async () => {
    const u = await signUp(app());
    const phone = await secondDevice(u);
    const stream = await openEventStream(app(), `${PATH}/events`, { token: u.token });
    try {
      expect((await stream.nextEvent()).id).toBe("0");
      const key = await app().request("/api/v1/providers/anthropic/credential", { method: "PUT", token: phone, json: { apiKey: "sk-test-0123456789abcd" } });
      expect(key.status).toBe(201);
      const model = { providerId: "anthropic", modelId: "claude-3-haiku-20240307" };
      expect((await app().request("/api/v1/me/default-model", { method: "PUT", token: phone, json: model })).status).toBe(200);
      const set = await stream.nextEvent(1500);
      expect(JSON.parse(set.data!)).toMatchObject({ defaultProviderId: "anthropic", defaultModelId: "claude-3-haiku-20240307" });
      expect((await app().request("/api/v1/providers/anthropic/credential", { method: "DELETE", token: phone })).status).toBe(200);
      const cleared = await stream.nextEvent(1500);
      expect(Number(cleared.id)).toBeGreaterThan(Number(set.id));
      expect(JSON.parse(cleared.data!)).toMatchObject({ defaultProviderId: null, defaultModelId: null });
      expect(cleared.data).not.toContain("sk-test");
    } finally {
      stream.close();
    }
  });

  test("Last-Event-ID: an older version gets the current document at once, the current one gets nothing", async () => {
    const u = await signUp(app());
    await patch(app(), u.token, { themeMode: "dark" });
    await patch(app(), u.token, { themeMode: "light" });
    const behind = await openEventStream(app(), `${PATH}/events`, { token: u.token, headers: { "last-event-id": "1" } });
    try {
      const event = await behind.nextEvent();
      expect(event.id).toBe("2");
      expect(JSON.parse(event.data!).themeMode).toBe("light");
    } finally {
      behind.close();
    }
    const upToDate = await openEventStream(app(), `${PATH}/events`, { token: u.token, headers: { "last-event-id": "2" } });
    try {
      // Only comments (the connect line, then heartbeats every 100 ms here) until something changes.
      for (let i = 0; i < 3; i++) {
        const message = await upToDate.nextMessage();
        expect(message?.data).toBeUndefined();
        expect(message?.comments.length).toBe(1);
      }
      await patch(app(), u.token, { themeMode: "system" });
      expect((await upToDate.nextEvent()).id).toBe("3");
    } finally {
      upToDate.close();
    }
  });

  test("sends heartbeat comments on an idle stream", async () => {
    const u = await signUp(app());
    const stream = await openEventStream(app(), `${PATH}/events`, { token: u.token, headers: { "last-event-id": "0" } });
    try {
      const seen: string[] = [];
      for (let i = 0; i < 3; i++) seen.push(...((await stream.nextMessage(1000))?.comments ?? []));
      expect(seen).toContain("heartbeat");
    } finally {
      stream.close();
    }
  });
});

describe(`event stream lifecycle (${ENGINE})`, () => {
  test("revoking the device that holds a stream ends it, within a heartbeat", async () => {
    const u = await signUp(app());
    const phone = await secondDevice(u);
    const stream = await openEventStream(app(), `${PATH}/events`, { token: phone });
    try {
      await stream.nextEvent();
      const list = await (await app().request("/api/v1/me/sessions", { token: u.token })).json();
      const phoneSession = (list as { data: Array<{ id: string; current: boolean }> }).data.find((s) => !s.current)!;
      const revoked = await app().request(`/api/v1/me/sessions/${phoneSession.id}`, { method: "DELETE", token: u.token });
      expect(revoked.status).toBe(204);
      const last = await stream.nextEvent(1000);
      expect(last.event).toBe("error");
      expect(JSON.parse(last.data!)).toEqual({ code: "UNAUTHENTICATED" });
      expect(await stream.ended(1000)).toBe(true);
    } finally {
      stream.close();
    }
  });

  test("a client disconnecting releases its subscription", async () => {
    const events = counting(createChangeNotifier(app().database, memoryLogger().logger));
    const instance = secondInstance(events);
    const u = await signUp(app());
    const stream = await openEventStream(instance, `${PATH}/events`, { token: u.token });
    await stream.nextEvent();
    expect(events.active()).toBe(1);
    stream.close();
    await eventually(() => events.active() === 0);
    await events.close();
  });

  test("a HEAD request gets the stream's headers and releases its subscription at once", async () => {
    // Hono answers HEAD by running the GET route and dropping its body; dropped uncancelled, the
    // stream's handler waited forever on its first write, one subscription more per request.
    const events = counting(createChangeNotifier(app().database, memoryLogger().logger));
    const instance = secondInstance(events);
    const u = await signUp(app());
    for (let i = 0; i < 3; i++) {
      const res = await instance.request(`${PATH}/events`, { method: "HEAD", token: u.token });
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toContain("text/event-stream");
      expect(res.headers.get("content-length")).toBeNull();
      expect(res.body).toBeNull();
    }
    await eventually(() => events.active() === 0);
    await events.close();
  });

  test("closing the notifier (server shutdown) ends open streams cleanly", async () => {
    const events = counting(createChangeNotifier(app().database, memoryLogger().logger));
    const instance = secondInstance(events);
    const u = await signUp(app());
    const stream = await openEventStream(instance, `${PATH}/events`, { token: u.token });
    await stream.nextEvent();
    await events.close();
    expect(await stream.ended()).toBe(true);
    expect(events.active()).toBe(0);
  });

  test("a rolled-back write publishes nothing; a committed one reaches subscribers", async () => {
    const events = createChangeNotifier(app().database, memoryLogger().logger);
    const seen: ChangeEvent[] = [];
    const unsubscribe = await events.subscribe("preferences", "usr_commit_test", { onChange: (e) => seen.push(e) });
    const event: ChangeEvent = { topic: "preferences", userId: "usr_commit_test", version: 1 };
    await expect(
      events.transaction(app().database.db, async (_tx, publish) => {
        await publish(event);
        throw new Error("roll back");
      }),
    ).rejects.toThrow("roll back");
    await Bun.sleep(300);
    expect(seen).toEqual([]);
    await events.transaction(app().database.db, (_tx, publish) => publish({ ...event, version: 2 }));
    await eventually(() => seen.length === 1);
    expect(seen).toEqual([{ ...event, version: 2 }]);
    unsubscribe();
    await events.close();
  });
});

describe.skipIf(ENGINE !== "postgres")("across instances (PostgreSQL LISTEN/NOTIFY)", () => {
  test("a listener connection lost and re-established loses no change: streams re-read", async () => {
    const u = await signUp(app());
    const log = memoryLogger();
    const events = createChangeNotifier(app().database, log.logger);
    const instance = secondInstance(events);
    const stream = await openEventStream(instance, `${PATH}/events`, { token: u.token, headers: { "last-event-id": "0" } });
    try {
      const db = app().database.db;
      // The server drops the LISTEN connection (a failover, an idle-killer); the listener reconnects.
      expect(await terminateListeners(db)).toBeGreaterThan(0);
      expect((await patch(app(), u.token, { themePreset: "during-reconnect" })).status).toBe(200);
      const event = await stream.nextEvent(3000);
      expect(JSON.parse(event.data!)).toMatchObject({ themePreset: "during-reconnect", version: 1 });
      await eventually(() => log.lines.some((l) => l.includes("change listener reconnected")), 5000);
    } finally {
      stream.close();
      await events.close();
    }
  });

  test("a write on one instance reaches a stream on another; the NOTIFY payload is ids and a version only", async () => {
    const url = app().database.url!;
    const otherDatabase = openPostgres(url, 2);
    const otherEvents = createChangeNotifier(otherDatabase, memoryLogger().logger);
    const other = secondInstance(otherEvents, otherDatabase);
    const spy = postgres(url, { max: 1, onnotice: () => {} });
    const payloads: string[] = [];
    try {
      await spy.listen(CHANGE_CHANNEL, (payload) => payloads.push(payload));
      const u = await signUp(app());
      const phone = await secondDevice(u);
      const stream = await openEventStream(other, `${PATH}/events`, { token: u.token });
      try {
        expect((await stream.nextEvent()).id).toBe("0");
        const res = await patch(app(), phone, { themeMode: "dark", themePreset: "sent-from-instance-a" });
        expect(res.status).toBe(200);
        const pushed = await stream.nextEvent(1500);
        expect(JSON.parse(pushed.data!)).toMatchObject({ themePreset: "sent-from-instance-a", version: 1 });
      } finally {
        stream.close();
      }
      await eventually(() => payloads.length === 1);
      expect(JSON.parse(payloads[0]!)).toEqual({ t: "preferences", u: u.id, v: 1 });
    } finally {
      await spy.end({ timeout: 5 });
      await otherEvents.close();
      await otherDatabase.close();
    }
  });
});

describe("open event streams per user", () => {
  // Two at once per user here (default 20).
  const capped = useTestApp({ env: { EVENTS_MAX_STREAMS_PER_USER: "2" } });

  test("over the cap a new stream is 429 in the envelope before it starts; closing one frees its place; other users are not affected", async () => {
    const u = await signUp(capped());
    const other = await signUp(capped());
    const first = await openEventStream(capped(), `${PATH}/events`, { token: u.token });
    const second = await openEventStream(capped(), `${PATH}/events`, { token: u.token });
    expect((await first.nextEvent()).event).toBe("preferences");
    expect((await second.nextEvent()).event).toBe("preferences");

    const refused = await capped().request(`${PATH}/events`, { token: u.token });
    const error = await expectError(refused, 429, "RATE_LIMITED");
    expect(error.message).toBe("At most 2 event streams may be open at once per user; close one (another tab or device) first");
    expect(error.details).toEqual({ maxOpenStreams: 2 });

    const theirs = await openEventStream(capped(), `${PATH}/events`, { token: other.token });
    expect((await theirs.nextEvent()).event).toBe("preferences");

    first.close();
    // The server lets go of the closed stream's place once its loop ends.
    let third: Awaited<ReturnType<typeof openEventStream>> | undefined;
    const deadline = Date.now() + 3000;
    while (!third) {
      const attempt = await openEventStream(capped(), `${PATH}/events`, { token: u.token });
      if (attempt.res.status === 200) third = attempt;
      else {
        attempt.close();
        if (Date.now() > deadline) throw new Error("the closed stream's place was never freed");
        await Bun.sleep(20);
      }
    }
    expect((await third.nextEvent()).event).toBe("preferences");
    for (const s of [second, third, theirs]) s.close();
  });
});
