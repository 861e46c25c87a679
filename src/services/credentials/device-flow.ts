import { and, eq, sql } from "drizzle-orm";
import { oauthDeviceFlows } from "../../../db/schema";
import type { ServiceContext } from "../../context";
import { decryptValue, encryptValue } from "../../crypto/envelope";
import type { Keyring } from "../../crypto/keyring";
import { AppError, notFound } from "../../errors";
import { newId } from "../../lib/ids";
import { recordActivity } from "../activity/record";
import { requireVisibleProvider } from "../providers/visibility";
import { pollToken, requestDeviceCode, UpstreamError, type DeviceFlowClients } from "./github-device";
import type { CredentialInfo } from "./types";
import { storeSecret, toCredentialInfo } from "./store";

/**
 * Device flows belong to the user who started them: every query is filtered by ctx.userId, so
 * anyone else's flow id is simply not found. A flow is single-use (once it is no longer pending
 * it cannot be polled again), expires with GitHub's expires_in, and its device code is stored as
 * a vault envelope because whoever holds it can finish the sign-in.
 */
type FlowRow = typeof oauthDeviceFlows.$inferSelect;

export type DeviceFlowView = {
  id: string;
  providerId: string;
  status: FlowRow["status"];
  userCode: string;
  verificationUri: string;
  interval: number;
  expiresAt: string;
  createdAt: string;
};

export type PollResult = DeviceFlowView & { credential: CredentialInfo | null };

function view(row: FlowRow): DeviceFlowView {
  return {
    id: row.id,
    providerId: row.providerId,
    status: row.status,
    userCode: row.userCode,
    verificationUri: row.verificationUri,
    interval: row.intervalSeconds,
    expiresAt: row.expiresAt.toISOString(),
    createdAt: row.createdAt.toISOString(),
  };
}

const binding = (row: { userId: string; providerId: string; id: string }) => ({
  purpose: "device_flow.code",
  userId: row.userId,
  providerId: row.providerId,
  rowId: row.id,
});

function upstreamUnavailable(err: unknown): never {
  if (err instanceof UpstreamError) throw new AppError("SERVICE_UNAVAILABLE", "The provider's sign-in service is not reachable; try again shortly");
  throw err;
}

export async function startDeviceFlow(ctx: ServiceContext, keyring: Keyring, clients: DeviceFlowClients, providerId: string): Promise<DeviceFlowView> {
  const provider = await requireVisibleProvider(ctx.db, ctx, providerId);
  const client = clients.clients[provider.id];
  if (!client || !provider.authTypes.includes("device_flow")) {
    throw new AppError("INVALID_STATE", `Provider ${JSON.stringify(provider.id)} does not sign in with a device flow; store an API key instead`);
  }
  const code = await requestDeviceCode(clients, client).catch(upstreamUnavailable);
  return ctx.db.transaction(async (tx) => {
    const id = newId("deviceFlow");
    const now = ctx.now();
    const [row] = await tx
      .insert(oauthDeviceFlows)
      .values({
        id,
        userId: ctx.userId,
        providerId: provider.id,
        deviceCode: encryptValue(keyring, code.deviceCode, binding({ userId: ctx.userId, providerId: provider.id, id })),
        keyId: keyring.activeKeyId,
        userCode: code.userCode,
        verificationUri: code.verificationUri,
        intervalSeconds: code.interval,
        expiresAt: new Date(now.getTime() + code.expiresIn * 1000),
        createdAt: now,
        updatedAt: now,
      })
      .returning();
    await recordActivity(tx, ctx, { action: "device_flow.start", entityType: "device_flow", entityId: id, metadata: { providerId: provider.id } });
    return view(row!);
  });
}

async function findFlow(ctx: ServiceContext, providerId: string, flowId: string): Promise<FlowRow> {
  const [row] = await ctx.db
    .select()
    .from(oauthDeviceFlows)
    .where(and(eq(oauthDeviceFlows.id, flowId), eq(oauthDeviceFlows.userId, ctx.userId), eq(oauthDeviceFlows.providerId, providerId)));
  if (!row) throw notFound("Device flow", flowId);
  return row;
}

/** Ends a pending flow with a final status; false when another poll ended it first. */
async function finish(ctx: ServiceContext, flow: FlowRow, status: "expired" | "denied" | "error", message: string | null): Promise<FlowRow | null> {
  return ctx.db.transaction(async (tx) => {
    const [row] = await tx
      .update(oauthDeviceFlows)
      .set({ status, errorMessage: message, updatedAt: ctx.now() })
      .where(and(eq(oauthDeviceFlows.id, flow.id), eq(oauthDeviceFlows.userId, ctx.userId), eq(oauthDeviceFlows.status, "pending")))
      .returning();
    if (row) {
      await recordActivity(tx, ctx, { action: "device_flow.fail", entityType: "device_flow", entityId: flow.id, metadata: { providerId: flow.providerId, status } });
    }
    return row ?? null;
  });
}

/**
 * Polls the provider once. Honours the flow's interval (a poll sooner is 429 with Retry-After,
 * and GitHub is not called), and slow_down (the interval grows as GitHub says, else by 5 s).
 */
