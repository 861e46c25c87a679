import type { Auth, AuthSession } from "./auth/auth";
import type { Db } from "./database/client";
import type { Logger } from "./lib/logger";
import type { ProxySlot } from "./middleware/proxy-slots";
import type { PageCache } from "./lib/page-cache";
import type { Vault } from "./services/credentials/vault";

/**
 * What a service verb is given: who acts, on which database, on behalf of which request.
 * Services filter every user-owned query by `userId`; background jobs pass actor "system".
 */
export type ServiceContext = {
  db: Db;
  actor: "user" | "system";
  userId: string;
  requestId: string | null;
  ipAddress: string | null;
  userAgent: string | null;
  logger: Logger;
  now: () => Date;
};

/** The context of work Warren does on its own (jobs, the sandbox worker) for one user. */
export function systemContext(deps: Pick<ServiceContext, "db" | "logger" | "now">, userId: string, requestId: string | null = null): ServiceContext {
  return { db: deps.db, actor: "system", userId, requestId, ipAddress: null, userAgent: null, logger: deps.logger, now: deps.now };
}

export type AppEnv = {
  Variables: {
    requestId: string;
    logger: Logger;
    /** The client address Warren trusts (configured proxy header, else the socket peer). */
    clientIp: string | undefined;
    user: AuthSession["user"];
    session: AuthSession["session"];
    scope: ServiceContext;
    auth: Auth;
    /** The caller's credential vault (src/middleware/vault.ts): the only way to credentials. */
    vault: Vault;
    /** Rendered list pages (src/lib/page-cache.ts). */
    pages: PageCache;
    /** Set on a proxied request (src/middleware/proxy-slots.ts): a WebSocket bridge keeps it. */
    proxySlot: ProxySlot;
  };
};
