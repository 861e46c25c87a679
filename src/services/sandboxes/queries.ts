import { and, eq, getTableColumns, inArray, sql } from "drizzle-orm";
import { sandboxAddons, sandboxes } from "../../../db/schema";
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

export async function addonIdsOf(db: Executor, ids: string[]): Promise<Map<string, string[]>> {
  const map = new Map<string, string[]>(ids.map((id) => [id, []]));
  if (ids.length === 0) return map;
  const rows = await db
    .select({ sandboxId: sandboxAddons.sandboxId, addonId: sandboxAddons.addonId })
    .from(sandboxAddons)
    .where(inArray(sandboxAddons.sandboxId, ids));
  for (const r of rows) map.get(r.sandboxId)?.push(r.addonId);
  for (const list of map.values()) list.sort();
  return map;
}

export async function viewsOf(db: Executor, rows: SandboxRow[]) {
  const addons = await addonIdsOf(
    db,
    rows.map((r) => r.id),
  );
  return rows.map((r) => sandboxView(r, addons.get(r.id) ?? []));
}

export async function viewOf(db: Executor, row: SandboxRow) {
  return (await viewsOf(db, [row]))[0]!;
}

/**
 * A sandbox row with its add-on ids, in one statement (hot paths: the list and get routes). The
 * ids are sorted, as addonIdsOf sorts them.
 */
export const sandboxWithAddons = {
  ...getTableColumns(sandboxes),
  addonIds: sql<string[]>`coalesce((select array_agg(${sandboxAddons.addonId} order by ${sandboxAddons.addonId}) from ${sandboxAddons} where ${sandboxAddons.sandboxId} = ${sandboxes.id}), '{}')`.as(
    "addon_ids",
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
  return sandboxView(row, row.addonIds);
}
