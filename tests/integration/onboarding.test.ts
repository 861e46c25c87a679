import { beforeAll, describe, expect, test } from "bun:test";
import { and, eq } from "drizzle-orm";
import { activityLog, onboardingSessions } from "../../db/schema";
import { DEFAULT_KNOWLEDGE_DIR, seedKnowledge } from "../../src/services/knowledge/seed";
import { json, signUp, useTestApp, type TestUser } from "../helpers/app";
import { expectError } from "../helpers/expect";
import { securitySuite } from "../helpers/security";

const app = useTestApp();
beforeAll(async () => {
  await seedKnowledge(app().database.db, { dir: DEFAULT_KNOWLEDGE_DIR, source: "seed" });
});

const REQUIREMENTS = {
  projectType: "api",
  languages: ["python"],
  frameworks: ["fastapi"],
  description: "Invoices API",
  modelPreference: "cheapest",
};

async function sandboxOf(u: TestUser): Promise<string> {
  const res = await app().request("/api/v1/sandboxes", { method: "POST", token: u.token, json: { name: `onb-${Math.random().toString(36).slice(2, 8)}` } });
  expect(res.status).toBe(201);
  return (await json<{ id: string }>(res)).id;
}
const call = (u: TestUser, method: string, path: string, body?: unknown) =>
  app().request(`/api/v1/sandboxes/${path}`, { method, token: u.token, ...(body === undefined ? {} : { json: body }) });
const setKey = (u: TestUser, providerId: string) =>
  app().request(`/api/v1/providers/${providerId}/credential`, { method: "PUT", token: u.token, json: { apiKey: `sk-test-${providerId}-0123456789` } });

describe("state machine", () => {
  const STATUSES = ["pending", "gathering", "generating", "applying", "completed", "skipped", "failed"] as const;
  type Action = "requirements" | "recommend" | "generate" | "apply" | "skip";
  // Written out by hand from the issue (not derived from the implementation's table).
  const ALLOWED: Record<Action, string[]> = {
    requirements: ["pending", "gathering", "generating", "skipped", "failed", "completed"],
    recommend: ["gathering", "generating"],
    generate: ["gathering", "generating"],
    apply: ["generating", "completed", "failed"],
    skip: ["pending", "gathering", "generating", "failed"],
  };
  const EXPECTED_STATUS: Record<Action, string> = { requirements: "gathering", recommend: "gathering", generate: "generating", apply: "completed", skip: "skipped" };
  const REQUEST: Record<Action, [string, string, unknown?]> = {
    requirements: ["PUT", "requirements", REQUIREMENTS],
    recommend: ["POST", "recommendations", {}],
    generate: ["POST", "generate"],
    apply: ["POST", "apply"],
    skip: ["POST", "skip"],
  };

  let user: TestUser;
  let sandboxId: string;
  let generated: Record<string, unknown>;
  beforeAll(async () => {
    user = await signUp(app());
    sandboxId = await sandboxOf(user);
    await call(user, "PUT", `${sandboxId}/onboarding/requirements`, REQUIREMENTS);
    generated = (await json(await call(user, "POST", `${sandboxId}/onboarding/generate`))).generated;
  });

  for (const action of Object.keys(ALLOWED) as Action[]) {
    for (const from of STATUSES) {
      const allowed = ALLOWED[action].includes(from);
      test(`${action} from ${from} is ${allowed ? `allowed (→ ${EXPECTED_STATUS[action]})` : "409 INVALID_STATE"}`, async () => {
        // Put the session in `from` with everything a later step needs; `applying` is fresh (not abandoned).
        await app()
          .database.db.update(onboardingSessions)
          .set({ status: from, requirements: REQUIREMENTS, generated, updatedAt: new Date() })
          .where(eq(onboardingSessions.sandboxId, sandboxId));
        const [method, path, body] = REQUEST[action];
        const res = await call(user, method, `${sandboxId}/onboarding/${path}`, body);
        if (allowed) {
          expect(res.status).toBe(200);
          expect((await json(res)).status).toBe(EXPECTED_STATUS[action]);
        } else {
          const error = await expectError(res, 409, "INVALID_STATE");
          expect(error.details.status).toBe(from);
          const [row] = await app().database.db.select().from(onboardingSessions).where(eq(onboardingSessions.sandboxId, sandboxId));
          expect(row!.status).toBe(from);
        }
      });
    }
  }

  test("an `applying` abandoned by a crashed instance may be applied again", async () => {
    await app()
      .database.db.update(onboardingSessions)
      .set({ status: "applying", generated, updatedAt: new Date(Date.now() - 10 * 60_000) })
      .where(eq(onboardingSessions.sandboxId, sandboxId));
    const res = await call(user, "POST", `${sandboxId}/onboarding/apply`);
    expect((await json(res)).status).toBe("completed");
  });
});

