import { createRoute, z } from "@hono/zod-openapi";
import { authSecurity, createRouter, errorResponses } from "../lib/openapi";
import { PageQuery, pageOf } from "../lib/pagination";
import { displayName } from "../lib/text";
import { getProvider, listProviders } from "../services/providers/catalog";
import { createCustomProvider } from "../services/providers/custom-provider";
import { setDefaultModel } from "../services/providers/default-model";

export const ProviderIdParam = z.object({
  id: z
    .string()
    .min(1)
    .max(128)
    .openapi({ param: { name: "id", in: "path" }, example: "anthropic" }),
});

export const httpUrl = z
  .string()
  .max(2048)
  .url({ error: "must be an absolute URL" })
  .refine((u) => /^https?:\/\//i.test(u), { error: "must be an http or https URL" })
  // A user:password@ in the URL would be a secret stored, logged and shown in plain text.
  .refine((u) => !URL.parse(u)?.username && !URL.parse(u)?.password, { error: "must not contain a user name or password" });

export const ProviderSchema = z
  .object({
    id: z.string().openapi({ example: "anthropic" }),
    name: z.string(),
    custom: z.boolean().openapi({ description: "True for the caller's own OpenAI-compatible providers" }),
    authTypes: z.array(z.enum(["api_key", "oauth", "device_flow"])),
    envVars: z.array(z.string()).openapi({ description: "Environment variables the provider's SDK reads" }),
    npmPackage: z.string().nullable(),
    baseUrl: z.string().nullable(),
    docUrl: z.string().nullable(),
    configured: z.boolean().openapi({ description: "The caller has stored a credential for it" }),
    isDefault: z.boolean().openapi({ description: "It is the caller's default provider" }),
  })
  .openapi("Provider");

const ModelSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    contextWindow: z.number().int().nullable(),
    maxOutput: z.number().int().nullable(),
    inputPricePerMillion: z.number().nullable().openapi({ description: "USD per million input tokens" }),
    outputPricePerMillion: z.number().nullable().openapi({ description: "USD per million output tokens" }),
    cacheReadPricePerMillion: z.number().nullable(),
    capabilities: z.record(z.string(), z.unknown()),
    releaseDate: z.string().nullable(),
    isDefault: z.boolean(),
  })
  .openapi("Model");

const ProviderDetail = ProviderSchema.extend({ models: pageOf(ModelSchema, "ModelPage") }).openapi("ProviderDetail");

const ModelInput = z
  .object({
    id: z.string().trim().min(1).max(200),
    name: z.string().trim().min(1).max(200).optional(),
    contextWindow: z.number().int().min(1).max(100_000_000).optional(),
    maxOutput: z.number().int().min(1).max(100_000_000).optional(),
  })
  .strict();

const CustomProviderInput = z
  .object({
    name: displayName(100),
    baseUrl: httpUrl.openapi({
      description:
        "The OpenAI-compatible endpoint, e.g. https://llm.example.com/v1 (http or https, no user:password). OpenCode calls it " +
        "from inside your sandboxes, which share the Warren host's network: it works when the Warren host can reach it " +
        "(a public address, one on the host's networks, or localhost, which is the Warren host itself). Not checked on registration.",
    }),
    models: z
      .array(ModelInput)
      .min(1, { error: "list at least one model" })
      .max(200)
      .refine((ms) => new Set(ms.map((m) => m.id)).size === ms.length, { error: "must not repeat a model id" }),
  })
  .strict()
  .openapi("CustomProviderInput");

const DefaultModelInput = z
  .object({ providerId: z.string().min(1).max(128), modelId: z.string().min(1).max(200) })
  .strict()
  .openapi("DefaultModelInput");
const DefaultModel = z.object({ providerId: z.string(), modelId: z.string() }).openapi("DefaultModel");

export function providerRoutes() {
  return createRouter()
    .openapi(
      createRoute({
        method: "get",
        path: "/providers",
        tags: ["Providers"],
        summary: "AI providers: the built-in catalogue and the caller's custom ones, by id",
        security: authSecurity,
        request: { query: PageQuery },
        responses: {
          200: { description: "A page of providers", content: { "application/json": { schema: pageOf(ProviderSchema, "ProviderPage") } } },
          ...errorResponses(),
        },
      }),
      async (c) => c.json(await listProviders(c.get("scope"), c.get("vault"), c.req.valid("query")), 200),
    )
    .openapi(
      createRoute({
        method: "post",
        path: "/providers",
        tags: ["Providers"],
        summary: "Register an OpenAI-compatible server as a provider only the caller sees",
        security: authSecurity,
        request: { body: { required: true, content: { "application/json": { schema: CustomProviderInput } } } },
        responses: {
          201: { description: "The new provider", content: { "application/json": { schema: ProviderDetail } } },
          ...errorResponses(409),
        },
      }),
      async (c) => c.json(await createCustomProvider(c.get("scope"), c.get("vault"), c.req.valid("json")), 201),
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/providers/{id}",
        tags: ["Providers"],
        summary: "One provider with a page of its models (by model id)",
        security: authSecurity,
        request: { params: ProviderIdParam, query: PageQuery },
        responses: {
          200: { description: "The provider", content: { "application/json": { schema: ProviderDetail } } },
          ...errorResponses(404),
        },
      }),
      async (c) => c.json(await getProvider(c.get("scope"), c.get("vault"), c.req.valid("param").id, c.req.valid("query")), 200),
    )
    .openapi(
      createRoute({
        method: "put",
        path: "/me/default-model",
        tags: ["Providers"],
        summary: "Set the caller's default provider and model (the provider must be configured)",
        security: authSecurity,
        request: { body: { required: true, content: { "application/json": { schema: DefaultModelInput } } } },
        responses: {
          200: { description: "The new default", content: { "application/json": { schema: DefaultModel } } },
          ...errorResponses(404, 409),
        },
      }),
      async (c) => c.json(await setDefaultModel(c.get("scope"), c.get("vault"), c.req.valid("json")), 200),
    );
}
