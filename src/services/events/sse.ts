import type { Context } from "hono";
import { streamSSE } from "hono/streaming";
import { AppError } from "../../errors";
import type { Logger } from "../../lib/logger";
import { UserSlots } from "../../lib/user-slots";
import type { ChangeNotifier, ChangeTopic } from "./notifier";

export type VersionedDocument = { version: number };

/**
 * How many event streams one user may hold open at once on this instance. Each holds a
 * subscription, a heartbeat timer and a session check per beat, and every change is one read per
 * stream: without a cap, one signed-in user opening streams in a loop (the API's rate limit
 * lets 1,200 through a minute, and they stay open) would hold the instance's memory and turn each
 * of their changes into thousands of reads. Tabs and devices of a person are far fewer.
 */
export const streamSlots = (max: number) =>
  new UserSlots(
    max,
    (n) =>
      new AppError("RATE_LIMITED", `At most ${n} event streams may be open at once per user; close one (another tab or device) first`, {
        maxOpenStreams: n,
      }),
  );

export type ChangeStreamOptions<T extends VersionedDocument> = {
  notifier: ChangeNotifier;
  topic: ChangeTopic;
  userId: string;
  /** SSE event name of every document sent. */
  event: string;
  /** Reads the current document through the caller's scope (notifications carry no data). */
  load: () => Promise<T>;
  /** Checked before each document and at each heartbeat; false ends the stream. */
  authorized: () => Promise<boolean>;
  heartbeatMs: number;
  logger: Logger;
  /** The user's open streams (streamSlots); a stream over the cap is refused before it starts. */
  slots: UserSlots;
};

/** Last-Event-ID is the version the client last saw; anything else means "send me the state". */
export function parseLastEventId(header: string | undefined): number | undefined {
  if (!header || !/^\d{1,10}$/.test(header.trim())) return undefined;
  return Number(header.trim());
}

/**
 * A server-sent event stream of one user's versioned document. Each event's id is the document
 * version, so a reconnecting browser sends Last-Event-ID and gets the current document at once if
 * it missed anything. Bursts of changes collapse into one read of the latest version. All writes
 * happen in one loop, so a client that stops reading holds at most one pending write.
 */
export async function streamChanges<T extends VersionedDocument>(c: Context, options: ChangeStreamOptions<T>): Promise<Response> {
  const { notifier, topic, userId, event, load, authorized, heartbeatMs, logger, slots } = options;
  const release = slots.take(userId);
  let lastSent = parseLastEventId(c.req.header("last-event-id")) ?? -1;
  let dirty = true;
  let beatDue = false;
  let done = false;
  let wake: (() => void) | undefined;
  const signal = () => {
    const resolve = wake;
    wake = undefined;
    resolve?.();
  };
  const finish = () => {
    done = true;
    signal();
  };

  // Subscribed before the response starts: a listener that cannot connect is a 503 envelope,
  // and a change committed between here and the first read is seen either way.
  const subscriber = {
    onChange: (change: { version: number }) => {
      if (change.version > lastSent) {
        dirty = true;
        signal();
      }
    },
    onResync: () => {
      dirty = true;
      signal();
    },
    onClose: finish,
  };
  const unsubscribe = await notifier.subscribe(topic, userId, subscriber).catch((err: unknown) => {
    release();
    throw err;
  });
  c.req.raw.signal.addEventListener("abort", finish, { once: true });

  return streamSSE(c, async (stream) => {
    stream.onAbort(finish);
    const heartbeat = setInterval(() => {
      beatDue = true;
      signal();
    }, heartbeatMs);
    try {
      await stream.write(": connected\n\n");
      while (!done) {
        if (!dirty && !beatDue) {
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
          continue;
        }
        if (!(await authorized())) {
          await stream.writeSSE({ event: "error", data: JSON.stringify({ code: "UNAUTHENTICATED" }) });
          break;
        }
        if (beatDue) {
          beatDue = false;
          await stream.write(": heartbeat\n\n");
        }
        if (dirty) {
          dirty = false;
          const doc = await load();
          if (doc.version > lastSent && !done) {
            await stream.writeSSE({ event, id: String(doc.version), data: JSON.stringify(doc) });
            lastSent = doc.version;
          }
        }
      }
    } catch (err) {
      // The body already started as 200: say what happened in-stream, without internals.
      logger.warn({ err, topic }, "change stream ended by an error");
      await stream.writeSSE({ event: "error", data: JSON.stringify({ code: "SERVICE_UNAVAILABLE" }) }).catch(() => {});
    } finally {
      clearInterval(heartbeat);
      unsubscribe();
      release();
    }
  });
}
