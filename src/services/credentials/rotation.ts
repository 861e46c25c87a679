import { and, asc, eq, gt, isNotNull, ne, sql } from "drizzle-orm";
import type { PgColumn } from "drizzle-orm/pg-core";
import { oauthDeviceFlows, providerCredentials, sandboxes } from "../../../db/schema";
import { decryptValue, encryptValue, type Binding } from "../../crypto/envelope";
import type { Keyring } from "../../crypto/keyring";
import type { Db } from "../../database/client";
import type { Logger } from "../../lib/logger";
import { recordActivity } from "../activity/record";

/**
 * Key rotation: re-encrypts every stored value that is not on the active key, in batches that
 * each commit on their own, so an interrupted run resumes where it stopped (the rows left are
 * exactly those still on an old key_id). Each update is a compare-and-swap on the old
 * ciphertext: a value written meanwhile by the API (already on the active key) is never
 * overwritten with a stale one.
 */
export type RotationProgress = { table: string; done: number; total: number };
export type RotationReport = { rotated: number; skipped: number; failed: number; remaining: number };

type Table = {
  name: string;
  table: typeof providerCredentials | typeof oauthDeviceFlows;
  /** The one secret column: its property name and column (also the compare-and-swap key). */
  field: "secret" | "deviceCode";
  column: PgColumn;
  purpose: string;
};

const TABLES: Table[] = [
  { name: "provider_credentials", table: providerCredentials, field: "secret", column: providerCredentials.secret, purpose: "credential.secret" },
  { name: "oauth_device_flows", table: oauthDeviceFlows, field: "deviceCode", column: oauthDeviceFlows.deviceCode, purpose: "device_flow.code" },
];

/** How many stored values use each key id (for --check and for the progress total). */
export async function keyUsage(db: Db): Promise<Record<string, number>> {
  const usage: Record<string, number> = {};
  for (const t of TABLES) {
    const rows = await db.select({ keyId: t.table.keyId, n: sql<number>`count(*)::int` }).from(t.table).groupBy(t.table.keyId);
    for (const r of rows) usage[r.keyId] = (usage[r.keyId] ?? 0) + Number(r.n);
  }
  // Running sandboxes' agent passwords are sealed with the key active when they started. They
  // are not re-encrypted (each start seals a fresh one), but they keep that key in use until the
  // sandbox stops or restarts, so --check must count them.
  const agents = await db
    .select({ keyId: sql<string>`split_part(${sandboxes.agentSecret}, '.', 2)`, n: sql<number>`count(*)::int` })
    .from(sandboxes)
    .where(isNotNull(sandboxes.agentSecret))
    .groupBy(sql`1`);
  for (const r of agents) usage[r.keyId] = (usage[r.keyId] ?? 0) + Number(r.n);
  return usage;
}

export async function rotateKeys(deps: {
  db: Db;
  keyring: Keyring;
  logger: Logger;
  batchSize?: number;
  onProgress?: (p: RotationProgress) => void;
}): Promise<RotationReport> {
  const { db, keyring } = deps;
  const active = keyring.activeKeyId;
  const batchSize = deps.batchSize ?? 100;
  const report: RotationReport = { rotated: 0, skipped: 0, failed: 0, remaining: 0 };
  for (const t of TABLES) {
    const stale = ne(t.table.keyId, active);
    const [{ total } = { total: 0 }] = await db.select({ total: sql<number>`count(*)::int` }).from(t.table).where(stale);
    let done = 0;
    let after = "";
    deps.onProgress?.({ table: t.name, done, total: Number(total) });
    for (;;) {
      // Keyset over ids: rows that fail to decrypt stay behind without being retried forever.
      const batch = await db.select().from(t.table).where(and(stale, gt(t.table.id, after))).orderBy(asc(t.table.id)).limit(batchSize);
      if (batch.length === 0) break;
      await db.transaction(async (tx) => {
        for (const row of batch) {
          const old = (row as Record<string, unknown>)[t.field] as string;
          const binding: Binding = { purpose: t.purpose, userId: row.userId, providerId: row.providerId, rowId: row.id };
          let fresh: string;
          try {
            fresh = encryptValue(keyring, decryptValue(keyring, old, binding), binding);
          } catch {
            report.failed++;
            deps.logger.error({ table: t.name, id: row.id, keyId: row.keyId }, "value failed authentication; left on its old key");
            continue;
          }
          const swapped = await tx
            .update(t.table)
            // Same value, new key: updatedAt (what the user last changed) is kept as it was.
            .set({ [t.field]: fresh, keyId: active, updatedAt: sql`${t.table.updatedAt}` })
            .where(and(eq(t.table.id, row.id), eq(t.column, old)))
            .returning({ id: t.table.id });
          if (swapped.length === 0) {
            report.skipped++; // rewritten or deleted meanwhile: the new value is on the active key already
            continue;
          }
          report.rotated++;
          await recordActivity(
            tx,
            { db, actor: "system", userId: row.userId, requestId: null, ipAddress: null, userAgent: null, logger: deps.logger, now: () => new Date() },
            { action: "credential.rotate", entityType: t.name === "provider_credentials" ? "provider" : "device_flow", entityId: t.name === "provider_credentials" ? row.providerId : row.id, metadata: { fromKeyId: row.keyId, toKeyId: active } },
          );
        }
      });
      done += batch.length;
      after = batch[batch.length - 1]!.id;
      deps.onProgress?.({ table: t.name, done, total: Math.max(Number(total), done) });
    }
  }
  const usage = await keyUsage(db);
  report.remaining = Object.entries(usage).reduce((n, [k, v]) => (k === active ? n : n + v), 0);
  return report;
}
