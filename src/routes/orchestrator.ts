import { createRoute, z } from "@hono/zod-openapi";
import { authSecurity, createRouter, errorResponses } from "../lib/openapi";
import { asc, eq } from "drizzle-orm";
import { containerAddons } from "../../db/schema";
import type { Executor } from "../database/client";
import type { OrchestratorDriver } from "../orchestrator/driver";

export const OrchestratorStatus = z
  .object({
    driver: z.enum(["local", "docker"]),
    available: z.boolean(),
    reason: z.string().nullable().openapi({ description: "Why sandboxes cannot start here" }),
    install: z.string().nullable().openapi({ description: "What an operator must install" }),
    notes: z.array(z.string()).openapi({ description: "What an operator should know about a working driver (an isolation measure turned off)" }),
  })
  .openapi("OrchestratorStatus");

const AddonStatus = z
  .object({
    id: z.string(),
    available: z.boolean(),
    reason: z.string().nullable().openapi({ description: "What this host lacks for the add-on" }),
    install: z.string().nullable().openapi({ description: "What an operator must install" }),
  })
  .openapi("OrchestratorAddonStatus");

const OrchestratorReport = OrchestratorStatus.extend({
  addons: z.array(AddonStatus).openapi({ description: "Whether each enabled add-on of the catalogue can run here" }),
}).openapi("OrchestratorReport");

export async function orchestratorStatus(driver: OrchestratorDriver) {
  const a = await driver.availability();
  return a.available
    ? { driver: driver.name, available: true, reason: null, install: null, notes: a.notes ?? [] }
    : { driver: driver.name, available: false, reason: a.reason, install: a.install, notes: [] };
}

/** Every enabled add-on of the catalogue, checked by the driver (host binaries and paths). */
async function addonStatuses(db: Executor, driver: OrchestratorDriver) {
  const addons = await db
    .select({ id: containerAddons.id, port: containerAddons.port, service: containerAddons.service, tools: containerAddons.tools, requires: containerAddons.requires, installHint: containerAddons.installHint })
    .from(containerAddons)
    .where(eq(containerAddons.enabled, true))
    .orderBy(asc(containerAddons.sortOrder), asc(containerAddons.id));
  return (await driver.addonAvailability(addons)).map((a) =>
    a.available ? { id: a.id, available: true, reason: null, install: null } : { id: a.id, available: false, reason: a.reason, install: a.install },
  );
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
        200: { description: "Driver status, and each add-on's", content: { "application/json": { schema: OrchestratorReport } } },
        ...errorResponses(),
      },
    }),
    async (c) => c.json({ ...(await orchestratorStatus(driver)), addons: await addonStatuses(c.get("scope").db, driver) }, 200),
  );
}
