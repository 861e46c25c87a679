import { z } from "zod";
import { storableString } from "../../lib/text";

/**
 * The public models.dev catalogue (https://models.dev/api.json): provider id → provider with its
 * models. Parsed leniently (unknown fields ignored, most fields optional) because it is someone
 * else's format and grows; a provider or model that does not parse is skipped, not fatal. Its
 * text must be storable (no NUL, no half emoji): one such value failed the whole refresh's insert.
 */
const text = storableString;
const Cost = z.object({ input: z.number().optional(), output: z.number().optional(), cache_read: z.number().optional() });
const ModelSchema = z.object({
  id: text().min(1).max(200),
  name: text().max(300).optional(),
  attachment: z.boolean().optional(),
  reasoning: z.boolean().optional(),
  tool_call: z.boolean().optional(),
  temperature: z.boolean().optional(),
  open_weights: z.boolean().optional(),
  knowledge: text().optional(),
  release_date: text().optional(),
  modalities: z.object({ input: z.array(text()), output: z.array(text()) }).partial().optional(),
  cost: Cost.optional(),
  limit: z.object({ context: z.number().optional(), output: z.number().optional() }).optional(),
});
const ProviderSchema = z.object({
  id: text().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/),
  name: text().min(1).max(200),
  env: z.array(text()).default([]),
  npm: text().optional(),
  api: text().optional(),
  doc: text().optional(),
  models: z.record(text(), z.unknown()).default({}),
});

export type CatalogModel = z.infer<typeof ModelSchema>;
export type ProviderAuthType = "api_key" | "oauth" | "device_flow";

export type ProviderRow = {
  id: string;
  name: string;
  authTypes: ProviderAuthType[];
  envVars: string[];
  npmPackage: string | null;
  baseUrl: string | null;
  docUrl: string | null;
};
export type ModelRow = {
  providerId: string;
  id: string;
  name: string;
  contextWindow: number | null;
  maxOutput: number | null;
  inputPrice: number | null;
  outputPrice: number | null;
  cacheReadPrice: number | null;
  capabilities: Record<string, unknown>;
  releaseDate: string | null;
};

// models.dev leaves `api` out where the provider's own SDK knows its endpoint; these are those
// SDKs' defaults, so that every common provider shows a base URL.
const SDK_BASE_URLS: Record<string, string> = {
  anthropic: "https://api.anthropic.com/v1",
  openai: "https://api.openai.com/v1",
  google: "https://generativelanguage.googleapis.com/v1beta",
  mistral: "https://api.mistral.ai/v1",
  groq: "https://api.groq.com/openai/v1",
  xai: "https://api.x.ai/v1",
  cerebras: "https://api.cerebras.ai/v1",
  deepinfra: "https://api.deepinfra.com/v1/openai",
  togetherai: "https://api.together.xyz/v1",
  perplexity: "https://api.perplexity.ai",
};

// Copilot has no API keys: users sign in with GitHub's device flow (as OpenCode does).
const AUTH_TYPES: Record<string, ProviderAuthType[]> = { "github-copilot": ["device_flow"] };

const int = (n: number | undefined) => (n !== undefined && Number.isFinite(n) && n >= 0 ? Math.min(Math.round(n), 2_000_000_000) : null);
const price = (n: number | undefined) => (n !== undefined && Number.isFinite(n) && n >= 0 && n < 1_000_000 ? n : null);
const httpUrl = (u: string | undefined) => (u && /^https?:\/\//.test(u) ? u : null);

export type ParsedCatalog = { providers: ProviderRow[]; models: ModelRow[] };

export function parseCatalog(json: unknown): ParsedCatalog {
  if (!json || typeof json !== "object" || Array.isArray(json)) throw new Error("catalogue is not an object of providers");
  const providers: ProviderRow[] = [];
  const models: ModelRow[] = [];
  for (const value of Object.values(json)) {
    const p = ProviderSchema.safeParse(value);
    if (!p.success) continue;
    const provider = p.data;
    providers.push({
      id: provider.id,
      name: provider.name,
      authTypes: AUTH_TYPES[provider.id] ?? ["api_key"],
      envVars: provider.env.filter((e) => /^[A-Z][A-Z0-9_]*$/.test(e)),
      npmPackage: provider.npm ?? null,
      baseUrl: httpUrl(provider.api) ?? SDK_BASE_URLS[provider.id] ?? null,
      docUrl: httpUrl(provider.doc),
    });
    for (const raw of Object.values(provider.models)) {
      const m = ModelSchema.safeParse(raw);
      if (!m.success) continue;
      models.push(toModelRow(provider.id, m.data));
    }
  }
  return { providers, models };
}

function toModelRow(providerId: string, m: CatalogModel): ModelRow {
  const capabilities: Record<string, unknown> = {};
  for (const key of ["attachment", "reasoning", "tool_call", "temperature", "open_weights"] as const) {
    if (m[key] !== undefined) capabilities[key === "tool_call" ? "toolCall" : key === "open_weights" ? "openWeights" : key] = m[key];
  }
  if (m.modalities) capabilities.modalities = m.modalities;
  if (m.knowledge) capabilities.knowledge = m.knowledge;
  return {
    providerId,
    id: m.id,
    name: m.name ?? m.id,
    contextWindow: int(m.limit?.context),
    maxOutput: int(m.limit?.output),
    inputPrice: price(m.cost?.input),
    outputPrice: price(m.cost?.output),
    cacheReadPrice: price(m.cost?.cache_read),
    capabilities,
    releaseDate: m.release_date ?? null,
  };
}
