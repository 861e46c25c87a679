import { and, asc, eq, sql } from "drizzle-orm";
import { account, chatMessages, chatSessions, sandboxes, user } from "../../../db/schema";
import type { ServiceContext } from "../../context";
import type { Executor } from "../../database/client";
import { notFound } from "../../errors";
import type { Vault } from "../credentials/vault";
import { toProfile, type Profile } from "./profile";

/** A way the user signs in: email and password ("credential") or a linked provider. */
export type SignInMethod = {
  providerId: string;
  /** The provider's id for the user (GitHub's numeric id); for "credential", the user id. */
  accountId: string;
  scopes: string[];
  linkedAt: string;
};

export type AccountOverview = {
  user: Profile;
  signInMethods: SignInMethod[];
  counts: { sandboxes: number; chatSessions: number; chatMessages: number; credentials: number };
};

/** The caller's linked sign-in methods; never a password hash or an OAuth token. */
export async function signInMethods(db: Executor, userId: string): Promise<SignInMethod[]> {
  const rows = await db
    .select({ providerId: account.providerId, accountId: account.accountId, scope: account.scope, createdAt: account.createdAt })
    .from(account)
    .where(eq(account.userId, userId))
    .orderBy(asc(account.createdAt), asc(account.id));
  return rows.map((r) => ({
    providerId: r.providerId,
    accountId: r.accountId,
    scopes: r.scope ? r.scope.split(/[ ,]+/).filter(Boolean) : [],
    linkedAt: r.createdAt.toISOString(),
  }));
}

/**
 * The account page in three queries whatever the account's size: the user with its row counts
 * (scalar subqueries on the user_id indexes), its sign-in methods, and its credentials through
 * the vault (the only code allowed to read them).
 */
export async function getAccountOverview(ctx: ServiceContext, vault: Pick<Vault, "configuredProviderIds">): Promise<AccountOverview> {
  // Bound to the caller's id, not correlated to users.id: Drizzle renders columns unqualified
  // inside a raw subquery, where "id" would mean the counted table's own id.
  const count = (table: typeof sandboxes | typeof chatSessions | typeof chatMessages) =>
    sql<number>`(select count(*)::int from ${table} where ${table.userId} = ${ctx.userId})`;
  const [[row], methods, credentials] = await Promise.all([
    ctx.db
      .select({
        user,
        sandboxes: count(sandboxes),
        chatSessions: count(chatSessions),
        chatMessages: count(chatMessages),
      })
      .from(user)
      .where(and(eq(user.id, ctx.userId))),
    signInMethods(ctx.db, ctx.userId),
    vault.configuredProviderIds(),
  ]);
  if (!row) throw notFound("User");
  return {
    user: toProfile(row.user),
    signInMethods: methods,
    counts: {
      sandboxes: Number(row.sandboxes),
      chatSessions: Number(row.chatSessions),
      chatMessages: Number(row.chatMessages),
      credentials: credentials.size,
    },
  };
}
