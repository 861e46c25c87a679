import { asc, eq, inArray } from "drizzle-orm";
import { containerAddons, containerFlavors, resourceTiers } from "../../../db/schema";
import type { Executor } from "../../database/client";
import { AppError, notFound } from "../../errors";

/**
 * The catalog: resource tiers, language flavors and add-ons. Reference data, readable by every
 * signed-in user; the numbers here are the limits drivers apply.
 */

export type Tier = typeof resourceTiers.$inferSelect;
export type Flavor = typeof containerFlavors.$inferSelect;
export type Addon = typeof containerAddons.$inferSelect;

const iso = (d: Date) => d.toISOString();

export const tierView = (t: Tier) => ({
  id: t.id,
  name: t.name,
  description: t.description,
  cpuCores: t.cpuCores,
  memoryMb: t.memoryMb,
  storageGb: t.storageGb,
  pidsLimit: t.pidsLimit,
  hasGpu: t.hasGpu,
  priceMonthly: t.priceMonthly,
  isDefault: t.isDefault,
  enabled: t.enabled,
  sortOrder: t.sortOrder,
  createdAt: iso(t.createdAt),
  updatedAt: iso(t.updatedAt),
});

export const flavorView = (f: Flavor) => ({
  id: f.id,
  name: f.name,
  description: f.description,
  languages: f.languages,
  image: f.image,
  imageSizeMb: f.imageSizeMb,
  isDefault: f.isDefault,
  enabled: f.enabled,
  sortOrder: f.sortOrder,
  createdAt: iso(f.createdAt),
  updatedAt: iso(f.updatedAt),
});

export const addonView = (a: Addon) => ({
  id: a.id,
  name: a.name,
  description: a.description,
  category: a.category,
  imageSizeMb: a.imageSizeMb,
  port: a.port,
  requiresGpu: a.requiresGpu,
  requiresFlavorId: a.requiresFlavorId,
  priceMonthly: a.priceMonthly,
  enabled: a.enabled,
  sortOrder: a.sortOrder,
  createdAt: iso(a.createdAt),
  updatedAt: iso(a.updatedAt),
});

export async function listTiers(db: Executor, includeDisabled: boolean) {
  const rows = await db
    .select()
    .from(resourceTiers)
    .where(includeDisabled ? undefined : eq(resourceTiers.enabled, true))
    .orderBy(asc(resourceTiers.sortOrder), asc(resourceTiers.id));
  return rows.map(tierView);
}

export async function listFlavors(db: Executor, includeDisabled: boolean) {
  const rows = await db
    .select()
    .from(containerFlavors)
    .where(includeDisabled ? undefined : eq(containerFlavors.enabled, true))
    .orderBy(asc(containerFlavors.sortOrder), asc(containerFlavors.id));
  return rows.map(flavorView);
}

export async function listAddons(db: Executor, includeDisabled: boolean) {
  const rows = await db
    .select()
    .from(containerAddons)
    .where(includeDisabled ? undefined : eq(containerAddons.enabled, true))
    .orderBy(asc(containerAddons.sortOrder), asc(containerAddons.id));
  return rows.map(addonView);
}

export async function getTier(db: Executor, id: string) {
  const [row] = await db.select().from(resourceTiers).where(eq(resourceTiers.id, id));
  if (!row) throw notFound("Resource tier", id);
  return tierView(row);
}

export async function getFlavor(db: Executor, id: string) {
  const [row] = await db.select().from(containerFlavors).where(eq(containerFlavors.id, id));
  if (!row) throw notFound("Flavor", id);
  return flavorView(row);
}

export async function getAddon(db: Executor, id: string) {
  const [row] = await db.select().from(containerAddons).where(eq(containerAddons.id, id));
  if (!row) throw notFound("Add-on", id);
  return addonView(row);
}

const invalid = (field: string, message: string) =>
  new AppError("VALIDATION_FAILED", `Invalid body field "${field}": ${message}`, {
    fields: [{ location: "body", field, message, code: "catalog" }],
  });

export type Selection = { tier: Tier; flavor: Flavor; addons: Addon[] };

/**
 * Resolves a tier, flavor and add-on set for a new or changed sandbox, applying the catalog's
 * rules: everything must exist and be enabled, and every add-on's requirements (a flavor, a GPU
 * tier) must hold. A violation is a 400 naming the field and the rule.
 */
export async function resolveSelection(
  db: Executor,
  input: { tierId: string | null; flavorId: string | null; addonIds: string[] },
  fields: { tier: string; flavor: string; addons: string } = { tier: "resourceTierId", flavor: "flavorId", addons: "addonIds" },
): Promise<Selection> {
  const [tier] = await db
    .select()
    .from(resourceTiers)
    .where(input.tierId ? eq(resourceTiers.id, input.tierId) : eq(resourceTiers.isDefault, true));
  if (!tier) throw invalid(fields.tier, `no resource tier "${input.tierId}"`);
  if (!tier.enabled) throw invalid(fields.tier, `resource tier "${tier.id}" is not available`);

  const [flavor] = await db
    .select()
    .from(containerFlavors)
    .where(input.flavorId ? eq(containerFlavors.id, input.flavorId) : eq(containerFlavors.isDefault, true));
  if (!flavor) throw invalid(fields.flavor, `no flavor "${input.flavorId}"`);
  if (!flavor.enabled) throw invalid(fields.flavor, `flavor "${flavor.id}" is disabled and cannot be used for new sandboxes`);

  const wanted = [...new Set(input.addonIds)];
  const addons = wanted.length
    ? await db.select().from(containerAddons).where(inArray(containerAddons.id, wanted))
    : [];
  for (const id of wanted) {
    const addon = addons.find((a) => a.id === id);
    if (!addon) throw invalid(fields.addons, `no add-on "${id}"`);
    if (!addon.enabled) throw invalid(fields.addons, `add-on "${id}" is not available`);
    if (addon.requiresGpu && !tier.hasGpu) {
      throw invalid(fields.addons, `add-on "${id}" requires a GPU, and resource tier "${tier.id}" has none`);
    }
    if (addon.requiresFlavorId && addon.requiresFlavorId !== flavor.id) {
      throw invalid(fields.addons, `add-on "${id}" requires flavor "${addon.requiresFlavorId}", not "${flavor.id}"`);
    }
  }
  return { tier, flavor, addons: wanted.map((id) => addons.find((a) => a.id === id)!) };
}

