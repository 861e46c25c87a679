import type { PGlite } from "@electric-sql/pglite";
import postgres from "postgres";

/**
 * PostgreSQL LISTEN for Warren's cross-instance signals (preference changes, session
 * revocations), with an honest health flag: while the listening connection is down,
 * notifications are being missed, and whoever relies on them (a cache that trusts them for
 * invalidation, a stream that trusts them for delivery) must know at once, not on reconnect.
 *
 * postgres.js's own `sql.listen()` re-LISTENs after a connection loss but says nothing while the
 * connection is down, and gives up for good when the first re-LISTEN fails (a database outage
 * longer than one connect attempt). So the listening connection is owned here: one dedicated
 * client (max 1, never recycled), `onclose` marks it unhealthy, a loop re-LISTENs with backoff
 * until it works, and a periodic ping notices a connection that died without closing.
 */
export interface DatabaseListener {
  /** Subscribes to a channel; resolves once LISTEN is active. Returns the unsubscribe. */
  listen(channel: string, onNotify: (payload: string) => void): Promise<() => void>;
  /** `false` when the connection is lost (notifications may be missed), `true` once listening again. */
  onHealth(fn: (healthy: boolean) => void): () => void;
  readonly healthy: boolean;
  close(): Promise<void>;
}

type Options = { pingIntervalMs?: number; onError?: (err: unknown) => void };

export function createPostgresListener(url: string, options: Options = {}): DatabaseListener {
  const channels = new Map<string, Set<(payload: string) => void>>();
  const healthWatchers = new Set<(healthy: boolean) => void>();
  let healthy = false;
  let closed = false;
  let relistening: Promise<void> | undefined;
  let dirty = false;

  const setHealth = (value: boolean) => {
    if (healthy === value) return;
    healthy = value;
    for (const fn of healthWatchers) fn(value);
  };

  // `onnotify` is a postgres.js option its typings leave out (its own listen() uses it).
  const client = postgres(url, {
    max: 1,
    idle_timeout: 0,
    max_lifetime: null,
    connect_timeout: 5,
    fetch_types: false,
    backoff: (retries: number) => Math.min(0.05 * 2 ** retries, 1),
    onnotice: () => {},
    connection: { application_name: "warren-listener" },
    onnotify: (channel: string, payload: string) => {
      const fns = channels.get(channel);
      if (fns) for (const fn of fns) fn(payload);
    },
    onclose: () => {
      if (closed) return;
      setHealth(false);
      void relisten();
    },
  } as postgres.Options<{}>);

  const quote = (channel: string) => `"${channel.replace(/"/g, '""')}"`;

  /** LISTENs on every channel until that succeeds on one connection; one loop at a time. */
  const relisten = (): Promise<void> => {
    if (relistening) {
      dirty = true;
      return relistening;
    }
    relistening = (async () => {
      for (let attempt = 0; !closed; attempt++) {
        dirty = false;
        try {
          for (const channel of channels.keys()) await client.unsafe(`listen ${quote(channel)}`);
          if (!dirty) {
            setHealth(true);
            return;
          }
        } catch (err) {
          options.onError?.(err);
          await Bun.sleep(Math.min(100 * 2 ** attempt, 2000));
        }
      }
    })().finally(() => {
      relistening = undefined;
    });
    return relistening;
  };

  // A connection can die without a close (a host that vanished): a ping finds out.
  const ping = setInterval(() => {
    if (closed || !healthy || channels.size === 0) return;
    client`select 1`.catch(() => {
      // onclose follows when the connection is really gone.
    });
  }, options.pingIntervalMs ?? 5000);
  ping.unref?.();

  return {
    get healthy() {
      return healthy;
    },
    async listen(channel, onNotify) {
      let fns = channels.get(channel);
      if (!fns) {
        fns = new Set();
        channels.set(channel, fns);
        fns.add(onNotify);
        if (healthy) await client.unsafe(`listen ${quote(channel)}`);
        else await relisten();
      } else {
        fns.add(onNotify);
        if (!healthy) await relisten();
      }
      return () => {
        fns.delete(onNotify);
      };
    },
    onHealth(fn) {
      healthWatchers.add(fn);
      return () => healthWatchers.delete(fn);
    },
    async close() {
      closed = true;
      clearInterval(ping);
      setHealth(false);
      await client.end({ timeout: 2 }).catch(() => {});
    },
  };
}

/** PGlite is one in-process connection: LISTEN never drops, so it is always healthy. */
export function createPgliteListener(pglite: PGlite): DatabaseListener {
  const unsubscribers = new Set<() => Promise<void>>();
  return {
    healthy: true,
    async listen(channel, onNotify) {
      const unsubscribe = await pglite.listen(channel, onNotify);
      unsubscribers.add(unsubscribe);
      return () => {
        unsubscribers.delete(unsubscribe);
        void unsubscribe().catch(() => {});
      };
    },
    onHealth() {
      return () => {};
    },
    async close() {
      for (const unsubscribe of unsubscribers) await unsubscribe().catch(() => {});
      unsubscribers.clear();
    },
  };
}
