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
 * A sandbox row with its add-ons, in one statement (hot paths: the list and get routes): one
 * subquery per row, [id, has a service] pairs sorted by id, as addonPairsOf returns them. The
 * sandbox is named with its table ("sandboxes"."id"): drizzle leaves columns unqualified in a
 * one-table select, and a bare "id" here would be container_addons.id.
 */
export const sandboxWithAddons = {
  ...getTableColumns(sandboxes),
  addons: sql<AddonPair[]>`coalesce((select json_agg(json_build_array(sa.addon_id, ca.service is not null) order by sa.addon_id) from sandbox_addons sa join container_addons ca on ca.id = sa.addon_id where sa.sandbox_id = "sandboxes"."id"), '[]')`.as(
    "addons",
  ),
};

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
  return sandboxView(row, row.addons);
}
