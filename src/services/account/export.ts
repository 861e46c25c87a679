import { and, asc, eq, inArray, sql, type SQL } from "drizzle-orm";
import type { PgColumn } from "drizzle-orm/pg-core";
import {
  chatMessageParts,
  chatMessages,
  chatSessions,
  providers,
  sandboxes,
  user,
  userAgentConfig,
  userAgentFiles,
} from "../../../db/schema";
import type { ServiceContext } from "../../context";
import type { Executor } from "../../database/client";
import { notFound } from "../../errors";
import { toAgentFile } from "../agent-config/document";
import { activityEntries } from "../activity/export";
import { recordActivity } from "../activity/record";
import { streamOf } from "../activity/stream";
import type { Vault } from "../credentials/vault";
import { readPreferences } from "../preferences/document";
import { viewsOf } from "../sandboxes/queries";
import { signInMethods } from "./overview";
import { toProfile } from "./profile";

/** Rows per query: an export holds about one batch (plus one message page) in memory. */
export const ACCOUNT_EXPORT_BATCH = 200;

/**
 * Keyset position of a row: its created_at at full (microsecond) precision, as text, and its id.
 * A JS Date keeps milliseconds only, and comparing against a truncated time would skip or
 * repeat rows created within the same millisecond.
 */
type Keyed<T> = { row: T; at: string };

