import { createHash } from "node:crypto";
import { and, count, eq, inArray, sql } from "drizzle-orm";
import { idempotencyKeys, sandboxAddons, sandboxes, sandboxOperations, userPreferences } from "../../../db/schema";
import type { ServiceContext } from "../../context";
import type { Tx } from "../../database/client";
import { AppError } from "../../errors";
import { newId } from "../../lib/ids";
import { recordActivity } from "../activity/record";
import { resolveSelection } from "../catalog/catalog";
import type { SandboxRuntime } from "./runtime";
import { viewOf } from "./queries";
import type { SandboxView } from "./view";

export type CreateSandboxInput = {
  name: string;
  description?: string | undefined;
  resourceTierId?: string | undefined;
  flavorId?: string | undefined;
  addonIds?: string[] | undefined;
  repositoryUrl?: string | undefined;
  env?: Record<string, string> | undefined;
  idleTimeoutMinutes?: number | undefined;
  autoStart?: boolean | undefined;
};

const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000;

/** Serialises one user's quota-counting writes (create, start) without a table lock. */
export async function lockUserQuota(tx: Tx, userId: string) {
  await tx.execute(sql`select pg_advisory_xact_lock(hashtext(${`warren:sandbox-quota:${userId}`}))`);
}

export async function assertRunningQuota(tx: Tx, ctx: ServiceContext, rt: SandboxRuntime) {
  const [row] = await tx
    .select({ n: count() })
    .from(sandboxes)
    .where(and(eq(sandboxes.userId, ctx.userId), inArray(sandboxes.status, ["starting", "running"])));
  const current = row?.n ?? 0;
  if (current >= rt.settings.maxRunning) {
    throw new AppError("LIMIT_EXCEEDED", `At most ${rt.settings.maxRunning} sandboxes may run at once`, {
      limit: "running_sandboxes",
      max: rt.settings.maxRunning,
      current,
    });
  }
}

export function slugify(name: string): string {
  const base = name
    .normalize("NFKD")
    .replace(/[\u0300-\u036f]/g, "")
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 40)
    .replace(/-+$/g, "");
  return base || "sandbox";
}

/**
 * Creates a sandbox (and queues its start when autoStart). Defaults come from the user's
 * preferences, else the catalog. The slug is unique per user by a unique index: a taken slug
 * gets the next suffix through ON CONFLICT, never check-then-insert. With an Idempotency-Key, a
 * retried request returns the sandbox the first one created.
 */
export async function createSandbox(
  ctx: ServiceContext,
  rt: SandboxRuntime,
  input: CreateSandboxInput,
  idempotencyKey?: string,
): Promise<{ sandbox: SandboxView; replayed: boolean }> {
  const requestHash = createHash("sha256").update(JSON.stringify(input)).digest("hex");
  const result = await ctx.db.transaction(async (tx) => {
    await lockUserQuota(tx, ctx.userId);
    if (idempotencyKey) {
      const [prior] = await tx
        .select()
        .from(idempotencyKeys)
        .where(
          and(
            eq(idempotencyKeys.userId, ctx.userId),
            eq(idempotencyKeys.scope, "sandbox.create"),
            eq(idempotencyKeys.key, idempotencyKey),
          ),
        );
      if (prior && prior.expiresAt > ctx.now()) {
        if (prior.requestHash !== requestHash) {
          throw new AppError("CONFLICT", "This Idempotency-Key was used with a different request body");
        }
        const [existing] = await tx.select().from(sandboxes).where(eq(sandboxes.id, String(prior.responseBody)));
        if (existing) return { row: existing, replayed: true };
      }
    }

    const [{ n: owned } = { n: 0 }] = await tx
      .select({ n: count() })
      .from(sandboxes)
      .where(eq(sandboxes.userId, ctx.userId));
    if (owned >= rt.settings.maxSandboxes) {
      throw new AppError("LIMIT_EXCEEDED", `At most ${rt.settings.maxSandboxes} sandboxes per user`, {
        limit: "sandboxes",
        max: rt.settings.maxSandboxes,
        current: owned,
      });
    }

    const [prefs] = await tx.select().from(userPreferences).where(eq(userPreferences.userId, ctx.userId));
    const selection = await resolveSelection(tx, {
      tierId: input.resourceTierId ?? prefs?.defaultResourceTierId ?? null,
      flavorId: input.flavorId ?? prefs?.defaultFlavorId ?? null,
      addonIds: input.addonIds ?? prefs?.defaultAddonIds ?? [],
    });

    if (input.autoStart) await assertRunningQuota(tx, ctx, rt);
    const now = ctx.now();
    const id = newId("sandbox");
    const base = slugify(input.name);
    let row;
    for (let n = 1; !row; n++) {
      if (n > 1000) throw new AppError("CONFLICT", "Could not find a free slug for this name");
      const slug = n === 1 ? base : `${base}-${n}`;
      [row] = await tx
        .insert(sandboxes)
        .values({
          id,
          userId: ctx.userId,
          name: input.name,
          slug,
          description: input.description ?? "",
          repositoryUrl: input.repositoryUrl ?? null,
          resourceTierId: selection.tier.id,
          flavorId: selection.flavor.id,
          env: input.env ?? {},
          idleTimeoutMinutes: input.idleTimeoutMinutes ?? 30,
          autoStart: input.autoStart ?? false,
          status: input.autoStart ? "starting" : "stopped",
          desiredStatus: input.autoStart ? "running" : "stopped",
          statusReason: "user",
          image: selection.flavor.image,
          transitionStartedAt: input.autoStart ? now : null,
          createdAt: now,
          updatedAt: now,
        })
        .onConflictDoNothing({ target: [sandboxes.userId, sandboxes.slug] })
        .returning();
    }
    if (selection.addons.length) {
      await tx.insert(sandboxAddons).values(selection.addons.map((a) => ({ sandboxId: id, addonId: a.id })));
    }
    if (input.autoStart) {
      await tx.insert(sandboxOperations).values({
        id: newId("sandboxOperation"),
        sandboxId: id,
        userId: ctx.userId,
        kind: "start",
        reason: "user",
        requestId: ctx.requestId,
        runAfter: now,
      });
    }
    await recordActivity(tx, ctx, {
      action: "sandbox.create",
      entityType: "sandbox",
      entityId: id,
      metadata: {
        name: input.name,
        resourceTierId: selection.tier.id,
        flavorId: selection.flavor.id,
        addonIds: selection.addons.map((a) => a.id),
        autoStart: Boolean(input.autoStart),
      },
    });
    if (idempotencyKey) {
      await tx
        .insert(idempotencyKeys)
        .values({
          userId: ctx.userId,
          scope: "sandbox.create",
          key: idempotencyKey,
          requestHash,
          responseStatus: 201,
          responseBody: id,
          expiresAt: new Date(now.getTime() + IDEMPOTENCY_TTL_MS),
        })
        .onConflictDoUpdate({
          target: [idempotencyKeys.userId, idempotencyKeys.scope, idempotencyKeys.key],
          set: { requestHash, responseBody: id, expiresAt: new Date(now.getTime() + IDEMPOTENCY_TTL_MS) },
        });
    }
    return { row, replayed: false };
  });
  if (result.row.status === "starting") rt.kick();
  return { sandbox: await viewOf(ctx.db, result.row), replayed: result.replayed };
}
