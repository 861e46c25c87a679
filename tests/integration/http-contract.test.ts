import { describe, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import { createApp } from "../../src/app";
import { openPostgres } from "../../src/database/client";
import { memoryLogger, requester, signInAgain, signUp, testConfig, useTestApp, json } from "../helpers/app";
import { expectError } from "../helpers/expect";
import { freePort } from "../helpers/server";

const app = useTestApp({ env: { MAX_BODY_BYTES: "4096", TRUSTED_ORIGINS: "https://app.example.com" } });

describe("health and readiness", () => {
  test("/health answers without the database; /ready checks it and the migrations", async () => {
    expect(await json(await app().request("/health"))).toEqual({ status: "ok" });
    const ready = await json(await app().request("/ready"));
    expect(ready.status).toBe("ready");
    expect(ready.migrations.pending).toBe(0);
    expect(ready.migrations.applied).toBe(ready.migrations.expected);
    expect(ready.migrations.expected).toBeGreaterThanOrEqual(3);
  });

  test("/ready is 503 while a committed migration is not applied, and ready again once it is", async () => {
    const { db } = app().database;
    const { expected } = (await json(await app().request("/ready"))).migrations;
    // The newest migration's record no longer matches the committed file: to /ready, it is pending.
    const newest = sql`(select max(id) from drizzle.__drizzle_migrations)`;
    await db.execute(sql`update drizzle.__drizzle_migrations set hash = 'pending:' || hash where id = ${newest}`);
    try {
      const res = await app().request("/ready");
      const error = await expectError(res, 503, "SERVICE_UNAVAILABLE");
      expect(error.details).toEqual({ migrations: { applied: expected - 1, expected, pending: 1 } });
      expect((await app().request("/health")).status).toBe(200);
    } finally {
      await db.execute(sql`update drizzle.__drizzle_migrations set hash = substr(hash, 9) where id = ${newest}`);
    }
    expect((await app().request("/ready")).status).toBe(200);
  });
});

describe("error envelope on every path", () => {
  test("unknown routes are 404", async () => {
    // Under /api/auth too: a path Better Auth does not know is answered in the envelope.
    for (const path of ["/nope", "/api/nope", "/api/v2/me", "/api/auth/nope"]) {
      const error = await expectError(await app().request(path), 404, "NOT_FOUND");
      expect(error.message).toContain(path);
    }
  });

  test("a wrong method is 405 with Allow", async () => {
    const u = await signUp(app());
    const res = await app().request("/api/v1/me", { method: "DELETE", token: u.token });
    const error = await expectError(res, 405, "METHOD_NOT_ALLOWED");
    expect(res.headers.get("allow")).toBe("GET, PATCH");
    expect(error.details).toEqual({ allowed: ["GET", "PATCH"] });
    const health = await app().request("/health", { method: "POST" });
    await expectError(health, 405, "METHOD_NOT_ALLOWED");
    expect(health.headers.get("allow")).toBe("GET");
  });

  test("an oversized body is 413, on the API and on the auth routes, and nothing is written", async () => {
    const u = await signUp(app(), { name: "Before" });
    const big = { name: "x".repeat(5000) };
    await expectError(await app().request("/api/v1/me", { method: "PATCH", token: u.token, json: big }), 413, "PAYLOAD_TOO_LARGE");
    expect((await json(await app().request("/api/v1/me", { token: u.token }))).name).toBe("Before");
    const email = "big@example.com";
    const signUpRes = await app().request("/api/auth/sign-up/email", {
      method: "POST",
      json: { email, password: "long enough password", name: "y".repeat(5000) },
      headers: { origin: app().config.publicUrl },
    });
    await expectError(signUpRes, 413, "PAYLOAD_TOO_LARGE");
    const signIn = await app().request("/api/auth/sign-in/email", {
      method: "POST",
      json: { email, password: "long enough password" },
      headers: { origin: app().config.publicUrl },
    });
    expect(signIn.status).toBe(401);
  });

  test("a body that is not JSON is 415 naming Content-Type, and nothing is written", async () => {
    const u = await signUp(app(), { name: "Before" });
    const body = JSON.stringify({ name: "After" });
    const cases: Array<[Record<string, string>, string]> = [
      [{ "content-type": "text/plain" }, '"text/plain"'],
      [{ "content-type": "application/x-www-form-urlencoded" }, '"application/x-www-form-urlencoded"'],
      [{}, "missing"],
    ];
    for (const [headers, sent] of cases) {
      const res = await app().request("/api/v1/me", { method: "PATCH", token: u.token, body, headers });
      const error = await expectError(res, 415, "UNSUPPORTED_MEDIA_TYPE");
      expect(error.message).toBe(`Invalid header "Content-Type": Content-Type is ${sent}; send the body as application/json`);
      expect(error.details).toEqual({
        fields: [{ location: "header", field: "Content-Type", message: expect.stringContaining(sent), code: "unsupported_media_type" }],
      });
    }
    // JSON with a charset is JSON.
    const ok = await app().request("/api/v1/me", { method: "PATCH", token: u.token, body, headers: { "content-type": "application/json; charset=utf-8" } });
    expect(ok.status).toBe(200);
    expect((await json(await app().request("/api/v1/me", { token: u.token }))).name).toBe("After");
    // Better Auth refuses one with the same status and code (its own code kept beside, as for all its errors).
    const signIn = await app().request("/api/auth/sign-in/email", {
      method: "POST",
      body: JSON.stringify({ email: u.email, password: u.password }),
      headers: { "content-type": "text/plain", origin: app().config.publicUrl },
    });
    expect(signIn.status).toBe(415);
    expect((await json(signIn)).error.code).toBe("UNSUPPORTED_MEDIA_TYPE");
  });

  test("a query parameter given twice is named as such, not as a number that is NaN", async () => {
    const u = await signUp(app());
    const error = await expectError(await app().request("/api/v1/sandboxes?limit=10&limit=20&q=a", { token: u.token }), 400, "VALIDATION_FAILED");
    expect(error.message).toBe('Invalid query parameter field "limit": given 2 times; give it once');
    expect(error.details.fields).toEqual([{ location: "query parameter", field: "limit", message: "given 2 times; give it once", code: "repeated" }]);
    expect((await app().request("/api/v1/sandboxes?limit=10&q=a", { token: u.token })).status).toBe(200);
  });

  test("an unexpected failure is 500 with no internals, logged, and the change is rolled back", async () => {
    const u = await signUp(app(), { name: "Original" });
    const db = app().database.db;
    // A real fault, not a mock: the activity table disappears under the running app, so the
    // profile update's activity insert fails inside its transaction.
    await db.execute(sql`alter table activity_log rename to activity_log_gone`);
    try {
      const res = await app().request("/api/v1/me", { method: "PATCH", token: u.token, json: { name: "Changed" } });
      const error = await expectError(res, 500, "INTERNAL");
      expect(error.message).toBe("Internal error");
      expect(error.details).toBeUndefined();
      const logged = app().logLines.find((l) => l.includes(error.requestId) && l.includes("unhandled error"));
      expect(logged).toContain("activity_log");
    } finally {
      await db.execute(sql`alter table activity_log_gone rename to activity_log`);
    }
    expect((await json(await app().request("/api/v1/me", { token: u.token }))).name).toBe("Original");
  });
});

describe("HEAD", () => {
  test("answers a GET route's headers with its exact Content-Length and no body", async () => {
    const u = await signUp(app());
    for (const path of ["/api/v1/me", "/api/v1/sandboxes", "/api/v1/resource-tiers", "/health"]) {
      const get = await app().request(path, { token: u.token });
      const bytes = (await get.arrayBuffer()).byteLength;
      expect(bytes).toBeGreaterThan(0);
      const head = await app().request(path, { method: "HEAD", token: u.token });
      expect(head.status).toBe(200);
      expect(head.body).toBeNull();
      expect(head.headers.get("content-length")).toBe(String(bytes));
      expect(head.headers.get("content-type")).toBe(get.headers.get("content-type"));
      expect(head.headers.get("etag")).toBe(get.headers.get("etag"));
    }
    const missing = await app().request("/api/v1/sandboxes/sbx_nope", { method: "HEAD", token: u.token });
    expect(missing.status).toBe(404);
    expect(Number(missing.headers.get("content-length"))).toBeGreaterThan(0);
  });
});

describe("request ids", () => {
  test("generated when absent, honoured when sane, replaced when not", async () => {
    const generated = (await app().request("/health")).headers.get("x-request-id")!;
    expect(generated).toMatch(/^req_[0-9a-z]{26}$/);
    const kept = await app().request("/health", { headers: { "x-request-id": "trace-abc_123" } });
    expect(kept.headers.get("x-request-id")).toBe("trace-abc_123");
    for (const bad of ["has spaces", "x".repeat(200), "<script>"]) {
      const res = await app().request("/health", { headers: { "x-request-id": bad } });
      expect(res.headers.get("x-request-id")).toMatch(/^req_/);
    }
  });
});

describe("secure headers and CORS", () => {
  test("secure headers are set", async () => {
    const res = await app().request("/health");
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    expect(res.headers.get("x-frame-options")).toBe("SAMEORIGIN");
    expect(res.headers.get("referrer-policy")).toBe("no-referrer");
  });

  test("only allowlisted origins get CORS with credentials; others are never reflected", async () => {
    for (const path of ["/api/v1/me", "/api/auth/sign-in/email"]) {
      const ok = await app().request(path, {
        method: "OPTIONS",
        headers: { origin: "https://app.example.com", "access-control-request-method": "POST", "access-control-request-headers": "content-type" },
      });
      expect(ok.status).toBe(204);
      expect(ok.headers.get("access-control-allow-origin")).toBe("https://app.example.com");
      expect(ok.headers.get("access-control-allow-credentials")).toBe("true");
      const evil = await app().request(path, {
        method: "OPTIONS",
        headers: { origin: "https://evil.example.com", "access-control-request-method": "POST" },
      });
      expect(evil.headers.get("access-control-allow-origin")).toBeNull();
    }
    const u = await signUp(app());
    const evilGet = await app().request("/api/v1/me", { token: u.token, headers: { origin: "https://evil.example.com" } });
    expect(evilGet.headers.get("access-control-allow-origin")).toBeNull();
    const okGet = await app().request("/api/v1/me", { token: u.token, headers: { origin: "https://app.example.com" } });
    expect(okGet.headers.get("access-control-allow-origin")).toBe("https://app.example.com");
    expect(okGet.headers.get("access-control-expose-headers")).toContain("set-auth-token");
  });

  test("every answer to an allowlisted origin carries CORS: cached pages, 304s, errors and sign-in", async () => {
    const origin = "https://app.example.com";
    const corsOf = (res: Response) => ({
      origin: res.headers.get("access-control-allow-origin"),
      credentials: res.headers.get("access-control-allow-credentials"),
      vary: res.headers.get("vary"),
      exposes: res.headers.get("access-control-expose-headers")?.split(",") ?? [],
    });
    const expected = { origin, credentials: "true", vary: "Origin", exposes: expect.arrayContaining(["X-Request-Id", "ETag", "set-auth-token"]) };

    // Sign-in: Better Auth's own response keeps its cookie and token, and the browser may read them.
    const u = await signUp(app());
    const signIn = await app().request("/api/auth/sign-in/email", {
      method: "POST",
      json: { email: u.email, password: u.password },
      headers: { origin },
    });
    expect(signIn.status).toBe(200);
    expect(corsOf(signIn)).toEqual(expected);
    expect(signIn.headers.get("set-auth-token")).toBeTruthy();
    expect(signIn.headers.getSetCookie().some((c) => c.includes("session_token="))).toBe(true);
    expect(signIn.headers.get("x-request-id")).toMatch(/^req_/);

    // A page from the page cache, the same page again (a hit), and its 304.
    const first = await app().request("/api/v1/sandboxes", { token: u.token, headers: { origin } });
    const again = await app().request("/api/v1/sandboxes", { token: u.token, headers: { origin } });
    for (const res of [first, again]) {
      expect(res.status).toBe(200);
      expect(corsOf(res)).toEqual(expected);
      expect(res.headers.get("x-request-id")).toBeTruthy();
      expect(res.headers.get("x-content-type-options")).toBe("nosniff");
      expect(await json(res)).toEqual({ data: [], nextCursor: null });
    }
    const etag = again.headers.get("etag")!;
    const notModified = await app().request("/api/v1/sandboxes", { token: u.token, headers: { origin, "if-none-match": etag } });
    expect(notModified.status).toBe(304);
    expect(corsOf(notModified)).toEqual(expected);
    expect(notModified.headers.get("etag")).toBe(etag);

    // Errors, from a route and from authentication: the browser can read the envelope.
    const missing = await app().request("/api/v1/sandboxes/sbx_nope", { token: u.token, headers: { origin } });
    await expectError(missing, 404, "NOT_FOUND");
    expect(corsOf(missing)).toEqual(expected);
    const anonymous = await app().request("/api/v1/me", { headers: { origin } });
    await expectError(anonymous, 401, "UNAUTHENTICATED");
    expect(corsOf(anonymous)).toEqual(expected);
  });

  test("Better Auth refuses a sign-in from an untrusted origin", async () => {
    const u = await signUp(app());
    const res = await app().request("/api/auth/sign-in/email", {
      method: "POST",
      json: { email: u.email, password: u.password },
      headers: { origin: "https://evil.example.com", cookie: u.cookie },
    });
    expect(res.status).toBe(403);
    expect(res.headers.get("set-auth-token")).toBeNull();
  });
});

describe("OpenAPI", () => {
  test("the document is generated from the route schemas and includes error responses", async () => {
    const doc = await json(await app().request("/api/openapi.json"));
    expect(doc.openapi).toBe("3.1.0");
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining(["/health", "/ready", "/api/v1/me", "/api/v1/me/sessions", "/api/v1/me/sessions/{sessionId}"]),
    );
    expect(Object.keys(doc.paths["/api/v1/me"]).sort()).toEqual(["get", "patch"]);
    const patch = doc.paths["/api/v1/me"].patch;
    expect(patch.requestBody.content["application/json"].schema.$ref).toBe("#/components/schemas/ProfileUpdate");
    for (const status of ["400", "401", "413", "415", "429", "500", "503"]) {
      expect(patch.responses[status].content["application/json"].schema.$ref).toBe("#/components/schemas/Error");
    }
    // 415 only where there is a body to refuse.
    expect(doc.paths["/api/v1/me"].get.responses["415"]).toBeUndefined();
    const withBody = Object.values(doc.paths).flatMap((ops) => Object.values(ops as Record<string, { requestBody?: unknown; responses: object }>));
    for (const op of withBody) expect("415" in op.responses).toBe(op.requestBody !== undefined);
    expect(doc.components.schemas.Error.properties.error.properties.code.enum).toContain("VALIDATION_FAILED");
    expect(doc.components.securitySchemes.bearerAuth.scheme).toBe("bearer");
    const sessions = doc.paths["/api/v1/me/sessions"].get.parameters.map((p: { name: string }) => p.name);
    expect(sessions).toEqual(["limit", "cursor"]);
  });

  test("/api/docs renders the interactive reference", async () => {
    const res = await app().request("/api/docs");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/html");
    const html = await res.text();
    expect(html).toContain("<title>Warren API</title>");
    // Swagger UI from Warren's own assets (a real browser renders it: tests/e2e/docs.test.ts).
    expect(html).toContain("/api/docs/assets/swagger-ui-bundle.js");
    const init = await app().request("/api/docs/assets/init.js");
    expect(await init.text()).toContain('"/api/openapi.json"');
  });
});

