import { z } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { AppEnv } from "../context";
import { and, eq, isNotNull } from "drizzle-orm";
import { containerAddons, sandboxAddons } from "../../db/schema";
import { AppError, notFound } from "../errors";
import { authSecurity, createRouter, errorResponses, validationHook } from "../lib/openapi";
import { touchSandbox } from "../services/sandboxes/manage";
import { findOwned } from "../services/sandboxes/queries";
import type { SandboxRuntime } from "../services/sandboxes/runtime";
import { IdParam } from "./sandbox-schemas";
import { bridgeWebSocket, forwardHttp, isWebSocketUpgrade, upstreamUrl } from "./upstream-proxy";

const AddonParams = IdParam.extend({
  addonId: z
    .string()
    .min(1)
    .max(64)
    .regex(/^[A-Za-z0-9._-]+$/, "letters, digits, '.', '_' and '-' only")
    .openapi({ param: { name: "addonId", in: "path" }, example: "code-server" }),
});

/**
 * /api/v1/sandboxes/:id/addons/:addonId/* — an authenticated reverse proxy to an add-on's service
 * running inside the sandbox (code-server, noVNC over websockify, …): every method, streamed
 * bodies, and WebSocket upgrades. Only the owner reaches it; an add-on the sandbox does not have
 * (or one with no service) is 404; a sandbox that is not running is 409.
 */
export function sandboxAddonRoutes(rt: SandboxRuntime, trustedOrigins: string[]) {
  const trusted = new Set(trustedOrigins);
  const router = createRouter();
  // A wildcard proxy is not a typed route; it is documented by hand so that it is not invisible.
  for (const method of ["get", "post", "put", "patch", "delete"] as const) {
    router.openAPIRegistry.registerPath({
      method,
      path: "/sandboxes/{id}/addons/{addonId}/{path}",
      tags: ["Sandboxes"],
      summary: "Proxy to an add-on's service in the sandbox (HTTP, streamed, and WebSocket upgrades on GET)",
      description:
        "The sandbox view lists each add-on's endpoint. The service's own API or web UI answers, " +
        "e.g. code-server's or noVNC's pages; a GET with `Upgrade: websocket` is bridged to the service.",
      security: authSecurity,
      request: {
        params: AddonParams.extend({
          path: z.string().openapi({ param: { name: "path", in: "path" }, description: "Any path of the service, e.g. vnc.html" }),
        }),
      },
      responses: {
        200: { description: "The service's own response, streamed" },
        101: { description: "WebSocket bridged to the service" },
        ...errorResponses(404, 409),
      },
    });
  }

  const handler = async (c: Context<AppEnv>) => {
    const scope = c.get("scope");
    // A wildcard route has no validator: check the parameters like every other sandbox route.
    const parsed = AddonParams.safeParse({ id: c.req.param("id"), addonId: c.req.param("addonId") });
    validationHook({ ...parsed, target: "param" }, c);
    const { id, addonId } = parsed.data!;
    const row = await findOwned(scope.db, scope, id);
    const [addon] = await scope.db
      .select({ id: sandboxAddons.addonId })
      .from(sandboxAddons)
      .innerJoin(containerAddons, eq(containerAddons.id, sandboxAddons.addonId))
      .where(and(eq(sandboxAddons.sandboxId, row.id), eq(sandboxAddons.addonId, addonId), isNotNull(containerAddons.service)));
    if (!addon) throw notFound("Add-on service", addonId);
    if (row.status !== "running") {
      throw new AppError("INVALID_STATE", `The sandbox is ${row.status}; start it to reach its add-on "${addonId}"`, { status: row.status });
    }
    const prefix = `/api/v1/sandboxes/${row.id}/addons/${addonId}`;
    const path = new URL(c.req.url).pathname;
    // Relative links in the service's pages need the trailing slash.
    if (path === prefix) return c.redirect(`${prefix}/${new URL(c.req.url).search}`, 308);
    const info = await rt.driver.inspect(row.id);
    const base = info.state === "running" ? info.addonUrls?.[addonId] : undefined;
    if (!base) throw new AppError("INVALID_STATE", `The add-on "${addonId}" is not running in this sandbox; restart the sandbox`, { status: row.status });

    const target = upstreamUrl(c, prefix, base);
    const headers = { "x-forwarded-prefix": `${prefix}/` };
    // Not awaited; a failed touch only delays the idle clock's reset.
    touchSandbox(scope, row.id, row.lastActivityAt).catch((err) => scope.logger.warn({ err: { message: (err as Error).message } }, "touching the sandbox failed"));
    if (!isWebSocketUpgrade(c)) return forwardHttp(c, target, headers);
    // Browsers send the session cookie with a WebSocket handshake from any page and CORS does not
    // apply to it: a page on an untrusted origin must not get a socket to the user's desktop.
    const origin = c.req.header("origin");
    if (origin && !trusted.has(origin)) {
      throw new AppError("PRECONDITION_FAILED", `WebSocket connections from ${origin} are not allowed: it is not a trusted origin`);
    }
    return bridgeWebSocket(c, target, headers);
  };
  return router.all("/sandboxes/:id/addons/:addonId", handler).all("/sandboxes/:id/addons/:addonId/*", handler);
}
