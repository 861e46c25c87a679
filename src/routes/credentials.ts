import { createRoute, z } from "@hono/zod-openapi";
import { authSecurity, createRouter, errorResponses } from "../lib/openapi";
import { PageQuery, pageOf } from "../lib/pagination";
import { httpUrl, ProviderIdParam } from "./providers";

const CredentialSchema = z
  .object({
    providerId: z.string(),
    authType: z.enum(["api_key", "oauth", "device_flow"]),
    hint: z.string().openapi({ description: "The last 4 characters, e.g. …f3Qa; the key itself is never returned", example: "…f3Qa" }),
    baseUrl: z.string().nullable(),
    scopes: z.array(z.string()).nullable(),
    expiresAt: z.string().datetime().nullable().openapi({ description: "For tokens that expire" }),
    lastUsedAt: z.string().datetime().nullable().openapi({ description: "Last handed to one of the caller's sandboxes" }),
    createdAt: z.string().datetime(),
    updatedAt: z.string().datetime(),
  })
  .openapi("Credential");

const SandboxSyncSchema = z
  .object({
    refreshed: z.array(z.string()).openapi({ description: "Running sandboxes that were updated in place" }),
    restartRequired: z.array(z.string()).openapi({ description: "Running sandboxes that pick the change up on restart" }),
    error: z.string().optional(),
  })
  .openapi("SandboxSync");

const CredentialInput = z
  .object({
    apiKey: z
      .string()
      .min(8, { error: "must be at least 8 characters" })
      .max(4096, { error: "must be at most 4096 characters" })
      .regex(/^[\x21-\x7e]+$/, { error: "must not contain whitespace or control characters" })
      .openapi({ description: "Checked for shape only; stored encrypted and never returned" }),
    baseUrl: httpUrl.optional().openapi({
      description: "Overrides the provider's base URL (a gateway or proxy). Called from the sandboxes, which share the Warren host's network: it must be reachable from that host.",
    }),
  })
  .strict()
  .openapi("CredentialInput");

const FlowParams = ProviderIdParam.extend({
  flowId: z
    .string()
    .min(1)
    .max(128)
    .openapi({ param: { name: "flowId", in: "path" } }),
});

const DeviceFlowSchema = z
  .object({
    id: z.string(),
    providerId: z.string(),
    status: z.enum(["pending", "completed", "expired", "denied", "cancelled", "error"]),
    userCode: z.string().openapi({ description: "Show this to the user; they enter it at verificationUri", example: "WDJB-MJHT" }),
    verificationUri: z.string(),
    interval: z.number().int().openapi({ description: "Seconds to wait between polls (grows on slow_down)" }),
    expiresAt: z.string().datetime(),
    createdAt: z.string().datetime(),
  })
  .openapi("DeviceFlow");
const PollSchema = DeviceFlowSchema.extend({ credential: CredentialSchema.nullable() }).openapi("DeviceFlowPoll");

export function credentialRoutes() {
  return createRouter()
    .openapi(
      createRoute({
        method: "get",
        path: "/credentials",
        tags: ["Credentials"],
        summary: "The caller's stored credentials (metadata only), newest first",
        security: authSecurity,
        request: { query: PageQuery },
        responses: {
          200: { description: "A page of credentials", content: { "application/json": { schema: pageOf(CredentialSchema, "CredentialPage") } } },
          ...errorResponses(),
        },
      }),
      async (c) => c.json(await c.get("vault").listCredentials(c.req.valid("query")), 200),
    )
    .openapi(
      createRoute({
        method: "put",
        path: "/providers/{id}/credential",
        tags: ["Credentials"],
        summary: "Store or replace the caller's API key for a provider",
        security: authSecurity,
        request: { params: ProviderIdParam, body: { required: true, content: { "application/json": { schema: CredentialInput } } } },
        responses: {
          200: { description: "Replaced", content: { "application/json": { schema: CredentialSchema.extend({ sandboxes: SandboxSyncSchema }) } } },
          201: { description: "Stored for the first time", content: { "application/json": { schema: CredentialSchema.extend({ sandboxes: SandboxSyncSchema }) } } },
          ...errorResponses(404),
        },
      }),
      async (c) => {
        const { id } = c.req.valid("param");
        const result = await c.get("vault").setCredential({ providerId: id, ...c.req.valid("json") });
        return c.json({ ...result.credential, sandboxes: result.sandboxes }, result.created ? 201 : 200);
      },
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/providers/{id}/credential",
        tags: ["Credentials"],
        summary: "The caller's credential for a provider (metadata only)",
        security: authSecurity,
        request: { params: ProviderIdParam },
        responses: { 200: { description: "The credential", content: { "application/json": { schema: CredentialSchema } } }, ...errorResponses(404) },
      }),
      async (c) => c.json(await c.get("vault").getCredential(c.req.valid("param").id), 200),
    )
    .openapi(
      createRoute({
        method: "delete",
        path: "/providers/{id}/credential",
        tags: ["Credentials"],
        summary: "Remove the caller's credential for a provider, and from their running sandboxes",
        security: authSecurity,
        request: { params: ProviderIdParam },
        responses: {
          200: { description: "Removed; what happened to running sandboxes", content: { "application/json": { schema: z.object({ deleted: z.literal(true), sandboxes: SandboxSyncSchema }) } } },
          ...errorResponses(404),
        },
      }),
      async (c) => c.json({ deleted: true as const, ...(await c.get("vault").deleteCredential(c.req.valid("param").id)) }, 200),
    )
    .openapi(
      createRoute({
        method: "post",
        path: "/providers/{id}/oauth/device",
        tags: ["Credentials"],
        summary: "Start a device-flow sign-in (GitHub Copilot)",
        security: authSecurity,
        request: { params: ProviderIdParam },
        responses: { 201: { description: "Started", content: { "application/json": { schema: DeviceFlowSchema } } }, ...errorResponses(404, 409) },
      }),
      async (c) => c.json(await c.get("vault").startDeviceFlow(c.req.valid("param").id), 201),
    )
    .openapi(
      createRoute({
        method: "post",
        path: "/providers/{id}/oauth/device/{flowId}/poll",
        tags: ["Credentials"],
        summary: "Poll a device flow once; on success the credential is stored",
        description: "Wait `interval` seconds between polls: sooner is 429 with Retry-After. A flow that has ended cannot be polled again (409).",
        security: authSecurity,
        request: { params: FlowParams },
        responses: { 200: { description: "The flow's state", content: { "application/json": { schema: PollSchema } } }, ...errorResponses(404, 409) },
      }),
      async (c) => {
        const { id, flowId } = c.req.valid("param");
        return c.json(await c.get("vault").pollDeviceFlow(id, flowId), 200);
      },
    )
    .openapi(
      createRoute({
        method: "delete",
        path: "/providers/{id}/oauth/device/{flowId}",
        tags: ["Credentials"],
        summary: "Cancel a device flow",
        security: authSecurity,
        request: { params: FlowParams },
        responses: { 204: { description: "Cancelled" }, ...errorResponses(404) },
      }),
      async (c) => {
        const { id, flowId } = c.req.valid("param");
        await c.get("vault").cancelDeviceFlow(id, flowId);
        return c.body(null, 204);
      },
    );
}