describe("steps", () => {
  test("start is idempotent; GET before start is 404; a step that may not come first says onboarding has not started", async () => {
    const u = await signUp(app());
    const id = await sandboxOf(u);
    const NOT_STARTED = "Onboarding has not started for this sandbox: start it (POST …/onboarding), record the requirements (PUT …/onboarding/requirements) or skip it";
    expect((await expectError(await call(u, "GET", `${id}/onboarding`), 404, "NOT_FOUND")).message).toBe(NOT_STARTED);
    // Not "while it is pending": no session exists, and the refusal creates none.
    const early = await expectError(await call(u, "POST", `${id}/onboarding/generate`), 409, "INVALID_STATE");
    expect(early.message).toBe(`Onboarding cannot do "generate" first. ${NOT_STARTED}`);
    expect(early.details).toEqual({ status: null, action: "generate", allowedFrom: ["gathering", "generating"] });
    await expectError(await call(u, "GET", `${id}/onboarding`), 404, "NOT_FOUND");
    const first = await call(u, "POST", `${id}/onboarding`);
    expect(first.status).toBe(201);
    const again = await call(u, "POST", `${id}/onboarding`);
    expect(again.status).toBe(200);
    expect((await json(again)).id).toBe((await json(first)).id);
    expect((await json(await call(u, "GET", `${id}/onboarding`))).status).toBe("pending");
  });

  test("generate builds opencode.json, AGENTS.md, agents and commands from the knowledge templates; apply to a stopped sandbox completes", async () => {
    const u = await signUp(app());
    expect((await setKey(u, "anthropic")).status).toBe(201);
    const id = await sandboxOf(u);
    await call(u, "PUT", `${id}/onboarding/requirements`, { ...REQUIREMENTS, testCommand: "make test" });
    const session = await json(await call(u, "POST", `${id}/onboarding/generate`));
    expect(session.status).toBe("generating");
    const g = session.generated;
    expect(g.config.model).toBe(`anthropic/${session.recommendations.primary.modelId}`);
    expect(g.config.small_model).toStartWith("anthropic/");
    expect(g.sources[0]).toBe("python-fastapi-service");
    expect(g.agentsMd).toContain("pydantic models");
    expect(g.agentsMd).toContain("`make test`");
    expect(g.agentsMd).toContain("warren-knowledge");
    const names = g.files.map((f: { type: string; name: string }) => `${f.type}/${f.name}`);
    expect(names).toContain("agent/reviewer");
    expect(names).toContain("command/test");
    const testCommand = g.files.find((f: { name: string }) => f.name === "test").content;
    expect(testCommand).toStartWith("---\ndescription: Run the tests and explain failures\n---\n");
    expect(testCommand).toContain("Run `make test $ARGUMENTS`");

    const applied = await json(await call(u, "POST", `${id}/onboarding/apply`));
    expect(applied).toMatchObject({ status: "completed", applied: true, written: false });
    expect(applied.paths).toContain(".config/opencode/agents/reviewer.md");
    const actions = await app()
      .database.db.select({ action: activityLog.action })
      .from(activityLog)
      .where(and(eq(activityLog.userId, u.id), eq(activityLog.entityId, id)));
    expect(actions.map((a) => a.action)).toEqual(expect.arrayContaining(["onboarding.requirements", "onboarding.generate", "onboarding.apply"]));
  });
});