const keyAt = (col: PgColumn) => sql<string>`to_char(${col} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;

/** Oldest first, after the last key seen: (created_at, id) > (last.at, last.id). */
function after<T extends { id: string }>(last: Keyed<T> | undefined, cols: { createdAt: PgColumn; id: PgColumn }): SQL | undefined {
  if (!last) return undefined;
  return sql`(${cols.createdAt}, ${cols.id}) > (${last.at}::timestamptz, ${last.row.id})`;
}

async function* batches<T extends { id: string }>(fetch: (last: Keyed<T> | undefined) => Promise<Array<Keyed<T>>>): AsyncGenerator<T[]> {
  let last: Keyed<T> | undefined;
  for (;;) {
    const rows = await fetch(last);
    if (rows.length === 0) return;
    yield rows.map((r) => r.row);
    if (rows.length < ACCOUNT_EXPORT_BATCH) return;
    last = rows[rows.length - 1];
  }
}

/** Writes `"name": [ … ]` from batches of items, one chunk per batch. */
async function* jsonArray(name: string, items: AsyncGenerator<unknown[]>, leading = ","): AsyncGenerator<string> {
  yield `${leading}\n${JSON.stringify(name)}: [`;
  let first = true;
  for await (const batch of items) {
    let out = "";
    for (const item of batch) {
      out += (first ? "\n" : ",\n") + JSON.stringify(item);
      first = false;
    }
    if (out) yield out;
  }
  yield "\n]";
}

const iso = (d: Date | null) => d?.toISOString() ?? null;

function messageView(m: typeof chatMessages.$inferSelect, parts: Array<typeof chatMessageParts.$inferSelect>) {
  return {
    id: m.id,
    externalMessageId: m.externalMessageId,
    role: m.role,
    status: m.status,
    text: m.text,
    content: m.content,
    toolCalls: m.toolCalls,
    toolResults: m.toolResults,
    thinking: m.thinking,
    modelProvider: m.modelProvider,
    modelId: m.modelId,
    agentId: m.agentId,
    inputTokens: m.inputTokens,
    outputTokens: m.outputTokens,
    reasoningTokens: m.reasoningTokens,
    cacheReadTokens: m.cacheReadTokens,
    cacheWriteTokens: m.cacheWriteTokens,
    cost: m.cost,
    errorMessage: m.errorMessage,
    createdAt: m.createdAt.toISOString(),
    completedAt: iso(m.completedAt),
    updatedAt: m.updatedAt.toISOString(),
    // Removed in the agent and kept as a tombstone (hidden from the chat API): never passed off as live.
    removedAt: iso(m.removedAt),
    // Only some of its parts have arrived from the agent so far (the chat API does not list it yet).
    isStub: m.isStub,
    parts: parts.map((p) => ({ id: p.id, externalPartId: p.externalPartId, type: p.type, position: p.position, content: p.content })),
  };
}

/** One chat session as `{…session, "messages": [ … ]}`, the messages streamed in pages. */
async function* chatSessionChunks(db: Executor, s: typeof chatSessions.$inferSelect): AsyncGenerator<string> {
  const { userId: _owner, ...fields } = s;
  const head = JSON.stringify({
    ...fields,
    lastMessageAt: iso(s.lastMessageAt),
    lastSyncedAt: iso(s.lastSyncedAt),
    externalUpdatedAt: iso(s.externalUpdatedAt),
    createdAt: s.createdAt.toISOString(),
    updatedAt: s.updatedAt.toISOString(),
  });
  // Re-open the object to append the messages array without holding the messages.
  yield `${head.slice(0, -1)},"messages":[`;
  let first = true;
  for await (const page of batches<typeof chatMessages.$inferSelect>((last) =>
    db
      .select({ row: chatMessages, at: keyAt(chatMessages.createdAt) })
      .from(chatMessages)
      .where(and(eq(chatMessages.sessionId, s.id), eq(chatMessages.userId, s.userId), after(last, chatMessages)))
      .orderBy(asc(chatMessages.createdAt), asc(chatMessages.id))
      .limit(ACCOUNT_EXPORT_BATCH),
  )) {
    const parts = await db
      .select()
      .from(chatMessageParts)
      .where(
        inArray(
          chatMessageParts.messageId,
          page.map((m) => m.id),
        ),
      )
      .orderBy(asc(chatMessageParts.messageId), asc(chatMessageParts.position), asc(chatMessageParts.id));
    const byMessage = new Map<string, Array<typeof chatMessageParts.$inferSelect>>();
    for (const p of parts) byMessage.set(p.messageId, [...(byMessage.get(p.messageId) ?? []), p]);
    let out = "";
    for (const m of page) {
      out += (first ? "\n" : ",\n") + JSON.stringify(messageView(m, byMessage.get(m.id) ?? []));
      first = false;
    }
    yield out;
  }
  yield "]}";
}

async function* documentChunks(ctx: ServiceContext, vault: Pick<Vault, "listCredentials">, exportedAt: Date): AsyncGenerator<string> {
  const db = ctx.db;
  const userId = ctx.userId;
  const [me] = await db.select().from(user).where(eq(user.id, userId));
  if (!me) throw notFound("User");
  const [agentConfig] = await db.select().from(userAgentConfig).where(eq(userAgentConfig.userId, userId));

  yield `{\n"format": "warren.account-export/1",\n"exportedAt": ${JSON.stringify(exportedAt.toISOString())}`;
  yield `,\n"profile": ${JSON.stringify(toProfile(me))}`;
  yield `,\n"signInMethods": ${JSON.stringify(await signInMethods(db, userId))}`;
  yield `,\n"preferences": ${JSON.stringify(await readPreferences(db, userId))}`;
  yield `,\n"agentConfig": ${JSON.stringify({
    config: agentConfig?.config ?? {},
    agentsMd: agentConfig?.agentsMd ?? "",
    version: agentConfig?.version ?? 0,
    updatedAt: iso(agentConfig?.updatedAt ?? null),
  })}`;
  yield* jsonArray(
    "agentFiles",
    (async function* () {
      for await (const rows of batches<typeof userAgentFiles.$inferSelect>((last) =>
        db
          .select({ row: userAgentFiles, at: keyAt(userAgentFiles.createdAt) })
          .from(userAgentFiles)
          .where(and(eq(userAgentFiles.userId, userId), after(last, userAgentFiles)))
          .orderBy(asc(userAgentFiles.createdAt), asc(userAgentFiles.id))
          .limit(ACCOUNT_EXPORT_BATCH),
      ))
        yield rows.map((f) => toAgentFile(f, true));
    })(),
  );
  // Metadata only, through the vault: provider, auth type, masked hint, dates. Never a secret.
  yield* jsonArray(
    "credentials",
    (async function* () {
      let cursor: string | undefined;
      for (;;) {
        const page = await vault.listCredentials({ limit: 100, cursor });
        yield page.data;
        if (!page.nextCursor) return;
        cursor = page.nextCursor;
      }
    })(),
  );
  yield* jsonArray(
    "customProviders",
    (async function* () {
      for await (const rows of batches<typeof providers.$inferSelect>((last) =>
        db
          .select({ row: providers, at: keyAt(providers.createdAt) })
          .from(providers)
          .where(and(eq(providers.ownerUserId, userId), after(last, providers)))
          .orderBy(asc(providers.createdAt), asc(providers.id))
          .limit(ACCOUNT_EXPORT_BATCH),
      ))
        yield rows.map(({ ownerUserId: _o, ...p }) => ({ ...p, createdAt: p.createdAt.toISOString(), updatedAt: p.updatedAt.toISOString() }));
    })(),
  );
  yield* jsonArray(
    "sandboxes",
    (async function* () {
      for await (const rows of batches<typeof sandboxes.$inferSelect>((last) =>
        db
          .select({ row: sandboxes, at: keyAt(sandboxes.createdAt) })
          .from(sandboxes)
          .where(and(eq(sandboxes.userId, userId), after(last, sandboxes)))
          .orderBy(asc(sandboxes.createdAt), asc(sandboxes.id))
          .limit(ACCOUNT_EXPORT_BATCH),
      ))
        yield await viewsOf(db, rows);
    })(),
  );

  yield `,\n"chatSessions": [`;
  let firstSession = true;
  for await (const rows of batches<typeof chatSessions.$inferSelect>((last) =>
    db
      .select({ row: chatSessions, at: keyAt(chatSessions.createdAt) })
      .from(chatSessions)
      .where(and(eq(chatSessions.userId, userId), after(last, chatSessions)))
      .orderBy(asc(chatSessions.createdAt), asc(chatSessions.id))
      .limit(ACCOUNT_EXPORT_BATCH),
  )) {
    for (const s of rows) {
      yield firstSession ? "\n" : ",\n";
      firstSession = false;
      yield* chatSessionChunks(db, s);
    }
  }
  yield "\n]";

  yield* jsonArray("activity", activityEntries(ctx, {}));
  yield "\n}\n";
}

/**
 * Everything Warren holds about the caller as one JSON document, streamed: every list is read
 * in keyset batches as the client consumes the body, so the size of the account does not
 * matter. The export is recorded (account.export) before the first byte.
 */
export async function exportAccount(ctx: ServiceContext, vault: Pick<Vault, "listCredentials">): Promise<ReadableStream<Uint8Array>> {
  const exportedAt = ctx.now();
  await ctx.db.transaction((tx) =>
    recordActivity(tx, ctx, { action: "account.export", entityType: "user", entityId: ctx.userId, metadata: { format: "json" } }),
  );
  return streamOf(documentChunks(ctx, vault, exportedAt), (err) =>
    ctx.logger.error({ err: { message: (err as Error).message } }, "account export failed mid-stream"),
  );
}
