import { and, eq, inArray, sql } from "drizzle-orm";
import { providerCredentials, providerModels, providers, sandboxes } from "../../../db/schema";
import type { ServiceContext } from "../../context";
import { DecryptionError, decryptValue } from "../../crypto/envelope";
import type { Keyring } from "../../crypto/keyring";
import type { Executor } from "../../database/client";
import { notFound } from "../../errors";
import { recordActivity } from "../activity/record";
import type { OpenCodeAuthEntry, OpenCodeProviderConfig, SandboxCredentials } from "./types";

/**
 * THE one place secrets are decrypted, for one reason: handing the owner's credentials to the
 * owner's sandbox as it starts. Each decryption records credential.use (provider and sandbox,
 * never the value) in the same transaction that marks the credential used. A value that does
 * not authenticate is left out and reported, never guessed at: fail closed.
 */
export async function credentialsForSandbox(ctx: ServiceContext, keyring: Keyring, sandboxId: string): Promise<SandboxCredentials> {
  return ctx.db.transaction(async (tx) => {
    const [sandbox] = await tx
      .select({ id: sandboxes.id })
      .from(sandboxes)
      .where(and(eq(sandboxes.id, sandboxId), eq(sandboxes.userId, ctx.userId)));
    if (!sandbox) throw notFound("Sandbox", sandboxId);

    const rows = await tx
      .select({ credential: providerCredentials, provider: providers })
      .from(providerCredentials)
      .innerJoin(providers, eq(providers.id, providerCredentials.providerId))
      .where(eq(providerCredentials.userId, ctx.userId))
      .orderBy(providerCredentials.providerId);

    const out: SandboxCredentials = { authJson: {}, config: { provider: {} }, unavailable: [] };
    const used: string[] = [];
    for (const { credential, provider } of rows) {
      let secret: string;
      try {
        secret = decryptValue(keyring, credential.secret, {
          purpose: "credential.secret",
          userId: ctx.userId,
          providerId: credential.providerId,
          rowId: credential.id,
        });
      } catch (err) {
        if (!(err instanceof DecryptionError)) throw err;
        ctx.logger.error({ providerId: credential.providerId, credentialId: credential.id, keyId: credential.keyId }, "stored credential failed authentication; left out of the sandbox");
        out.unavailable.push(credential.providerId);
        continue;
      }
      out.authJson[provider.id] = toAuthEntry(credential.authType, secret);
      // OpenCode knows the built-in providers; a custom one needs its whole definition.
      if (provider.ownerUserId) {
        out.config.provider[provider.id] = { ...(await customProviderConfig(tx, provider)), options: { baseURL: credential.baseUrl ?? provider.baseUrl ?? "" } };
      } else if (credential.baseUrl) {
        out.config.provider[provider.id] = { options: { baseURL: credential.baseUrl } };
      }
      used.push(credential.id);
      await recordActivity(tx, ctx, {
        action: "credential.use",
        entityType: "provider",
        entityId: provider.id,
        metadata: { providerId: provider.id, sandboxId },
      });
    }
    if (used.length > 0) {
      // Being used is not being changed: updatedAt stays when the user last stored the value
      // (named here, or the column's $onUpdate would stamp it with the time of use).
      await tx
        .update(providerCredentials)
        .set({ lastUsedAt: ctx.now(), updatedAt: sql`${providerCredentials.updatedAt}` })
        .where(and(eq(providerCredentials.userId, ctx.userId), inArray(providerCredentials.id, used)));
    }
    return out;
  });
}

function toAuthEntry(authType: "api_key" | "oauth" | "device_flow", secret: string): OpenCodeAuthEntry {
  // OpenCode's Copilot plugin trades the GitHub token (its "refresh") for short-lived Copilot
  // tokens itself; an empty access with expires 0 makes it do so on first use.
  if (authType === "api_key") return { type: "api", key: secret };
  return { type: "oauth", refresh: secret, access: "", expires: 0 };
}

async function customProviderConfig(tx: Executor, provider: typeof providers.$inferSelect): Promise<Omit<OpenCodeProviderConfig, "options">> {
  const models = await tx.select().from(providerModels).where(eq(providerModels.providerId, provider.id));
  return {
    npm: provider.npmPackage ?? "@ai-sdk/openai-compatible",
    name: provider.name,
    models: Object.fromEntries(
      models.map((m) => [
        m.id,
        { name: m.name, ...(m.contextWindow && m.maxOutput ? { limit: { context: m.contextWindow, output: m.maxOutput } } : {}) },
      ]),
    ),
  };
}