describe("auth rate limiting", () => {
  const limited = useTestApp({ env: { AUTH_SIGN_IN_RATE_LIMIT_MAX: "3", CLIENT_IP_HEADER: "x-forwarded-for" } });

  test("sign-in attempts are limited per client address, stored in the database", async () => {
    // The proxy appends the address it saw; whatever the client put before it is ignored.
    let spoof = 0;
    const attempt = (ip: string, extra: Record<string, string> = {}) =>
      limited().request("/api/auth/sign-in/email", {
        method: "POST",
        json: { email: "victim@example.com", password: "guess-guess-guess" },
        headers: { origin: limited().config.publicUrl, "x-forwarded-for": `10.0.0.${++spoof}, ${ip}`, ...extra },
      });
    for (let i = 0; i < 3; i++) expect((await attempt("203.0.113.7")).status).toBe(401);
    const blocked = await attempt("203.0.113.7", { "x-warren-client-ip": "198.51.100.1" });
    expect(blocked.status).toBe(429);
    expect(Number(blocked.headers.get("x-retry-after"))).toBeGreaterThan(0);
    // Another address has its own budget.
    expect((await attempt("203.0.113.8")).status).toBe(401);
    const rows = await limited().database.db.execute(sql`select count(*)::int as n from rate_limits`);
    const n = Array.isArray(rows) ? rows[0].n : (rows as { rows: Array<{ n: number }> }).rows[0]!.n;
    expect(n).toBeGreaterThanOrEqual(2);
  });

  test("password checks by a signed-in caller (/verify-password) get the sign-in limit", async () => {
    // With a stolen session, an unthrottled yes/no on the password would be a guessing oracle.
    const u = await signUp(limited());
    const verify = (password: string) =>
      limited().request("/api/auth/verify-password", {
        method: "POST",
        token: u.token,
        json: { password },
        headers: { origin: limited().config.publicUrl, "x-forwarded-for": "203.0.113.10" },
      });
    for (let i = 0; i < 3; i++) expect((await verify(`guess number ${i}`)).status).toBe(400);
    expect((await verify(u.password)).status).toBe(429);
  });

  test("the limit holds across instances sharing the database", async () => {
    // A second Warren instance: its own app, auth and memory, the same database.
    const other = createApp({ config: limited().config, database: limited().database, logger: memoryLogger().logger });
    const instances = [limited().request, requester((path, init) => other.request(path, init))];
    const attempt = (instance: number) =>
      instances[instance]!("/api/auth/sign-in/email", {
        method: "POST",
        json: { email: "victim@example.com", password: "guess-guess-guess" },
        headers: { origin: limited().config.publicUrl, "x-forwarded-for": "203.0.113.9" },
      });
    const statuses = [];
    for (const instance of [0, 1, 0, 1]) statuses.push((await attempt(instance)).status);
    expect(statuses).toEqual([401, 401, 401, 429]);
  });
});

