import { sql } from "drizzle-orm";
import { systemContext } from "../context";
import { DecryptionError } from "../crypto/envelope";
import type { Keyring } from "../crypto/keyring";
import { queryRows, type Db, type Executor } from "../database/client";
import type { Logger } from "../lib/logger";
import {
  credentialsImportedEarlier,
  importCredential,
  LEGACY_CREDENTIALS_TABLE,
  legacyCredential,
  recordImportedCredentials,
  type ImportedCredentialEntry,
  type LegacyCredential,
} from "../services/credentials/import";
import { optionalTime, toJson, type Notes } from "./convert";
import { emptyTableReport, skip, type TableReport } from "./report";
import type { LegacySource } from "./source";
import { ImportFailure, notesFor } from "./writer";

/** A refusal before anything is written (bad usage): the CLI exits 2. */
export class ImportUsageError extends Error {
  override name = "ImportUsageError";
}

export type CredentialPlan = {
  report: TableReport | null;
  /** Decrypted, in memory only until they are sealed by the vault. */
  credentials: LegacyCredential[];
  oauthState: TableReport | null;
};

/**
 * Reads and decrypts the global credentials before the transaction opens, so that a missing or
 * wrong legacy key, or a missing --assign-credentials-to, stops the import before it writes
 * anything. Refuses to guess an owner: credentials with secrets need a named user.
 */
export function planCredentials(source: LegacySource, opts: { legacyKey: string | null; assignTo: string | null; legacyKeyEnv?: string }): CredentialPlan {
  const plan: CredentialPlan = { report: null, credentials: [], oauthState: null };
  if (source.has(LEGACY_CREDENTIALS_TABLE)) {
    const report = emptyTableReport(LEGACY_CREDENTIALS_TABLE, "provider credentials (vault)", source.count(LEGACY_CREDENTIALS_TABLE));
    const rows = [...source.rows(LEGACY_CREDENTIALS_TABLE)];
    const withSecret = rows.filter((r) => [r.api_key_encrypted, r.access_token_encrypted, r.refresh_token_encrypted].some((v) => typeof v === "string" && v !== ""));
    if (withSecret.length > 0 && !opts.assignTo) {
      throw new ImportUsageError(
        `the file holds ${withSecret.length} provider credential(s), which the legacy system shared by every user; ` +
          "name the Warren user who gets them with --assign-credentials-to EMAIL (the importer will not guess)",
      );
    }
    if (withSecret.length > 0 && !opts.legacyKey) {
      const name = opts.legacyKeyEnv ?? "LEGACY_ENCRYPTION_KEY";
      throw new ImportUsageError(
        `the file holds encrypted provider credentials, but ${name} is not set: put the legacy system's ENCRYPTION_KEY in ${name}` +
          (opts.legacyKeyEnv ? "" : " (or name another variable with --legacy-encryption-key-env)"),
      );
    }
    for (const row of rows) {
      const id = String(row.id);
      const notes: Notes = notesFor(report, id);
      const scopesValue = toJson(row.oauth_scopes, "oauth_scopes", notes, null, { keep: false });
      const scopes = Array.isArray(scopesValue) ? scopesValue.filter((s): s is string => typeof s === "string") : null;
      const expires = optionalTime(row.token_expires_at, "token_expires_at", notes);
      let credential: LegacyCredential;
      try {
        credential = legacyCredential(row, opts.legacyKey, scopes, expires ? new Date(expires) : null);
      } catch (err) {
        if (!(err instanceof DecryptionError)) throw err;
        throw new ImportFailure(
          LEGACY_CREDENTIALS_TABLE,
          id,
          `the value does not decrypt with the legacy key in ${opts.legacyKeyEnv ?? "LEGACY_ENCRYPTION_KEY"} (is it the legacy system's ENCRYPTION_KEY?)`,
        );
      }
      if (credential.secret === null) {
        skip(report, id, "no_secret");
        continue;
      }
      plan.credentials.push(credential);
    }
    plan.report = report;
  }
  if (source.has("oauth_state")) {
    // Device flows in progress are transient (minutes long) and have no owner: never imported.
    const report = emptyTableReport("oauth_state", "(transient, not kept)", source.count("oauth_state"));
    for (const row of source.rows("oauth_state")) skip(report, String(row.id), row.status === "pending" ? "pending_oauth_flow" : "transient_oauth_state");
    report.verified = true;
    plan.oauthState = report;
  }
  return plan;
}

/** Checks before the transaction that the named user exists in the file or in Warren. */
export async function assigneeKnown(db: Db, source: LegacySource, email: string): Promise<boolean> {
  const lower = email.toLowerCase();
  if (source.has("user")) {
    for (const row of source.rows("user")) if (typeof row.email === "string" && row.email.toLowerCase() === lower) return true;
  }
  const rows = await queryRows(db, sql`select id from users where email = ${lower}`);
  return rows.length > 0;
}

export async function writeCredentials(
  tx: Executor,
  plan: CredentialPlan,
  deps: { assignTo: string | null; keyring: Keyring; logger: Logger; now: () => Date; db: Db },
): Promise<{ userId: string | null }> {
  const report = plan.report;
  if (!report) return { userId: null };
  const started = performance.now();
  let userId: string | null = null;
  if (plan.credentials.length > 0) {
    const email = deps.assignTo!.toLowerCase();
    const [user] = await queryRows<{ id: string }>(tx, sql`select id from users where email = ${email}`);
    if (!user) throw new ImportFailure(LEGACY_CREDENTIALS_TABLE, null, `no Warren user has the email ${email} (named by --assign-credentials-to)`);
    userId = user.id;
    const ctx = systemContext({ db: deps.db, logger: deps.logger, now: deps.now }, user.id);
    const earlier = await credentialsImportedEarlier(tx, plan.credentials, user.id);
    const record: ImportedCredentialEntry[] = [];
    for (const credential of plan.credentials) {
      const before = earlier.get(credential.legacyId);
      if (before) {
        // Brought over by an earlier run: never again. Gone from Warren means the user deleted it
        // (a leaked key removed must not come back with the next snapshot of the legacy file).
        if (before.warrenId !== null) report.alreadyPresent++;
        else report.deletedInWarren++;
        if (!before.ledgered) record.push({ legacyId: credential.legacyId, providerId: credential.providerId, warrenId: before.warrenId });
        continue;
      }
      const outcome = await importCredential(tx, ctx, deps.keyring, { ...credential, secret: credential.secret! });
      if (outcome === "imported") report.imported++;
      else if (outcome === "already_present") report.alreadyPresent++;
      else skip(report, credential.legacyId, "unknown_provider");
      if (outcome !== "unknown_provider") record.push({ legacyId: credential.legacyId, providerId: credential.providerId });
    }
    await recordImportedCredentials(tx, record, user.id);
  }
  report.verified = true;
  report.durationMs = Math.round(performance.now() - started);
  return { userId };
}

