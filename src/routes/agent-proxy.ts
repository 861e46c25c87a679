import { AppError } from "../errors";
import { z } from "@hono/zod-openapi";
import { authSecurity, createRouter, errorResponses, validationHook } from "../lib/openapi";
import { agentAuthHeader } from "../orchestrator/opencode";
import { touchSandbox } from "../services/sandboxes/manage";
import { findOwned } from "../services/sandboxes/queries";
import type { SandboxRuntime } from "../services/sandboxes/runtime";
import { agentPassword } from "../services/sandboxes/worker";
import { IdParam } from "./sandbox-schemas";
import { forwardHttp, upstreamUrl } from "./upstream-proxy";

/**
 * /api/v1/sandboxes/:id/agent/* — an authenticated reverse proxy to the sandbox's OpenCode
 * server, for every method, with streamed bodies (its SSE event stream included). Only the owner
 * reaches it (requireUser + findOwned); a sandbox that is not running answers 409.
 */
export function agentProxyRoutes(rt: SandboxRuntime) {
  const router = createRouter();
  // A wildcard proxy is not a typed route; it is documented by hand so that it is not invisible.
  for (const method of ["get", "post", "put", "patch", "delete"] as const) {
    router.openAPIRegistry.registerPath({
      method,
      path: "/sandboxes/{id}/agent/{path}",
      tags: ["Sandboxes"],
      summary: "Proxy to the sandbox's OpenCode server (its own API: sessions, messages, /event SSE stream)",
      security: authSecurity,
      request: {
        params: z.object({
          id: z.string().openapi({ param: { name: "id", in: "path" } }),
          path: z.string().openapi({ param: { name: "path", in: "path" }, description: "Any OpenCode API path, e.g. session" }),
        }),
      },
      responses: { 200: { description: "OpenCode's own response, streamed" }, ...errorResponses(404, 409) },
    });
  }
  return router.all("/sandboxes/:id/agent/*", async (c) => {
    const scope = c.get("scope");
    // A wildcard route has no validator: check the id like every other sandbox route does (an id
    // with NUL reached the query as a 500 before; found by the OpenAPI fuzzer, issue 11).
    const parsed = IdParam.safeParse({ id: c.req.param("id") });
    validationHook({ ...parsed, target: "param" }, c);
    const row = await findOwned(scope.db, scope, parsed.data!.id);
    if (row.status !== "running") {
      throw new AppError("INVALID_STATE", `The sandbox is ${row.status}; start it to reach its agent`, { status: row.status });
    }
    const info = await rt.driver.inspect(row.id);
    const password = agentPassword(rt, row);
    if (info.state !== "running" || !info.agentUrl || !password) {
      throw new AppError("INVALID_STATE", "The sandbox's agent is not running", { status: row.status });
    }
    const prefix = `/api/v1/sandboxes/${row.id}/agent`;
    const upstream = await forwardHttp(c, upstreamUrl(c, prefix, info.agentUrl), { authorization: agentAuthHeader(password) });
    // Not awaited (the response streams on); a failed touch only delays the idle clock's reset.
    touchSandbox(scope, row.id, row.lastActivityAt).catch((err) => scope.logger.warn({ err: { message: (err as Error).message } }, "touching the sandbox failed"));
    return upstream;
  });
}
