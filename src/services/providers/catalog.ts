import { and, asc, eq, gt } from "drizzle-orm";
import { providerModels, providers, userPreferences } from "../../../db/schema";
import type { ServiceContext } from "../../context";
import { AppError } from "../../errors";
import type { Vault } from "../credentials/vault";
import { requireVisibleProvider, visibleTo, type ProviderRecord } from "./visibility";

/**
 * Reading the catalogue: built-in providers plus the caller's own custom ones, each with
 * `configured` (the caller has a credential) and `isDefault` (the caller's default provider).
 * Lists page by id, ascending, with an opaque keyset cursor.
 */
export type ProviderView = {
  id: string;
  name: string;
  custom: boolean;
  authTypes: Array<"api_key" | "oauth" | "device_flow">;
  envVars: string[];
  npmPackage: string | null;
  baseUrl: string | null;
  docUrl: string | null;
  configured: boolean;
  isDefault: boolean;
};

export type ModelView = {
  id: string;
  name: string;
  contextWindow: number | null;
  maxOutput: number | null;
  inputPricePerMillion: number | null;
  outputPricePerMillion: number | null;
  cacheReadPricePerMillion: number | null;
  capabilities: Record<string, unknown>;
  releaseDate: string | null;
  isDefault: boolean;
};

type Page = { limit: number; cursor?: string | undefined };

export const encodeIdCursor = (id: string) => Buffer.from(JSON.stringify(["id", id])).toString("base64url");
export function decodeIdCursor(cursor: string | undefined): string | undefined {
  if (!cursor) return undefined;
  try {
    const v = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8")) as unknown;
    if (Array.isArray(v) && v.length === 2 && v[0] === "id" && typeof v[1] === "string") return v[1];
  } catch {
    // fall through to the validation error
  }
  throw new AppError("VALIDATION_FAILED", 'Invalid query parameter "cursor": not a cursor returned by this endpoint', {
    fields: [{ location: "query parameter", field: "cursor", message: "not a cursor returned by this endpoint", code: "invalid_cursor" }],
  });
}

function pageOut<T extends { id: string }, U>(rows: T[], limit: number, map: (r: T) => U) {
  const more = rows.length > limit;
  const page = more ? rows.slice(0, limit) : rows;
  return { data: page.map(map), nextCursor: more ? encodeIdCursor(page[page.length - 1]!.id) : null };
}

async function defaults(ctx: ServiceContext) {
  const [prefs] = await ctx.db
    .select({ providerId: userPreferences.defaultProviderId, modelId: userPreferences.defaultModelId })
    .from(userPreferences)
    .where(eq(userPreferences.userId, ctx.userId));
  return { providerId: prefs?.providerId ?? null, modelId: prefs?.modelId ?? null };
}

function toView(p: ProviderRecord, configured: Set<string>, defaultProviderId: string | null): ProviderView {
  return {
    id: p.id,
    name: p.name,
    custom: p.ownerUserId !== null,
    authTypes: p.authTypes,
    envVars: p.envVars,
    npmPackage: p.npmPackage,
    baseUrl: p.baseUrl,
    docUrl: p.docUrl,
    configured: configured.has(p.id),
    isDefault: p.id === defaultProviderId,
  };
}

export async function listProviders(ctx: ServiceContext, vault: Vault, page: Page) {
  const after = decodeIdCursor(page.cursor);
  const [rows, configured, def] = await Promise.all([
    ctx.db
      .select()
      .from(providers)
      .where(and(visibleTo(ctx.userId), after ? gt(providers.id, after) : undefined))
      .orderBy(asc(providers.id))
      .limit(page.limit + 1),
    vault.configuredProviderIds(),
    defaults(ctx),
  ]);
  return pageOut(rows, page.limit, (p) => toView(p, configured, def.providerId));
}

export async function getProvider(ctx: ServiceContext, vault: Vault, id: string, page: Page) {
  const provider = await requireVisibleProvider(ctx.db, ctx, id);
  const after = decodeIdCursor(page.cursor);
  const [models, configured, def] = await Promise.all([
    ctx.db
      .select()
      .from(providerModels)
      .where(and(eq(providerModels.providerId, provider.id), after ? gt(providerModels.id, after) : undefined))
      .orderBy(asc(providerModels.id))
      .limit(page.limit + 1),
    vault.configuredProviderIds(),
    defaults(ctx),
  ]);
  const models_ = pageOut(models, page.limit, (m) => toModelView(m, def.providerId === provider.id && def.modelId === m.id));
  return { ...toView(provider, configured, def.providerId), models: models_ };
}

export function toModelView(m: typeof providerModels.$inferSelect, isDefault = false): ModelView {
  return {
    id: m.id,
    name: m.name,
    contextWindow: m.contextWindow,
    maxOutput: m.maxOutput,
    inputPricePerMillion: m.inputPrice,
    outputPricePerMillion: m.outputPrice,
    cacheReadPricePerMillion: m.cacheReadPrice,
    capabilities: m.capabilities,
    releaseDate: m.releaseDate,
    isDefault,
  };
}
