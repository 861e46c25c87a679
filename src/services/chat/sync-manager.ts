import { createParser } from "eventsource-parser";
import { sql } from "drizzle-orm";
import { queryRows, ts, type Db } from "../../database/client";
import { acquireLease, releaseLease } from "../../jobs/lease";
import type { Logger } from "../../lib/logger";
import type { SandboxRuntime } from "../sandboxes/runtime";
import { agentTarget, AgentUnavailableError, type AgentTarget } from "./agent";
import { applyChanges } from "./ingest";
import { addEvent, emptyChangeSet, parseSyncedEvent, type ChangeSet } from "./opencode-events";
import { reconcileSandbox } from "./reconcile";

/**
 * Chat sync for one Warren process. Every tick it looks for running sandboxes and follows the
 * event stream of each one whose lease (`chat-sync:<sandboxId>` in the leases table) it holds or
 * can take; a lease held by a dead instance runs out and another instance takes over. A stream
 * reconnects with exponential backoff (capped, with jitter) for as long as the sandbox runs and
 * the lease is ours; when the sandbox stops or the lease is lost the stream ends and the lease
 * is released. A stream that sends nothing for streamIdleMs (OpenCode sends a heartbeat every
 * 10 s) is dropped and reopened the same way. Every (re)connect starts with a reconciliation that
 * fetches what changed while nobody was listening, and reconciliation repeats periodically.
 */
export type ChatSyncOptions = {
  rt: Pick<SandboxRuntime, "db" | "driver" | "keyring" | "now">;
  logger: Logger;
  holder: string;
  tickMs: number;
  leaseMs: number;
  reconcileIntervalMs: number;
  /** A stream that sends nothing (not even a heartbeat) for this long is dropped and reopened. */
  streamIdleMs?: number;
  /** Events per transaction at most; a batch is also flushed after flushMs. */
  batchSize?: number;
  flushMs?: number;
};

const BACKOFF_MIN_MS = 250;
const BACKOFF_MAX_MS = 30_000;
/** A connection that stayed up this long starts the backoff again from the bottom. */
const STABLE_CONNECTION_MS = 10_000;
/** OpenCode 1.18 sends server.heartbeat on /event every 10 s: four and a half of them missed. */
const DEFAULT_STREAM_IDLE_MS = 45_000;

/** The agent's stream went silent: a half-open connection or a hung agent, never an end of stream. */
class StreamIdleError extends Error {
  override name = "StreamIdleError";
  constructor(idleMs: number) {
    super(`the agent's event stream sent nothing for ${Math.round(idleMs / 1000)} s (not even a heartbeat)`);
  }
}

export function backoffMs(attempt: number): number {
  const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** Math.min(attempt, 20));
  return Math.round(base / 2 + Math.random() * (base / 2));
}

export function startChatSync(opts: ChatSyncOptions) {
  const { rt, logger } = opts;
  const db = rt.db;
  const streams = new Map<string, SandboxStream>();
  let stopped = false;
  let busy = false;

  const tick = async () => {
    if (busy || stopped) return;
    busy = true;
    try {
      const running = await queryRows<{ id: string }>(db, sql`select id from sandboxes where status = 'running'`);
      const ids = new Set(running.map((r) => r.id));
      for (const [id, stream] of streams) {
        if (!ids.has(id)) {
          // Listed until it has stopped and released its lease: following() never runs ahead of it.
          await stream.stop("the sandbox is no longer running");
          streams.delete(id);
        }
      }
      for (const id of ids) {
        if (stopped) break;
        const held = await acquireLease(db, `chat-sync:${id}`, opts.holder, rt.now(), opts.leaseMs);
        const stream = streams.get(id);
        if (held && !stream) {
          const s = new SandboxStream(id, opts);
          streams.set(id, s);
          s.start();
        } else if (!held && stream) {
          // Another instance took the lease (ours lapsed): it owns the stream now.
          await stream.stop("the lease passed to another instance", false);
          streams.delete(id);
        }
      }
    } catch (err) {
      logger.warn({ err: { message: (err as Error).message } }, "chat sync tick failed");
    } finally {
      busy = false;
    }
  };

  const first = tick();
  // Renewal must come well before expiry: the tick is at most a third of the lease.
  const timer = setInterval(() => void tick(), Math.min(opts.tickMs, Math.floor(opts.leaseMs / 3)));
  return {
    /** Sandboxes whose streams this instance follows (for tests and the log). */
    following: () => [...streams.keys()],
    async stop() {
      stopped = true;
      clearInterval(timer);
      await first;
      while (busy) await Bun.sleep(10);
      await Promise.all([...streams.values()].map((s) => s.stop("shutting down")));
      streams.clear();
    },
  };
}

