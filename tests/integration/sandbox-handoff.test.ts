import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { json, signUp, type TestUser } from "../helpers/app";
import { startOpenAIStandin } from "../helpers/openai-standin";
import { useSandboxApp } from "../helpers/sandboxes";

// What a running sandbox receives from Warren: the owner's credentials in OpenCode's auth.json
// and their agent configuration, read back through the agent proxy and from the sandbox home.
setDefaultTimeout(120_000);

// The user's self-hosted model server for the custom-provider test (started here, stopped after
// the file), on a loopback port the operator allow-lists (SANDBOX_LOOPBACK_ALLOW_PORTS): the
// loopback guard refuses every other host loopback port to sandboxes.
const model = startOpenAIStandin({ reply: "Served by the custom provider." });
afterAll(() => model.stop());

const app = useSandboxApp({}, () => ({ loopbackAllowPorts: [Number(new URL(model.baseUrl).port)] }));
const KEY = "sk-test-handoff-0123456789abcdef";

const start = async (u: TestUser) => {
  const s = await json(await app().request("/api/v1/sandboxes", { method: "POST", token: u.token, json: { name: "handoff", resourceTierId: "micro" } }));
  expect((await app().request(`/api/v1/sandboxes/${s.id}/start`, { method: "POST", token: u.token })).status).toBe(202);
  const w = await json(await app().request(`/api/v1/sandboxes/${s.id}/wait?status=running&timeoutSeconds=25`, { token: u.token }));
  expect(w.reached).toBe(true);
  return s.id as string;
};

// On the sandbox's own disk (src/orchestrator/local-disk.ts), mounted while it runs.
const home = (id: string) => join(app().dataDir, "sandboxes", id, "disk", "home");

describe("credentials reach the owner's sandbox", () => {
  test("a stored key makes the provider configured inside OpenCode; deleting it removes it from the sandbox", async () => {
    const u = await signUp(app());
    expect((await app().request("/api/v1/providers/openai/credential", { method: "PUT", token: u.token, json: { apiKey: KEY } })).status).toBe(201);
    const id = await start(u);

    const authFile = join(home(id), ".local/share/opencode/auth.json");
    expect(JSON.parse(readFileSync(authFile, "utf8"))).toEqual({ openai: { type: "api", key: KEY } });
    expect(statSync(authFile).mode & 0o777).toBe(0o600);

    const providers = await json(await app().request(`/api/v1/sandboxes/${id}/agent/provider`, { token: u.token }));
    expect(providers.connected).toContain("openai");

    const del = await json(await app().request("/api/v1/providers/openai/credential", { method: "DELETE", token: u.token }));
    expect(del.sandboxes.refreshed).toEqual([id]);
    expect(JSON.parse(readFileSync(authFile, "utf8"))).toEqual({});
    // The key is gone from the sandbox's files at once; OpenCode drops it when it next starts.
    await app().request(`/api/v1/sandboxes/${id}/restart`, { method: "POST", token: u.token });
    const w = await json(await app().request(`/api/v1/sandboxes/${id}/wait?status=running&timeoutSeconds=25`, { token: u.token }));
    expect(w.reached).toBe(true);
    const after = await json(await app().request(`/api/v1/sandboxes/${id}/agent/provider`, { token: u.token }));
    expect(after.connected).not.toContain("openai");
    await app().request(`/api/v1/sandboxes/${id}/stop`, { method: "POST", token: u.token });
  });

  test("a custom OpenAI-compatible provider on the Warren host's localhost is handed over on start and answers with the stored key", async () => {
    // No hosted model here: a local server speaking the chat-completions protocol stands in for
    // the user's self-hosted one (tests/helpers/openai-standin.ts). 127.0.0.1 is the Warren host,
    // which the sandbox shares the network of, its port allow-listed (README: "Provider base URLs").
    const u = await signUp(app());
    const created = await app().request("/api/v1/providers", {
      method: "POST",
      token: u.token,
      json: { name: "Self-hosted", baseUrl: model.baseUrl, models: [{ id: "standin-model", contextWindow: 32000, maxOutput: 4000 }] },
    });
    expect(created.status).toBe(201);
    const providerId = (await json(created)).id as string;
    const customKey = "sk-custom-handoff-0123456789abcdef";
    expect((await app().request(`/api/v1/providers/${providerId}/credential`, { method: "PUT", token: u.token, json: { apiKey: customKey } })).status).toBe(201);
    const id = await start(u);

    const providers = await json(await app().request(`/api/v1/sandboxes/${id}/agent/provider`, { token: u.token }));
    expect(providers.connected).toContain(providerId);
    const listed = providers.all.find((p: { id: string }) => p.id === providerId);
    expect(Object.keys(listed.models)).toEqual(["standin-model"]);

    const session = await json(await app().request(`/api/v1/sandboxes/${id}/agent/session`, { method: "POST", token: u.token, json: {} }));
    const answered = await app().request(`/api/v1/sandboxes/${id}/agent/session/${session.id}/message`, {
      method: "POST",
      token: u.token,
      json: { model: { providerID: providerId, modelID: "standin-model" }, parts: [{ type: "text", text: "Hello?" }] },
    });
    expect(answered.status).toBe(200);
    await answered.arrayBuffer();
    const completions = model.requests.filter((r) => r.path.endsWith("/chat/completions"));
    expect(completions.length).toBeGreaterThan(0);
    expect(completions.every((r) => r.authorization === `Bearer ${customKey}`)).toBe(true);
    expect(completions[0]!.body.model).toBe("standin-model");

    // Deleting the key takes the provider out of the sandbox's files too.
    const del = await json(await app().request(`/api/v1/providers/${providerId}/credential`, { method: "DELETE", token: u.token }));
    expect(del.sandboxes.refreshed).toEqual([id]);
    expect(JSON.parse(readFileSync(join(home(id), ".local/share/opencode/auth.json"), "utf8"))).toEqual({});
    const config = JSON.parse(readFileSync(join(home(id), ".config/opencode/opencode.json"), "utf8"));
    expect(config.provider?.[providerId]).toBeUndefined();
    await app().request(`/api/v1/sandboxes/${id}/stop`, { method: "POST", token: u.token });
  });

  test("another user's sandbox never receives the key", async () => {
    const owner = await signUp(app());
    const other = await signUp(app());
    await app().request("/api/v1/providers/openai/credential", { method: "PUT", token: owner.token, json: { apiKey: KEY } });
    const id = await start(other);
    expect(JSON.parse(readFileSync(join(home(id), ".local/share/opencode/auth.json"), "utf8"))).toEqual({});
    await app().request(`/api/v1/sandboxes/${id}/stop`, { method: "POST", token: other.token });
  });
});

