import { randomBytes } from "node:crypto";
import { MANAGED_DIRECTORIES } from "../agent-config/render";
import { and, eq, inArray, sql } from "drizzle-orm";
import { containerAddons, resourceTiers, sandboxAddons, sandboxes, sandboxOperations } from "../../../db/schema";
import { systemContext } from "../../context";
import { decryptValue, encryptValue } from "../../crypto/envelope";
import { queryRows, ts, type Executor } from "../../database/client";
import { isDatabaseUnavailable } from "../../errors";
import type { AddonSpec, WorkloadInfo, WorkloadSpec } from "../../orchestrator/driver";
import { recordActivity } from "../activity/record";
import { healthyAtStart } from "./addon-health";
import type { SandboxRuntime } from "./runtime";
import type { SandboxRow } from "./view";
import { excerpt } from "../../lib/text";

type Operation = typeof sandboxOperations.$inferSelect;


const agentSecretBinding = (row: Pick<SandboxRow, "id" | "userId">) => ({
  purpose: "sandbox.agent_password",
  userId: row.userId,
  providerId: "",
  rowId: row.id,
});

/** The agent server password of a running sandbox, for the proxy. */
export function agentPassword(rt: SandboxRuntime, row: SandboxRow): string | null {
  return row.agentSecret ? decryptValue(rt.keyring, row.agentSecret, agentSecretBinding(row)) : null;
}

/**
 * Claims the next operation: the oldest pending one of its sandbox (so a sandbox's operations
 * run one at a time, in order), skipping rows other workers hold (FOR UPDATE SKIP LOCKED), which
 * is what lets several Warren instances share the queue.
 */
export async function claimOperation(rt: SandboxRuntime, holder: string): Promise<Operation | null> {
  const now = rt.now();
  const rows = await queryRows<{ id: string }>(
    rt.db,
    sql`update sandbox_operations set status = 'running', claimed_by = ${holder},
          claimed_until = ${ts(new Date(now.getTime() + rt.settings.operationClaimMs))}, attempts = attempts + 1, updated_at = ${ts(now)}
        where id = (
          select o.id from sandbox_operations o
          where o.status = 'queued' and o.run_after <= ${ts(now)}
            and o.id = (select x.id from sandbox_operations x
                        where x.sandbox_id = o.sandbox_id and x.status in ('queued', 'running')
                        order by x.created_at, x.id limit 1)
          order by o.run_after, o.created_at
          limit 1
          for update skip locked)
        returning id`,
  );
  const id = rows[0]?.id;
  if (!id) return null;
  const [op] = await rt.db.select().from(sandboxOperations).where(eq(sandboxOperations.id, id));
  return op ?? null;
}

/** The sandbox's add-ons as the driver needs them: the catalogue's service, tools and requirements. */
export async function sandboxAddonSpecs(db: Executor, sandboxId: string): Promise<AddonSpec[]> {
  return db
    .select({
      id: containerAddons.id,
      port: containerAddons.port,
      service: containerAddons.service,
      tools: containerAddons.tools,
      requires: containerAddons.requires,
      installHint: containerAddons.installHint,
    })
    .from(sandboxAddons)
    .innerJoin(containerAddons, eq(containerAddons.id, sandboxAddons.addonId))
    .where(eq(sandboxAddons.sandboxId, sandboxId))
    .orderBy(containerAddons.id);
}

async function buildSpec(rt: SandboxRuntime, row: SandboxRow, password: string): Promise<WorkloadSpec> {
  const [tier] = await rt.db.select().from(resourceTiers).where(eq(resourceTiers.id, row.resourceTierId));
  const addons = await sandboxAddonSpecs(rt.db, row.id);
  return {
    sandboxId: row.id,
    userId: row.userId,
    flavorId: row.flavorId,
    image: row.image ?? "",
    limits: { cpuCores: tier!.cpuCores, memoryMb: tier!.memoryMb, pidsLimit: tier!.pidsLimit, storageGb: tier!.storageGb },
    addons,
    env: row.env,
    agentPassword: password,
    files: await rt.workloadFiles(row.userId, row.id),
    // The files are the whole content of these: an agent deleted while stopped is gone on start.
    replaceDirectories: MANAGED_DIRECTORIES,
    repositoryUrl: row.repositoryUrl,
  };
}

async function startWorkload(rt: SandboxRuntime, row: SandboxRow): Promise<WorkloadInfo> {
  // A fresh password for every start: nothing outlives the workload that used it.
  const password = randomBytes(24).toString("base64url");
  await rt.db
    .update(sandboxes)
    .set({ agentSecret: encryptValue(rt.keyring, password, agentSecretBinding(row)) })
    .where(eq(sandboxes.id, row.id));
  return rt.driver.start(await buildSpec(rt, row, password));
}

/**
 * Settles the sandbox after the driver call, only if no newer request moved it meanwhile. False
 * when it did not (a newer request owns the status, or the sandbox is gone).
 */
