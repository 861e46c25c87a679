import { beforeAll, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { DEFAULT_KNOWLEDGE_DIR, seedKnowledge } from "../../src/services/knowledge/seed";
import { json, signUp, type TestUser } from "../helpers/app";
import { useSandboxApp } from "../helpers/sandboxes";

/**
 * Onboarding applied to a running sandbox of the real local driver (bubblewrap + OpenCode): the
 * files land in the sandbox's home through the driver, applying again writes the same bytes, and
 * OpenCode started with the MCP entry Warren wrote (its config schema accepted it).
 */
const app = useSandboxApp();
let user: TestUser;
beforeAll(async () => {
  await seedKnowledge(app().database.db, { dir: DEFAULT_KNOWLEDGE_DIR, source: "seed" });
  user = await signUp(app());
});

const call = (method: string, path: string, body?: unknown) =>
  app().request(`/api/v1/sandboxes/${path}`, { method, token: user.token, ...(body === undefined ? {} : { json: body }) });

test("apply writes the generated files into the running sandbox, idempotently", async () => {
  await app().request("/api/v1/providers/anthropic/credential", { method: "PUT", token: user.token, json: { apiKey: "sk-ant-test-0123456789" } });
  const created = await app().request("/api/v1/sandboxes", { method: "POST", token: user.token, json: { name: "Invoices" } });
  expect(created.status).toBe(201);
  const id: string = (await json(created)).id;
  expect((await call("POST", `${id}/start`)).status).toBe(202);
  const waited = await json(await call("GET", `${id}/wait?status=running&timeoutSeconds=90`));
  expect(waited.reached).toBe(true);

  const home = join(app().dataDir, "sandboxes", id, "disk", "home");
  const read = (p: string) => readFileSync(join(home, p), "utf8");
  // Started with Warren's MCP server in its configuration.
  const started = JSON.parse(read(".config/opencode/opencode.json"));
  expect(started.mcp["warren-knowledge"].headers["X-Warren-Sandbox"]).toBe(id);

  await call("PUT", `${id}/onboarding/requirements`, { projectType: "api", languages: ["python"], frameworks: ["fastapi"], testCommand: "make test" });
  const generated = await json(await call("POST", `${id}/onboarding/generate`));
  expect(generated.status).toBe("generating");
  const applied = await json(await call("POST", `${id}/onboarding/apply`));
  expect(applied).toMatchObject({ status: "completed", written: true, applied: true });

  const config = JSON.parse(read(".config/opencode/opencode.json"));
  expect(config.model).toBe(generated.generated.config.model);
  expect(config.small_model).toBe(generated.generated.config.small_model);
  // The running agent's MCP token is repeated, not replaced.
  expect(config.mcp["warren-knowledge"].headers.Authorization).toBe(started.mcp["warren-knowledge"].headers.Authorization);
  expect(read(".config/opencode/AGENTS.md")).toContain("pydantic models");
  expect(read(".config/opencode/agents/reviewer.md")).toContain("mode: subagent");
  expect(read(".config/opencode/commands/test.md")).toContain("Run `make test $ARGUMENTS`");

  const before = Object.fromEntries(applied.paths.map((p: string) => [p, read(p)]));
  const again = await json(await call("POST", `${id}/onboarding/apply`));
  expect(again).toMatchObject({ status: "completed", written: true });
  expect(Object.fromEntries(applied.paths.map((p: string) => [p, read(p)]))).toEqual(before);

  // The layer survives a restart (written again on start, with a new MCP token).
  expect((await call("POST", `${id}/restart`)).status).toBe(202);
  expect((await json(await call("GET", `${id}/wait?status=running&timeoutSeconds=90`))).reached).toBe(true);
  const restarted = JSON.parse(read(".config/opencode/opencode.json"));
  expect(restarted.model).toBe(config.model);
  expect(restarted.mcp["warren-knowledge"].headers.Authorization).not.toBe(config.mcp["warren-knowledge"].headers.Authorization);
  expect(read(".config/opencode/agents/reviewer.md")).toBe(before[".config/opencode/agents/reviewer.md"]);
}, 240_000);
