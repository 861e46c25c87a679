import { createHmac, timingSafeEqual } from "node:crypto";
import { eq, sql } from "drizzle-orm";
import { session as sessionTable, user as userTable } from "../../db/schema";
import type { Database } from "../database/client";
import { invalidationFeed } from "../database/invalidations";
import type { Logger } from "../lib/logger";
import type { Auth, AuthSession } from "./auth";

/**
 * Session resolution for every /api/v1 request, without Better Auth's per-request cost.
 *
 * Better Auth's `getSession` runs its whole endpoint pipeline (hooks, cookie parsing, an
 * unprepared adapter query) for each request: about 0.9k req/s on this box, a fraction of what
 * the routes themselves can do. This resolver does the same checks directly:
 *
 * 1. The credential: a bearer token (what Better Auth's bearer plugin accepts: the signed
 *    `token.signature`, or the bare token, which it signs itself) wins over the session cookie,
 *    exactly as the plugin makes it; the HMAC-SHA256 signature is checked with the auth secret.
 * 2. A short-lived in-memory cache of verified sessions (token → user and session). Entries are
 *    dropped the moment their session or user changes anywhere: triggers on `sessions` and
 *    `users` NOTIFY every instance at commit (migration 0005), so sign-out, revocation, account
 *    deletion and profile changes take effect at once on every instance. The cache is trusted
 *    only while the LISTEN connection is healthy; while it is down, every request reads the
 *    database. A TTL bounds what a lost notification could ever cost.
 * 3. On a miss, one prepared statement (session joined with its user by token).
 * 4. Anything Better Auth must handle itself — an expired session (it deletes it), one due for
 *    its sliding refresh (it extends it) — is handed to `auth.api.getSession`, unchanged.
 *
 * `settle()` closes the one remaining window: a notification reaches this instance a moment after
 * the commit that caused it. Requests that change sessions or users (sign-out, revocation, profile
 * and account changes) await it before answering, so the client's next request to this instance
 * already sees it; another instance sees it when its own connection delivers the same
 * notification (milliseconds; nothing orders deliveries to different connections).
 */
export type ResolvedSession = AuthSession;

export type SessionCacheOptions = {
  ttlMs: number;
  maxEntries: number;
};

export const AUTH_CHANNEL = "warren_auth";

type Entry = { value: ResolvedSession; until: number };

export interface SessionResolver {
  resolve(headers: Headers): Promise<ResolvedSession | null>;
  /** Waits until every session/user change committed so far has reached this instance. */
  settle(): Promise<void>;
  /** For tests and metrics. */
  stats(): { entries: number; hits: number; misses: number; enabled: boolean };
  close(): void;
}

const BEARER = "bearer ";

