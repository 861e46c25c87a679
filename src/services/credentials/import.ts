import { and, eq, sql } from "drizzle-orm";
import { providerCredentials, providers } from "../../../db/schema";
import type { ServiceContext } from "../../context";
import { DecryptionError, encryptValue } from "../../crypto/envelope";
import { decryptLegacy } from "../../crypto/legacy";
import type { Keyring } from "../../crypto/keyring";
import { queryRows, type Executor } from "../../database/client";
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

/**
 * For the legacy import's ledger (legacy_import_ledger; src/import): which of these legacy
 * credentials an earlier run imported, and the Warren credential each became (null: deleted in
 * Warren since; a re-run must not bring a removed key back). The ledger says so for runs since it
 * exists. For a database imported before it, importCredential left the evidence: its
 * `credential.import` activity entry names the legacy id (kept through account deletion and
 * archiving), and the credential it made is the assignee's for that provider, if they still have
 * one. Two statements for all the file's credentials.
 */
export async function credentialsImportedEarlier(
  tx: Executor,
  legacy: Array<{ legacyId: string; providerId: string }>,
  assigneeId: string,
): Promise<Map<string, { warrenId: string | null; ledgered: boolean }>> {
  const earlier = new Map<string, { warrenId: string | null; ledgered: boolean }>();
  if (legacy.length === 0) return earlier;
  const json = JSON.stringify(legacy.map((c) => ({ legacy_id: c.legacyId, provider_id: c.providerId })));
  const ledgered = await queryRows<{ legacy_id: string; warren_id: string | null }>(
    tx,
    sql`select l.legacy_id, c.id as warren_id
        from json_to_recordset(${json}::json) as x(legacy_id text, provider_id text)
        join legacy_import_ledger l on l.entity = ${LEGACY_CREDENTIALS_TABLE} and l.legacy_id = x.legacy_id
        left join ${providerCredentials} c on c.id = l.warren_id`,
  );
  for (const r of ledgered) earlier.set(r.legacy_id, { warrenId: r.warren_id, ledgered: true });
  if (earlier.size === legacy.length) return earlier;
  // The assignee's entries (or, after an account deletion, anonymised ones) through the
  // (user_id, entity_type, entity_id) index; the archive through its action index.
  const evidenced = await queryRows<{ legacy_id: string; warren_id: string | null }>(
    tx,
    sql`select x.legacy_id,
          (select c.id from ${providerCredentials} c where c.user_id = ${assigneeId} and c.provider_id = x.provider_id) as warren_id
        from json_to_recordset(${json}::json) as x(legacy_id text, provider_id text)
        where exists (select 1 from activity_log a
                      where (a.user_id = ${assigneeId} or a.user_id is null) and a.entity_type = 'provider' and a.entity_id = x.provider_id
                        and a.action = 'credential.import' and a.metadata->>'legacyId' = x.legacy_id)
           or exists (select 1 from activity_log_archive a
                      where a.action = 'credential.import' and a.metadata->>'legacyId' = x.legacy_id)`,
  );
  for (const r of evidenced) if (!earlier.has(r.legacy_id)) earlier.set(r.legacy_id, { warrenId: r.warren_id, ledgered: false });
  return earlier;
}

/** A legacy credential for the ledger, with its Warren credential; without warrenId: the assignee's for providerId. */
export type ImportedCredentialEntry = { legacyId: string; providerId: string; warrenId?: string | null };

/** Records legacy credentials in the import ledger, in one statement. */
export async function recordImportedCredentials(tx: Executor, entries: ImportedCredentialEntry[], assigneeId: string): Promise<void> {
  if (entries.length === 0) return;
  const json = JSON.stringify(entries.map((e) => ({ legacy_id: e.legacyId, provider_id: e.providerId, warren_id: e.warrenId ?? null, lookup: e.warrenId === undefined })));
  await tx.execute(
    sql`insert into legacy_import_ledger (entity, legacy_id, warren_id)
        select ${LEGACY_CREDENTIALS_TABLE}, x.legacy_id, case when x.lookup then c.id else x.warren_id end
        from json_to_recordset(${json}::json) as x(legacy_id text, provider_id text, warren_id text, lookup boolean)
        left join ${providerCredentials} c on c.user_id = ${assigneeId} and c.provider_id = x.provider_id
        on conflict do nothing`,
  );
}
