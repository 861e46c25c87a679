import { and, eq, inArray, sql } from "drizzle-orm";
import { sandboxes, sandboxOperations } from "../../../db/schema";
import type { ServiceContext } from "../../context";
import { AppError, notFound } from "../../errors";
import { newId } from "../../lib/ids";
import { recordActivity } from "../activity/record";
import { assertRunningQuota, lockUserQuota } from "./create-sandbox";
import type { SandboxRuntime } from "./runtime";
import { RULES, type Action } from "./state-machine";
import { viewOf } from "./queries";
import { sandboxAddonSpecs } from "./worker";
import type { Executor } from "../../database/client";
import { deleteSandboxChats } from "../chat/queries";

type Availability = Awaited<ReturnType<SandboxRuntime["driver"]["availability"]>>;
// Per driver: availability probes the host (binaries, root), so it is asked at most every 5 s.
const availabilityCache = new WeakMap<SandboxRuntime["driver"], { at: number; value: Availability }>();

/** Starting needs a working driver; say what to install instead of queueing a doomed start. */
async function assertDriverAvailable(rt: SandboxRuntime) {
  const now = Date.now();
  let cached = availabilityCache.get(rt.driver);
  if (!cached || now - cached.at > 5000) {
    cached = { at: now, value: await rt.driver.availability() };
    availabilityCache.set(rt.driver, cached);
  }
  const a = cached.value;
  if (!a.available) {
    throw new AppError("SERVICE_UNAVAILABLE", `The ${rt.driver.name} sandbox driver is unavailable: ${a.reason}`, {
      driver: rt.driver.name,
      reason: a.reason,
      install: a.install,
    });
  }
}

/**
 * Starting needs every add-on's requirements (host binaries, paths): never a sandbox silently
 * started without one; the 503 names the add-on and what to install.
 */
async function assertAddonsAvailable(db: Executor, rt: SandboxRuntime, sandboxId: string) {
  const addons = await sandboxAddonSpecs(db, sandboxId);
  if (addons.length === 0) return;
  const missing = (await rt.driver.addonAvailability(addons)).flatMap((a) => (a.available ? [] : [a]));
  if (missing.length === 0) return;
  throw new AppError("SERVICE_UNAVAILABLE", `Add-on unavailable on this host: ${missing.map((m) => m.reason).join("; ")}`, {
    addons: missing.map((m) => ({ id: m.id, reason: m.reason, install: m.install })),
  });
}

/**
 * A lifecycle request: one guarded UPDATE moves the sandbox into the transitional status only
 * from an allowed status, so concurrent requests serialise on the row and exactly one of them
 * wins; the others get 409 INVALID_STATE with the status they found. The operation that the
 * worker will carry out and the activity entry are written in the same transaction.
 */
export async function requestTransition(
  ctx: ServiceContext,
  rt: SandboxRuntime,
  sandboxId: string,
  action: Action,
  reason = "user",
  /** Delete only: keep the sandbox's chat sessions (they outlive it with sandbox_id null). */
  opts: { keepChats?: boolean } = {},
) {
  if (action === "start" || action === "restart") await assertDriverAvailable(rt);
  const rule = RULES[action];
  const row = await ctx.db.transaction(async (tx) => {
    if (action === "start") await lockUserQuota(tx, ctx.userId);
    const [current] = await tx
      .select({ status: sandboxes.status })
      .from(sandboxes)
      .where(and(eq(sandboxes.id, sandboxId), eq(sandboxes.userId, ctx.userId)))
      .for("update");
    if (!current) throw notFound("Sandbox", sandboxId);
    // Deleting is idempotent: asking again while it is under way changes nothing.
    if (action === "delete" && current.status === "deleting") return null;
    if (!rule.from.includes(current.status)) {
      throw new AppError("INVALID_STATE", `Cannot ${action} a sandbox that is ${current.status}`, {
        status: current.status,
        action,
        allowedFrom: rule.from,
      });
    }
    if (action === "start" || action === "restart") await assertAddonsAvailable(tx, rt, sandboxId);
    if (action === "start") await assertRunningQuota(tx, ctx, rt);
    const now = ctx.now();
    const [updated] = await tx
      .update(sandboxes)
      .set({
        status: rule.to,
        desiredStatus: rule.desired,
        statusReason: reason,
        errorMessage: action === "start" || action === "restart" ? null : sql`${sandboxes.errorMessage}`,
        transitionStartedAt: now,
        version: sql`${sandboxes.version} + 1`,
        // Health describes one run of the workload; this one is ending or not begun.
        addonHealth: {},
        updatedAt: now,
      })
      .where(and(eq(sandboxes.id, sandboxId), inArray(sandboxes.status, rule.from)))
      .returning();
    // Chats go with the sandbox unless the caller keeps them; in this transaction, whose row lock
    // also makes chat sync write nothing more for the sandbox (src/services/chat/ingest.ts).
    if (action === "delete" && !opts.keepChats) await deleteSandboxChats(tx, ctx.userId, sandboxId);
    await tx.insert(sandboxOperations).values({
      id: newId("sandboxOperation"),
      sandboxId,
      userId: ctx.userId,
      kind: action,
      reason,
      requestId: ctx.requestId,
      runAfter: now,
    });
    await recordActivity(tx, ctx, {
      action: `sandbox.${action}`,
      entityType: "sandbox",
      entityId: sandboxId,
      reason,
    });
    return updated!;
  });
  rt.kick();
  return viewOf(ctx.db, row ?? (await findCurrent(ctx, sandboxId)));
}

async function findCurrent(ctx: ServiceContext, sandboxId: string) {
  const [row] = await ctx.db
    .select()
    .from(sandboxes)
    .where(and(eq(sandboxes.id, sandboxId), eq(sandboxes.userId, ctx.userId)));
  if (!row) throw notFound("Sandbox", sandboxId);
  return row;
}
