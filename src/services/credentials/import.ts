import { and, eq } from "drizzle-orm";
import { providerCredentials, providers } from "../../../db/schema";
import type { ServiceContext } from "../../context";
import { DecryptionError, encryptValue } from "../../crypto/envelope";
import { decryptLegacy } from "../../crypto/legacy";
import type { Keyring } from "../../crypto/keyring";
import type { Executor } from "../../database/client";
import { newId } from "../../lib/ids";
import { recordActivity } from "../activity/record";
import { maskedHint } from "./store";

/**
 * The vault's import verb, for the legacy importer (src/import): the legacy system kept one
 * credential per provider for the whole installation; the operator names the user who gets
 * them. The secret arrives already decrypted with the legacy key and is sealed here with the
 * active vault key, bound to its user, provider and row like every other credential.
 *
 * Never replaces: a credential the user already has for that provider (set through the API, or
 * imported by an earlier run) wins, and the outcome says so. Runs inside the importer's
 * transaction (`tx`), so a failed import leaves no credential behind.
 */
export type ImportCredentialInput = {
  legacyId: string;
  providerId: string;
  authType: "api_key" | "oauth" | "device_flow";
  secret: string;
  scopes: string[] | null;
  tokenExpiresAt: Date | null;
};

export type ImportCredentialOutcome = "imported" | "already_present" | "unknown_provider";

export async function importCredential(
  tx: Executor,
  ctx: ServiceContext,
  keyring: Keyring,
  input: ImportCredentialInput,
): Promise<ImportCredentialOutcome> {
  const [provider] = await tx.select({ id: providers.id }).from(providers).where(eq(providers.id, input.providerId));
  if (!provider) return "unknown_provider";
  const [existing] = await tx
    .select({ id: providerCredentials.id })
    .from(providerCredentials)
    .where(and(eq(providerCredentials.userId, ctx.userId), eq(providerCredentials.providerId, input.providerId)));
  if (existing) return "already_present";
  const id = newId("credential");
  const binding = { purpose: "credential.secret", userId: ctx.userId, providerId: input.providerId, rowId: id };
  const inserted = await tx
    .insert(providerCredentials)
    .values({
      id,
      userId: ctx.userId,
      providerId: input.providerId,
      authType: input.authType,
      secret: encryptValue(keyring, input.secret, binding),
      refreshSecret: null,
      keyId: keyring.activeKeyId,
      hint: maskedHint(input.secret),
      scopes: input.scopes,
      tokenExpiresAt: input.tokenExpiresAt,
      createdAt: ctx.now(),
      updatedAt: ctx.now(),
    })
    .onConflictDoNothing()
    .returning({ id: providerCredentials.id });
  if (inserted.length === 0) return "already_present";
  await recordActivity(tx, ctx, {
    action: "credential.import",
    entityType: "provider",
    entityId: input.providerId,
    metadata: { providerId: input.providerId, authType: input.authType, legacyId: input.legacyId },
  });
  return "imported";
}

/**
 * The legacy table of global credentials. Its name is the vault's business (only this folder
 * names credential tables): the importer reads it through this constant.
 */
export const LEGACY_CREDENTIALS_TABLE = "provider_credentials";

export type LegacyCredential = Omit<ImportCredentialInput, "secret"> & { secret: string | null };

/**
 * One legacy row to an importable credential, decrypted with the legacy key (quirk 6). The value
 * Warren keeps per auth type is the one OpenCode needs: the API key; for OAuth the refresh token
 * (else the access token); for a device flow the GitHub token it produced (stored as access).
 * Throws DecryptionError when a value does not authenticate under the legacy key.
 */
export function legacyCredential(row: Record<string, unknown>, legacyKey: string | null, scopes: string[] | null, tokenExpiresAt: Date | null): LegacyCredential {
  const authType = row.auth_type === "oauth" || row.auth_type === "device_flow" ? row.auth_type : "api_key";
  const column =
    authType === "api_key"
      ? row.api_key_encrypted
      : authType === "oauth"
        ? (row.refresh_token_encrypted ?? row.access_token_encrypted)
        : (row.access_token_encrypted ?? row.refresh_token_encrypted);
  const sealed = typeof column === "string" && column !== "" ? column : null;
  if (sealed !== null && legacyKey === null) throw new DecryptionError();
  return {
    legacyId: String(row.id),
    providerId: String(row.provider_id ?? ""),
    authType,
    secret: sealed === null ? null : decryptLegacy(sealed, legacyKey!),
    scopes,
    tokenExpiresAt,
  };
}
