import { createRoute, z } from "@hono/zod-openapi";
import { authSecurity, createRouter, errorResponses } from "../lib/openapi";
import { getAddon, getFlavor, getTier, listAddons, listFlavors, listTiers } from "../services/catalog/catalog";

const stamps = { createdAt: z.string().datetime(), updatedAt: z.string().datetime() };

const Tier = z
  .object({
    id: z.string(),
    name: z.string(),
    description: z.string(),
    cpuCores: z.number(),
    memoryMb: z.number().int(),
    storageGb: z.number().int(),
    pidsLimit: z.number().int(),
    hasGpu: z.boolean(),
    priceMonthly: z.number(),
    isDefault: z.boolean(),
    enabled: z.boolean(),
    sortOrder: z.number().int(),
    ...stamps,
  })
  .openapi("ResourceTier");

const Flavor = z
  .object({
    id: z.string(),
    name: z.string(),
    description: z.string(),
    languages: z.array(z.string()),
    image: z.string(),
    imageSizeMb: z.number().int(),
    isDefault: z.boolean(),
    enabled: z.boolean(),
    sortOrder: z.number().int(),
    ...stamps,
  })
  .openapi("Flavor");

const Addon = z
  .object({
    id: z.string(),
    name: z.string(),
    description: z.string(),
    category: z.enum(["interface", "compute", "storage", "devops"]),
    imageSizeMb: z.number().int(),
    port: z.number().int().nullable(),
    requiresGpu: z.boolean(),
    requiresFlavorId: z.string().nullable(),
    priceMonthly: z.number(),
    enabled: z.boolean(),
    sortOrder: z.number().int(),
    ...stamps,
  })
  .openapi("Addon");

const ListQuery = z.object({
  includeDisabled: z
    .enum(["true", "false"])
    .optional()
    .transform((v) => v === "true")
    .openapi({ param: { name: "includeDisabled", in: "query" }, description: "Also list disabled entries" }),
});
const IdParam = z.object({ id: z.string().min(1).max(64).openapi({ param: { name: "id", in: "path" } }) });

function catalogRoutes<const P extends string, T extends z.ZodTypeAny>(
  path: P,
  tag: string,
  schema: T,
  list: (db: Parameters<typeof listTiers>[0], all: boolean) => Promise<z.infer<T>[]>,
  get: (db: Parameters<typeof listTiers>[0], id: string) => Promise<z.infer<T>>,
) {
  return createRouter()
    .openapi(
      createRoute({
        method: "get",
        path,
        tags: ["Catalog"],
        summary: `List ${tag}`,
        security: authSecurity,
        request: { query: ListQuery },
        responses: {
          200: { description: tag, content: { "application/json": { schema: z.object({ data: z.array(schema) }) } } },
          ...errorResponses(),
        },
      }),
      async (c) => c.json({ data: await list(c.get("scope").db, c.req.valid("query").includeDisabled) }, 200),
    )
    .openapi(
      createRoute({
        method: "get",
        path: `${path}/{id}` as `${P}/{id}`,
        tags: ["Catalog"],
        summary: `One of the ${tag}`,
        security: authSecurity,
        request: { params: IdParam },
        responses: {
          200: { description: "Found", content: { "application/json": { schema } } },
          ...errorResponses(404),
        },
      }),
      async (c) => c.json(await get(c.get("scope").db, c.req.valid("param").id), 200),
    );
}

export function catalogRouter() {
  return createRouter()
    .route("/", catalogRoutes("/resource-tiers", "resource tiers", Tier, listTiers, getTier))
    .route("/", catalogRoutes("/flavors", "flavors", Flavor, listFlavors, getFlavor))
    .route("/", catalogRoutes("/addons", "add-ons", Addon, listAddons, getAddon));
}
