import { providerModels, providers } from "../../../db/schema";
import type { ServiceContext } from "../../context";
import { AppError } from "../../errors";
import { newId } from "../../lib/ids";
import { recordActivity } from "../activity/record";
import type { Vault } from "../credentials/vault";
import { getProvider } from "./catalog";

export type CustomProviderInput = {
  name: string;
  baseUrl: string;
  models: Array<{ id: string; name?: string | undefined; contextWindow?: number | undefined; maxOutput?: number | undefined }>;
};

const UNIQUE_VIOLATION = "23505";
const isUniqueViolation = (err: unknown): boolean => {
  for (let e: unknown = err; e && typeof e === "object"; e = (e as { cause?: unknown }).cause) {
    if ((e as { code?: unknown }).code === UNIQUE_VIOLATION) return true;
  }
  return false;
};

/** Registers an OpenAI-compatible server as a provider only its creator can see and use. */
export async function createCustomProvider(ctx: ServiceContext, vault: Vault, input: CustomProviderInput) {
  const id = newId("customProvider");
  try {
    await ctx.db.transaction(async (tx) => {
      await tx.insert(providers).values({
        id,
        ownerUserId: ctx.userId,
        name: input.name,
        authTypes: ["api_key"],
        envVars: [],
        npmPackage: "@ai-sdk/openai-compatible",
        baseUrl: input.baseUrl,
        createdAt: ctx.now(),
        updatedAt: ctx.now(),
      });
      await tx.insert(providerModels).values(
        input.models.map((m) => ({
          providerId: id,
          id: m.id,
          name: m.name ?? m.id,
          contextWindow: m.contextWindow ?? null,
          maxOutput: m.maxOutput ?? null,
          capabilities: {},
        })),
      );
      await recordActivity(tx, ctx, {
        action: "provider.create",
        entityType: "provider",
        entityId: id,
        metadata: { name: input.name, baseUrl: input.baseUrl, models: input.models.length },
      });
    });
  } catch (err) {
    if (isUniqueViolation(err)) throw new AppError("CONFLICT", `You already have a provider named ${JSON.stringify(input.name)}`);
    throw err;
  }
  return getProvider(ctx, vault, id, { limit: 100 });
}
