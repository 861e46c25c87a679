import { describe, expect, test, setDefaultTimeout } from "bun:test";
import { createAuthClient } from "better-auth/client";
import { useServer } from "../helpers/server";

// Each test starts real server processes (a cold embedded database takes a few seconds).
setDefaultTimeout(60_000);

// The real server process over HTTP, driven by Better Auth's own client the way a desktop or
// CLI app would use it (no browser cookie jar: the cookie and the bearer token are carried by hand).

const server = useServer();

const email = `e2e.${Date.now()}@example.com`;
const password = "a long enough password";

describe("sign-up, sign-in, /me by cookie and bearer, sign-out", () => {
  test("the whole flow with better-auth/client", async () => {
    let cookie = "";
    let bearer = "";
    const client = createAuthClient({
      baseURL: server().url,
      fetchOptions: {
        headers: { origin: server().url },
        onSuccess: (ctx) => {
          const token = ctx.response.headers.get("set-auth-token");
          if (token) bearer = token;
          const setCookie = ctx.response.headers.getSetCookie().find((c) => c.startsWith("better-auth.session_token="));
          if (setCookie) cookie = setCookie.split(";")[0]!;
        },
      },
    });

    const signUp = await client.signUp.email({ email, password, name: "E2E User" });
    expect(signUp.error).toBeNull();
    expect(signUp.data?.user.email).toBe(email);

    cookie = "";
    bearer = "";
    const signIn = await client.signIn.email({ email, password });
    expect(signIn.error).toBeNull();
    expect(cookie).toStartWith("better-auth.session_token=");
    expect(bearer.length).toBeGreaterThan(20);

    const byCookie = await fetch(`${server().url}/api/v1/me`, { headers: { cookie } });
    expect(byCookie.status).toBe(200);
    expect(await byCookie.json()).toMatchObject({ email, name: "E2E User" });

    const byBearer = await fetch(`${server().url}/api/v1/me`, { headers: { authorization: `Bearer ${bearer}` } });
    expect(byBearer.status).toBe(200);
    expect(((await byBearer.json()) as { email: string }).email).toBe(email);

    // Better Auth's session endpoint agrees.
    const session = await client.getSession({ fetchOptions: { headers: { authorization: `Bearer ${bearer}` } } });
    expect(session.data?.user.email).toBe(email);

    const out = await client.signOut({ fetchOptions: { headers: { cookie } } });
    expect(out.error).toBeNull();

    for (const headers of [{ cookie }, { authorization: `Bearer ${bearer}` }] as Record<string, string>[]) {
      const res = await fetch(`${server().url}/api/v1/me`, { headers });
      expect(res.status).toBe(401);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe("UNAUTHENTICATED");
    }
  });

  test("the non-browser flow of docs/frontend.md: plain fetch, no cookie, no Origin; bearer until sign-out", async () => {
    const WARREN = server().url;
    const own = `e2e.desktop.${Date.now()}@example.com`;
    const signUp = await fetch(`${WARREN}/api/auth/sign-up/email`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email: own, password, name: "Desktop App" }),
    });
    expect(signUp.status).toBe(200);

    // From here on, the docs' snippet as written.
    const res = await fetch(`${WARREN}/api/auth/sign-in/email`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email: own, password }),
    });
    expect(res.ok).toBe(true);
    const token = res.headers.get("set-auth-token")!;
    expect(token).toBeTruthy();

    const me = await fetch(`${WARREN}/api/v1/me`, { headers: { authorization: `Bearer ${token}` } });
    expect(me.status).toBe(200);
    expect(await me.json()).toMatchObject({ email: own, name: "Desktop App" });

    const out = await fetch(`${WARREN}/api/auth/sign-out`, { method: "POST", headers: { authorization: `Bearer ${token}` } });
    expect(out.status).toBe(200);
    const after = await fetch(`${WARREN}/api/v1/me`, { headers: { authorization: `Bearer ${token}` } });
    expect(after.status).toBe(401);
  });

  test("a wrong password is refused by Better Auth and issues no session", async () => {
    const client = createAuthClient({ baseURL: server().url, fetchOptions: { headers: { origin: server().url } } });
    const res = await client.signIn.email({ email, password: "not the password" });
    expect(res.error?.status).toBe(401);
    expect(res.data).toBeNull();
  });

  test("the server logs one JSON line per request, with its request id, and no secrets", async () => {
    const res = await fetch(`${server().url}/health`, { headers: { "x-request-id": "e2e-trace-1" } });
    expect(res.headers.get("x-request-id")).toBe("e2e-trace-1");
    await Bun.sleep(200);
    const lines = server().output.filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
    expect(lines.find((l) => l.requestId === "e2e-trace-1" && l.path === "/health")).toMatchObject({
      method: "GET",
      status: 200,
      level: "info",
    });
    const all = server().output.join("\n");
    expect(all).not.toContain(password);
  });
});
