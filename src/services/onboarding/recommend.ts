import { and, eq, inArray, or } from "drizzle-orm";
import { providerModels, providers } from "../../../db/schema";
import type { ServiceContext } from "../../context";
import type { Executor } from "../../database/client";
import { visibleTo } from "../providers/visibility";
import type { ModelPreference } from "./requirements";

export type ModelChoice = {
  providerId: string;
  modelId: string;
  name: string;
  contextWindow: number | null;
  maxOutput: number | null;
  inputPrice: number | null;
  outputPrice: number | null;
  /** Why this model, in words. */
  reason: string;
};

export type Recommendations = {
  preference: ModelPreference;
  primary: ModelChoice | null;
  small: ModelChoice | null;
  /** The caller's providers that were considered, and how many of their models. */
  providers: string[];
  considered: number;
  notes: string[];
};

type Candidate = {
  providerId: string;
  modelId: string;
  name: string;
  contextWindow: number | null;
  maxOutput: number | null;
  inputPrice: number | null;
  outputPrice: number | null;
  capabilities: Record<string, unknown>;
};

/** The catalog has no latency figures: "fastest" prefers light tiers by name, then no reasoning, then price. */
const LIGHT_TIER = /\b(flash|mini|haiku|nano|lite|small|turbo|instant|fast|[1-9]b)\b/i;
const PRIMARY_MIN_CONTEXT = 32_000;
const SMALL_MIN_CONTEXT = 8_000;

/** USD per million tokens, input plus output; unknown prices sort last (they are not free). */
const price = (m: Candidate) => (m.inputPrice === null || m.outputPrice === null ? Number.POSITIVE_INFINITY : m.inputPrice + m.outputPrice);
const context = (m: Candidate) => m.contextWindow ?? 0;
const usesTools = (m: Candidate) => m.capabilities.toolCall !== false;
const writesText = (m: Candidate) => {
  const output = (m.capabilities.modalities as { output?: unknown } | undefined)?.output;
  return !Array.isArray(output) || output.includes("text");
};
const reasons = (m: Candidate) => m.capabilities.reasoning === true;
const byKey = (a: Candidate, b: Candidate) => (a.providerId + a.modelId < b.providerId + b.modelId ? -1 : 1);

const ORDER: Record<ModelPreference, (a: Candidate, b: Candidate) => number> = {
  cheapest: (a, b) => price(a) - price(b) || context(b) - context(a) || byKey(a, b),
  "largest-context": (a, b) => context(b) - context(a) || price(a) - price(b) || byKey(a, b),
  fastest: (a, b) =>
    Number(LIGHT_TIER.test(b.name) || LIGHT_TIER.test(b.modelId)) - Number(LIGHT_TIER.test(a.name) || LIGHT_TIER.test(a.modelId)) ||
    Number(reasons(a)) - Number(reasons(b)) ||
    price(a) - price(b) ||
    byKey(a, b),
};

function describe(m: Candidate, preference: ModelPreference, role: "primary" | "small"): ModelChoice {
  const cost = Number.isFinite(price(m)) ? `$${m.inputPrice}/$${m.outputPrice} per million tokens in/out` : "price unknown";
  const ctx = m.contextWindow ? `${m.contextWindow.toLocaleString("en-US")}-token context` : "context size unknown";
  const why =
    role === "small"
      ? `cheapest capable model for small tasks (titles, summaries): ${cost}, ${ctx}`
      : preference === "cheapest"
        ? `lowest price among your tool-calling models: ${cost}, ${ctx}`
        : preference === "largest-context"
          ? `largest context among your tool-calling models: ${ctx}, ${cost}`
          : `light, non-reasoning tier${LIGHT_TIER.test(m.name) ? "" : " (none is marked light; cheapest instead)"}: ${cost}, ${ctx}`;
  return {
    providerId: m.providerId,
    modelId: m.modelId,
    name: m.name,
    contextWindow: m.contextWindow,
    maxOutput: m.maxOutput,
    inputPrice: m.inputPrice,
    outputPrice: m.outputPrice,
    reason: why,
  };
}

/**
 * Recommends a primary and a small model from the caller's OWN providers only: built-in
 * providers the caller stored a credential for (asked of the caller's vault) and custom
 * providers the caller created. Nothing of any other user's is read.
 */
export async function recommendModels(
  ctx: ServiceContext,
  db: Executor,
  /** From the caller's vault (vault.configuredProviderIds), read before the step's transaction. */
  configuredProviderIds: ReadonlySet<string>,
  preference: ModelPreference,
): Promise<Recommendations> {
  const configured = [...configuredProviderIds];
  const rows = await db
    .select({
      providerId: providerModels.providerId,
      modelId: providerModels.id,
      name: providerModels.name,
      contextWindow: providerModels.contextWindow,
      maxOutput: providerModels.maxOutput,
      inputPrice: providerModels.inputPrice,
      outputPrice: providerModels.outputPrice,
      capabilities: providerModels.capabilities,
    })
    .from(providerModels)
    .innerJoin(providers, eq(providers.id, providerModels.providerId))
    .where(
      and(
        visibleTo(ctx.userId),
        or(configured.length ? inArray(providers.id, configured) : undefined, eq(providers.ownerUserId, ctx.userId)),
      ),
    );
  const providerIds = [...new Set(rows.map((r) => r.providerId))].sort();
  const notes: string[] = [];
  if (rows.length === 0) {
    notes.push("You have no configured providers: store a provider credential or add a custom provider, then ask again.");
    return { preference, primary: null, small: null, providers: providerIds, considered: 0, notes };
  }

  const textModels = rows.filter(writesText);
  let pool = textModels.filter((m) => usesTools(m) && (m.contextWindow === null || m.contextWindow >= PRIMARY_MIN_CONTEXT));
  if (pool.length === 0) {
    pool = textModels.length ? textModels : rows;
    notes.push("None of your models is known to call tools with a large context; the primary model may struggle with agent work.");
  }
  const primary = [...pool].sort(ORDER[preference])[0]!;

  // Small: cheapest non-reasoning model, preferably from the primary's provider (one credential).
  const smallPool = textModels.filter((m) => !(m.providerId === primary.providerId && m.modelId === primary.modelId) && context(m) >= SMALL_MIN_CONTEXT);
  const rank = (m: Candidate) => [m.providerId === primary.providerId ? 0 : 1, reasons(m) ? 1 : 0] as const;
  const small =
    [...smallPool].sort((a, b) => {
      const [pa, ra] = rank(a);
      const [pb, rb] = rank(b);
      return pa - pb || ra - rb || ORDER.cheapest(a, b);
    })[0] ?? primary;
  if (small === primary) notes.push("Only one suitable model: it serves as the small model too.");

  return {
    preference,
    primary: describe(primary, preference, "primary"),
    small: describe(small, preference, "small"),
    providers: providerIds,
    considered: rows.length,
    notes,
  };
}
