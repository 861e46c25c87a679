import { createRoute, z } from "@hono/zod-openapi";
import { authSecurity, createRouter, errorResponses } from "../lib/openapi";
import type { OrchestratorDriver } from "../orchestrator/driver";

export const OrchestratorStatus = z
  .object({
    driver: z.enum(["local", "docker"]),
    available: z.boolean(),
    reason: z.string().nullable().openapi({ description: "Why sandboxes cannot start here" }),
    install: z.string().nullable().openapi({ description: "What an operator must install" }),
  })
  .openapi("OrchestratorStatus");

export async function orchestratorStatus(driver: OrchestratorDriver) {
  const a = await driver.availability();
  return a.available
    ? { driver: driver.name, available: true, reason: null, install: null }
    : { driver: driver.name, available: false, reason: a.reason, install: a.install };
}

export function orchestratorRoutes(driver: OrchestratorDriver) {
  return createRouter().openapi(
    createRoute({
      method: "get",
      path: "/orchestrator",
      tags: ["Sandboxes"],
      summary: "Which sandbox driver this deployment uses, and whether it can run sandboxes",
      security: authSecurity,
      responses: {
        200: { description: "Driver status", content: { "application/json": { schema: OrchestratorStatus } } },
        ...errorResponses(),
      },
    }),
    async (c) => c.json(await orchestratorStatus(driver), 200),
  );
}
