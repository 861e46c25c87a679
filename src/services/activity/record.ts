import { activityLog } from "../../../db/schema";
import type { ServiceContext } from "../../context";
import type { Executor } from "../../database/client";
import { newId } from "../../lib/ids";

/**
 * The closed list of activity actions, named entity.verb. A verb records its entry with
 * recordActivity inside the same transaction as its change: a failed write records nothing and
 * a recorded change happened.
 */
export const ACTIVITY_ACTIONS = [
  "auth.sign_up",
  "auth.sign_in",
  "auth.sign_out",
  "auth.password_change",
  "auth.account_link",
  "auth.account_unlink",
  // An operator set the password (bun run user:reset-password): every session signed out.
  "auth.password_reset",
  "account.update",
  "account.export",
  "account.delete",
  "activity.export",
  "session.revoke",
  "sandbox.create",
  "sandbox.update",
  "sandbox.start",
  "sandbox.stop",
  "sandbox.restart",
  "sandbox.delete",
  "sandbox.running",
  "sandbox.stopped",
  "sandbox.failed",
  "sandbox.deleted",
  "sandbox.reconciled",
  "sandbox.orphan_stopped",
  "preferences.update",
  "preferences.reset",
  "agent_config.update",
  "agent_file.put",
  "agent_file.delete",
  "provider.create",
  "credential.set",
  "credential.delete",
  "credential.use",
  "credential.rotate",
  "default_model.set",
  "device_flow.start",
  "device_flow.complete",
  "device_flow.fail",
  "device_flow.cancel",
  // The legacy importer (src/import) handing a global legacy credential to the named user.
  "credential.import",
  "onboarding.requirements",
  "onboarding.recommend",
  "onboarding.generate",
  "onboarding.apply",
  "onboarding.skip",
  "onboarding.fail",
  "chat_session.archive",
  "chat_session.purge",
  "chat_session.sync",
] as const;
export type ActivityAction = (typeof ACTIVITY_ACTIONS)[number];

// Keys whose values are never stored, whatever a caller passes in metadata.
export const SECRET_KEY = /pass(word)?|secret|token|api[-_]?key|authorization|cookie|credential|private/i;

export function stripSecrets(value: unknown, depth = 0): unknown {
  if (depth > 5 || value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) return value.map((v) => stripSecrets(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] = SECRET_KEY.test(k) ? "[redacted]" : stripSecrets(v, depth + 1);
  }
  return out;
}

export type ActivityEntry = {
  action: ActivityAction;
  entityType?: string;
  entityId?: string;
  reason?: string;
  metadata?: Record<string, unknown>;
};

export async function recordActivity(tx: Executor, ctx: ServiceContext, entry: ActivityEntry): Promise<void> {
  await tx.insert(activityLog).values({
    id: newId("activity"),
    userId: ctx.userId,
    actorType: ctx.actor,
    action: entry.action,
    entityType: entry.entityType ?? null,
    entityId: entry.entityId ?? null,
    reason: entry.reason ?? null,
    requestId: ctx.requestId,
    ipAddress: ctx.ipAddress,
    userAgent: ctx.userAgent,
    metadata: (stripSecrets(entry.metadata ?? {}) as Record<string, unknown>) ?? {},
    createdAt: ctx.now(),
  });
}
