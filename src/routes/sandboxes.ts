import { createRoute, z } from "@hono/zod-openapi";
import { cachedPage, notModified } from "../lib/page-cache";
import { authSecurity, createRouter, errorResponses } from "../lib/openapi";
import { PageQuery, pageOf } from "../lib/pagination";
import { createSandbox } from "../services/sandboxes/create-sandbox";
import { getSandbox, listSandboxes, sandboxLogs, touchSandbox, updateSandbox } from "../services/sandboxes/manage";
import type { SandboxRuntime } from "../services/sandboxes/runtime";
import { requestTransition } from "../services/sandboxes/transitions";
import { waitForStatus } from "../services/sandboxes/wait";
import { CreateSandbox, IdParam, ListQuery, LogsQuery, Sandbox, UpdateSandbox, WaitQuery } from "./sandbox-schemas";

const json = <T extends z.ZodTypeAny>(schema: T, description: string) => ({
  description,
  content: { "application/json": { schema } },
});

const IdempotencyHeader = z.object({
  "idempotency-key": z
    .string()
    .min(1)
    .max(255)
    .optional()
    .openapi({ param: { name: "idempotency-key", in: "header" }, description: "Retries with the same key return the same sandbox" }),
});

const DeleteQuery = z.object({
  keepChats: z
    .enum(["true", "false"])
    .default("false")
    .openapi({ param: { name: "keepChats", in: "query" }, description: "true keeps the sandbox's chat history; by default it is deleted" }),
});

function transitionRoute(rt: SandboxRuntime, action: "start" | "stop" | "restart") {
  return createRouter().openapi(
    createRoute({
      method: "post",
      path: `/sandboxes/{id}/${action}`,
      tags: ["Sandboxes"],
      summary: `${action[0]!.toUpperCase()}${action.slice(1)} a sandbox (asynchronous: 202, then watch status or /wait)`,
      security: authSecurity,
      request: { params: IdParam },
      responses: { 202: json(Sandbox, "Accepted; the sandbox is now in its transitional status"), ...errorResponses(403, 404, 409) },
    }),
    async (c) => c.json(await requestTransition(c.get("scope"), rt, c.req.valid("param").id, action), 202),
  );
}

export function sandboxRoutes(rt: SandboxRuntime) {
  return createRouter()
    .openapi(
      createRoute({
        method: "post",
        path: "/sandboxes",
        tags: ["Sandboxes"],
        summary: "Create a sandbox",
        security: authSecurity,
        request: {
          headers: IdempotencyHeader,
          body: { required: true, content: { "application/json": { schema: CreateSandbox } } },
        },
        responses: {
          201: json(Sandbox, "Created"),
          200: json(Sandbox, "The sandbox an earlier request with this Idempotency-Key created"),
          ...errorResponses(403, 409),
        },
      }),
      async (c) => {
        const key = c.req.valid("header")["idempotency-key"];
        const { sandbox, replayed } = await createSandbox(c.get("scope"), rt, c.req.valid("json"), key);
        c.header("Location", `/api/v1/sandboxes/${sandbox.id}`);
        return c.json(sandbox, replayed ? 200 : 201);
      },
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/sandboxes",
        tags: ["Sandboxes"],
        summary: "The caller's sandboxes, newest first",
        security: authSecurity,
        request: { query: PageQuery.merge(ListQuery) },
        responses: { 200: json(pageOf(Sandbox, "SandboxPage"), "A page of sandboxes"), ...notModified, ...errorResponses() },
      }),
      async (c) => cachedPage(c, "sandboxes", () => listSandboxes(c.get("scope"), c.req.valid("query"))),
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/sandboxes/{id}",
        tags: ["Sandboxes"],
        summary: "One sandbox",
        security: authSecurity,
        request: { params: IdParam },
        responses: { 200: json(Sandbox, "The sandbox"), ...notModified, ...errorResponses(404) },
      }),
      async (c) => {
        const scope = c.get("scope");
        const id = c.req.valid("param").id;
        // Reading a running sandbox is use of it (postpones its idle stop), from the cache or not;
        // others need no write. The touch is throttled, and when it writes it drops the page.
        return cachedPage(c, "sandboxes", () => getSandbox(scope, id), {
          keep: (sandbox) => ({ status: sandbox.status, lastActivityAt: sandbox.lastActivityAt }),
          then: (kept) => (kept.status === "running" ? touchSandbox(scope, id, kept.lastActivityAt) : undefined),
        });
      },
    )
    .openapi(
      createRoute({
        method: "patch",
        path: "/sandboxes/{id}",
        tags: ["Sandboxes"],
        summary: "Rename, describe, or (while stopped) change tier, flavor and add-ons",
        security: authSecurity,
        request: { params: IdParam, body: { required: true, content: { "application/json": { schema: UpdateSandbox } } } },
        responses: { 200: json(Sandbox, "Updated"), ...errorResponses(404, 409) },
      }),
      async (c) => c.json(await updateSandbox(c.get("scope"), c.req.valid("param").id, c.req.valid("json")), 200),
    )
    .openapi(
      createRoute({
        method: "delete",
        path: "/sandboxes/{id}",
        tags: ["Sandboxes"],
        summary: "Delete a sandbox (stops it first; repeating the request while it is deleted changes nothing)",
        security: authSecurity,
        request: { params: IdParam, query: DeleteQuery },
        responses: { 202: json(Sandbox, "Deletion under way"), ...errorResponses(404) },
      }),
      async (c) =>
        c.json(
          await requestTransition(c.get("scope"), rt, c.req.valid("param").id, "delete", "user", {
            keepChats: c.req.valid("query").keepChats === "true",
          }),
          202,
        ),
    )
    .route("/", transitionRoute(rt, "start"))
    .route("/", transitionRoute(rt, "stop"))
    .route("/", transitionRoute(rt, "restart"))
    .openapi(
      createRoute({
        method: "get",
        path: "/sandboxes/{id}/wait",
        tags: ["Sandboxes"],
        summary: "Wait until the sandbox reaches a status, or the timeout passes",
        security: authSecurity,
        request: { params: IdParam, query: WaitQuery },
        responses: {
          200: json(z.object({ reached: z.boolean(), sandbox: Sandbox }).openapi("SandboxWait"), "Reached, or timed out (reached: false)"),
          ...errorResponses(404),
        },
      }),
      async (c) => {
        const q = c.req.valid("query");
        const result = await waitForStatus(c.get("scope"), c.req.valid("param").id, q.status, q.timeoutSeconds * 1000, c.get("pages"));
        // The change it waited for may have committed on another instance a moment ago: the
        // caller's next list page must already show it.
        await c.get("pages").settle();
        return c.json(result, 200);
      },
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/sandboxes/{id}/logs",
        tags: ["Sandboxes"],
        summary: "The workload's recent output",
        security: authSecurity,
        request: { params: IdParam, query: LogsQuery },
        responses: { 200: json(z.object({ lines: z.array(z.string()) }).openapi("SandboxLogs"), "Oldest first"), ...errorResponses(404, 409) },
      }),
      async (c) => c.json({ lines: await sandboxLogs(c.get("scope"), rt, c.req.valid("param").id, c.req.valid("query")) }, 200),
    );
}