describe("Better Auth's own errors", () => {
  /** The envelope, plus Better Auth's top-level code and message that better-auth/client reads. */
  async function authError(res: Response, status: number, code: string, authCode?: string) {
    const body = await json(res);
    expect({ status: res.status, code: body.error?.code }).toEqual({ status, code });
    expect(body.error.requestId).toBe(res.headers.get("x-request-id"));
    expect(typeof body.error.message).toBe("string");
    expect(body.message).toBe(body.error.message);
    if (authCode) {
      expect(body.error.details).toEqual({ authCode });
      expect(body.code).toBe(authCode);
    }
    return body;
  }
  const origin = () => ({ origin: app().config.publicUrl });

  test("come in the envelope, keeping Better Auth's code for its client", async () => {
    const u = await signUp(app());
    const wrong = await app().request("/api/auth/sign-in/email", {
      method: "POST",
      json: { email: u.email, password: "not the password at all" },
      headers: origin(),
    });
    await authError(wrong, 401, "UNAUTHENTICATED", "INVALID_EMAIL_OR_PASSWORD");

    const malformed = await app().request("/api/auth/sign-in/email", {
      method: "POST",
      headers: { "content-type": "application/json", ...origin() },
      body: '{"email": "a@example.com",',
    });
    expect(malformed.status).toBeGreaterThanOrEqual(400);
    expect(malformed.status).toBeLessThan(500);
    expect((await json(malformed)).error.code).toBe("VALIDATION_FAILED");

    const invalid = await app().request("/api/auth/sign-in/email", { method: "POST", json: { email: 42 }, headers: origin() });
    await authError(invalid, 400, "VALIDATION_FAILED");

    const again = await app().request("/api/auth/sign-up/email", {
      method: "POST",
      json: { email: u.email, password: "another long password", name: "Twin" },
      headers: origin(),
    });
    const dup = await authError(again, 422, "CONFLICT");
    expect(dup.code).toMatch(/USER_ALREADY_EXISTS/);

    const untrusted = await app().request("/api/auth/sign-in/email", {
      method: "POST",
      json: { email: u.email, password: u.password },
      headers: { origin: "https://evil.example.com", cookie: u.cookie },
    });
    await authError(untrusted, 403, "PRECONDITION_FAILED");
  });

  test("the better-auth client still reads its own code from them", async () => {
    const u = await signUp(app());
    const res = await app().request("/api/auth/sign-in/email", {
      method: "POST",
      json: { email: u.email, password: "not the password at all" },
      headers: origin(),
    });
    // better-fetch hands the parsed body to the client as `error` (with status): code and message
    // are where Better Auth put them.
    const body = await json(res);
    expect({ code: body.code, message: typeof body.message }).toEqual({ code: "INVALID_EMAIL_OR_PASSWORD", message: "string" });
  });
});

