import { createRoute, z } from "@hono/zod-openapi";
import type { Database } from "../database/client";
import { ping } from "../database/client";
import { migrationState } from "../database/migrate";
import { AppError } from "../errors";
import { createRouter, errorResponses } from "../lib/openapi";
import type { OrchestratorDriver } from "../orchestrator/driver";
import { OrchestratorStatus, orchestratorStatus } from "./orchestrator";

const Health = z.object({ status: z.literal("ok") }).openapi("Health");
const Ready = z
  .object({
    status: z.literal("ready"),
    database: z.object({ engine: z.enum(["postgres", "pglite"]), latencyMs: z.number() }),
    migrations: z.object({ applied: z.number().int(), expected: z.number().int(), pending: z.number().int() }),
    // Reported, not required: without a working driver the API still serves everything else.
    orchestrator: OrchestratorStatus,
  })
  .openapi("Ready");

const READY_TIMEOUT_MS = 3000;

export function healthRoutes(database: Database, driver: OrchestratorDriver) {
  return createRouter()
    .openapi(
      createRoute({
        method: "get",
        path: "/health",
        tags: ["Operations"],
        summary: "Liveness: the process is up (no database access)",
        responses: { 200: { description: "Alive", content: { "application/json": { schema: Health } } } },
      }),
      (c) => c.json({ status: "ok" as const }, 200),
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/ready",
        tags: ["Operations"],
        summary: "Readiness: a database round trip and every migration applied",
        responses: {
          200: { description: "Ready to serve", content: { "application/json": { schema: Ready } } },
          ...errorResponses(503),
        },
      }),
      async (c) => {
        const started = performance.now();
        let state;
        try {
          state = await withTimeout(
            (async () => {
              await ping(database.db);
              return migrationState(database.db);
            })(),
            READY_TIMEOUT_MS,
          );
        } catch (err) {
          c.get("logger").warn({ err: { message: (err as Error).message } }, "readiness check failed");
          throw new AppError("SERVICE_UNAVAILABLE", "The database is not reachable", { database: "unreachable" });
        }
        if (state.pending > 0) {
          throw new AppError("SERVICE_UNAVAILABLE", `${state.pending} migration(s) not applied yet`, {
            migrations: state,
          });
        }
        const latencyMs = Math.round((performance.now() - started) * 10) / 10;
        return c.json(
          {
            status: "ready" as const,
            database: { engine: database.engine, latencyMs },
            migrations: state,
            orchestrator: await orchestratorStatus(driver),
          },
          200,
        );
      },
    );
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: Timer;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
