import type { Context, TypedResponse } from "hono";
import type { JSONParsed } from "hono/utils/types";
import type { AppEnv } from "../context";
import type { Database } from "../database/client";
import { invalidationFeed } from "../database/invalidations";
import type { Logger } from "./logger";

/**
 * Rendered list pages (sandboxes, chat sessions and messages, activity), single sandboxes and
 * the preferences document, kept per instance.
 *
 * A 50-row page costs Bun's one JS thread about 1.5 ms to read, map and serialise before a line
 * of Warren runs (bench/README.md, "The floor of a page"), and apps ask for the same pages over
 * and over (a dashboard polling its sandboxes, every device of a user opening the same chat).
 * This keeps each page's JSON text, keyed by its owner and the request's path and query, and
 * serves it again until anything it shows may have changed:
 *
 * - Triggers on every table a page reads (migration 0015) NOTIFY the kind of page and the
 *   owner's user id at commit, whoever writes and however: a request on another instance, a
 *   background job, an operator's SQL. Those pages are dropped on arrival. A catalogue change
 *   (`*`) drops everything.
 * - Pages are of four kinds (sandboxes, chat, activity, preferences), and a change drops only
 *   its kind: an agent's chat streaming in, or a preferences change (the document and an activity
 *   entry), leaves the sandbox list cached. A sandbox's change drops chat pages too.
 * - A request that writes answers only after `settle()` (src/app.ts): its own notifications have
 *   arrived, so the client's next read already sees the write.
 * - The cache is trusted only while the LISTEN connection is healthy (src/database/listener.ts);
 *   while it is down every page is read from the database, and on reconnect it starts empty.
 * - A read that began before an invalidation of its kind and user does not keep what it read (it
 *   may predate the change); a TTL bounds what a lost notification could ever cost.
 *
 * Bodies carry a strong ETag (a hash of the bytes), so clients can revalidate with
 * If-None-Match and get 304 without the body. Memory is bounded by bytes (least recently used
 * pages go first).
 */
export const PAGES_CHANNEL = "warren_pages";

export type PageCacheOptions = { ttlMs: number; maxBytes: number };

/** What a page shows; a change of one kind leaves the others cached. */
export type PageKind = "sandboxes" | "chat" | "activity" | "preferences";
const CODE: Record<PageKind, string> = { sandboxes: "s", chat: "c", activity: "a", preferences: "p" };
/**
 * The kinds a notification (`s:`, `c:`, `a:` + user id, migration 0015; `p:`, 0017) drops. A
 * sandbox's change drops chat pages too: a sandbox's chat list answers for that sandbox (404 once
 * it is gone).
 */
const DROPS: Record<string, string[]> = { s: ["s", "c"], c: ["c"], a: ["a"], p: ["p"] };
const ALL = ["s", "c", "a", "p"];

/** `meta`: what the route's `keep` took from the rendered value (see cachedPage). */
export type Page = { body: string; etag: string; meta?: unknown };

/**
 * Per route: `keep` takes what the route needs again on every read (hit or miss) from the rendered
 * value, kept with the page; `etag`, for a resource with its own version, is the page's ETag
 * instead of a hash of the body.
 */
export type RenderOptions = { keep?: (value: unknown) => unknown; etag?: (value: unknown) => string };

export interface PageCache {
  /**
   * The page for (user, key): kept while nothing of its kind changed for the user, else
   * `render()`ed.
   */
  get(userId: string, kind: PageKind, key: string, render: () => Promise<unknown>, options?: RenderOptions): Promise<Page>;
  /** Waits until every change committed so far has reached this instance. */
  settle(): Promise<void>;
  /**
   * Resolves at the next change of `kind` for the user to reach this instance (or when the
   * listener resets): a waiter can sleep on it instead of polling. Null while changes are not
   * known to arrive (the cache is off, or its listener is down): poll then. Cancel what was not
   * needed.
   */
  nextChange(userId: string, kind: PageKind): { changed: Promise<void>; cancel(): void } | null;
  stats(): { entries: number; bytes: number; hits: number; misses: number; shared: number; enabled: boolean };
  close(): void;
}

