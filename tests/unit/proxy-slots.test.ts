import { describe, expect, test } from "bun:test";
import { Hono } from "hono";
import type { AppEnv, ServiceContext } from "../../src/context";
import { createLogger } from "../../src/lib/logger";
import { errorHandler } from "../../src/middleware/errors";
import { limitProxied, proxySlots } from "../../src/middleware/proxy-slots";

// The per-user cap on what is open through the sandbox proxies (src/middleware/proxy-slots.ts),
// on a small Hono app whose "proxied" route streams a body only as fast as it is read, as an
// upstream's does. The user comes from a header here; in Warren, from the session.
function proxy(max: number) {
  const slots = proxySlots(max);
  const a = new Hono<AppEnv>();
  a.onError(errorHandler(createLogger("silent", { write() {} })));
  a.use((c, next) => {
    c.set("requestId", "req_test");
    c.set("scope", { userId: c.req.header("x-user") } as ServiceContext);
    return next();
  });
  a.use(limitProxied(slots, (path) => path.startsWith("/proxied")));
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
