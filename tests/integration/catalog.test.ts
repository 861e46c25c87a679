import { describe, expect, test } from "bun:test";
import { eq } from "drizzle-orm";
import { containerAddons } from "../../db/schema";
import { json, useTestApp } from "../helpers/app";
import { expectError } from "../helpers/expect";
import { securitySuite } from "../helpers/security";
import { signUp } from "../helpers/app";

const app = useTestApp();

securitySuite("catalog", app, [
  { name: "GET /api/v1/resource-tiers", method: "GET", path: () => "/api/v1/resource-tiers", badInputs: [{ path: () => "/api/v1/resource-tiers?includeDisabled=yes", field: "includeDisabled" }] },
  { name: "GET /api/v1/resource-tiers/:id", method: "GET", path: () => "/api/v1/resource-tiers/starter" },
  { name: "GET /api/v1/flavors", method: "GET", path: () => "/api/v1/flavors" },
  { name: "GET /api/v1/flavors/:id", method: "GET", path: () => "/api/v1/flavors/js" },
  { name: "GET /api/v1/addons", method: "GET", path: () => "/api/v1/addons" },
  { name: "GET /api/v1/addons/:id", method: "GET", path: () => "/api/v1/addons/gui" },
]);

describe("catalog", () => {
  test("tiers carry the limits users see, seeded with micro first and starter as default", async () => {
    const u = await signUp(app());
    const tiers = (await json(await app().request("/api/v1/resource-tiers", { token: u.token }))).data;
    expect(tiers.map((t: { id: string }) => t.id)).toEqual(["micro", "starter", "builder", "creator", "power"]);
    expect(tiers.find((t: { isDefault: boolean }) => t.isDefault).id).toBe("starter");
    const power = await json(await app().request("/api/v1/resource-tiers/power", { token: u.token }));
    expect(power).toMatchObject({ cpuCores: 8, memoryMb: 16384, storageGb: 100, priceMonthly: 50, hasGpu: false });
  });

  test("disabled flavors are listed only when asked", async () => {
    const u = await signUp(app());
    const enabled = (await json(await app().request("/api/v1/flavors", { token: u.token }))).data.map((f: { id: string }) => f.id);
    expect(enabled).toEqual(["bare", "js", "python", "rust", "fullstack"]);
    const all = (await json(await app().request("/api/v1/flavors?includeDisabled=true", { token: u.token }))).data;
    expect(all.map((f: { id: string }) => f.id)).toEqual(["bare", "js", "python", "go", "rust", "fullstack", "polyglot"]);
    expect(all.find((f: { id: string }) => f.id === "go").enabled).toBe(false);
    expect((await json(await app().request("/api/v1/flavors/go", { token: u.token }))).enabled).toBe(false);
  });

  test("add-ons state their rules as data", async () => {
    const u = await signUp(app());
    const gpu = await json(await app().request("/api/v1/addons/gpu", { token: u.token }));
    expect(gpu).toMatchObject({ category: "compute", requiresGpu: true, priceMonthly: 20 });
    const gui = await json(await app().request("/api/v1/addons/gui", { token: u.token }));
    expect(gui).toMatchObject({ category: "interface", port: 6080 });
  });

  test("the gui add-on's X server has no abstract socket, which every local sandbox could open (migration 0012)", async () => {
    const [row] = await app().database.db.select({ service: containerAddons.service }).from(containerAddons).where(eq(containerAddons.id, "gui"));
    const command = (row!.service as { command: string }).command;
    // Only the filesystem socket in the sandbox's private /tmp is left, which x11vnc connects to.
    expect(command).toContain("Xvfb :$d -screen 0 1280x800x24 -nolisten tcp -nolisten local &");
    expect(command).toContain("x11vnc -display :$d -unixsock /tmp/warren-vnc.sock");
  });

  test("an unknown id is 404", async () => {
    const u = await signUp(app());
    for (const path of ["/api/v1/resource-tiers/huge", "/api/v1/flavors/cobol", "/api/v1/addons/teleporter"]) {
      await expectError(await app().request(path, { token: u.token }), 404, "NOT_FOUND");
    }
  });
});

describe("OpenAPI", () => {
  test("documents the catalog, sandbox, proxy and orchestrator routes", async () => {
    const doc = await json(await app().request("/api/openapi.json"));
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining([
        "/api/v1/resource-tiers",
        "/api/v1/resource-tiers/{id}",
        "/api/v1/flavors",
        "/api/v1/addons/{id}",
        "/api/v1/sandboxes",
        "/api/v1/sandboxes/{id}",
        "/api/v1/sandboxes/{id}/start",
        "/api/v1/sandboxes/{id}/stop",
        "/api/v1/sandboxes/{id}/restart",
        "/api/v1/sandboxes/{id}/wait",
        "/api/v1/sandboxes/{id}/logs",
        "/api/v1/sandboxes/{id}/agent/{path}",
        "/api/v1/orchestrator",
      ]),
    );
    const create = doc.paths["/api/v1/sandboxes"].post;
    expect(create.parameters.map((p: { name: string }) => p.name)).toContain("idempotency-key");
    expect(create.responses["403"].content["application/json"].schema.$ref).toBe("#/components/schemas/Error");
  });
});
