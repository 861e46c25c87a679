import { and, eq, ilike, inArray, isNotNull, sql, type SQL } from "drizzle-orm";
import { containerAddons, sandboxAddons, sandboxes } from "../../../db/schema";
import type { ServiceContext } from "../../context";
import type { Db, Executor } from "../../database/client";
import { p, prepared, statementName } from "../../database/prepared";
import { notFound } from "../../errors";
import { afterCursorPlaceholders, decodeCursor, newestFirst, toPage } from "../../lib/pagination";
import type { SandboxStatus } from "./state-machine";
import { sandboxView, VIEW_COLUMNS, type SandboxRow, type SandboxViewRow } from "./view";

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
 * A sandbox as users see it, with its add-ons, in one statement (hot paths: the list and get
 * routes): the view's columns only, the add-on ids (sorted, one subquery per row, as addonPairsOf
 * sorts them), and which catalogue add-ons run a service (uncorrelated: PostgreSQL evaluates it
 * once per statement). `addonPairs` joins the two.
 */
export const sandboxWithAddons = {
  ...(Object.fromEntries(VIEW_COLUMNS.map((k) => [k, sandboxes[k]])) as { [K in (typeof VIEW_COLUMNS)[number]]: (typeof sandboxes)[K] }),
  addonIds: sql<string[]>`coalesce((select array_agg(${sandboxAddons.addonId} order by ${sandboxAddons.addonId}) from ${sandboxAddons} where ${sandboxAddons.sandboxId} = ${sandboxes.id}), '{}')`.as(
    "addon_ids",
  ),
  serviceAddonIds: sql<string[]>`(select coalesce(array_agg(${containerAddons.id}), '{}') from ${containerAddons} where ${containerAddons.service} is not null)`.as(
    "service_addon_ids",
  ),
};
type SandboxWithAddons = SandboxViewRow & { addonIds: string[]; serviceAddonIds: string[] };

export const addonPairs = (row: { addonIds: string[]; serviceAddonIds: string[] }): AddonPair[] =>
  row.addonIds.map((id) => [id, row.serviceAddonIds.includes(id)]);

/** GET /sandboxes/:id: the caller's sandbox as users see it, or 404; one prepared statement. */
export async function ownedView(db: Db, ctx: Pick<ServiceContext, "userId">, id: string) {
  const get = prepared<SandboxWithAddons[]>(db, "sandbox:get", () =>
    db
      .select(sandboxWithAddons)
      .from(sandboxes)
      .where(and(eq(sandboxes.id, p("id")), eq(sandboxes.userId, p("userId"))))
      .prepare("warren_sandbox_get"),
  );
  const [row] = await get.execute({ id, userId: ctx.userId });
  if (!row) throw notFound("Sandbox", id);
  return sandboxView(row, addonPairs(row));
}

/** `%q%` for ILIKE, with the pattern characters in q taken literally. */
const containing = (q: string) => `%${q.replace(/[\\%_]/g, (m) => `\\${m}`)}%`;

/**
 * GET /sandboxes: a page of the caller's sandboxes, newest first, one prepared statement per
 * shape (which of status, name search and cursor the request has).
 */
export async function ownedPage(
  db: Db,
  ctx: Pick<ServiceContext, "userId">,
  q: { limit: number; cursor?: string | undefined; status?: SandboxStatus | undefined; q?: string | undefined },
) {
  const cursor = q.cursor ? decodeCursor(q.cursor) : undefined;
  const shape = `sandboxes:${q.status ? "t" : ""}${q.q ? "q" : ""}${cursor ? "c" : ""}`;
  const page = prepared<SandboxWithAddons[]>(db, shape, () => {
    const where: (SQL | undefined)[] = [
      eq(sandboxes.userId, p("userId")),
      q.status ? eq(sandboxes.status, p("status")) : undefined,
      q.q ? ilike(sandboxes.name, p("pattern")) : undefined,
      cursor ? afterCursorPlaceholders(sandboxes) : undefined,
    ];
    return db
      .select(sandboxWithAddons)
      .from(sandboxes)
      .where(and(...where))
      .orderBy(...newestFirst(sandboxes))
      .limit(p("limit"))
      .prepare(statementName("warren", shape));
  });
  const rows = await page.execute({
    userId: ctx.userId,
    status: q.status,
    pattern: q.q ? containing(q.q) : undefined,
    at: cursor?.createdAt.toISOString(),
    id: cursor?.id,
    limit: q.limit + 1,
  });
  return toPage(rows, q.limit, (r) => sandboxView(r, addonPairs(r)));
}
