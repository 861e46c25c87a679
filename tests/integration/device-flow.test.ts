import { afterAll, describe, expect, test } from "bun:test";
import { eq, sql } from "drizzle-orm";
import { activityLog } from "../../db/schema";
import { queryRows } from "../../src/database/client";
import { purgeDeviceFlows } from "../../src/services/credentials/purge-device-flows";
import { json, signUp, useTestApp, type TestUser } from "../helpers/app";
import { expectError } from "../helpers/expect";
import { startDeviceStandIn } from "../helpers/github-device-standin";
import { securitySuite } from "../helpers/security";

// GitHub itself cannot be reached from tests: a local stand-in speaks its device-flow protocol,
// reached through the same test-only GITHUB_API_OVERRIDE_URL the sign-in flow uses.
const github = startDeviceStandIn();
let clock = Date.parse("2026-11-21T12:00:00.000Z");
const advance = (seconds: number) => {
  clock += seconds * 1000;
};
const app = useTestApp({
  env: { GITHUB_API_OVERRIDE_URL: github.url, COPILOT_OAUTH_CLIENT_ID: github.clientId },
  deps: { now: () => new Date(clock) },
});
afterAll(() => github.stop());

const base = "/api/v1/providers/github-copilot/oauth/device";
async function start(u: TestUser) {
  const res = await app().request(base, { method: "POST", token: u.token });
  expect(res.status).toBe(201);
  return json(res);
}
const poll = (u: TestUser, flowId: string) => app().request(`${base}/${flowId}/poll`, { method: "POST", token: u.token });

securitySuite("device flow", app, [
  {
    name: "POST /api/v1/providers/:id/oauth/device",
    method: "POST",
    path: () => base,
    badInputs: [{ path: () => `/api/v1/providers/${"x".repeat(200)}/oauth/device`, field: "id" }],
  },
  {
    name: "POST /api/v1/providers/:id/oauth/device/:flowId/poll",
    method: "POST",
    path: async (owner) => `${base}/${(await start(owner)).id}/poll`,
    ownedResource: true,
    // The intruder's attempt must not even use up the owner's polling interval.
    verifyUntouched: async (owner, path) => {
      const res = await app().request(path, { method: "POST", token: owner.token });
      expect(res.status).toBe(200);
      expect((await json(res)).status).toBe("pending");
    },
  },
  {
    name: "DELETE /api/v1/providers/:id/oauth/device/:flowId",
    method: "DELETE",
    path: async (owner) => `${base}/${(await start(owner)).id}`,
    ownedResource: true,
    verifyUntouched: async (owner, path) => {
      expect((await app().request(`${path}/poll`, { method: "POST", token: owner.token })).status).toBe(200);
    },
  },
]);

