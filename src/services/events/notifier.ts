import { EventEmitter } from "node:events";
import { sql } from "drizzle-orm";
import type { Database, Db, Tx } from "../../database/client";
import type { DatabaseListener } from "../../database/listener";
import type { Logger } from "../../lib/logger";

/**
 * Change notifications between Warren instances: "user U's <topic> is now at version V". They
 * carry no data (clients re-read what changed through their own scope), so a payload can never
 * leak a secret and always fits PostgreSQL's 8000-byte NOTIFY limit.
 *
 * Every instance LISTENs on one channel (src/database/listener.ts; PGlite delivers its own
 * notifications in-process) and changes are NOTIFYed inside the writing transaction, so an event
 * exists only if the change committed, on every instance alike. Preferences are announced by a
 * trigger on user_preferences (migration 0005): whichever path bumps the version (the preferences
 * service, the default model, deleting a credential, the legacy import) reaches open streams.
 */
export const CHANGE_TOPICS = ["preferences"] as const;
export type ChangeTopic = (typeof CHANGE_TOPICS)[number];
export type ChangeEvent = { topic: ChangeTopic; userId: string; version: number };

export type ChangeSubscriber = {
  onChange(event: ChangeEvent): void;
  /** The listener reconnected: notifications may have been missed, so re-read the state. */
  onResync?(): void;
  /** The notifier is shutting down: end the stream. */
  onClose?(): void;
};

export type Publish = (event: ChangeEvent) => Promise<void>;

export interface ChangeNotifier {
  /**
   * Runs `fn` in one transaction. Events it publishes reach subscribers (here and on every other
   * instance) only once that transaction has committed; a rollback publishes nothing.
   */
  transaction<T>(db: Db, fn: (tx: Tx, publish: Publish) => Promise<T>): Promise<T>;
  /** Resolves once the subscription is live, so no change committed afterwards is missed. */
  subscribe(topic: ChangeTopic, userId: string, subscriber: ChangeSubscriber): Promise<() => void>;
  /** Ends every subscription (their onClose runs) and stops listening. */
  close(): Promise<void>;
}

export const CHANGE_CHANNEL = "warren_changes";

export function encodeChange(event: ChangeEvent): string {
  return JSON.stringify({ t: event.topic, u: event.userId, v: event.version });
}

export function decodeChange(payload: string): ChangeEvent | null {
  try {
    const value = JSON.parse(payload) as { t?: unknown; u?: unknown; v?: unknown };
    const topic = CHANGE_TOPICS.find((t) => t === value.t);
    if (!topic || typeof value.u !== "string" || typeof value.v !== "number") return null;
    return { topic, userId: value.u, version: value.v };
  } catch {
    return null;
  }
}

/** Local fan-out to this instance's subscribers: one emitter key per (topic, user). */
class Fanout {
  private readonly emitter = new EventEmitter();
  private readonly all = new Set<ChangeSubscriber>();
  constructor() {
    // Every open SSE stream is one listener; the default warning at 10 is not a leak here.
    this.emitter.setMaxListeners(0);
  }
  add(topic: ChangeTopic, userId: string, subscriber: ChangeSubscriber): () => void {
    const key = `${topic}:${userId}`;
    const handler = (event: ChangeEvent) => subscriber.onChange(event);
    this.emitter.on(key, handler);
    this.all.add(subscriber);
    return () => {
      this.emitter.off(key, handler);
      this.all.delete(subscriber);
    };
  }
  emit(event: ChangeEvent) {
    this.emitter.emit(`${event.topic}:${event.userId}`, event);
  }
  resync() {
    for (const s of this.all) s.onResync?.();
  }
  closeAll() {
    const subscribers = [...this.all];
    this.all.clear();
    this.emitter.removeAllListeners();
    for (const s of subscribers) s.onClose?.();
  }
}

/**
 * LISTENs through the database's listener (src/database/listener.ts): one dedicated connection,
 * re-LISTENed with backoff after any loss. When it comes back, notifications may have been missed
 * meanwhile, so subscribers resync.
 */
export function createListeningNotifier(listener: DatabaseListener, logger: Logger): ChangeNotifier {
  const fanout = new Fanout();
  let listening: Promise<() => void> | undefined;
  let unwatch: (() => void) | undefined;
  let closed = false;

  const ensureListening = () => {
    listening ??= listener
      .listen(CHANGE_CHANNEL, (payload) => {
        const event = decodeChange(payload);
        if (event) fanout.emit(event);
        else logger.warn({ channel: CHANGE_CHANNEL }, "ignored a malformed change notification");
      })
      .then((stop) => {
        unwatch ??= listener.onHealth((healthy) => {
          if (!healthy) return;
          logger.info({ channel: CHANGE_CHANNEL }, "change listener reconnected; subscribers resync");
          fanout.resync();
        });
        return stop;
      })
      .catch((err: unknown) => {
        listening = undefined;
        throw err;
      });
    return listening;
  };

  return {
    transaction(db, fn) {
      return db.transaction((tx) =>
        fn(tx, async (event) => {
          await tx.execute(sql`select pg_notify(${CHANGE_CHANNEL}, ${encodeChange(event)})`);
        }),
      );
    },
    async subscribe(topic, userId, subscriber) {
      if (closed) {
        subscriber.onClose?.();
        return () => {};
      }
      await ensureListening();
      return fanout.add(topic, userId, subscriber);
    },
    async close() {
      closed = true;
      fanout.closeAll();
      unwatch?.();
      const current = listening;
      listening = undefined;
      if (current) await current.then((stop) => stop()).catch(() => {});
    },
  };
}

/** The notifier for a database: LISTEN/NOTIFY on a server and on PGlite alike. */
export function createChangeNotifier(database: Database, logger: Logger): ChangeNotifier {
  return createListeningNotifier(database.listener(), logger);
}
