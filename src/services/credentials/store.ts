import { and, eq } from "drizzle-orm";
import { providerCredentials } from "../../../db/schema";
import type { ServiceContext } from "../../context";
import { encryptValue } from "../../crypto/envelope";
import type { Keyring } from "../../crypto/keyring";
import type { Executor } from "../../database/client";
import { newId } from "../../lib/ids";
import type { CredentialInfo } from "./types";

type CredentialRow = typeof providerCredentials.$inferSelect;

export function toCredentialInfo(row: CredentialRow): CredentialInfo {
  return {
    providerId: row.providerId,
    authType: row.authType,
    hint: row.hint,
    baseUrl: row.baseUrl,
    scopes: row.scopes ?? null,
    expiresAt: row.tokenExpiresAt?.toISOString() ?? null,
    lastUsedAt: row.lastUsedAt?.toISOString() ?? null,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}

/** Last four characters only, and none of a value too short to spare them. */
export function maskedHint(secret: string): string {
  return secret.length >= 12 ? `…${secret.slice(-4)}` : "…";
}

export type StoreSecretInput = {
  providerId: string;
  authType: CredentialRow["authType"];
  secret: string;
  baseUrl?: string | null | undefined;
  scopes?: string[] | null;
  tokenExpiresAt?: Date | null;
};

/**
 * Inserts or replaces the user's credential for a provider inside `tx`. The row id is settled
 * before encrypting, because the ciphertext is bound to it.
 */
export async function storeSecret(tx: Executor, ctx: ServiceContext, keyring: Keyring, input: StoreSecretInput) {
  const scoped = and(eq(providerCredentials.userId, ctx.userId), eq(providerCredentials.providerId, input.providerId));
  const [existing] = await tx.select({ id: providerCredentials.id }).from(providerCredentials).where(scoped).for("update");
  const id = existing?.id ?? newId("credential");
  const secret = encryptValue(keyring, input.secret, { purpose: "credential.secret", userId: ctx.userId, providerId: input.providerId, rowId: id });
  const values = {
    authType: input.authType,
    secret,
    refreshSecret: null,
    keyId: keyring.activeKeyId,
    hint: maskedHint(input.secret),
    baseUrl: input.baseUrl ?? null,
    scopes: input.scopes ?? null,
    tokenExpiresAt: input.tokenExpiresAt ?? null,
    updatedAt: ctx.now(),
  };
  if (existing) {
    const [row] = await tx.update(providerCredentials).set(values).where(and(scoped, eq(providerCredentials.id, id))).returning();
    return { row: row!, created: false };
  }
  const [row] = await tx
    .insert(providerCredentials)
    .values({ id, userId: ctx.userId, providerId: input.providerId, createdAt: ctx.now(), ...values })
    .onConflictDoNothing()
    .returning();
  // Lost a race with a concurrent first write for the same provider: replace theirs instead.
  if (!row) return storeSecret(tx, ctx, keyring, input);
  return { row, created: true };
}

