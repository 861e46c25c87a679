import { describe, expect, test } from "bun:test";
import { json, signInAgain, signUp, useTestApp } from "../helpers/app";
import { expectError } from "../helpers/expect";
import { securitySuite } from "../helpers/security";

const app = useTestApp();

const secondSession = (email: string, password: string) =>
  signInAgain(app(), { email, password }, { "user-agent": "warren-test-phone" });

securitySuite("account", app, [
  { name: "GET /api/v1/me", method: "GET", path: () => "/api/v1/me" },
  {
    name: "PATCH /api/v1/me",
    method: "PATCH",
    path: () => "/api/v1/me",
    body: { name: "New name" },
    badInputs: [
      { body: { name: 42 }, field: "name" },
      { body: { name: "" }, field: "name" },
      { body: { name: "Ada\u0007" }, field: "name" },
      { body: { name: "Ada \u2066Lovelace" }, field: "name" },
      { body: { image: "http://insecure.example.com/a.png" }, field: "image" },
      { body: { email: "takeover@example.com" }, field: "email" },
    ],
  },
  {
    name: "GET /api/v1/me/sessions",
    method: "GET",
    path: () => "/api/v1/me/sessions",
    badInputs: [
      { path: () => "/api/v1/me/sessions?limit=0", field: "limit" },
      { path: () => "/api/v1/me/sessions?limit=abc", field: "limit" },
      { path: () => "/api/v1/me/sessions?cursor=bm90LWEtY3Vyc29y", field: "cursor" },
    ],
  },
  {
    name: "DELETE /api/v1/me/sessions/:id",
    method: "DELETE",
    // The owner's second device: an intruder must not be able to sign it out.
    path: async (owner) => {
      await secondSession(owner.email, owner.password);
      const list = await json(await app().request("/api/v1/me/sessions", { token: owner.token }));
      const other = list.data.find((s: { current: boolean }) => !s.current);
      return `/api/v1/me/sessions/${other.id}`;
    },
    ownedResource: true,
    verifyUntouched: async (owner, path) => {
      const list = await json(await app().request("/api/v1/me/sessions", { token: owner.token }));
      expect(list.data.map((s: { id: string }) => `/api/v1/me/sessions/${s.id}`)).toContain(path);
    },
  },
]);

