import { and, eq, inArray, isNull, or } from "drizzle-orm";
import { containerAddons, containerFlavors, providerModels, providers, resourceTiers } from "../../../db/schema";
import type { Tx } from "../../database/client";
import { AppError } from "../../errors";
import type { FieldError } from "../../lib/openapi";
import type { PreferenceFields } from "./document";

function invalid(errors: FieldError[]): AppError {
  const first = errors[0]!;
  const more = errors.length > 1 ? ` (and ${errors.length - 1} more)` : "";
  return new AppError("VALIDATION_FAILED", `Invalid body field "${first.field}": ${first.message}${more}`, { fields: errors });
}

const fieldError = (field: string, message: string): FieldError => ({ location: "body", field, message, code: "not_in_catalog" });

/**
 * Checks the sandbox defaults against the catalog as it is now. Only the fields the request sets
 * are checked, so an operator disabling a flavor later does not block a theme change; add-on
 * compatibility is judged against the merged document, and reported on the add-on.
 */
export async function assertInCatalog(tx: Tx, userId: string, next: PreferenceFields, touched: ReadonlySet<string>) {
  const errors: FieldError[] = [];

  // The sandbox defaults are judged together (an add-on against the flavor and tier it would run
  // on), so a change to any of them reads the catalog; a change to none of them (a theme, the
  // default model) reads nothing here.
  if (touched.has("defaultResourceTierId") || touched.has("defaultFlavorId") || touched.has("defaultAddonIds")) {
    const ids = next.defaultAddonIds;
    // Independent reads, sent together (pipelined on the transaction's connection).
    const [[tierRow], [flavorRow], addonRows] = await Promise.all([
      tx.select().from(resourceTiers).where(next.defaultResourceTierId ? eq(resourceTiers.id, next.defaultResourceTierId) : eq(resourceTiers.isDefault, true)),
      tx.select().from(containerFlavors).where(next.defaultFlavorId ? eq(containerFlavors.id, next.defaultFlavorId) : eq(containerFlavors.isDefault, true)),
      ids.length ? tx.select().from(containerAddons).where(inArray(containerAddons.id, ids)) : Promise.resolve([]),
    ]);
    const tier = tierRow && (tierRow.enabled || !next.defaultResourceTierId) ? tierRow : undefined;
    if (touched.has("defaultResourceTierId") && next.defaultResourceTierId && !tier) {
      errors.push(fieldError("defaultResourceTierId", "is not an available resource tier"));
    }
    if (touched.has("defaultFlavorId") && next.defaultFlavorId && !flavorRow?.enabled) {
      errors.push(fieldError("defaultFlavorId", flavorRow ? "is disabled in the catalog" : "is not a flavor in the catalog"));
    }
    const byId = new Map(addonRows.map((r) => [r.id, r]));
    ids.forEach((id, i) => {
      const addon = byId.get(id);
      const field = `defaultAddonIds[${i}]`;
      if (!addon) errors.push(fieldError(field, `"${id}" is not an add-on in the catalog`));
      else if (!addon.enabled) errors.push(fieldError(field, `"${id}" is disabled in the catalog`));
      else if (addon.requiresFlavorId && flavorRow && addon.requiresFlavorId !== flavorRow.id) {
        errors.push(fieldError(field, `"${id}" runs only on the "${addon.requiresFlavorId}" flavor`));
      } else if (addon.requiresGpu && tier && !tier.hasGpu) {
        errors.push(fieldError(field, `"${id}" needs a resource tier with a GPU`));
      }
    });
  }

  if (touched.has("defaultProviderId") || touched.has("defaultModelId")) {
    if (next.defaultModelId && !next.defaultProviderId) {
      errors.push(fieldError("defaultProviderId", "is required when defaultModelId is set"));
    } else if (next.defaultProviderId) {
      // Global providers, or the caller's own custom ones; another user's reads as unknown.
      const [provider] = await tx
        .select({ id: providers.id })
        .from(providers)
        .where(and(eq(providers.id, next.defaultProviderId), or(isNull(providers.ownerUserId), eq(providers.ownerUserId, userId))));
      if (!provider) errors.push(fieldError("defaultProviderId", "is not a known provider"));
      else if (next.defaultModelId) {
        const [model] = await tx
          .select({ id: providerModels.id })
          .from(providerModels)
          .where(and(eq(providerModels.providerId, provider.id), eq(providerModels.id, next.defaultModelId)));
        if (!model) errors.push(fieldError("defaultModelId", "is not a model of that provider"));
      }
    }
  }

  if (errors.length) throw invalid(errors);
}