class SandboxStream {
  private abort = new AbortController();
  private done: Promise<void> | undefined;
  private queue: ChangeSet = emptyChangeSet();
  private oldestQueuedAt: Date | null = null;
  private writing: Promise<void> = Promise.resolve();
  private lastReconciledAt: Date | null = null;

  constructor(
    private readonly sandboxId: string,
    private readonly opts: ChatSyncOptions,
  ) {}

  start() {
    this.done = this.run();
  }

  async stop(reason: string, release = true) {
    this.abort.abort(new Error(reason));
    await this.done?.catch(() => undefined);
    await this.writing.catch(() => undefined);
    await this.setState({ connected: false }).catch(() => undefined);
    if (release) await releaseLease(this.opts.rt.db, `chat-sync:${this.sandboxId}`, this.opts.holder).catch(() => undefined);
  }

  private get log() {
    return this.opts.logger.child({ sandboxId: this.sandboxId, component: "chat-sync" });
  }

  private async run() {
    const signal = this.abort.signal;
    const [state] = await queryRows<{ last_reconciled_at: string | Date | null }>(
      this.opts.rt.db,
      sql`select last_reconciled_at from chat_sync_state where sandbox_id = ${this.sandboxId}`,
    ).catch(() => []);
    this.lastReconciledAt = state?.last_reconciled_at ? new Date(state.last_reconciled_at) : null;
    let attempt = 0;
    while (!signal.aborted) {
      let connectedAt: number | null = null as number | null;
      try {
        await this.follow(signal, () => {
          connectedAt = Date.now();
        });
        if (signal.aborted) break;
        throw new Error("the agent closed its event stream");
      } catch (err) {
        if (signal.aborted) break;
        // Resetting on every successful connect let an agent that accepts the stream and drops it
        // at once be hammered with a reconnect and a reconciliation every 250 ms, forever.
        if (connectedAt !== null && Date.now() - connectedAt >= STABLE_CONNECTION_MS) attempt = 0;
        const message = err instanceof AgentUnavailableError ? err.message : (err as Error).message || String(err);
        await this.setState({ connected: false, error: message }).catch(() => undefined);
        const wait = backoffMs(attempt++);
        // A silent stream is not a clean drop: sync stood still until now, which an operator should see.
        if (err instanceof StreamIdleError) this.log.warn({ err: { message }, retryInMs: wait }, "chat stream went silent; reconnecting");
        else this.log.debug({ err: { message }, retryInMs: wait }, "chat stream down; reconnecting");
        await sleep(wait, signal);
      }
    }
  }

  /** One connection, watched for silence. */
  private async follow(signal: AbortSignal, onConnected: () => void) {
    const target = await agentTarget(this.opts.rt, this.sandboxId);
    // A half-open connection or a hung agent sends nothing, and a read waits on it forever (sync
    // silently stopped). Every chunk, heartbeats included, re-arms the watchdog; when it fires the
    // request aborts, the pending read rejects with the StreamIdleError and run() reconnects.
    const idleMs = this.opts.streamIdleMs ?? DEFAULT_STREAM_IDLE_MS;
    const stall = new AbortController();
    const watchdog = setTimeout(() => stall.abort(new StreamIdleError(idleMs)), idleMs);
    try {
      await this.connect(target, AbortSignal.any([signal, stall.signal]), signal, watchdog, onConnected);
    } finally {
      clearTimeout(watchdog);
    }
  }