describe("agent configuration reaches running sandboxes", () => {
  test("a new agent file lands in the running sandbox's config directory", async () => {
    const u = await signUp(app());
    const id = await start(u);
    const res = await app().request("/api/v1/me/agent-config/files/agent/reviewer", {
      method: "PUT",
      token: u.token,
      json: { content: "---\ndescription: Reviews code\n---\nReview carefully.\n" },
    });
    expect(res.status).toBe(201);
    expect((await json(res)).sandboxes.applied).toEqual([id]);
    const file = join(home(id), ".config/opencode/agents/reviewer.md");
    expect(existsSync(file)).toBe(true);
    expect(readFileSync(file, "utf8")).toContain("Review carefully.");
    await app().request(`/api/v1/sandboxes/${id}/stop`, { method: "POST", token: u.token });
  });

  test("a deleted agent file leaves the running sandbox; one deleted while stopped is gone after the next start", async () => {
    const u = await signUp(app());
    const put = (type: string, name: string) =>
      app().request(`/api/v1/me/agent-config/files/${type}/${name}`, { method: "PUT", token: u.token, json: { content: `# ${name}\n` } });
    const del = (type: string, name: string) => app().request(`/api/v1/me/agent-config/files/${type}/${name}`, { method: "DELETE", token: u.token });
    expect((await put("agent", "keeper")).status).toBe(201);
    expect((await put("agent", "leaver")).status).toBe(201);
    expect((await put("command", "later")).status).toBe(201);
    const id = await start(u);
    const dir = join(home(id), ".config/opencode");
    expect(existsSync(join(dir, "agents/leaver.md"))).toBe(true);
    const del1 = await del("agent", "leaver");
    expect(del1.status).toBe(200);
    expect(existsSync(join(dir, "agents/leaver.md"))).toBe(false);
    expect(existsSync(join(dir, "agents/keeper.md"))).toBe(true);
    expect(existsSync(join(dir, "commands/later.md"))).toBe(true);
    // Files outside the managed directories are never touched.
    expect(existsSync(join(home(id), ".local/share/opencode/auth.json"))).toBe(true);

    await app().request(`/api/v1/sandboxes/${id}/stop`, { method: "POST", token: u.token });
    expect((await json(await app().request(`/api/v1/sandboxes/${id}/wait?status=stopped&timeoutSeconds=25`, { token: u.token }))).reached).toBe(true);
    expect((await del("command", "later")).status).toBe(200);
    // Stopped: its disk is unmounted, so nothing was written into it (or beside it) meanwhile.
    expect(existsSync(dir)).toBe(false);
    expect((await app().request(`/api/v1/sandboxes/${id}/start`, { method: "POST", token: u.token })).status).toBe(202);
    expect((await json(await app().request(`/api/v1/sandboxes/${id}/wait?status=running&timeoutSeconds=25`, { token: u.token }))).reached).toBe(true);
    expect(existsSync(join(dir, "commands/later.md"))).toBe(false);
    expect(existsSync(join(dir, "agents/keeper.md"))).toBe(true);
    await app().request(`/api/v1/sandboxes/${id}/stop`, { method: "POST", token: u.token });
  });
});