describe("device flow against GitHub's protocol", () => {
  test("start, pending, interval honoured, slow_down, approval: the token becomes the caller's credential", async () => {
    const u = await signUp(app());
    const flow = await start(u);
    expect(flow).toMatchObject({ providerId: "github-copilot", status: "pending", verificationUri: "https://github.com/login/device", interval: 5 });
    expect(flow.id).toStartWith("dfl_");
    expect(Date.parse(flow.expiresAt) - clock).toBe(899_000);
    expect(JSON.stringify(flow)).not.toMatch(/dc_[0-9a-f]{32}/);

    const pollsBefore = github.polls.length;
    expect((await json(await poll(u, flow.id))).status).toBe("pending");
    const early = await poll(u, flow.id);
    const error = await expectError(early, 429, "RATE_LIMITED");
    expect(early.headers.get("retry-after")).toBe("5");
    expect(error.details).toEqual({ retryAfterSeconds: 5 });
    expect(github.polls.length).toBe(pollsBefore + 1);

    advance(5);
    github.slowDown(flow.userCode);
    const slowed = await json(await poll(u, flow.id));
    expect(slowed).toMatchObject({ status: "pending", interval: 10 });
    advance(5);
    await expectError(await poll(u, flow.id), 429, "RATE_LIMITED");
    advance(5);
    const token = github.approve(flow.userCode);
    const done = await json(await poll(u, flow.id));
    expect(done.status).toBe("completed");
    expect(done.credential).toMatchObject({ providerId: "github-copilot", authType: "device_flow", hint: `…${token.slice(-4)}`, scopes: ["read:user"] });
    expect(JSON.stringify(done)).not.toContain(token);

    // Single-use: a finished flow cannot be polled again.
    advance(10);
    await expectError(await poll(u, flow.id), 409, "INVALID_STATE");
    const providers = await json(await app().request("/api/v1/providers/github-copilot", { token: u.token }));
    expect(providers.configured).toBe(true);
    const actions = (await app().database.db.select().from(activityLog).where(eq(activityLog.userId, u.id)))
      .map((e) => e.action)
      .filter((a) => !a.startsWith("auth.")); // auth.sign_up from Better Auth's hooks
    expect(actions).toEqual(["device_flow.start", "device_flow.complete", "credential.set"]);

    // At rest: neither the device code nor the token in any row of the two tables.
    const db = app().database.db;
    const rows = JSON.stringify([
      await queryRows(db, sql`select * from oauth_device_flows`),
      await queryRows(db, sql`select * from provider_credentials`),
      await queryRows(db, sql`select * from activity_log`),
    ]);
    expect(rows).not.toContain(token);
    for (const code of github.polls) expect(rows).not.toContain(code);
    expect(app().logLines.join("\n")).not.toContain(token);
  });

  test("access_denied, expired_token and a code that outlived expires_in end the flow", async () => {
    const u = await signUp(app());
    const denied = await start(u);
    github.deny(denied.userCode);
    expect((await json(await poll(u, denied.id))).status).toBe("denied");
    advance(10);
    await expectError(await poll(u, denied.id), 409, "INVALID_STATE");

    const expired = await start(u);
    github.expire(expired.userCode);
    expect((await json(await poll(u, expired.id))).status).toBe("expired");

    const stale = await start(u);
    advance(900);
    const before = github.polls.length;
    expect((await json(await poll(u, stale.id))).status).toBe("expired");
    expect(github.polls.length).toBe(before); // decided locally, GitHub not asked
    expect((await json(await app().request("/api/v1/credentials", { token: u.token }))).data).toEqual([]);
  });

  test("a provider without a device flow is refused; cancelling forgets the flow", async () => {
    const u = await signUp(app());
    await expectError(await app().request("/api/v1/providers/anthropic/oauth/device", { method: "POST", token: u.token }), 409, "INVALID_STATE");
    const flow = await start(u);
    expect((await app().request(`${base}/${flow.id}`, { method: "DELETE", token: u.token })).status).toBe(204);
    await expectError(await poll(u, flow.id), 404, "NOT_FOUND");
    await expectError(await app().request(`${base}/${flow.id}`, { method: "DELETE", token: u.token }), 404, "NOT_FOUND");
    // The flow id under another provider's path is not found either.
    const other = await start(u);
    await expectError(await app().request(`/api/v1/providers/openai/oauth/device/${other.id}/poll`, { method: "POST", token: u.token }), 404, "NOT_FOUND");
  });

  test("a token that expires (a GitHub App's user token) carries its expiry into the credential; one that does not, none", async () => {
    const u = await signUp(app());
    const flow = await start(u);
    github.approve(flow.userCode, { expiresIn: 28_800 });
    const approvedAt = clock;
    const done = await json(await poll(u, flow.id));
    expect(done.status).toBe("completed");
    expect(done.credential.expiresAt).toBe(new Date(approvedAt + 28_800_000).toISOString());
    const listed = await json(await app().request("/api/v1/credentials", { token: u.token }));
    expect(listed.data.map((c: { providerId: string; expiresAt: string | null }) => [c.providerId, c.expiresAt])).toEqual([
      ["github-copilot", new Date(approvedAt + 28_800_000).toISOString()],
    ]);

    // Signing in again with a non-expiring (OAuth app) token replaces it, expiry and all.
    advance(10);
    const again = await start(u);
    github.approve(again.userCode);
    const replaced = await json(await poll(u, again.id));
    expect(replaced.credential).toMatchObject({ providerId: "github-copilot", expiresAt: null });
    expect((await json(await app().request("/api/v1/providers/github-copilot/credential", { token: u.token }))).expiresAt).toBeNull();
  });

  test("two users: neither can poll, cancel or complete the other's flow", async () => {
    const ann = await signUp(app());
    const bob = await signUp(app());
    const flow = await start(ann);
    github.approve(flow.userCode);
    await expectError(await poll(bob, flow.id), 404, "NOT_FOUND");
    await expectError(await app().request(`${base}/${flow.id}`, { method: "DELETE", token: bob.token }), 404, "NOT_FOUND");
    expect((await json(await app().request("/api/v1/credentials", { token: bob.token }))).data).toEqual([]);
    const done = await json(await poll(ann, flow.id));
    expect(done.status).toBe("completed");
    await expectError(await app().request("/api/v1/providers/github-copilot/credential", { token: bob.token }), 404, "NOT_FOUND");
    expect((await app().request("/api/v1/providers/github-copilot/credential", { token: ann.token })).status).toBe(200);
  });
});

describe("purging device flows (injectable clock)", () => {
  test("removes flows expired past the grace period and finished ones, keeps live ones", async () => {
    const u = await signUp(app());
    const db = app().database.db;
    const finished = await start(u);
    github.deny(finished.userCode);
    advance(30);
    await poll(u, finished.id);
    const live = await start(u);
    const count = async (id: string) => (await queryRows<{ n: number }>(db, sql`select count(*)::int as n from oauth_device_flows where id = ${id}`))[0]!.n;

    expect((await purgeDeviceFlows({ db, now: () => new Date(clock), graceMs: 60_000 })).purged).toBeGreaterThanOrEqual(0);
    expect(await count(finished.id)).toBe(1);
    expect(await count(live.id)).toBe(1);
    const later = clock + 120_000;
    await purgeDeviceFlows({ db, now: () => new Date(later), graceMs: 60_000 });
    expect(await count(finished.id)).toBe(0);
    expect(await count(live.id)).toBe(1);
    const muchLater = clock + 900_000 + 61_000;
    await purgeDeviceFlows({ db, now: () => new Date(muchLater), graceMs: 60_000 });
    expect(await count(live.id)).toBe(0);
  });
});
