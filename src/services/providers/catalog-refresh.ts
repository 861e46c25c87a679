import { eq, sql } from "drizzle-orm";
import { providerCatalogState, providerModels, providers } from "../../../db/schema";
import { queryRows, type Db } from "../../database/client";
import type { Logger } from "../../lib/logger";
import { parseCatalog } from "./catalog-format";
import { excerpt } from "../../lib/text";

/**
 * Background refresh of the built-in catalogue from models.dev. Bounded by a timeout, never on a
 * request path, and all-or-nothing: a failed or implausible fetch leaves the last good copy in
 * the database untouched and records the error in provider_catalog_state. Providers and models
 * are upserted, never deleted (a user's credential or default model may point at them), and a
 * provider's auth types, which models.dev does not carry, are left as they are.
 */
export const CATALOG_SOURCE = "models.dev";
/** A catalogue this small is a broken answer, not the real one. */
const MIN_PROVIDERS = 1;
// One refresh at a time across instances: the loser of the try-lock simply skips its turn.
const REFRESH_LOCK_KEY = 7_240_117_005;

export type RefreshResult =
  | { status: "updated"; providers: number; models: number }
  | { status: "not_modified" }
  | { status: "skipped" }
  | { status: "failed"; error: string };

export async function refreshCatalog(deps: {
  db: Db;
  url: string;
  timeoutMs: number;
  now?: () => Date;
  fetch?: typeof fetch;
}): Promise<RefreshResult> {
  const now = deps.now ?? (() => new Date());
  const [state] = await deps.db.select().from(providerCatalogState).where(eq(providerCatalogState.source, CATALOG_SOURCE));
  let parsed: ReturnType<typeof parseCatalog>;
  let etag: string | null = null;
  try {
    const res = await (deps.fetch ?? fetch)(deps.url, {
      headers: { accept: "application/json", ...(state?.etag ? { "if-none-match": state.etag } : {}) },
      signal: AbortSignal.timeout(deps.timeoutMs),
    });
    if (res.status === 304) {
      await recordState(deps.db, { lastAttemptAt: now(), fetchedAt: now(), lastError: null });
      return { status: "not_modified" };
    }
    if (!res.ok) throw new Error(`catalogue answered HTTP ${res.status}`);
    etag = res.headers.get("etag");
    parsed = parseCatalog(await res.json());
    if (parsed.providers.length < MIN_PROVIDERS) throw new Error(`catalogue has ${parsed.providers.length} providers`);
  } catch (err) {
    const error = describe(err);
    await recordState(deps.db, { lastAttemptAt: now(), lastError: error });
    return { status: "failed", error };
  }

  const applied = await deps.db.transaction(async (tx) => {
    const [lock] = await queryRows<{ ok: boolean }>(tx, sql`select pg_try_advisory_xact_lock(${REFRESH_LOCK_KEY}) as ok`);
    if (!lock?.ok) return false;
    const at = now();
    for (const p of parsed.providers) {
      await tx
        .insert(providers)
        .values({ ...p, ownerUserId: null, createdAt: at, updatedAt: at })
        .onConflictDoUpdate({
          target: providers.id,
          // Never take over a custom provider that happens to share the id.
          where: sql`${providers.ownerUserId} is null`,
          set: {
            name: p.name,
            envVars: p.envVars,
            npmPackage: p.npmPackage,
            baseUrl: sql`coalesce(${p.baseUrl}, ${providers.baseUrl})`,
            docUrl: p.docUrl,
            updatedAt: at,
          },
        });
    }
    for (let i = 0; i < parsed.models.length; i += 200) {
      const chunk = parsed.models.slice(i, i + 200).map((m) => ({ ...m, createdAt: at, updatedAt: at }));
      await tx
        .insert(providerModels)
        .values(chunk)
        .onConflictDoUpdate({
          target: [providerModels.providerId, providerModels.id],
          set: {
            name: sql`excluded.name`,
            contextWindow: sql`excluded.context_window`,
            maxOutput: sql`excluded.max_output`,
            inputPrice: sql`excluded.input_price`,
            outputPrice: sql`excluded.output_price`,
            cacheReadPrice: sql`excluded.cache_read_price`,
            capabilities: sql`excluded.capabilities`,
            releaseDate: sql`excluded.release_date`,
            updatedAt: at,
          },
        });
    }
    await recordState(tx, {
      fetchedAt: at,
      lastAttemptAt: at,
      lastError: null,
      etag,
      providerCount: parsed.providers.length,
      modelCount: parsed.models.length,
    });
    return true;
  });
  return applied ? { status: "updated", providers: parsed.providers.length, models: parsed.models.length } : { status: "skipped" };
}

function describe(err: unknown): string {
  if (err instanceof Error) return excerpt(err.name === "TimeoutError" ? "timed out" : err.message, 300);
  return "unknown error";
}

type StateChange = Partial<Omit<typeof providerCatalogState.$inferInsert, "source">>;
async function recordState(db: Pick<Db, "insert">, change: StateChange) {
  await db
    .insert(providerCatalogState)
    .values({ source: CATALOG_SOURCE, ...change })
    .onConflictDoUpdate({ target: providerCatalogState.source, set: change });
}

/**
 * Refreshes now (in the background) and then every `intervalMs`; never awaited by start-up.
 * Returns a stop function. Several instances are fine: one wins the lock per round.
 */
export function scheduleCatalogRefresh(deps: { db: Db; logger: Logger; url: string; timeoutMs: number; intervalMs?: number }): () => void {
  const run = async () => {
    try {
      const result = await refreshCatalog(deps);
      if (result.status === "failed") deps.logger.warn({ url: deps.url, error: result.error }, "provider catalogue refresh failed; keeping the last good copy");
      else deps.logger.info({ url: deps.url, ...result }, "provider catalogue refreshed");
    } catch (err) {
      deps.logger.warn({ err }, "provider catalogue refresh failed; keeping the last good copy");
    }
  };
  const first = setTimeout(run, 5_000);
  const timer = setInterval(run, deps.intervalMs ?? 6 * 60 * 60 * 1000);
  first.unref?.();
  timer.unref?.();
  return () => {
    clearTimeout(first);
    clearInterval(timer);
  };
}