describe("GET /api/v1/me", () => {
  test("returns the signed-in user by bearer token and by cookie", async () => {
    const u = await signUp(app(), { name: "Ada Lovelace" });
    for (const auth of [{ token: u.token }, { headers: { cookie: u.cookie } }]) {
      const res = await app().request("/api/v1/me", auth);
      expect(res.status).toBe(200);
      const body = await json(res);
      expect(body).toMatchObject({ id: u.id, email: u.email, name: "Ada Lovelace", emailVerified: false, image: null });
      expect(body.id).toStartWith("usr_");
      expect(body.createdAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      expect(JSON.stringify(body)).not.toContain("password");
    }
  });
});

describe("PATCH /api/v1/me", () => {
  test("changes the name and avatar and records one activity entry", async () => {
    const u = await signUp(app());
    const res = await app().request("/api/v1/me", {
      method: "PATCH",
      token: u.token,
      json: { name: "  Grace Hopper ", image: "https://avatars.example.com/g.png" },
    });
    expect(res.status).toBe(200);
    expect(await json(res)).toMatchObject({ name: "Grace Hopper", image: "https://avatars.example.com/g.png" });
    const me = await json(await app().request("/api/v1/me", { token: u.token }));
    expect(me.name).toBe("Grace Hopper");
    const { activityLog } = await import("../../db/schema");
    const { eq } = await import("drizzle-orm");
    // Besides auth.sign_up, recorded by Better Auth's hooks at sign-up.
    const entries = (await app().database.db.select().from(activityLog).where(eq(activityLog.userId, u.id))).filter((e) => !e.action.startsWith("auth."));
    expect(entries.map((e) => [e.action, e.entityId])).toEqual([["account.update", u.id]]);
    expect(entries[0]!.metadata).toEqual({ fields: ["name", "image"] });
  });

  test("malformed JSON is a 400 envelope, and nothing changes", async () => {
    const u = await signUp(app(), { name: "Unchanged" });
    const res = await app().request("/api/v1/me", {
      method: "PATCH",
      token: u.token,
      headers: { "content-type": "application/json" },
      body: '{"name": "half',
    });
    const error = await expectError(res, 400, "VALIDATION_FAILED");
    expect(error.message).toBe("Request body is not valid JSON");
    expect((await json(await app().request("/api/v1/me", { token: u.token }))).name).toBe("Unchanged");
  });
});

describe("sign-up", () => {
  test("takes a name and avatar only under PATCH /me's rules, naming the field; nothing is created", async () => {
    const signUpWith = (email: string, extra: Record<string, unknown>) =>
      app().request("/api/auth/sign-up/email", {
        method: "POST",
        json: { email, password: "a long enough password", ...extra },
        headers: { origin: app().config.publicUrl },
      });
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ name: "   " }, 'Invalid body field "name": must not be empty'],
      [{ name: "N".repeat(101) }, 'Invalid body field "name"'],
      [{ name: "Ada", image: "javascript:alert(1)" }, 'Invalid body field "image"'],
      [{ name: "Ada", image: "http://example.com/a.png" }, 'Invalid body field "image": must be an https URL'],
    ];
    for (const [i, [extra, message]] of cases.entries()) {
      const res = await signUpWith(`refused${i}@example.com`, extra);
      expect(res.status).toBe(400);
      const body = await json(res);
      expect(body.error.code).toBe("VALIDATION_FAILED");
      expect(body.error.message).toContain(message);
      expect(res.headers.get("set-auth-token")).toBeNull();
    }
    // None of them exists: the same email signs up once the fields are right.
    const ok = await signUpWith("refused0@example.com", { name: "  Ada  ", image: "https://example.com/a.png" });
    expect(ok.status).toBe(200);
    const me = await json(await app().request("/api/v1/me", { token: ok.headers.get("set-auth-token")! }));
    expect(me).toMatchObject({ name: "Ada", image: "https://example.com/a.png" });
  });
});

describe("device sessions", () => {
  test("lists the caller's sessions newest first, paginated, without tokens", async () => {
    const u = await signUp(app());
    for (let i = 0; i < 4; i++) await secondSession(u.email, u.password);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const q: string = cursor ? `?limit=2&cursor=${cursor}` : "?limit=2";
      const page = await json(await app().request(`/api/v1/me/sessions${q}`, { token: u.token }));
      expect(page.data.length).toBeLessThanOrEqual(2);
      for (const s of page.data) {
        expect(Object.keys(s).sort()).toEqual(["createdAt", "current", "expiresAt", "id", "ipAddress", "updatedAt", "userAgent"]);
        seen.push(s.id);
      }
      cursor = page.nextCursor;
    } while (cursor);
    expect(seen.length).toBe(5);
    expect(new Set(seen).size).toBe(5);
    const all = await json(await app().request("/api/v1/me/sessions?limit=100", { token: u.token }));
    expect(all.data.map((s: { id: string }) => s.id)).toEqual(seen);
    expect(all.data.filter((s: { current: boolean }) => s.current).length).toBe(1);
    expect(JSON.stringify(all)).not.toContain(u.token.split(".")[0]!);
  });

  test("revoking a device signs it out immediately", async () => {
    const u = await signUp(app());
    const phone = await secondSession(u.email, u.password);
    const list = await json(await app().request("/api/v1/me/sessions", { token: u.token }));
    const phoneSession = list.data.find((s: { userAgent: string | null }) => s.userAgent === "warren-test-phone");
    expect(phoneSession).toBeDefined();
    expect((await app().request("/api/v1/me", { token: phone })).status).toBe(200);
    const del = await app().request(`/api/v1/me/sessions/${phoneSession.id}`, { method: "DELETE", token: u.token });
    expect(del.status).toBe(204);
    await expectError(await app().request("/api/v1/me", { token: phone }), 401, "UNAUTHENTICATED");
    expect((await app().request("/api/v1/me", { token: u.token })).status).toBe(200);
    await expectError(
      await app().request(`/api/v1/me/sessions/${phoneSession.id}`, { method: "DELETE", token: u.token }),
      404,
      "NOT_FOUND",
    );
  });
});
