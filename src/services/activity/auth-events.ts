import type { Db } from "../../database/client";
import type { Logger } from "../../lib/logger";
import { recordActivity, type ActivityAction } from "./record";

/**
 * auth.sign_up / auth.sign_in / auth.sign_out / auth.password_change / auth.account_link /
 * auth.account_unlink from Better Auth's database hooks.
 *
 * Better Auth runs its "after" hooks once its own writes have committed (runWithTransaction
 * queues them), so an entry is only ever written for a sign-up, sign-in or sign-out that really
 * happened. It cannot be the same transaction: Better Auth's writes are not ours to join (and
 * on PGlite, its single connection would deadlock against a second writer). A failed entry is
 * logged, never turned into a failed sign-in.
 *
 * The client address comes from CLIENT_IP_HEADER, which src/app.ts overwrites with the address
 * Warren trusts (configured proxy header, else the socket peer) before Better Auth sees the
 * request; the request id comes the same way (REQUEST_ID_HEADER).
 */

/** The header through which src/app.ts hands Warren's request id to Better Auth's handler. */
export const REQUEST_ID_HEADER = "x-warren-request-id";

/** Better Auth's endpoint context, as its database hooks get it (the session is set on signed-in routes). */
export type HookContext = { path?: string; headers?: Headers; request?: Request; context?: { session?: { user?: { id?: string } } | null } } | null;

export type AuthActivityDeps = {
  db: Db;
  logger: Logger;
  /** The header Better Auth reads the trusted client address from. */
  clientIpHeader: string;
  now?: () => Date;
};

// Requests that created a user: their session is the sign-up, not a separate sign-in.
const signUps = new WeakSet<object>();

export function authActivityHooks(deps: AuthActivityDeps) {
  const now = deps.now ?? (() => new Date());

  async function record(
    userId: string,
    context: HookContext,
    action: ActivityAction,
    entity: { type: string; id: string },
    metadata: Record<string, unknown>,
  ) {
    const headers = context?.headers ?? context?.request?.headers;
    try {
      await deps.db.transaction(async (tx) => {
        await recordActivity(
          tx,
          {
            db: deps.db,
            actor: "user",
            userId,
            requestId: headers?.get(REQUEST_ID_HEADER) ?? null,
            ipAddress: headers?.get(deps.clientIpHeader) ?? null,
            userAgent: headers?.get("user-agent")?.slice(0, 512) ?? null,
            logger: deps.logger,
            now,
          },
          { action, entityType: entity.type, entityId: entity.id, metadata },
        );
      });
    } catch (err) {
      deps.logger.error({ err: { message: (err as Error).message }, action, userId }, "could not record an auth activity entry");
    }
  }

  /** How the user authenticated, from Better Auth's route: "email", "github", … */
  const method = (context: HookContext): string | undefined => {
    const path = context?.path ?? "";
    const m = /^\/(?:sign-in|sign-up)\/([^/]+)|^\/callback\/([^/]+)/.exec(path);
    return m ? (m[1] ?? m[2]) : path || undefined;
  };

  return {
    user: {
      create: {
        after: async (user: { id: string }, context: HookContext) => {
          if (context) signUps.add(context);
          await record(user.id, context, "auth.sign_up", { type: "user", id: user.id }, { method: method(context) });
        },
      },
    },
    account: {
      // A sign-in method added to an existing user (GitHub linked from the settings, or by a
      // sign-in with GitHub whose verified email is the user's) or taken away. The account a
      // sign-up creates with its user is part of auth.sign_up.
      create: {
        after: async (account: { id: string; userId: string; providerId: string }, context: HookContext) => {
          if (context && signUps.has(context)) return;
          await record(account.userId, context, "auth.account_link", { type: "account", id: account.id }, { provider: account.providerId });
        },
      },
      delete: {
        after: async (account: { id: string; userId: string; providerId: string } | null, context: HookContext) => {
          if (!account || context?.path !== "/unlink-account") return;
          await record(account.userId, context, "auth.account_unlink", { type: "account", id: account.id }, { provider: account.providerId });
        },
      },
      update: {
        // A password change rewrites the credential account (updateMany: the hook gets a count,
        // and the caller's session from the endpoint). Nothing about the password is recorded.
        after: async (_updated: unknown, context: HookContext) => {
          const userId = context?.context?.session?.user?.id;
          if (context?.path !== "/change-password" || !userId) return;
          await record(userId, context, "auth.password_change", { type: "user", id: userId }, {});
        },
      },
    },
    session: {
      create: {
        after: async (session: { id: string; userId: string }, context: HookContext) => {
          if (context && signUps.has(context)) return;
          await record(session.userId, context, "auth.sign_in", { type: "session", id: session.id }, { method: method(context) });
        },
      },
      delete: {
        after: async (session: { id: string; userId: string }, context: HookContext) => {
          // Sign-out is the user ending this session; anything else (Better Auth's own
          // revoke endpoints) is a revocation.
          const signOut = context?.path === "/sign-out";
          await record(
            session.userId,
            context,
            signOut ? "auth.sign_out" : "session.revoke",
            { type: "session", id: session.id },
            signOut ? {} : { via: context?.path ?? "auth" },
          );
        },
      },
    },
  };
}
