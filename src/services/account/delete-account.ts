import { and, eq, or, sql } from "drizzle-orm";
import { account, activityLog, sandboxes, user, verification, workloadCleanups } from "../../../db/schema";
import type { ServiceContext } from "../../context";
import { AppError, notFound } from "../../errors";
import { newId } from "../../lib/ids";
import { withoutPersonalKeys } from "../activity/anonymise";
import { recordActivity } from "../activity/record";

export const DELETE_CONFIRMATION = "DELETE MY ACCOUNT";

export type DeleteAccountInput = {
  /** The session making the request: fresh enough, or the password must be given. */
  session: { createdAt: Date };
  password?: string | undefined;
  freshSessionMs: number;
  /** Better Auth's password check (scrypt by default), against the stored hash. */
  verifyPassword: (data: { hash: string; password: string }) => Promise<boolean>;
};

export type DeletedAccount = { userId: string; sandboxIds: string[] };

/**
 * Proves the caller is the person, not just someone holding a session: a session signed in within
 * the last few minutes, or the account password entered again.
 */
async function assertReauthenticated(ctx: ServiceContext, input: DeleteAccountInput): Promise<void> {
  if (input.password === undefined) {
    const age = ctx.now().getTime() - input.session.createdAt.getTime();
    if (age <= input.freshSessionMs) return;
    throw new AppError(
      "PRECONDITION_FAILED",
      `Deleting the account needs a session signed in within the last ${Math.round(input.freshSessionMs / 60_000)} minutes, or the password in the body field "password"`,
      { fields: [{ location: "body", field: "password", message: "is required with a session this old", code: "reauthentication_required" }] },
    );
  }
  const [credential] = await ctx.db
    .select({ hash: account.password })
    .from(account)
    .where(and(eq(account.userId, ctx.userId), eq(account.providerId, "credential")));
  // An account that signs in only through GitHub has no password to check: it re-authenticates
  // by signing in again (a fresh session).
  const ok = credential?.hash ? await input.verifyPassword({ hash: credential.hash, password: input.password }) : false;
  if (!ok) {
    throw new AppError(
      "VALIDATION_FAILED",
      credential?.hash ? 'Invalid body field "password": is not the account\'s password' : 'Invalid body field "password": this account has no password; sign in again instead',
      { fields: [{ location: "body", field: "password", message: "is not the account's password", code: "invalid_password" }] },
    );
  }
}

/**
 * Deletes the caller's account. Every database change is one transaction:
 * - each sandbox gets a workload_cleanups row (no foreign key: it outlives the user), so the
 *   orchestrator removes its workload after the commit and a job retries until it is gone;
 * - the deletion itself is recorded, then all the user's activity is anonymised and kept for the
 *   operator's statistics (no user id, IP, user agent, request id or personal metadata keys);
 * - Better Auth verification rows naming the user or the email go;
 * - deleting the user cascades to everything owned: sessions, sign-in accounts, credentials and
 *   device flows, custom providers, sandboxes, chats and messages, preferences, agent
 *   configuration, idempotency keys.
 * Afterwards the old session no longer resolves and the email can sign up anew.
 */
export async function deleteAccount(ctx: ServiceContext, input: DeleteAccountInput): Promise<DeletedAccount> {
  await assertReauthenticated(ctx, input);
  return ctx.db.transaction(async (tx) => {
    const [me] = await tx.select({ id: user.id, email: user.email }).from(user).where(eq(user.id, ctx.userId)).for("update");
    if (!me) throw notFound("User");
    const owned = await tx
      .select({ id: sandboxes.id, driver: sandboxes.driver, workloadId: sandboxes.workloadId })
      .from(sandboxes)
      .where(eq(sandboxes.userId, ctx.userId))
      .for("update");
    if (owned.length > 0) {
      await tx
        .insert(workloadCleanups)
        .values(
          owned.map((s) => ({
            id: newId("workloadCleanup"),
            sandboxId: s.id,
            // A sandbox that never started has no driver yet; the configured one is asked anyway.
            driver: s.driver ?? "default",
            workloadId: s.workloadId,
            runAfter: ctx.now(),
          })),
        )
        .onConflictDoNothing({ target: workloadCleanups.sandboxId });
    }
    await recordActivity(tx, ctx, {
      action: "account.delete",
      entityType: "user",
      entityId: ctx.userId,
      metadata: { sandboxes: owned.length },
    });
    await tx
      .update(activityLog)
      .set({
        userId: null,
        ipAddress: null,
        userAgent: null,
        requestId: null,
        anonymized: true,
        entityId: sql`case when ${activityLog.entityType} = 'user' or ${activityLog.entityId} = ${ctx.userId} then null else ${activityLog.entityId} end`,
        metadata: withoutPersonalKeys(activityLog.metadata),
      })
      .where(eq(activityLog.userId, ctx.userId));
    await tx.delete(verification).where(or(eq(verification.value, ctx.userId), eq(verification.identifier, me.email)));
    await tx.delete(user).where(eq(user.id, ctx.userId));
    return { userId: ctx.userId, sandboxIds: owned.map((s) => s.id) };
  });
}