describe("model recommendation", () => {
  test("uses only the caller's own providers, never another user's credentials or custom providers", async () => {
    const alice = await signUp(app());
    const bob = await signUp(app());
    expect((await setKey(alice, "anthropic")).status).toBe(201);
    // Alice's custom provider is free and has a huge context: it would win every preference for anyone.
    const custom = await app().request("/api/v1/providers", {
      method: "POST",
      token: alice.token,
      json: { name: "Alice gateway", baseUrl: "https://llm.alice.example/v1", models: [{ id: "giant", contextWindow: 10_000_000, maxOutput: 8192 }] },
    });
    expect(custom.status).toBe(201);
    const customId = (await json(custom)).id;
    expect((await setKey(bob, "openai")).status).toBe(201);

    for (const preference of ["cheapest", "fastest", "largest-context"]) {
      const id = await sandboxOf(bob);
      await call(bob, "PUT", `${id}/onboarding/requirements`, REQUIREMENTS);
      const rec = (await json(await call(bob, "POST", `${id}/onboarding/recommendations`, { preference }))).recommendations;
      expect(rec.providers).toEqual(["openai"]);
      expect(rec.primary.providerId).toBe("openai");
      expect(rec.small.providerId).toBe("openai");
    }
    const aliceBox = await sandboxOf(alice);
    await call(alice, "PUT", `${aliceBox}/onboarding/requirements`, REQUIREMENTS);
    const aliceRec = (await json(await call(alice, "POST", `${aliceBox}/onboarding/recommendations`, { preference: "largest-context" }))).recommendations;
    expect(aliceRec.providers).toEqual([customId, "anthropic"].sort());
    expect(aliceRec.primary).toMatchObject({ providerId: customId, modelId: "giant" });
  });

  test("preferences pick by the catalog's prices and context sizes", async () => {
    const u = await signUp(app());
    await setKey(u, "anthropic");
    await setKey(u, "openai");
    const id = await sandboxOf(u);
    await call(u, "PUT", `${id}/onboarding/requirements`, REQUIREMENTS);
    const pick = async (preference: string) => (await json(await call(u, "POST", `${id}/onboarding/recommendations`, { preference }))).recommendations;
    const cheapest = await pick("cheapest");
    const largest = await pick("largest-context");
    const fastest = await pick("fastest");
    const price = (m: { inputPrice: number; outputPrice: number }) => m.inputPrice + m.outputPrice;
    expect(price(cheapest.primary)).toBeLessThanOrEqual(price(largest.primary));
    expect(largest.primary.contextWindow).toBeGreaterThanOrEqual(cheapest.primary.contextWindow);
    expect(fastest.primary.reason).toContain("light");
    expect(cheapest.considered).toBeGreaterThan(10);
  });

  test("with no providers there is no recommendation, and a note says what to do", async () => {
    const u = await signUp(app());
    const id = await sandboxOf(u);
    await call(u, "PUT", `${id}/onboarding/requirements`, REQUIREMENTS);
    const rec = (await json(await call(u, "POST", `${id}/onboarding/recommendations`))).recommendations;
    expect(rec).toMatchObject({ primary: null, small: null, considered: 0, preference: "cheapest" });
    expect(rec.notes[0]).toContain("no configured providers");
  });
});

const withSandbox = (suffix: string) => async (owner: TestUser) => `/api/v1/sandboxes/${await sandboxOf(owner)}/onboarding${suffix}`;
const untouched = async (owner: TestUser, path: string) => {
  const id = path.split("/")[4]!;
  const rows = await app().database.db.select().from(onboardingSessions).where(eq(onboardingSessions.sandboxId, id));
  expect(rows.length === 0 || rows[0]!.status === "pending").toBe(true);
  void owner;
};

securitySuite("onboarding", app, [
  { name: "GET onboarding", method: "GET", path: async (o) => { const p = await withSandbox("")(o); await app().request(p, { method: "POST", token: o.token }); return p; }, ownedResource: true },
  { name: "POST onboarding", method: "POST", path: withSandbox(""), ownedResource: true, verifyUntouched: untouched },
  {
    name: "PUT onboarding/requirements",
    method: "PUT",
    path: withSandbox("/requirements"),
    body: REQUIREMENTS,
    ownedResource: true,
    verifyUntouched: untouched,
    badInputs: [
      { body: { ...REQUIREMENTS, languages: [] }, field: "languages" },
      { body: { ...REQUIREMENTS, projectType: "spaceship" }, field: "projectType" },
      { body: { ...REQUIREMENTS, testCommand: "a\nb" }, field: "testCommand" },
      { body: { ...REQUIREMENTS, extra: 1 }, field: "extra" },
    ],
  },
  { name: "POST onboarding/recommendations", method: "POST", path: withSandbox("/recommendations"), body: {}, ownedResource: true, verifyUntouched: untouched, badInputs: [{ body: { preference: "slowest" }, field: "preference" }] },
  { name: "POST onboarding/generate", method: "POST", path: withSandbox("/generate"), ownedResource: true, verifyUntouched: untouched },
  { name: "POST onboarding/apply", method: "POST", path: withSandbox("/apply"), ownedResource: true, verifyUntouched: untouched },
  { name: "POST onboarding/skip", method: "POST", path: withSandbox("/skip"), ownedResource: true, verifyUntouched: untouched },
]);
