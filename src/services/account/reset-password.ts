import { and, eq } from "drizzle-orm";
import { account, session, user } from "../../../db/schema";
import { systemContext } from "../../context";
import type { Db } from "../../database/client";
import { notFound } from "../../errors";
import { newId } from "../../lib/ids";
import type { Logger } from "../../lib/logger";
import { recordActivity } from "../activity/record";

export type PasswordResetResult = {
  userId: string;
  email: string;
  /** The account had no password (GitHub sign-in only): one was added. */
  passwordAdded: boolean;
  sessionsSignedOut: number;
};

/**
 * An operator sets a user's password: Warren sends no email, so a user who forgot theirs has
 * no other way back (as `coder reset-password`). In one transaction: the credential account's
 * hash is replaced (or one is added for a GitHub-only user), every session of the user is
 * deleted (running instances drop them from their session caches at commit, by the sessions
 * table's NOTIFY trigger), and the user's activity log says so, as the system's doing.
 */
export async function resetPassword(
  deps: { db: Db; logger: Logger; now: () => Date },
  input: { email: string; passwordHash: string },
): Promise<PasswordResetResult> {
  return deps.db.transaction(async (tx) => {
    const [found] = await tx
      .select({ id: user.id, email: user.email })
      .from(user)
      .where(eq(user.email, input.email.trim().toLowerCase()))
      .for("update");
    if (!found) throw notFound("User with email", input.email);
    const now = deps.now();
    const updated = await tx
      .update(account)
      .set({ password: input.passwordHash, updatedAt: now })
      .where(and(eq(account.userId, found.id), eq(account.providerId, "credential")))
      .returning({ id: account.id });
    if (updated.length === 0) {
      await tx.insert(account).values({
        id: newId("account"),
        accountId: found.id,
        providerId: "credential",
        userId: found.id,
        password: input.passwordHash,
        createdAt: now,
        updatedAt: now,
      });
    }
    const signedOut = await tx.delete(session).where(eq(session.userId, found.id)).returning({ id: session.id });
    const result = { userId: found.id, email: found.email, passwordAdded: updated.length === 0, sessionsSignedOut: signedOut.length };
    await recordActivity(tx, systemContext(deps, found.id), {
      action: "auth.password_reset",
      entityType: "user",
      entityId: found.id,
      // (A key naming the password would be redacted as a secret by recordActivity.)
      metadata: { via: "cli", change: result.passwordAdded ? "added" : "replaced", sessionsSignedOut: result.sessionsSignedOut },
    });
    return result;
  });
}