  /**
   * Opens the stream, reconciles, then ingests events until it ends. `request` aborts the request
   * (the sandbox's `signal` or the watchdog); every chunk read re-arms `watchdog`.
   */
  private async connect(target: AgentTarget, request: AbortSignal, signal: AbortSignal, watchdog: Timer, onConnected: () => void) {
    const res = await fetch(new URL("/event", target.url), {
      headers: { authorization: target.authorization, accept: "text/event-stream" },
      signal: request,
    });
    if (!res.ok || !res.body) {
      await res.arrayBuffer().catch(() => undefined);
      throw new AgentUnavailableError(`the agent answered ${res.status} to GET /event`);
    }
    onConnected();
    // The reconciliation loop lives as long as this connection: when the agent ends the stream it
    // stops too and follow() returns, so that run() reconnects. (Tied to the sandbox's signal
    // alone, it kept follow() waiting until the sandbox stopped: a dropped stream was never
    // reopened, and only the periodic reconciliation brought changes in.)
    const connection = new AbortController();
    const endConnection = () => connection.abort(signal.reason);
    signal.addEventListener("abort", endConnection, { once: true });
    const live = connection.signal;
    await this.setState({ connected: true });
    // Reconcile after subscribing: anything that happens from now on arrives as events, and
    // anything before is fetched; both converge on the same rows.
    const reconcile = async () => {
      const since = this.lastReconciledAt;
      const startedAt = this.opts.rt.now();
      await this.serialised(() => reconcileSandbox({ db: this.opts.rt.db, now: this.opts.rt.now }, target, { since, signal: live }).then(() => undefined));
      this.lastReconciledAt = startedAt;
    };
    // A failed reconciliation (the agent busy, a list cut short) is tried again at the next
    // interval: the stream may stay up for days, and reconciliation is what catches what it missed.
    const reconcileLoop = (async () => {
      while (!live.aborted) {
        try {
          await reconcile();
        } catch (err) {
          if (!live.aborted) this.log.warn({ err: { message: (err as Error).message } }, "chat reconciliation failed; trying again at the next interval");
        }
        await sleep(this.opts.reconcileIntervalMs, live);
      }
    })();

    const flushMs = this.opts.flushMs ?? 100;
    const batchSize = this.opts.batchSize ?? 500;
    let timer: Timer | undefined;
    const parser = createParser({
      onEvent: (event) => {
        const parsed = parseSyncedEvent(event.data);
        if (parsed === null) return;
        this.oldestQueuedAt ??= new Date();
        addEvent(this.queue, parsed);
        if (this.queue.events >= batchSize) void this.flush();
        else timer ??= setTimeout(() => {
          timer = undefined;
          void this.flush();
        }, flushMs);
      },
    });
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        watchdog.refresh();
        parser.feed(value);
      }
    } finally {
      if (timer) clearTimeout(timer);
      reader.releaseLock();
      await this.flush().catch((err) => this.log.warn({ err: { message: (err as Error).message } }, "chat batch failed"));
      connection.abort(new Error("the event stream ended"));
      signal.removeEventListener("abort", endConnection);
      await reconcileLoop;
    }
  }

  /** Writes run one at a time per sandbox (batches and reconciliations never interleave). */
  private serialised(fn: () => Promise<void>): Promise<void> {
    const next = this.writing.then(fn, fn);
    this.writing = next.catch(() => undefined);
    return next;
  }

  private flush(): Promise<void> {
    return this.serialised(async () => {
      if (this.queue.events === 0) return;
      const set = this.queue;
      const receivedAt = this.oldestQueuedAt ?? undefined;
      this.queue = emptyChangeSet();
      this.oldestQueuedAt = null;
      try {
        await applyChanges(this.opts.rt.db, this.sandboxId, set, { now: this.opts.rt.now(), ...(receivedAt ? { receivedAt } : {}) });
      } catch (err) {
        // The batch is lost to this stream, not to the user: the next reconciliation refetches
        // the sessions it touched (their time.updated is newer than what Warren holds).
        this.log.warn({ err: { message: (err as Error).message }, events: set.events }, "chat batch failed; reconciliation will catch up");
        this.lastReconciledAt = null;
        throw err;
      }
    });
  }

  private async setState(s: { connected: boolean; error?: string }) {
    const now = this.opts.rt.now();
    const leaseUntil = new Date(now.getTime() + this.opts.leaseMs);
    await this.opts.rt.db.execute(
      sql`insert into chat_sync_state (sandbox_id, lease_holder, lease_expires_at, connected, last_error, last_error_at, consecutive_errors, updated_at)
          values (${this.sandboxId}, ${this.opts.holder}, ${ts(leaseUntil)}, ${s.connected}, ${s.error ?? null},
                  ${s.error ? ts(now) : sql`null`}, ${s.error ? 1 : 0}, ${ts(now)})
          on conflict (sandbox_id) do update set
            lease_holder = excluded.lease_holder, lease_expires_at = excluded.lease_expires_at, connected = excluded.connected,
            last_error = coalesce(excluded.last_error, chat_sync_state.last_error),
            last_error_at = coalesce(excluded.last_error_at, chat_sync_state.last_error_at),
            consecutive_errors = case when ${s.error ? sql`true` : sql`false`} then chat_sync_state.consecutive_errors + 1
                                      when excluded.connected then 0 else chat_sync_state.consecutive_errors end,
            updated_at = excluded.updated_at`,
    );
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}