describe("Better Auth endpoints that would return secrets or bypass Warren's checks", () => {
  test("are switched off", async () => {
    const u = await signUp(app(), { name: "Kept" });
    const otherToken = (await signInAgain(app(), u)).split(".")[0]!;
    expect((await app().request("/api/v1/me", { token: otherToken })).status).toBe(200);
    const calls: Array<[string, string, unknown]> = [
      // A linked account's OAuth tokens.
      ["POST", "/api/auth/get-access-token", { providerId: "github" }],
      ["POST", "/api/auth/refresh-token", { providerId: "github" }],
      // Every session's token, the other device's included.
      ["GET", "/api/auth/list-sessions", undefined],
      // A profile change without validation or an activity entry.
      ["POST", "/api/auth/update-user", { name: "x".repeat(500), image: { not: "a url" } }],
    ];
    for (const [method, path, body] of calls) {
      const res = await app().request(path, { method, token: u.token, ...(body ? { json: body } : {}), headers: { origin: app().config.publicUrl } });
      // The token without its signature is enough: Better Auth's bearer plugin accepts it.
      expect(await res.text()).not.toContain(otherToken);
      expect(res.status).toBe(404);
    }
    expect((await json(await app().request("/api/v1/me", { token: u.token }))).name).toBe("Kept");
    // Warren's own routes do both jobs: the devices without their tokens, a checked profile change.
    const devices = await app().request("/api/v1/me/sessions", { token: u.token });
    expect(devices.status).toBe(200);
    expect(await devices.text()).not.toContain(otherToken);
    await expectError(await app().request("/api/v1/me", { method: "PATCH", token: u.token, json: { name: "x".repeat(500) } }), 400, "VALIDATION_FAILED");
  });
});

