import { and, eq, sql } from "drizzle-orm";
import { providerCredentials, userPreferences } from "../../../db/schema";
import type { ServiceContext } from "../../context";
import type { Keyring } from "../../crypto/keyring";
import type { Executor } from "../../database/client";
import { storeSecret, toCredentialInfo } from "./store";
import { AppError, notFound } from "../../errors";
import { afterCursor, newestFirst, toPage } from "../../lib/pagination";
import { recordActivity } from "../activity/record";
import { requireVisibleProvider } from "../providers/visibility";
import { cancelDeviceFlow, pollDeviceFlow, startDeviceFlow } from "./device-flow";
import type { DeviceFlowClients } from "./github-device";
import { credentialsForSandbox } from "./sandbox-credentials";
import { noSandboxHook, type CredentialInfo, type SandboxCredentialsHook, type SandboxSync } from "./types";

/**
 * The per-user credential vault. The middleware binds one to each signed-in request
 * (c.var.vault); it is the only code that reads or writes provider_credentials and
 * oauth_device_flows (a test scans src/ for anyone else), and every query it runs is filtered by
 * the user it was bound to. Provider secrets come out decrypted in exactly one place:
 * credentialsForSandbox, which records a credential.use entry per value.
 */
export type VaultDeps = {
  ctx: ServiceContext;
  keyring: Keyring;
  /** Default: no sandboxes to tell. */
  sandboxes?: SandboxCredentialsHook;
  /** Default: no provider signs in with a device flow (jobs that only hand out credentials). */
  deviceFlows?: DeviceFlowClients;
};

const NO_DEVICE_FLOWS: DeviceFlowClients = { clients: {}, fetch, timeoutMs: 10_000 };

export type Vault = ReturnType<typeof createVault>;

export function createVault(deps: VaultDeps) {
  const { ctx, keyring } = deps;
  const sandboxHook = deps.sandboxes ?? noSandboxHook;
  const deviceFlows = deps.deviceFlows ?? NO_DEVICE_FLOWS;
  const mine = eq(providerCredentials.userId, ctx.userId);

  /** Tells the sandbox side after the change committed; its failure never undoes the change. */
  async function syncSandboxes(providerId: string): Promise<SandboxSync> {
    try {
      return await sandboxHook.credentialsChanged(ctx, providerId);
    } catch (err) {
      ctx.logger.error({ err, providerId }, "sandboxes could not be told about a credential change");
      return { refreshed: [], restartRequired: [], error: "Running sandboxes could not be updated; restart them to apply the change" };
    }
  }

  return {
    userId: ctx.userId,

    async listCredentials(page: { limit: number; cursor?: string | undefined }) {
      const rows = await ctx.db
        .select()
        .from(providerCredentials)
        .where(and(mine, afterCursor(page.cursor, providerCredentials)))
        .orderBy(...newestFirst(providerCredentials))
        .limit(page.limit + 1);
      return toPage(rows, page.limit, toCredentialInfo);
    },

    async getCredential(providerId: string): Promise<CredentialInfo> {
      const [row] = await ctx.db.select().from(providerCredentials).where(and(mine, eq(providerCredentials.providerId, providerId)));
      if (!row) throw notFound("Credential for provider", providerId);
      return toCredentialInfo(row);
    },

    /** Inside a transaction, pass it: PGlite has one connection, and a read through the pool waits for it. */
    async configuredProviderIds(db: Executor = ctx.db): Promise<Set<string>> {
      const rows = await db.select({ providerId: providerCredentials.providerId }).from(providerCredentials).where(mine);
      return new Set(rows.map((r) => r.providerId));
    },

    async isConfigured(db: Executor, providerId: string): Promise<boolean> {
      const rows = await db
        .select({ id: providerCredentials.id })
        .from(providerCredentials)
        .where(and(mine, eq(providerCredentials.providerId, providerId)));
      return rows.length > 0;
    },

    /** PUT: stores or replaces the caller's API key for a provider they can see. */
    async setCredential(input: { providerId: string; apiKey: string; baseUrl?: string | undefined }) {
      const result = await ctx.db.transaction(async (tx) => {
        const provider = await requireVisibleProvider(tx, ctx, input.providerId);
        if (!provider.authTypes.includes("api_key")) {
          throw new AppError("INVALID_STATE", `Provider ${JSON.stringify(provider.id)} does not take API keys; sign in with its device flow`);
        }
        const stored = await storeSecret(tx, ctx, keyring, {
          providerId: provider.id,
          authType: "api_key",
          secret: input.apiKey,
          baseUrl: input.baseUrl,
        });
        await recordActivity(tx, ctx, {
          action: "credential.set",
          entityType: "provider",
          entityId: provider.id,
          metadata: { providerId: provider.id, authType: "api_key", replaced: !stored.created },
        });
        return stored;
      });
      const sandboxes = result.created ? { refreshed: [], restartRequired: [] } : await syncSandboxes(input.providerId);
      return { credential: toCredentialInfo(result.row), created: result.created, sandboxes };
    },

    async deleteCredential(providerId: string): Promise<{ sandboxes: SandboxSync }> {
      await ctx.db.transaction(async (tx) => {
        const deleted = await tx
          .delete(providerCredentials)
          .where(and(mine, eq(providerCredentials.providerId, providerId)))
          .returning({ id: providerCredentials.id, authType: providerCredentials.authType });
        if (deleted.length === 0) throw notFound("Credential for provider", providerId);
        // The default model must be one the user can use: it goes with the provider's credential.
        await tx
          .update(userPreferences)
          .set({ defaultProviderId: null, defaultModelId: null, version: sql`${userPreferences.version} + 1`, updatedAt: ctx.now() })
          .where(and(eq(userPreferences.userId, ctx.userId), eq(userPreferences.defaultProviderId, providerId)));
        await recordActivity(tx, ctx, {
          action: "credential.delete",
          entityType: "provider",
          entityId: providerId,
          metadata: { providerId, authType: deleted[0]!.authType },
        });
      });
      return { sandboxes: await syncSandboxes(providerId) };
    },

    credentialsForSandbox: (sandboxId: string) => credentialsForSandbox(ctx, keyring, sandboxId),
    startDeviceFlow: (providerId: string) => startDeviceFlow(ctx, keyring, deviceFlows, providerId),
    pollDeviceFlow: (providerId: string, flowId: string) => pollDeviceFlow(ctx, keyring, deviceFlows, providerId, flowId),
    cancelDeviceFlow: (providerId: string, flowId: string) => cancelDeviceFlow(ctx, providerId, flowId),
  };
}
