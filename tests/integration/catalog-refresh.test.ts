import { afterAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { and, eq } from "drizzle-orm";
import { providerCatalogState, providerModels, providers } from "../../db/schema";
import { CATALOG_SOURCE, refreshCatalog } from "../../src/services/providers/catalog-refresh";
import { signUp, useTestApp } from "../helpers/app";

// models.dev cannot be reached from tests: a local server serves a modified copy of the
// committed snapshot, in models.dev's own api.json format.
const snapshot = JSON.parse(readFileSync(new URL("../../db/seed/models-dev-snapshot.json", import.meta.url), "utf8")) as Record<string, any>;
const modified = structuredClone(snapshot);
modified.anthropic.name = "Anthropic (refreshed)";
modified.anthropic.models["claude-3-haiku-20240307"].cost.input = 0.5;
modified.anthropic.models["claude-next"] = { id: "claude-next", name: "Claude Next", tool_call: true, limit: { context: 500000, output: 100000 }, cost: { input: 2, output: 9 } };
modified["new-provider"] = { id: "new-provider", name: "New Provider", env: ["NEW_PROVIDER_API_KEY"], npm: "@ai-sdk/openai-compatible", api: "https://api.new.example/v1", models: { m1: { id: "m1", name: "M1" } } };
delete modified.groq; // gone upstream: kept here, users may rely on it
// Text PostgreSQL cannot hold: that model and that provider are skipped, not the whole refresh.
modified.anthropic.models["bad-nul"] = { id: "bad-nul", name: "Bad\u0000Name" };
modified["bad-provider"] = { id: "bad-provider", name: "Half \ud83d", models: {} };

let mode: "ok" | "broken" | "slow" | "empty" = "ok";
const requests: Array<string | null> = [];
const server = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  async fetch(req) {
    requests.push(req.headers.get("if-none-match"));
    if (mode === "slow") await Bun.sleep(2_000);
    if (mode === "broken") return new Response("<html>bad gateway</html>", { status: 502 });
    if (mode === "empty") return Response.json({});
    if (req.headers.get("if-none-match") === '"v2"') return new Response(null, { status: 304 });
    return Response.json(modified, { headers: { etag: '"v2"' } });
  },
});
afterAll(() => server.stop(true));

const app = useTestApp();
const url = `http://127.0.0.1:${server.port}/api.json`;
const state = async () => (await app().database.db.select().from(providerCatalogState).where(eq(providerCatalogState.source, CATALOG_SOURCE)))[0]!;
const model = async (providerId: string, id: string) =>
  (await app().database.db.select().from(providerModels).where(and(eq(providerModels.providerId, providerId), eq(providerModels.id, id))))[0];

describe("catalogue refresh", () => {
  test("an unreachable URL changes nothing and records the error", async () => {
    const before = await app().database.db.select().from(providers);
    const result = await refreshCatalog({ db: app().database.db, url: "http://127.0.0.1:9/api.json", timeoutMs: 2_000 });
    expect(result.status).toBe("failed");
    expect(await app().database.db.select().from(providers)).toEqual(before);
    const s = await state();
    expect(s.lastError).toBeTruthy();
    expect(s.lastAttemptAt).not.toBeNull();
    expect(s.fetchedAt).toBeNull();
    expect(s.providerCount).toBe(47);
  });

  test("a timeout, an error page or an empty catalogue keep the last good copy", async () => {
    for (const m of ["slow", "broken", "empty"] as const) {
      mode = m;
      const result = await refreshCatalog({ db: app().database.db, url, timeoutMs: 300 });
      expect(result.status).toBe("failed");
      expect((await model("anthropic", "claude-3-haiku-20240307"))!.inputPrice).toBe(0.25);
    }
    expect((await state()).lastError).toContain("0 providers");
    mode = "ok";
  });

  test("a good catalogue is upserted: changed prices and names, new models and providers; nothing deleted", async () => {
    const u = await signUp(app());
    await app().request("/api/v1/providers/groq/credential", { method: "PUT", token: u.token, json: { apiKey: "gsk_0123456789abcdef" } });
    const result = await refreshCatalog({ db: app().database.db, url, timeoutMs: 5_000 });
    expect(result).toMatchObject({ status: "updated", providers: 47 });
    expect((await model("anthropic", "claude-3-haiku-20240307"))!.inputPrice).toBe(0.5);
    expect(await model("anthropic", "claude-next")).toMatchObject({ contextWindow: 500000, maxOutput: 100000, inputPrice: 2, outputPrice: 9 });
    const [anthropic] = await app().database.db.select().from(providers).where(eq(providers.id, "anthropic"));
    expect(anthropic).toMatchObject({ name: "Anthropic (refreshed)", baseUrl: "https://api.anthropic.com/v1" });
    const [copilot] = await app().database.db.select().from(providers).where(eq(providers.id, "github-copilot"));
    expect(copilot!.authTypes).toEqual(["device_flow"]);
    expect((await app().request("/api/v1/providers/new-provider", { token: u.token })).status).toBe(200);
    expect(await model("anthropic", "bad-nul")).toBeUndefined();
    expect((await app().request("/api/v1/providers/bad-provider", { token: u.token })).status).toBe(404);
    expect((await app().request("/api/v1/providers/groq/credential", { token: u.token })).status).toBe(200);
    const s = await state();
    expect(s).toMatchObject({ lastError: null, etag: '"v2"', providerCount: 47 });
    expect(s.fetchedAt).not.toBeNull();

    // The ETag is sent back; a 304 leaves everything as it is.
    expect((await refreshCatalog({ db: app().database.db, url, timeoutMs: 5_000 })).status).toBe("not_modified");
    expect(requests.at(-1)).toBe('"v2"');
  });
});
