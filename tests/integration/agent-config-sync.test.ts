import { describe, expect, test } from "bun:test";
import { and, eq } from "drizzle-orm";
import { userAgentFiles } from "../../db/schema";
import { createApp } from "../../src/app";
import type { ServiceContext } from "../../src/context";
import type { WorkloadFile } from "../../src/orchestrator/driver";
import type { SandboxConfigApplier } from "../../src/services/agent-config/apply";
import { loadAgentConfigFiles } from "../../src/services/agent-config/render";
import { json, memoryLogger, signUp, useTestApp } from "../helpers/app";
import { expectError } from "../helpers/expect";

const app = useTestApp();
const BASE = "/api/v1/me/agent-config";
const FILE = `${BASE}/files/agent/reviewer`;

const putFile = (token: string, path: string, body: unknown) => app().request(path, { method: "PUT", token, json: body });

describe("running sandboxes", () => {
  function appWith(applier: SandboxConfigApplier) {
    const { logger, lines } = memoryLogger();
    const instance = createApp({ config: app().config, database: app().database, logger, auth: app().auth, sandboxConfig: applier });
    const request = (path: string, token: string, init: { method: string; json: unknown }) =>
      Promise.resolve(instance.request(path, { method: init.method, headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: JSON.stringify(init.json) }));
    return { request, lines };
  }

  test("after each committed write the applier gets the caller's scope; the response says which sandboxes took it", async () => {
    const u = await signUp(app());
    const calls: Array<{ userId: string; files: WorkloadFile[] }> = [];
    const applier: SandboxConfigApplier = {
      async applyAgentConfig(ctx: ServiceContext) {
        // Reads through the pool: it sees the write only if it has committed.
        calls.push({ userId: ctx.userId, files: await loadAgentConfigFiles(ctx.db, ctx.userId) });
        return { applied: ["sbx_running"], restartRequired: ["sbx_old_agent"] };
      },
    };
    const t = appWith(applier);
    const res = await t.request(`${BASE}/files/command/deploy`, u.token, { method: "PUT", json: { content: "Deploy it" } });
    expect(res.status).toBe(201);
    expect((await json(res)).sandboxes).toEqual({ applied: ["sbx_running"], restartRequired: ["sbx_old_agent"] });
    expect(calls.length).toBe(1);
    expect(calls[0]!.userId).toBe(u.id);
    expect(calls[0]!.files.map((f) => f.path)).toContain(".config/opencode/commands/deploy.md");

    const refused = await t.request(BASE, u.token, { method: "PATCH", json: { config: [] } });
    expect(refused.status).toBe(400);
    expect(calls.length).toBe(1);
  });

  test("a failing applier does not undo or fail the saved write", async () => {
    const u = await signUp(app());
    const t = appWith({
      applyAgentConfig: async () => {
        throw new Error("driver unreachable");
      },
    });
    const res = await t.request(BASE, u.token, { method: "PATCH", json: { agentsMd: "kept" } });
    expect(res.status).toBe(200);
    expect((await json(res)).sandboxes).toEqual({ applied: [], restartRequired: [] });
    expect(t.lines.some((l) => l.includes("driver unreachable"))).toBe(true);
    expect((await json(await app().request(BASE, { token: u.token }))).agentsMd).toBe("kept");
  });
});

describe("limits", () => {
  test("a user's file count is capped with LIMIT_EXCEEDED", async () => {
    const u = await signUp(app());
    const now = new Date();
    await app().database.db.insert(userAgentFiles).values(
      Array.from({ length: 200 }, (_, i) => ({ id: `agf_seed_${u.id}_${i}`, userId: u.id, type: "command" as const, name: `c${i}`, extension: "md" as const, content: "", createdAt: now, updatedAt: now })),
    );
    await expectError(await putFile(u.token, FILE, { content: "one too many" }), 403, "LIMIT_EXCEEDED");
    expect((await putFile(u.token, `${BASE}/files/command/c7`, { content: "replacing is fine" })).status).toBe(200);
    const rows = await app().database.db.select().from(userAgentFiles).where(and(eq(userAgentFiles.userId, u.id), eq(userAgentFiles.type, "agent")));
    expect(rows).toEqual([]);
  });
});