async function settle(rt: SandboxRuntime, op: Operation, row: SandboxRow, outcome: "running" | "stopped", info?: WorkloadInfo): Promise<boolean> {
  const ctx = systemContext(rt, row.userId, op.requestId);
  return rt.db.transaction(async (tx) => {
    const now = rt.now();
    // A newer request (stop or delete during a start) owns the status now; its operation follows.
    const expected = outcome === "running" ? ["starting"] : ["stopping"];
    const [updated] = await tx
      .update(sandboxes)
      .set(
        outcome === "running"
          ? {
              status: "running",
              statusReason: op.reason ?? "user",
              errorMessage: null,
              driver: rt.driver.name,
              workloadId: info?.workloadId ?? null,
              image: info?.image ?? row.image,
              appliedLimits: info?.appliedLimits ?? null,
              startedAt: now,
              lastActivityAt: now,
              transitionStartedAt: null,
              version: sql`${sandboxes.version} + 1`,
              // start() resolved only once every service answered its readiness path.
              addonHealth: healthyAtStart(Object.keys(info?.addonUrls ?? {}), now),
            }
          : {
              status: "stopped",
              statusReason: op.reason ?? "user",
              agentSecret: null,
              addonHealth: {},
              stoppedAt: now,
              transitionStartedAt: null,
              version: sql`${sandboxes.version} + 1`,
            },
      )
      .where(and(eq(sandboxes.id, row.id), inArray(sandboxes.status, expected as SandboxRow["status"][])))
      .returning({ id: sandboxes.id });
    await tx.update(sandboxOperations).set({ status: "succeeded", error: null }).where(eq(sandboxOperations.id, op.id));
    if (updated) {
      await recordActivity(tx, ctx, {
        action: outcome === "running" ? "sandbox.running" : "sandbox.stopped",
        entityType: "sandbox",
        entityId: row.id,
        reason: op.reason ?? undefined,
      });
    }
    return updated !== undefined;
  });
}

/**
 * A workload whose sandbox row disappeared while it was being started (the account was deleted
 * mid-start: the rows cascade away, and the deletion's workload cleanup ran before this workload
 * existed) is removed here: no operation follows that would remove it.
 */
async function removeOrphanedWorkload(rt: SandboxRuntime, row: SandboxRow) {
  const [still] = await rt.db.select({ id: sandboxes.id }).from(sandboxes).where(eq(sandboxes.id, row.id));
  if (still) return;
  rt.logger.info({ sandboxId: row.id }, "sandbox deleted while it was starting; removing its workload");
  await rt.driver.remove(row.id).catch((err: unknown) =>
    // The reconciler stops workloads Warren does not know; the files stay until an operator acts.
    rt.logger.warn({ sandboxId: row.id, err: { message: (err as Error).message } }, "removing the workload of a deleted sandbox failed"),
  );
}

async function fail(rt: SandboxRuntime, op: Operation, row: SandboxRow, error: unknown) {
  const message = error instanceof Error ? error.message : String(error);
  rt.logger.warn({ sandboxId: row.id, op: op.kind, err: { message } }, "sandbox operation failed");
  const ctx = systemContext(rt, row.userId, op.requestId);
  const kept = excerpt(message, 2000);
  await rt.db.transaction(async (tx) => {
    await tx
      .update(sandboxes)
      .set({
        status: "error",
        statusReason: "error",
        errorMessage: kept,
        transitionStartedAt: null,
        version: sql`${sandboxes.version} + 1`,
        addonHealth: {},
      })
      .where(and(eq(sandboxes.id, row.id), inArray(sandboxes.status, ["starting", "stopping"])));
    await tx
      .update(sandboxOperations)
      .set({ status: "failed", error: kept })
      .where(eq(sandboxOperations.id, op.id));
    await recordActivity(tx, ctx, {
      action: "sandbox.failed",
      entityType: "sandbox",
      entityId: row.id,
      reason: op.kind,
      metadata: { error: excerpt(message, 500) },
    });
  });
}

/**
 * Extends the holder's claim on a running operation. A worker renews while it works, so only a
 * claim whose worker died (Warren killed mid-transition) lapses and is handed on by the reconciler.
 * False when the claim is no longer this holder's.
 */
export async function renewClaim(rt: SandboxRuntime, opId: string, holder: string): Promise<boolean> {
  const rows = await queryRows<{ id: string }>(
    rt.db,
    sql`update sandbox_operations set claimed_until = ${ts(new Date(rt.now().getTime() + rt.settings.operationClaimMs))}
        where id = ${opId} and claimed_by = ${holder} and status = 'running'
        returning id`,
  );
  return rows.length > 0;
}

/** Carries out one claimed operation against the orchestrator and records the outcome. */
export async function runOperation(rt: SandboxRuntime, op: Operation): Promise<void> {
  const [row] = await rt.db.select().from(sandboxes).where(eq(sandboxes.id, op.sandboxId));
  if (!row) {
    await rt.db.update(sandboxOperations).set({ status: "succeeded" }).where(eq(sandboxOperations.id, op.id));
    return;
  }
  try {
    if (op.kind === "delete") {
      await rt.driver.remove(row.id);
      await rt.db.transaction(async (tx) => {
        await recordActivity(tx, systemContext(rt, row.userId, op.requestId), {
          action: "sandbox.deleted",
          entityType: "sandbox",
          entityId: row.id,
        });
        // The operation rows cascade away with the sandbox.
        await tx.delete(sandboxes).where(eq(sandboxes.id, row.id));
      });
      return;
    }
    if (op.kind === "stop" || op.kind === "restart") await rt.driver.stop(row.id);
    if (op.kind === "stop") {
      await settle(rt, op, row, "stopped");
      return;
    }
    if (op.kind === "restart") {
      await rt.db.update(sandboxes).set({ status: "starting" }).where(and(eq(sandboxes.id, row.id), eq(sandboxes.status, "stopping")));
    }
    const info = await startWorkload(rt, row);
    if (!(await settle(rt, op, row, "running", info))) await removeOrphanedWorkload(rt, row);
  } catch (error) {
    // A database outage mid-operation: leave the claim to lapse so the operation is retried.
    if (isDatabaseUnavailable(error)) throw error;
    await fail(rt, op, row, error);
  }
}