type Entry = { group: string; page: Page; bytes: number; until: number };

/** Per-(kind, user) generations kept before the map is reset (bumping the epoch instead). */
const MAX_GENERATIONS = 100_000;

export const etagOfBody = (body: string) => `"p${Bun.hash(body).toString(36)}"`;

export function createPageCache(deps: { database: Database; logger: Logger; options: PageCacheOptions }): PageCache {
  const { database, logger, options } = deps;
  const enabled = options.ttlMs > 0;
  const entries = new Map<string, Entry>();
  // Pages by group: kind code + ":" + user id, as the notifications name them.
  const keysByGroup = new Map<string, Set<string>>();
  let bytes = 0;
  let hits = 0;
  let misses = 0;
  let shared = 0;
  const inflight = new Map<string, { epoch: number; generation: number; page: Promise<Page> }>();
  // A read keeps what it rendered only if neither its group's generation nor the epoch moved
  // while it read.
  const generations = new Map<string, number>();
  let epoch = 0;

  // Waiters on the next change of a group (nextChange), woken by its invalidation or a reset.
  const waiters = new Map<string, Set<() => void>>();
  const wake = (group?: string) => {
    const groups = group === undefined ? [...waiters.keys()] : [group];
    for (const g of groups) {
      const set = waiters.get(g);
      waiters.delete(g);
      if (set) for (const resolve of set) resolve();
    }
  };

  const drop = (key: string) => {
    const entry = entries.get(key);
    if (!entry) return;
    entries.delete(key);
    bytes -= entry.bytes;
    const keys = keysByGroup.get(entry.group);
    keys?.delete(key);
    if (keys && keys.size === 0) keysByGroup.delete(entry.group);
  };
  const clear = () => {
    wake();
    epoch++;
    generations.clear();
    entries.clear();
    keysByGroup.clear();
    bytes = 0;
  };
  const invalidateGroup = (group: string) => {
    if (generations.size >= MAX_GENERATIONS) {
      clear();
      return;
    }
    generations.set(group, (generations.get(group) ?? 0) + 1);
    wake(group);
    const keys = keysByGroup.get(group);
    if (keys) for (const key of [...keys]) drop(key);
  };
  const onMessage = (payload: string) => {
    if (payload === "*") return clear();
    const colon = payload.indexOf(":");
    const userId = payload.slice(colon + 1);
    for (const code of DROPS[payload.slice(0, colon)] ?? ALL) invalidateGroup(`${code}:${userId}`);
  };

  const feed = invalidationFeed({
    database,
    logger,
    channel: PAGES_CHANNEL,
    name: "page cache",
    settlePrefix: "~",
    reset: clear,
    onMessage,
  });

  return {
    async get(userId, kind, key, render, renderOptions) {
      if (enabled) feed.start();
      const group = `${CODE[kind]}:${userId}`;
      const cacheKey = `${userId} ${key}`;
      const now = Date.now();
      if (feed.trusted) {
        const entry = entries.get(cacheKey);
        if (entry && entry.until > now) {
          hits++;
          // Most recently used last: eviction takes from the front.
          entries.delete(cacheKey);
          entries.set(cacheKey, entry);
          return entry.page;
        }
        if (entry) drop(cacheKey);
      }
      misses++;
      const seenEpoch = epoch;
      const seenGeneration = generations.get(group) ?? 0;
      // Concurrent misses of one page (a cold start, an expiry under load) share one render, as
      // long as nothing of the user changed since that render began.
      const flight = inflight.get(cacheKey);
      if (flight && flight.epoch === seenEpoch && flight.generation === seenGeneration) {
        shared++;
        return flight.page;
      }
      const rendering = render().then((value): Page => {
        const body = JSON.stringify(value);
        const page: Page = { body, etag: renderOptions?.etag ? renderOptions.etag(value) : etagOfBody(body) };
        if (renderOptions?.keep) page.meta = renderOptions.keep(value);
        return page;
      });
      const own = { epoch: seenEpoch, generation: seenGeneration, page: rendering };
      inflight.set(cacheKey, own);
      let page: Page;
      try {
        page = await rendering;
      } finally {
        if (inflight.get(cacheKey) === own) inflight.delete(cacheKey);
      }
      const size = page.body.length * 2 + cacheKey.length * 2;
      if (feed.trusted && seenEpoch === epoch && seenGeneration === (generations.get(group) ?? 0) && size <= options.maxBytes / 4) {
        drop(cacheKey);
        while (bytes + size > options.maxBytes) {
          const oldest = entries.keys().next().value;
          if (oldest === undefined) break;
          drop(oldest);
        }
        entries.set(cacheKey, { group, page, bytes: size, until: now + options.ttlMs });
        bytes += size;
        let keys = keysByGroup.get(group);
        if (!keys) keysByGroup.set(group, (keys = new Set()));
        keys.add(cacheKey);
      }
      return page;
    },

    settle: () => feed.settle(),

    nextChange(userId, kind) {
      if (!enabled) return null;
      feed.start();
      if (!feed.trusted) return null;
      const group = `${CODE[kind]}:${userId}`;
      let resolve!: () => void;
      const changed = new Promise<void>((r) => (resolve = r));
      let set = waiters.get(group);
      if (!set) waiters.set(group, (set = new Set()));
      set.add(resolve);
      return {
        changed,
        cancel() {
          const current = waiters.get(group);
          current?.delete(resolve);
          if (current?.size === 0) waiters.delete(group);
        },
      };
    },

    stats() {
      return { entries: entries.size, bytes, hits, misses, shared, enabled: feed.trusted };
    },

    close() {
      feed.close();
    },
  };
}