describe("database unreachable", () => {
  test("requests get 503 in the envelope and /health stays up", async () => {
    // A server URL on a port where nothing listens: every query fails to connect.
    const database = openPostgres(`postgres://warren@127.0.0.1:${freePort()}/warren`, 2);
    const { logger } = memoryLogger();
    const down = createApp({ config: testConfig(), database, logger });
    try {
      expect((await down.request("/health")).status).toBe(200);
      await expectError(await down.request("/ready"), 503, "SERVICE_UNAVAILABLE");
      // A correctly signed token (same secret), so the session lookup has to reach the database.
      const { token } = await signUp(app());
      const me = await down.request("/api/v1/me", { headers: { authorization: `Bearer ${token}` } });
      const error = await expectError(me, 503, "SERVICE_UNAVAILABLE");
      expect(me.headers.get("retry-after")).toBe("2");
      expect(error.message).not.toContain("127.0.0.1");
      const signIn = await down.request("/api/auth/sign-in/email", {
        method: "POST",
        headers: { "content-type": "application/json", origin: "http://localhost:3000" },
        body: JSON.stringify({ email: "a@example.com", password: "password1234" }),
      });
      await expectError(signIn, 503, "SERVICE_UNAVAILABLE");
    } finally {
      await database.close();
    }
  });

  test("a request stuck on a database that never answers gets 503 at the deadline", async () => {
    // A black hole: accepts TCP connections and never says a word, like a half-open network path.
    const hole = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const database = openPostgres(`postgres://warren@127.0.0.1:${hole.port}/warren`, 2);
    const { logger } = memoryLogger();
    const stuck = createApp({ config: testConfig({ REQUEST_TIMEOUT_MS: "300" }), database, logger });
    try {
      const { token } = await signUp(app());
      const res = await stuck.request("/api/v1/me", { headers: { authorization: `Bearer ${token}` } });
      await expectError(res, 503, "SERVICE_UNAVAILABLE");
      expect(res.headers.get("retry-after")).toBe("2");
    } finally {
      hole.stop(true);
      // Closing waits up to its own 5 s timeout for the connection that never finished.
      await database.close().catch(() => {});
    }
  }, 20_000);
});
