import { and, eq, sql } from "drizzle-orm";
import { providerModels, userPreferences } from "../../../db/schema";
import type { ServiceContext } from "../../context";
import { AppError, notFound } from "../../errors";
import { recordActivity } from "../activity/record";
import type { Vault } from "../credentials/vault";
import { requireVisibleProvider } from "./visibility";

/** Sets the caller's default provider and model; the provider must have the caller's credential. */
export async function setDefaultModel(ctx: ServiceContext, vault: Vault, input: { providerId: string; modelId: string }) {
  return ctx.db.transaction(async (tx) => {
    const provider = await requireVisibleProvider(tx, ctx, input.providerId);
    const [model] = await tx
      .select({ id: providerModels.id })
      .from(providerModels)
      .where(and(eq(providerModels.providerId, provider.id), eq(providerModels.id, input.modelId)));
    if (!model) throw notFound(`Model of provider ${JSON.stringify(provider.id)}`, input.modelId);
    if (!(await vault.isConfigured(tx, provider.id))) {
      throw new AppError("INVALID_STATE", `Provider ${JSON.stringify(provider.id)} is not configured: store a credential for it first`);
    }
    const now = ctx.now();
    // Only these two columns: the rest of the preferences row belongs to the preferences service.
    await tx
      .insert(userPreferences)
      .values({ userId: ctx.userId, defaultProviderId: provider.id, defaultModelId: model.id, createdAt: now, updatedAt: now })
      .onConflictDoUpdate({
        target: userPreferences.userId,
        // Bumped so that the preferences document's version (its ETag) sees the change.
        set: { defaultProviderId: provider.id, defaultModelId: model.id, version: sql`${userPreferences.version} + 1`, updatedAt: now },
      });
    await recordActivity(tx, ctx, {
      action: "default_model.set",
      entityType: "provider",
      entityId: provider.id,
      metadata: { providerId: provider.id, modelId: model.id },
    });
    return { providerId: provider.id, modelId: model.id };
  });
}
