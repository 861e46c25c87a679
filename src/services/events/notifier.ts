import { EventEmitter } from "node:events";
import { sql } from "drizzle-orm";
import type { Database, Db, Tx } from "../../database/client";
import type { Logger } from "../../lib/logger";

/**
 * Change notifications between Warren instances: "user U's <topic> is now at version V". They
 * carry no data (clients re-read what changed through their own scope), so a payload can never
 * leak a secret and always fits PostgreSQL's 8000-byte NOTIFY limit.
 *
 * On a PostgreSQL server every instance LISTENs on one channel and writers NOTIFY inside their
 * transaction, so an event exists only if the change committed, on every instance alike. PGlite is
 * one process by construction: events go through an in-process emitter after the commit.
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
  readonly mode: "postgres" | "in-process";
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

type ListenRequest = Promise<{ unlisten(): Promise<void> }>;
type ListeningClient = {
  listen(channel: string, onNotify: (payload: string) => void, onListen?: () => void): ListenRequest;
};

/** Local fan-out shared by both modes: one emitter key per (topic, user). */
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

export function createInProcessNotifier(): ChangeNotifier {
  const fanout = new Fanout();
  let closed = false;
  return {
    mode: "in-process",
    async transaction(db, fn) {
      const pending: ChangeEvent[] = [];
      const result = await db.transaction((tx) => fn(tx, async (event) => void pending.push(event)));
      if (!closed) for (const event of pending) fanout.emit(event);
      return result;
    },
    async subscribe(topic, userId, subscriber) {
      if (closed) {
        subscriber.onClose?.();
        return () => {};
      }
      return fanout.add(topic, userId, subscriber);
    },
    async close() {
      closed = true;
      fanout.closeAll();
    },
  };
}

/**
 * `client` is the postgres.js pool; its listen() opens one dedicated connection (the pool's
 * connections stay free for queries) and re-LISTENs by itself after a connection loss.
 */
export function createPostgresNotifier(client: ListeningClient, logger: Logger): ChangeNotifier {
  const fanout = new Fanout();
  let listening: Promise<{ unlisten(): Promise<void> }> | undefined;
  let listenCount = 0;
  let closed = false;

  const ensureListening = () => {
    listening ??= client
      .listen(
        CHANGE_CHANNEL,
        (payload) => {
          const event = decodeChange(payload);
          if (event) fanout.emit(event);
          else logger.warn({ channel: CHANGE_CHANNEL }, "ignored a malformed change notification");
        },
        () => {
          // The first call is the initial LISTEN; later ones follow a reconnect, during which
          // notifications were lost.
          if (listenCount++ > 0) {
            logger.info({ channel: CHANGE_CHANNEL }, "change listener reconnected; subscribers resync");
            fanout.resync();
          }
        },
      )
      .catch((err: unknown) => {
        listening = undefined;
        throw err;
      });
    return listening;
  };

  return {
    mode: "postgres",
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
      const current = listening;
      listening = undefined;
      if (current) await current.then((l) => l.unlisten()).catch(() => {});
    },
  };
}

/** The notifier for a database: LISTEN/NOTIFY on a server, in-process on PGlite. */
export function createChangeNotifier(database: Database, logger: Logger): ChangeNotifier {
  if (database.engine === "pglite") return createInProcessNotifier();
  const client = (database.db as unknown as { $client?: Partial<ListeningClient> }).$client;
  if (typeof client?.listen !== "function") throw new Error("the PostgreSQL client cannot LISTEN");
  return createPostgresNotifier(client as ListeningClient, logger);
}