export async function pollDeviceFlow(ctx: ServiceContext, keyring: Keyring, clients: DeviceFlowClients, providerId: string, flowId: string): Promise<PollResult> {
  const flow = await findFlow(ctx, providerId, flowId);
  if (flow.status !== "pending") throw new AppError("INVALID_STATE", `Device flow ${JSON.stringify(flowId)} is already ${flow.status}; start a new one`);
  const now = ctx.now();
  if (now >= flow.expiresAt) {
    const ended = await finish(ctx, flow, "expired", "the code expired before it was entered");
    return { ...view(ended ?? flow), status: "expired", credential: null };
  }
  // Claim this poll atomically, so two concurrent polls never both reach GitHub inside one interval.
  const [claimed] = await ctx.db
    .update(oauthDeviceFlows)
    .set({ lastPolledAt: now })
    .where(
      and(
        eq(oauthDeviceFlows.id, flow.id),
        eq(oauthDeviceFlows.userId, ctx.userId),
        eq(oauthDeviceFlows.status, "pending"),
        sql`(${oauthDeviceFlows.lastPolledAt} is null or ${oauthDeviceFlows.lastPolledAt} + make_interval(secs => ${oauthDeviceFlows.intervalSeconds}) <= ${now.toISOString()}::timestamptz)`,
      ),
    )
    .returning();
  if (!claimed) {
    const current = await findFlow(ctx, providerId, flowId);
    if (current.status !== "pending") throw new AppError("INVALID_STATE", `Device flow ${JSON.stringify(flowId)} is already ${current.status}`);
    const wait = Math.max(1, Math.ceil(((current.lastPolledAt?.getTime() ?? 0) + current.intervalSeconds * 1000 - now.getTime()) / 1000));
    throw new AppError("RATE_LIMITED", `Poll at most every ${current.intervalSeconds} seconds`, { retryAfterSeconds: wait }, { "Retry-After": String(wait) });
  }
  const client = clients.clients[flow.providerId];
  if (!client) throw new AppError("INVALID_STATE", "This provider no longer signs in with a device flow");
  const deviceCode = decryptValue(keyring, claimed.deviceCode, binding(claimed));
  const outcome = await pollToken(clients, client, deviceCode).catch(upstreamUnavailable);

  switch (outcome.kind) {
    case "pending":
      return { ...view(claimed), credential: null };
    case "slow_down": {
      const interval = Math.min(Math.max(outcome.interval ?? claimed.intervalSeconds + 5, claimed.intervalSeconds + 1), 300);
      const [row] = await ctx.db
        .update(oauthDeviceFlows)
        .set({ intervalSeconds: interval, updatedAt: ctx.now() })
        .where(and(eq(oauthDeviceFlows.id, flow.id), eq(oauthDeviceFlows.userId, ctx.userId)))
        .returning();
      return { ...view(row ?? claimed), credential: null };
    }
    case "expired":
    case "denied":
    case "error": {
      const status = outcome.kind === "expired" ? "expired" : outcome.kind === "denied" ? "denied" : "error";
      const message = outcome.kind === "error" ? `provider answered ${outcome.error}` : null;
      const ended = await finish(ctx, flow, status, message);
      return { ...view(ended ?? claimed), status, credential: null };
    }
    case "token":
      return ctx.db.transaction(async (tx) => {
        const [done] = await tx
          .update(oauthDeviceFlows)
          .set({ status: "completed", updatedAt: ctx.now() })
          .where(and(eq(oauthDeviceFlows.id, flow.id), eq(oauthDeviceFlows.userId, ctx.userId), eq(oauthDeviceFlows.status, "pending")))
          .returning();
        if (!done) throw new AppError("INVALID_STATE", `Device flow ${JSON.stringify(flowId)} was finished by another request`);
        const stored = await storeSecret(tx, ctx, keyring, {
          providerId: flow.providerId,
          authType: "device_flow",
          secret: outcome.accessToken,
          scopes: outcome.scopes,
          // OAuth apps' tokens do not expire; a GitHub App's do, and the credential says when.
          tokenExpiresAt: outcome.expiresIn === null ? null : new Date(ctx.now().getTime() + outcome.expiresIn * 1000),
        });
        await recordActivity(tx, ctx, { action: "device_flow.complete", entityType: "device_flow", entityId: flow.id, metadata: { providerId: flow.providerId } });
        await recordActivity(tx, ctx, {
          action: "credential.set",
          entityType: "provider",
          entityId: flow.providerId,
          metadata: { providerId: flow.providerId, authType: "device_flow", replaced: !stored.created },
        });
        return { ...view(done), credential: toCredentialInfo(stored.row) };
      });
  }
}

/** Cancels and forgets a flow (its device code with it). */
export async function cancelDeviceFlow(ctx: ServiceContext, providerId: string, flowId: string): Promise<void> {
  await ctx.db.transaction(async (tx) => {
    const deleted = await tx
      .delete(oauthDeviceFlows)
      .where(and(eq(oauthDeviceFlows.id, flowId), eq(oauthDeviceFlows.userId, ctx.userId), eq(oauthDeviceFlows.providerId, providerId)))
      .returning({ id: oauthDeviceFlows.id, status: oauthDeviceFlows.status });
    if (deleted.length === 0) throw notFound("Device flow", flowId);
    await recordActivity(tx, ctx, { action: "device_flow.cancel", entityType: "device_flow", entityId: flowId, metadata: { providerId, status: deleted[0]!.status } });
  });
}
