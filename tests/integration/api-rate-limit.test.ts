import { describe, expect, test } from "bun:test";
import { json, signUp, TEST_PUBLIC_URL, useTestApp } from "../helpers/app";
import { expectError } from "../helpers/expect";

// The API's request budget per signed-in user (src/middleware/rate-limit.ts), small here: five
// requests every two seconds.
const app = useTestApp({ env: { API_RATE_LIMIT_MAX: "5", API_RATE_LIMIT_WINDOW_SECONDS: "2" } });

const me = (token: string, headers: Record<string, string> = {}) => app().request("/api/v1/me", { token, headers });

describe("API rate limit", () => {
  test("each user has a budget, told in the RateLimit headers; over it is 429 in the envelope with Retry-After; the window refills it", async () => {
    const alice = await signUp(app());
    const bob = await signUp(app());
    for (let i = 1; i <= 5; i++) {
      const res = await me(alice.token);
      expect(res.status).toBe(200);
      expect(res.headers.get("ratelimit-policy")).toBe("5;w=2");
      expect(res.headers.get("ratelimit")).toMatch(new RegExp(`^limit=5, remaining=${5 - i}, reset=[12]$`));
    }
    const refused = await me(alice.token);
    const error = await expectError(refused, 429, "RATE_LIMITED");
    expect(error.message).toMatch(/^Too many requests: at most 5 every 2 seconds; try again in [12] seconds$/);
    expect(error.details).toMatchObject({ limit: 5, windowSeconds: 2 });
    expect(refused.headers.get("retry-after")).toBe(String(error.details.retryAfterSeconds));
    expect(refused.headers.get("ratelimit")).toMatch(/^limit=5, remaining=0, reset=[12]$/);

    // Another user's budget is their own.
    const other = await me(bob.token);
    expect(other.status).toBe(200);
    expect(other.headers.get("ratelimit")).toMatch(/^limit=5, remaining=4, reset=/);

    await Bun.sleep(Number(refused.headers.get("retry-after")) * 1000 + 100);
    expect((await me(alice.token)).status).toBe(200);
  });

  test("the agent and add-on proxies carry the sandbox's own traffic and are not counted; nor is a request without a session", async () => {
    const u = await signUp(app());
    const created = await app().request("/api/v1/sandboxes", { method: "POST", token: u.token, json: { name: "proxied" } });
    expect(created.status).toBe(201);
    const id = (await json(created)).id;
    for (let i = 0; i < 8; i++) {
      // The sandbox is not running: refused by the proxy itself, never by the budget.
      const res = await app().request(`/api/v1/sandboxes/${id}/agent/session`, { token: u.token });
      expect(res.status).not.toBe(429);
      expect(res.headers.get("ratelimit")).toBeNull();
      const addon = await app().request(`/api/v1/sandboxes/${id}/addons/code-server/`, { token: u.token });
      expect(addon.status).not.toBe(429);
    }
    const anonymous = await app().request("/api/v1/me");
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get("ratelimit")).toBeNull();
    // One request spent (the create): this is the second.
    expect((await me(u.token)).headers.get("ratelimit")).toMatch(/^limit=5, remaining=3, reset=/);
  });

  test("a browser app on a trusted origin may read the headers", async () => {
    const u = await signUp(app());
    const res = await me(u.token, { origin: TEST_PUBLIC_URL });
    const exposed = (res.headers.get("access-control-expose-headers") ?? "").toLowerCase().split(/,\s*/);
    expect(exposed).toEqual(expect.arrayContaining(["ratelimit", "ratelimit-policy", "retry-after"]));
  });
});