/** For the OpenAPI document of every cached page. */
export const notModified = {
  304: { description: "Not modified: the If-None-Match ETag is the page's current one (no body)" },
} as const;

/** RFC 9110 If-None-Match: weak comparison, `*` matches any current representation. */
export function noneMatch(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  if (header.trim() === "*") return true;
  const bare = (tag: string) => (tag.startsWith("W/") ? tag.slice(2) : tag);
  return header.split(",").some((tag) => bare(tag.trim()) === bare(etag));
}

/**
 * Answers a GET through the page cache: the page's JSON with its ETag, or 304 when the client's
 * If-None-Match already names it. Clients may keep the page but must revalidate (`private,
 * no-cache`). `served`, per route:
 * - `keep` and `then`, for a route that does something on every read, cached or not: `keep` takes
 *   what it needs from the rendered value (kept with the page), `then` runs with it before the
 *   answer goes out;
 * - `etag`: the resource's own version as the ETag (clients send it back in If-Match), instead of
 *   a hash of the body.
 */
export async function cachedPage<T, M = never>(
  c: Context<AppEnv>,
  kind: PageKind,
  render: () => Promise<T>,
  served?: { keep?: (value: T) => M; then?: (kept: M) => Promise<unknown> | undefined; etag?: (value: T) => string },
): Promise<TypedResponse<JSONParsed<T>, 200, "json">> {
  const url = c.req.url;
  const query = url.indexOf("?");
  const key = query === -1 ? c.req.path : c.req.path + url.slice(query);
  // `served`'s functions take the route's T, which is what render() gives the cache.
  const page = await c.get("pages").get(c.get("scope").userId, kind, key, render, served as RenderOptions | undefined);
  if (served?.then) await served.then(page.meta as M);
  c.header("ETag", page.etag);
  c.header("Cache-Control", "private, no-cache");
  // The page is `render()`'s value in JSON, exactly what c.json would have sent.
  const response = noneMatch(c.req.header("if-none-match"), page.etag)
    ? c.body(null, 304)
    : c.body(page.body, 200, { "Content-Type": "application/json" });
  return response as unknown as TypedResponse<JSONParsed<T>, 200, "json">;
}