export function createSessionResolver(deps: {
  auth: Auth;
  database: Database;
  secret: string;
  logger: Logger;
  options: SessionCacheOptions;
}): SessionResolver {
  const { auth, database, secret, logger, options } = deps;
  // The session cookie's name (with its __Secure- prefix on https) as Better Auth sets it.
  let cookieName: string | undefined;
  const cookieNameReady = auth.$context.then((ctx) => {
    cookieName = ctx.authCookies.sessionToken.name;
  });
  const db = database.db;
  const sessionConfig = auth.options.session ?? {};
  const expiresInMs = (sessionConfig.expiresIn ?? 60 * 60 * 24 * 7) * 1000;
  const updateAgeMs = (sessionConfig.updateAge ?? 60 * 60 * 24) * 1000;

  const byToken = new Map<string, Entry>();
  const tokenBySessionId = new Map<string, string>();
  const tokensByUser = new Map<string, Set<string>>();
  let hits = 0;
  let misses = 0;
  // Bumped by every invalidation: a miss that read the database before an invalidation arrived
  // must not cache what it read (it may be the very row that was just revoked).
  let generation = 0;

  const cacheEnabled = options.ttlMs > 0;

  const drop = (token: string) => {
    const entry = byToken.get(token);
    if (!entry) return;
    byToken.delete(token);
    tokenBySessionId.delete(entry.value.session.id);
    const tokens = tokensByUser.get(entry.value.user.id);
    tokens?.delete(token);
    if (tokens && tokens.size === 0) tokensByUser.delete(entry.value.user.id);
  };
  const clear = () => {
    generation++;
    byToken.clear();
    tokenBySessionId.clear();
    tokensByUser.clear();
  };

  const feed = invalidationFeed({
    database,
    logger,
    channel: AUTH_CHANNEL,
    name: "session cache",
    settlePrefix: "b:",
    reset: clear,
    onMessage: (payload) => {
      generation++;
      const kind = payload.slice(0, 2);
      const id = payload.slice(2);
      if (kind === "s:") {
        const token = tokenBySessionId.get(id);
        if (token) drop(token);
      } else if (kind === "u:") {
        for (const token of [...(tokensByUser.get(id) ?? [])]) drop(token);
      } else {
        clear();
      }
    },
  });
  const startListening = () => {
    if (cacheEnabled) feed.start();
  };

  const lookup = db
    .select({ session: sessionTable, user: userTable })
    .from(sessionTable)
    .innerJoin(userTable, eq(userTable.id, sessionTable.userId))
    .where(eq(sessionTable.token, sql.placeholder("token")))
    .limit(1)
    .prepare("warren_session_by_token");

  const sign = (value: string) => createHmac("sha256", secret).update(value).digest("base64");

  // Signed values whose signature was right, with their token: a client sends the same one with
  // every request, and the HMAC (~3 µs) was the costliest step of a cached resolution. Only what
  // passed the check is kept; a signature stays right for as long as the secret does.
  const checked = new Map<string, string>();

  /** The signed value's token when its signature is right, else null. */
  const verified = (signed: string): string | null => {
    const known = checked.get(signed);
    if (known !== undefined) return known;
    const dot = signed.lastIndexOf(".");
    if (dot < 1) return null;
    const token = signed.slice(0, dot);
    const signature = signed.slice(dot + 1);
    if (signature.length !== 44 || !signature.endsWith("=")) return null;
    const expected = Buffer.from(sign(token));
    const given = Buffer.from(signature);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null;
    if (checked.size >= options.maxEntries) {
      const oldest = checked.keys().next().value;
      if (oldest !== undefined) checked.delete(oldest);
    }
    checked.set(signed, token);
    return token;
  };

  const credential = (headers: Headers): string | null => {
    const authorization = headers.get("authorization");
    if (authorization && authorization.slice(0, 7).toLowerCase() === BEARER) {
      const raw = authorization.slice(7).trim();
      if (raw) {
        // The bearer plugin signs a bare token itself, so the bare token is accepted as is.
        const token = raw.includes(".") ? verified(raw.includes("%") ? tryDecode(raw) : raw) : raw;
        if (token) return token;
      }
    }
    const cookie = headers.get("cookie");
    if (!cookie) return null;
    const value = readCookie(cookie, cookieName!);
    return value ? verified(value) : null;
  };

  return {
    async resolve(headers) {
      startListening();
      if (cookieName === undefined) await cookieNameReady;
      const token = credential(headers);
      if (!token) return null;
      const now = Date.now();
      if (feed.trusted) {
        const entry = byToken.get(token);
        if (entry && entry.until > now && entry.value.session.expiresAt.getTime() > now) {
          hits++;
          return entry.value;
        }
        if (entry) drop(token);
      }
      misses++;
      const seen = generation;
      const [row] = await lookup.execute({ token });
      if (!row) return null;
      const expiresAt = row.session.expiresAt.getTime();
      if (expiresAt <= now || expiresAt - expiresInMs + updateAgeMs <= now) {
        // Expired (Better Auth deletes it) or due for its sliding refresh (Better Auth extends it).
        return auth.api.getSession({ headers });
      }
      const value = row as ResolvedSession;
      if (feed.trusted && seen === generation) {
        if (byToken.size >= options.maxEntries) {
          const oldest = byToken.keys().next().value;
          if (oldest !== undefined) drop(oldest);
        }
        byToken.set(token, { value, until: now + options.ttlMs });
        tokenBySessionId.set(value.session.id, token);
        let tokens = tokensByUser.get(value.user.id);
        if (!tokens) tokensByUser.set(value.user.id, (tokens = new Set()));
        tokens.add(token);
      }
      return value;
    },

    settle: () => feed.settle(),

    stats() {
      return { entries: byToken.size, hits, misses, enabled: feed.trusted };
    },

    close() {
      feed.close();
    },
  };
}

function tryDecode(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

/** One cookie's value, decoded, as better-call's parser reads it (the first occurrence wins). */
function readCookie(header: string, name: string): string | null {
  let index = 0;
  while (index < header.length) {
    const eq = header.indexOf("=", index);
    if (eq === -1) return null;
    let end = header.indexOf(";", index);
    if (end === -1) end = header.length;
    else if (end < eq) {
      index = header.lastIndexOf(";", eq - 1) + 1;
      continue;
    }
    if (header.slice(index, eq).trim() === name) {
      let value = header.slice(eq + 1, end).trim();
      if (value.codePointAt(0) === 34) value = value.slice(1, -1);
      return tryDecode(value);
    }
    index = end + 1;
  }
  return null;
}
