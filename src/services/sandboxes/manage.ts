import { and, eq, inArray, sql } from "drizzle-orm";
import { sandboxAddons, sandboxes } from "../../../db/schema";
import type { ServiceContext } from "../../context";
import { ts } from "../../database/client";
import { AppError, notFound } from "../../errors";
import { recordActivity } from "../activity/record";
import { resolveSelection } from "../catalog/catalog";
import { addonIdsOf, findOwned, ownedPage, ownedView, viewOf } from "./queries";
import type { SandboxRuntime } from "./runtime";
import { RECONFIGURABLE, type SandboxStatus } from "./state-machine";

export async function listSandboxes(
  ctx: ServiceContext,
  q: { limit: number; cursor?: string | undefined; status?: SandboxStatus | undefined; q?: string | undefined },
) {
  return ownedPage(ctx.db, ctx, q);
}

export async function getSandbox(ctx: ServiceContext, id: string) {
  return ownedView(ctx.db, ctx, id);
}

export type UpdateSandboxInput = {
  name?: string | undefined;
  description?: string | undefined;
  resourceTierId?: string | undefined;
  flavorId?: string | undefined;
  addonIds?: string[] | undefined;
  idleTimeoutMinutes?: number | undefined;
};

/** Name, description and idle timeout change any time; tier, flavor and add-ons only while stopped. */
export async function updateSandbox(ctx: ServiceContext, id: string, input: UpdateSandboxInput) {
  const reshapes = input.resourceTierId !== undefined || input.flavorId !== undefined || input.addonIds !== undefined;
  const row = await ctx.db.transaction(async (tx) => {
    const [current] = await tx
      .select()
      .from(sandboxes)
      .where(and(eq(sandboxes.id, id), eq(sandboxes.userId, ctx.userId)))
      .for("update");
    if (!current) throw notFound("Sandbox", id);
    const changes: Partial<typeof sandboxes.$inferInsert> = { updatedAt: ctx.now() };
    if (reshapes) {
      if (!RECONFIGURABLE.includes(current.status)) {
        throw new AppError("INVALID_STATE", `Stop the sandbox to change its tier, flavor or add-ons (it is ${current.status})`, {
          status: current.status,
        });
      }
      const currentAddons = (await addonIdsOf(tx, [id])).get(id) ?? [];
      const selection = await resolveSelection(tx, {
        tierId: input.resourceTierId ?? current.resourceTierId,
        flavorId: input.flavorId ?? current.flavorId,
        addonIds: input.addonIds ?? currentAddons,
      });
      changes.resourceTierId = selection.tier.id;
      changes.flavorId = selection.flavor.id;
      changes.image = selection.flavor.image;
      if (input.addonIds !== undefined) {
        await tx.delete(sandboxAddons).where(eq(sandboxAddons.sandboxId, id));
        if (selection.addons.length) {
          await tx.insert(sandboxAddons).values(selection.addons.map((a) => ({ sandboxId: id, addonId: a.id })));
        }
      }
    }
    if (input.name !== undefined) changes.name = input.name;
    if (input.description !== undefined) changes.description = input.description;
    if (input.idleTimeoutMinutes !== undefined) changes.idleTimeoutMinutes = input.idleTimeoutMinutes;
    const [updated] = await tx
      .update(sandboxes)
      .set({ ...changes, version: sql`${sandboxes.version} + 1` })
      .where(eq(sandboxes.id, id))
      .returning();
    await recordActivity(tx, ctx, {
      action: "sandbox.update",
      entityType: "sandbox",
      entityId: id,
      metadata: { fields: Object.keys(input).filter((k) => input[k as keyof UpdateSandboxInput] !== undefined) },
    });
    return updated!;
  });
  return viewOf(ctx.db, row);
}

/** The workload's recent output; a sandbox being deleted has none to give. */
export async function sandboxLogs(ctx: ServiceContext, rt: SandboxRuntime, id: string, q: { tail: number; since?: string | undefined }) {
  const row = await findOwned(ctx.db, ctx, id);
  if (row.status === "deleting") throw new AppError("INVALID_STATE", "The sandbox is being deleted", { status: row.status });
  return rt.driver.logs(row.id, { tail: q.tail, ...(q.since ? { since: new Date(q.since) } : {}) });
}

/** API use moves a sandbox's idle clock at most this often: reading a sandbox is not a write each time. */
export const TOUCH_INTERVAL_MS = 30_000;

/**
 * Marks API use of a sandbox (throttled), which postpones its idle stop. `lastActivityAt`, when
 * the caller has just read the row, saves the statement while the last mark is recent (the hot
 * path: GET of a running sandbox, every request through the agent proxy); the WHERE clause keeps
 * the throttle for callers that have not read it and for concurrent requests.
 */
export async function touchSandbox(ctx: Pick<ServiceContext, "db" | "now">, id: string, lastActivityAt?: Date | string | null) {
  const now = ctx.now();
  if (lastActivityAt && now.getTime() - new Date(lastActivityAt).getTime() < TOUCH_INTERVAL_MS) return;
  await ctx.db
    .update(sandboxes)
    .set({ lastActivityAt: now })
    .where(
      and(
        eq(sandboxes.id, id),
        inArray(sandboxes.status, ["running"]),
        sql`(${sandboxes.lastActivityAt} is null or ${sandboxes.lastActivityAt} < ${ts(new Date(now.getTime() - TOUCH_INTERVAL_MS))})`,
      ),
    );
}
