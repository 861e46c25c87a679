import { betterAuth } from "better-auth";
import { drizzleAdapter } from "better-auth/adapters/drizzle";
import { bearer } from "better-auth/plugins";
import { account, rateLimit, session, user, verification } from "../../db/schema";
import type { Config } from "../config";
import type { Db } from "../database/client";
import { ID_PREFIXES, newId, type IdKind } from "../lib/ids";
import type { Logger } from "../lib/logger";
import { authActivityHooks } from "../services/activity/auth-events";
import { profileOnCreate } from "./profile-rules";

/**
 * The header through which Warren tells Better Auth the client's address. Any incoming value is
 * discarded at the edge (src/middleware/client-ip.ts) and replaced by the address Warren trusts:
 * the configured proxy header, else the socket's peer. Better Auth's default, X-Forwarded-For,
 * is set by clients at will and would let anyone dodge the sign-in rate limit.
 */
export const CLIENT_IP_HEADER = "x-warren-client-ip";

/** Password lengths Better Auth accepts, and the operator's reset (src/cli/reset-password.ts). */
export const PASSWORD_LENGTH = { min: 8, max: 256 };

export type AuthOptions = {
  config: Config;
  db: Db;
  logger: Logger;
};

export function createAuth({ config, db, logger }: AuthOptions) {
  const log = logger.child({ component: "better-auth" });
  const activity = authActivityHooks({ db, logger, clientIpHeader: CLIENT_IP_HEADER });
  return betterAuth({
    appName: "Warren",
    // Always explicit: behind a TLS proxy the listen address is not what browsers and GitHub see.
    baseURL: config.publicUrl,
    basePath: "/api/auth",
    secret: config.authSecret,
    database: drizzleAdapter(db, {
      provider: "pg",
      schema: { user, session, account, verification, rateLimit },
    }),
    trustedOrigins: config.trustedOrigins,
    emailAndPassword: {
      enabled: true,
      minPasswordLength: PASSWORD_LENGTH.min,
      maxPasswordLength: PASSWORD_LENGTH.max,
      autoSignIn: true,
    },
    socialProviders: config.github
      ? { github: { clientId: config.github.clientId, clientSecret: config.github.clientSecret } }
      : {},
    account: {
      // Linked accounts' OAuth tokens are encrypted at rest; a database dump shows no token.
      encryptOAuthTokens: true,
      // GitHub verifies emails, so a GitHub sign-in may link to the account with that email.
      accountLinking: { enabled: true, trustedProviders: ["github"] },
    },
    session: {
      expiresIn: 60 * 60 * 24 * 30,
      updateAge: 60 * 60 * 24,
    },
    rateLimit: {
      enabled: true,
      storage: "database",
      window: config.authRateLimit.windowSeconds,
      max: config.authRateLimit.max,
      // Credential guessing is what the limit is for: sign-in, sign-up, password changes and
      // /verify-password (a yes/no on the password, for whoever holds a session) get a lower
      // ceiling than the rest of /api/auth.
      customRules: Object.fromEntries(
        ["/sign-in/*", "/sign-up/*", "/change-password", "/change-email", "/verify-password"].map((path) => [
          path,
          { window: config.authRateLimit.windowSeconds, max: config.authRateLimit.signInMax },
        ]),
      ),
    },
    advanced: {
      // Better Auth turns its origin check off when NODE_ENV=test; Warren's tests must see what
      // production does, so both checks are pinned on.
      disableOriginCheck: false,
      disableCSRFCheck: false,
      ipAddress: { ipAddressHeaders: [CLIENT_IP_HEADER] },
      useSecureCookies: config.publicUrl.startsWith("https://"),
      // A frontend on another site only gets its cookies back with SameSite=None, which browsers
      // accept only together with Secure (config refuses "none" where Secure cannot work).
      ...(config.cookieSameSite === "none" ? { defaultCookieAttributes: { sameSite: "none", secure: true } } : {}),
      database: {
        generateId: ({ model }) => newId(model in ID_PREFIXES ? (model as IdKind) : "request"),
      },
    },
    // auth.sign_up / auth.sign_in / auth.sign_out in the activity log, after Better Auth commits;
    // a new account's name and avatar under PATCH /api/v1/me's rules (profile-rules.ts).
    databaseHooks: {
      ...activity,
      user: { create: { ...activity.user.create, before: profileOnCreate() } },
    },
    plugins: [bearer()],
    // Switched off:
    // - /get-access-token and /refresh-token hand a linked account's decrypted OAuth tokens to
    //   whoever holds the session, and secrets never leave Warren in a response;
    // - /list-sessions answers the token of every session of the user: one stolen session would
    //   give the others' bearer tokens (GET /api/v1/me/sessions lists devices without them);
    // - /update-user changed the profile unchecked (an object stored as "[object Object]", a
    //   500,000-character name) and unlogged: PATCH /api/v1/me validates and records it.
    disabledPaths: ["/get-access-token", "/refresh-token", "/list-sessions", "/update-user"],
    // Unexpected errors (a database that went away) are thrown to Warren's error handler, which
    // answers in the envelope (503 or 500); Better Auth's own 4xx answers pass through as is.
    onAPIError: { throw: true },
    logger: {
      level: config.logLevel === "debug" || config.logLevel === "trace" ? "debug" : "warn",
      log: (level, message, ...args) => {
        log[level]({ args: args.length ? args.map(String) : undefined }, message);
      },
    },
    telemetry: { enabled: false },
  });
}

export type Auth = ReturnType<typeof createAuth>;
export type AuthSession = NonNullable<Awaited<ReturnType<Auth["api"]["getSession"]>>>;
