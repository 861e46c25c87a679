import { describe, expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LocalDriver } from "../../src/orchestrator/local-driver";
import { buildSandboxRuntime } from "../../src/services/sandboxes/setup";
import { json, memoryLogger, signUp, useTestApp } from "../helpers/app";
import { expectError } from "../helpers/expect";
import { securitySuite } from "../helpers/security";
import { testUidBase } from "../helpers/uids";

// A deployment whose agent binary is missing: the API still serves, says why sandboxes cannot
// start, and refuses to start one instead of running it unsandboxed or half-configured.
const app = useTestApp({
  sandboxes: (base) =>
    buildSandboxRuntime({
      ...base,
      now: () => new Date(),
      driver: new LocalDriver({
        dataDir: mkdtempSync(join(tmpdir(), "warren-nodriver-")),
        opencodeBin: "/nonexistent/bin/opencode",
        agentStartTimeoutMs: 5000,
        uidBase: testUidBase(),
        openFilesLimit: 1024,
        logMaxBytes: 65536,
        logger: memoryLogger("silent").logger,
      }),
    }),
});

securitySuite("orchestrator", app, [{ name: "GET /api/v1/orchestrator", method: "GET", path: () => "/api/v1/orchestrator" }]);

describe("driver unavailable", () => {
  test("/ready and /api/v1/orchestrator report it; starting a sandbox is 503 naming what to install", async () => {
    const ready = await json(await app().request("/ready"));
    expect(ready.status).toBe("ready");
    expect(ready.orchestrator).toMatchObject({ driver: "local", available: false });
    const u = await signUp(app());
    const status = await json(await app().request("/api/v1/orchestrator", { token: u.token }));
    expect(status.available).toBe(false);
    expect(status.reason).toContain("opencode");
    const s = await json(await app().request("/api/v1/sandboxes", { method: "POST", token: u.token, json: { name: "x" } }));
    const error = await expectError(await app().request(`/api/v1/sandboxes/${s.id}/start`, { method: "POST", token: u.token }), 503, "SERVICE_UNAVAILABLE");
    expect(error.details.install).toBe(status.install);
    const after = await json(await app().request(`/api/v1/sandboxes/${s.id}`, { token: u.token }));
    expect(after.status).toBe("stopped");
  });
});
