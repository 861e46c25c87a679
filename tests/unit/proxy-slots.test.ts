import { describe, expect, test } from "bun:test";
import { Hono } from "hono";
import type { AppEnv, ServiceContext } from "../../src/context";
import { createLogger } from "../../src/lib/logger";
import type { UserSlots } from "../../src/lib/user-slots";
import { errorHandler } from "../../src/middleware/errors";
import { limitProxied, proxySlots } from "../../src/middleware/proxy-slots";
import { bridgeWebSocket, proxyWebSocket } from "../../src/routes/upstream-proxy";

/**
 * A small Hono app with Warren's error envelope and the cap on paths under /proxied. The user
 * comes from the x-user header (alice without one) here; in Warren, from the session.
 */
function cappedApp(slots: UserSlots): Hono<AppEnv> {
  const a = new Hono<AppEnv>();
  a.onError(errorHandler(createLogger("silent", { write() {} })));
  a.use((c, next) => {
    c.set("requestId", "req_test");
    c.set("scope", { userId: c.req.header("x-user") ?? "alice" } as ServiceContext);
    return next();
  });
  a.use(limitProxied(slots, (path) => path.startsWith("/proxied")));
  return a;
}

// The per-user cap on what is open through the sandbox proxies (src/middleware/proxy-slots.ts),
// whose "proxied" route streams a body only as fast as it is read, as an upstream's does.
function proxy(max: number) {
  const slots = proxySlots(max);
  const a = cappedApp(slots);
  a.get("/proxied/stream", () => {
    let n = 0;
    return new Response(new ReadableStream({ pull: (ctrl) => (n++ < 3 ? ctrl.enqueue(new TextEncoder().encode(`chunk ${n}\n`)) : ctrl.close()) }, { highWaterMark: 0 }));
  });
  a.get("/proxied/fails", () => {
    throw new Error("the sandbox went away");
  });
  a.get("/proxied/empty", (c) => c.body(null, 204));
  a.get("/other", (c) => c.text("not proxied"));
  const get = (path: string, user = "alice") => a.request(path, { headers: { "x-user": user } });
  return { slots, get };
}

describe("open proxied requests per user", () => {
  test("a request holds its slot until its body is read or cancelled; one over the cap is 429 before it is forwarded", async () => {
    const { slots, get } = proxy(2);
    const first = await get("/proxied/stream");
    const second = await get("/proxied/stream");
    expect(slots.held("alice")).toBe(2);

    const refused = await get("/proxied/stream");
    expect(refused.status).toBe(429);
    expect(await refused.json()).toMatchObject({
      error: { code: "RATE_LIMITED", details: { maxOpenProxied: 2 }, message: expect.stringContaining("At most 2 requests and WebSockets") },
    });
    // Another user, and the API's own routes, are not affected.
    expect((await get("/proxied/stream", "bob")).status).toBe(200);
    expect((await get("/other")).status).toBe(200);

    // Read to its end: the slot is free again, and the body came through whole.
    expect(await first.text()).toBe("chunk 1\nchunk 2\nchunk 3\n");
    expect(slots.held("alice")).toBe(1);
    // Cancelled (the browser went away): free as well.
    await second.body!.cancel();
    expect(slots.held("alice")).toBe(0);
  });

  test("a request that fails, or has no body, frees its slot at once", async () => {
    const { slots, get } = proxy(1);
    expect((await get("/proxied/fails")).status).toBe(500);
    expect(slots.held("alice")).toBe(0);
    expect((await get("/proxied/empty")).status).toBe(204);
    expect(slots.held("alice")).toBe(0);
  });
});

describe("a proxied WebSocket", () => {
  test("holds its slot for as long as it is open, and frees it when it closes", async () => {
    // The sandbox's side: a local WebSocket echo server.
    const upstream = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch: (req, srv) => (srv.upgrade(req) ? undefined : new Response("upgrade expected", { status: 426 })),
      websocket: {
        message(ws, m) {
          ws.send(`echo:${m}`);
        },
      },
    });
    const slots = proxySlots(1);
    const a = cappedApp(slots);
    a.get("/proxied/socket", (c) => bridgeWebSocket(c, new URL(`http://127.0.0.1:${upstream.port}/`)));
    // Warren's side: a real HTTP server, as WebSocket upgrades need one.
    const warren = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: (req, srv) => a.fetch(req, srv), websocket: proxyWebSocket });
    try {
      const url = `ws://127.0.0.1:${warren.port}/proxied/socket`;
      const ws = new WebSocket(url);
      const reply = new Promise<string>((resolve) => (ws.onmessage = (e) => resolve(String(e.data))));
      await new Promise((resolve) => (ws.onopen = resolve));
      ws.send("hi");
      expect(await reply).toBe("echo:hi");
      expect(slots.held("alice")).toBe(1);
      // The only slot is taken: a second one is refused before the upstream is asked.
      const second = await fetch(`http://127.0.0.1:${warren.port}/proxied/socket`, {
        headers: { upgrade: "websocket", connection: "Upgrade", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==", "sec-websocket-version": "13" },
      });
      expect(second.status).toBe(429);

      const closed = new Promise((resolve) => (ws.onclose = resolve));
      ws.close();
      await closed;
      const deadline = Date.now() + 2_000;
      while (slots.held("alice") > 0 && Date.now() < deadline) await Bun.sleep(10);
      expect(slots.held("alice")).toBe(0);
    } finally {
      warren.stop(true);
      upstream.stop(true);
    }
  });
});
