import { describe, expect, test } from "bun:test";
import { eq } from "drizzle-orm";
import { activityLog, userPreferences } from "../../db/schema";
import { json, signUp, useTestApp, type TestUser } from "../helpers/app";
import { expectError } from "../helpers/expect";
import { securitySuite } from "../helpers/security";

const app = useTestApp();

const customBody = (name = `Gateway ${Math.random().toString(36).slice(2, 8)}`) => ({
  name,
  baseUrl: "https://llm.example.com/v1",
  models: [{ id: "qwen-coder", name: "Qwen Coder", contextWindow: 32768, maxOutput: 8192 }, { id: "llama-3" }],
});

async function createCustom(owner: TestUser, body = customBody()) {
  const res = await app().request("/api/v1/providers", { method: "POST", token: owner.token, json: body });
  expect(res.status).toBe(201);
  return json(res);
}

const storeKey = (u: TestUser, providerId: string, apiKey = "sk-test-0123456789abcd") =>
  app().request(`/api/v1/providers/${providerId}/credential`, { method: "PUT", token: u.token, json: { apiKey } });

securitySuite("providers", app, [
  {
    name: "GET /api/v1/providers",
    method: "GET",
    path: () => "/api/v1/providers",
    badInputs: [
      { path: () => "/api/v1/providers?limit=0", field: "limit" },
      { path: () => "/api/v1/providers?cursor=bm90LWEtY3Vyc29y", field: "cursor" },
    ],
  },
  {
    name: "POST /api/v1/providers",
    method: "POST",
    path: () => "/api/v1/providers",
    body: customBody(),
    badInputs: [
      { body: { ...customBody(), baseUrl: "ftp://llm.example.com" }, field: "baseUrl" },
      { body: { ...customBody(), baseUrl: "not a url" }, field: "baseUrl" },
      { body: { ...customBody(), baseUrl: "https://admin:secret@llm.example.com/v1" }, field: "baseUrl" },
      { body: { ...customBody(), name: "" }, field: "name" },
      { body: { ...customBody(), name: "LLM\r\nX-Injected: 1" }, field: "name" },
      { body: { ...customBody(), models: [] }, field: "models" },
      { body: { ...customBody(), models: [{ id: "a" }, { id: "a" }] }, field: "models" },
      { body: { ...customBody(), ownerUserId: "usr_x" }, field: "ownerUserId" },
    ],
  },
  {
    name: "GET /api/v1/providers/:id (another user's custom provider)",
    method: "GET",
    path: async (owner) => `/api/v1/providers/${(await createCustom(owner)).id}`,
    ownedResource: true,
    badInputs: [{ path: () => "/api/v1/providers/anthropic?cursor=%%%", field: "cursor" }],
  },
  {
    name: "PUT /api/v1/me/default-model",
    method: "PUT",
    path: () => "/api/v1/me/default-model",
    body: { providerId: "anthropic", modelId: "claude-3-haiku-20240307" },
    badInputs: [
      { body: { providerId: "anthropic" }, field: "modelId" },
      { body: { providerId: "", modelId: "x" }, field: "providerId" },
    ],
  },
]);

describe("catalogue", () => {
  test("the seed has the common providers with env vars, npm package, base URL and priced models", async () => {
    const u = await signUp(app());
    const anthropic = await json(await app().request("/api/v1/providers/anthropic?limit=100", { token: u.token }));
    expect(anthropic).toMatchObject({
      id: "anthropic",
      name: "Anthropic",
      custom: false,
      authTypes: ["api_key"],
      envVars: ["ANTHROPIC_API_KEY"],
      npmPackage: "@ai-sdk/anthropic",
      baseUrl: "https://api.anthropic.com/v1",
      configured: false,
      isDefault: false,
    });
    const haiku = anthropic.models.data.find((m: { id: string }) => m.id === "claude-3-haiku-20240307");
    expect(haiku).toMatchObject({ contextWindow: 200000, maxOutput: 4096, inputPricePerMillion: 0.25, outputPricePerMillion: 1.25 });
    expect(haiku.capabilities).toMatchObject({ toolCall: true, attachment: true });
    const copilot = await json(await app().request("/api/v1/providers/github-copilot", { token: u.token }));
    expect(copilot.authTypes).toEqual(["device_flow"]);
    for (const id of ["openai", "google", "openrouter", "mistral", "groq", "xai", "deepseek", "amazon-bedrock"]) {
      expect((await app().request(`/api/v1/providers/${id}`, { token: u.token })).status).toBe(200);
    }
  });

  test("providers and models page by id with opaque cursors", async () => {
    const u = await signUp(app());
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { data: Array<{ id: string }>; nextCursor: string | null } = await json(
        await app().request(`/api/v1/providers?limit=10${cursor ? `&cursor=${cursor}` : ""}`, { token: u.token }),
      );
      expect(page.data.length).toBeLessThanOrEqual(10);
      seen.push(...page.data.map((p) => p.id));
      cursor = page.nextCursor;
    } while (cursor);
    expect(seen.length).toBeGreaterThanOrEqual(47);
    expect([...seen].sort()).toEqual(seen);
    expect(new Set(seen).size).toBe(seen.length);

    const first = await json(await app().request("/api/v1/providers/openrouter?limit=5", { token: u.token }));
    expect(first.models.data.length).toBe(5);
    const second = await json(await app().request(`/api/v1/providers/openrouter?limit=5&cursor=${first.models.nextCursor}`, { token: u.token }));
    expect(second.models.data[0].id > first.models.data[4].id).toBe(true);
  });

  test("an unknown provider is 404 in the envelope", async () => {
    const u = await signUp(app());
    await expectError(await app().request("/api/v1/providers/no-such-provider", { token: u.token }), 404, "NOT_FOUND");
  });
});

