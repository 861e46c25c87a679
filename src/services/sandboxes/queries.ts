import { and, eq, getTableColumns, inArray, isNotNull, sql } from "drizzle-orm";
import { containerAddons, sandboxAddons, sandboxes } from "../../../db/schema";
import type { ServiceContext } from "../../context";
import type { Db, Executor } from "../../database/client";
import { notFound } from "../../errors";
import { sandboxView, type SandboxRow } from "./view";

/** The caller's sandbox, or 404: another user's sandbox does not exist for the caller. */
export async function findOwned(db: Executor, ctx: Pick<ServiceContext, "userId">, id: string): Promise<SandboxRow> {
  const [row] = await db
    .select()
    .from(sandboxes)
    .where(and(eq(sandboxes.id, id), eq(sandboxes.userId, ctx.userId)));
  if (!row) throw notFound("Sandbox", id);
  return row;
}

/** A sandbox's add-ons as [id, has a service] pairs, sorted by id (the shape sandboxView takes). */
export type AddonPair = [id: string, service: boolean];

export async function addonPairsOf(db: Executor, ids: string[]): Promise<Map<string, AddonPair[]>> {
  const map = new Map<string, AddonPair[]>(ids.map((id) => [id, []]));
  if (ids.length === 0) return map;
  const rows = await db
    .select({ sandboxId: sandboxAddons.sandboxId, addonId: sandboxAddons.addonId, service: isNotNull(containerAddons.service) })
    .from(sandboxAddons)
    .innerJoin(containerAddons, eq(containerAddons.id, sandboxAddons.addonId))
    .where(inArray(sandboxAddons.sandboxId, ids))
    .orderBy(sandboxAddons.addonId);
  for (const r of rows) map.get(r.sandboxId)?.push([r.addonId, Boolean(r.service)]);
  return map;
}

/** The ids only (the update path compares the current set with the requested one). */
export async function addonIdsOf(db: Executor, ids: string[]): Promise<Map<string, string[]>> {
  const pairs = await addonPairsOf(db, ids);
  return new Map([...pairs].map(([id, list]) => [id, list.map(([addonId]) => addonId)]));
}

export async function viewsOf(db: Executor, rows: SandboxRow[]) {
  const addons = await addonPairsOf(
    db,
    rows.map((r) => r.id),
  );
  return rows.map((r) => sandboxView(r, addons.get(r.id) ?? []));
}

export async function viewOf(db: Executor, row: SandboxRow) {
  return (await viewsOf(db, [row]))[0]!;
}

/**
 * A sandbox row with its add-ons, in one statement (hot paths: the list and get routes): the ids
 * (sorted, one subquery per row, as addonPairsOf sorts them), and which catalogue add-ons run a
 * service (uncorrelated: PostgreSQL evaluates it once per statement). `addonPairs` joins the two.
 */
export const sandboxWithAddons = {
  ...getTableColumns(sandboxes),
  addonIds: sql<string[]>`coalesce((select array_agg(${sandboxAddons.addonId} order by ${sandboxAddons.addonId}) from ${sandboxAddons} where ${sandboxAddons.sandboxId} = ${sandboxes.id}), '{}')`.as(
    "addon_ids",
  ),
  serviceAddonIds: sql<string[]>`(select coalesce(array_agg(${containerAddons.id}), '{}') from ${containerAddons} where ${containerAddons.service} is not null)`.as(
    "service_addon_ids",
  ),
};

export const addonPairs = (row: { addonIds: string[]; serviceAddonIds: string[] }): AddonPair[] =>
  row.addonIds.map((id) => [id, row.serviceAddonIds.includes(id)]);

function prepareGet(db: Db) {
  return db
    .select(sandboxWithAddons)
    .from(sandboxes)
    .where(and(eq(sandboxes.id, sql.placeholder("id")), eq(sandboxes.userId, sql.placeholder("userId"))))
    .prepare("warren_sandbox_get");
}
const preparedGets = new WeakMap<Db, ReturnType<typeof prepareGet>>();

/** GET /sandboxes/:id: the caller's sandbox as users see it, or 404; one prepared statement. */
export async function ownedView(db: Db, ctx: Pick<ServiceContext, "userId">, id: string) {
  let get = preparedGets.get(db);
  if (!get) preparedGets.set(db, (get = prepareGet(db)));
  const [row] = await get.execute({ id, userId: ctx.userId });
  if (!row) throw notFound("Sandbox", id);
  return sandboxView(row, addonPairs(row));
}
