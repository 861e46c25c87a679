import { randomUUID } from "node:crypto";
import { sql } from "drizzle-orm";
import type { Database } from "./client";
import type { DatabaseListener } from "./listener";
import type { Logger } from "../lib/logger";

/**
 * The invalidation feed of a per-instance cache: one NOTIFY channel that triggers write to at
 * commit (the session cache, the page cache). It says when the cache may be trusted — only while
 * the LISTEN connection is healthy — and resets the cache whenever notifications may have been
 * missed (connection lost, first LISTEN, a settle that timed out).
 *
 * `settle()` closes the window between a commit and its notification's arrival here: it NOTIFYs
 * a nonce of its own and waits for it. Notifications arrive in commit order, so once the nonce is
 * here, so is every notification committed before it.
 */
export interface InvalidationFeed {
  /** Starts listening (once; later calls do nothing). */
  start(): void;
  /** True while every committed change is known to reach this instance. */
  readonly trusted: boolean;
  settle(): Promise<void>;
  close(): void;
}

const SETTLE_TIMEOUT_MS = 2000;

export function invalidationFeed(deps: {
  database: Database;
  logger: Logger;
  channel: string;
  /** What names this cache in logs ("session cache"). */
  name: string;
  /** Prefix of settle nonces; no other payload of the channel may start with it. */
  settlePrefix: string;
  onMessage: (payload: string) => void;
  /** Forget everything: changes may have been missed. */
  reset: () => void;
}): InvalidationFeed {
  const { database, logger, channel, name, settlePrefix, onMessage, reset } = deps;
  const settleWaiters = new Map<string, () => void>();
  let listener: DatabaseListener | undefined;
  let listening = false;
  let unlisten: (() => void) | undefined;
  let unwatch: (() => void) | undefined;

  const onNotify = (payload: string) => {
    if (payload.startsWith(settlePrefix)) settleWaiters.get(payload.slice(settlePrefix.length))?.();
    else onMessage(payload);
  };

  return {
    start() {
      if (listener) return;
      listener = database.listener();
      unwatch = listener.onHealth((healthy) => {
        // Whatever changed while the connection was down is unknown: start from nothing.
        reset();
        listening = healthy;
        logger.info({ healthy }, healthy ? `${name} listening again` : `${name} off: listener lost`);
      });
      listener
        .listen(channel, onNotify)
        .then((stop) => {
          unlisten = stop;
          reset();
          listening = listener!.healthy;
        })
        .catch((err: unknown) => logger.warn({ err }, `${name} could not LISTEN; reads go to the database`));
    },

    get trusted() {
      return listening;
    },

    async settle() {
      if (!listening) return;
      const nonce = randomUUID();
      const arrived = new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), SETTLE_TIMEOUT_MS);
        settleWaiters.set(nonce, () => {
          clearTimeout(timer);
          resolve(true);
        });
      });
      try {
        await database.db.execute(sql`select pg_notify(${channel}, ${settlePrefix + nonce})`);
        if (!(await arrived)) reset();
      } catch {
        reset();
      } finally {
        settleWaiters.delete(nonce);
      }
    },

    close() {
      unwatch?.();
      unlisten?.();
      reset();
      listening = false;
    },
  };
}