describe("custom providers", () => {
  test("are visible, configurable and usable as default by their owner only", async () => {
    const owner = await signUp(app());
    const other = await signUp(app());
    const created = await createCustom(owner, customBody("Company gateway"));
    expect(created).toMatchObject({ name: "Company gateway", custom: true, baseUrl: "https://llm.example.com/v1", configured: false, authTypes: ["api_key"] });
    expect(created.id).toStartWith("cpr_");
    expect(created.models.data.map((m: { id: string }) => m.id)).toEqual(["llama-3", "qwen-coder"]);

    const listed = async (u: TestUser) => (await json(await app().request("/api/v1/providers?limit=100", { token: u.token }))).data.map((p: { id: string }) => p.id);
    expect(await listed(owner)).toContain(created.id);
    expect(await listed(other)).not.toContain(created.id);

    await expectError(await storeKey(other, created.id), 404, "NOT_FOUND");
    expect((await storeKey(owner, created.id)).status).toBe(201);
    await expectError(
      await app().request("/api/v1/me/default-model", { method: "PUT", token: other.token, json: { providerId: created.id, modelId: "llama-3" } }),
      404,
      "NOT_FOUND",
    );

    const dup = await app().request("/api/v1/providers", { method: "POST", token: owner.token, json: customBody("Company gateway") });
    await expectError(dup, 409, "CONFLICT");
    // The same name is fine for someone else.
    expect((await app().request("/api/v1/providers", { method: "POST", token: other.token, json: customBody("Company gateway") })).status).toBe(201);

    const entries = await app().database.db.select().from(activityLog).where(eq(activityLog.userId, owner.id));
    expect(entries.filter((e) => e.action === "provider.create").map((e) => e.entityId)).toEqual([created.id]);
  });
});

describe("PUT /api/v1/me/default-model", () => {
  test("deleting the provider's credential clears the default, which must stay usable", async () => {
    const u = await signUp(app());
    expect((await storeKey(u, "anthropic")).status).toBe(201);
    const body = { providerId: "anthropic", modelId: "claude-3-haiku-20240307" };
    expect((await app().request("/api/v1/me/default-model", { method: "PUT", token: u.token, json: body })).status).toBe(200);
    expect((await app().request("/api/v1/providers/anthropic/credential", { method: "DELETE", token: u.token })).status).toBe(200);
    const anthropic = await json(await app().request("/api/v1/providers/anthropic", { token: u.token }));
    expect(anthropic).toMatchObject({ configured: false, isDefault: false });
    const prefs = await json(await app().request("/api/v1/me/preferences", { token: u.token }));
    expect([prefs.defaultProviderId, prefs.defaultModelId]).toEqual([null, null]);
  });

  test("needs the provider configured by the caller, then shows up as isDefault", async () => {
    const u = await signUp(app());
    const body = { providerId: "anthropic", modelId: "claude-3-haiku-20240307" };
    await expectError(await app().request("/api/v1/me/default-model", { method: "PUT", token: u.token, json: body }), 409, "INVALID_STATE");
    expect((await storeKey(u, "anthropic")).status).toBe(201);
    const res = await app().request("/api/v1/me/default-model", { method: "PUT", token: u.token, json: body });
    expect(res.status).toBe(200);
    expect(await json(res)).toEqual(body);
    await expectError(
      await app().request("/api/v1/me/default-model", { method: "PUT", token: u.token, json: { providerId: "anthropic", modelId: "gpt-4o" } }),
      404,
      "NOT_FOUND",
    );

    const list = await json(await app().request("/api/v1/providers?limit=100", { token: u.token }));
    const anthropic = list.data.find((p: { id: string }) => p.id === "anthropic");
    expect(anthropic).toMatchObject({ configured: true, isDefault: true });
    expect(list.data.filter((p: { isDefault: boolean }) => p.isDefault).length).toBe(1);
    const detail = await json(await app().request("/api/v1/providers/anthropic?limit=100", { token: u.token }));
    expect(detail.models.data.filter((m: { isDefault: boolean }) => m.isDefault).map((m: { id: string }) => m.id)).toEqual([body.modelId]);

    // Per user: someone else's defaults are untouched.
    const other = await signUp(app());
    const theirs = await json(await app().request("/api/v1/providers?limit=100", { token: other.token }));
    expect(theirs.data.some((p: { isDefault: boolean; configured: boolean }) => p.isDefault || p.configured)).toBe(false);
    const [prefs] = await app().database.db.select().from(userPreferences).where(eq(userPreferences.userId, u.id));
    expect(prefs).toMatchObject({ defaultProviderId: "anthropic", defaultModelId: body.modelId });
  });
});
