import { and, eq, inArray, isNotNull, isNull } from "drizzle-orm";
import { chatSessions } from "../../../db/schema";
import type { ServiceContext } from "../../context";
import type { Db } from "../../database/client";
import { AppError } from "../../errors";
import { recordActivity } from "../activity/record";
import { findOwned } from "../sandboxes/queries";
import type { SandboxRuntime } from "../sandboxes/runtime";
import { agentGet, agentGetIfFound, agentTarget, AgentUnavailableError, type AgentTarget } from "./agent";
import { applyChanges, type Authoritative } from "./ingest";
import { addEvent, emptyChangeSet, messageChange, partChange, sessionChange, type ChangeSet, type SessionChange } from "./opencode-events";
import { findSession, getSession } from "./queries";
import { sql } from "drizzle-orm";
import { ts } from "../../database/client";

/**
 * Reconciliation: what the event stream may have missed (Warren down, a dropped connection) is
 * fetched from the agent's API, and only what changed: GET /session?start=<ms> lists sessions
 * updated since the last reconciliation (minus a margin for clock skew), and only sessions whose
 * time.updated is newer than what Warren holds have their messages fetched. Those messages are
 * applied as the authoritative list for the session: a message Warren has that the agent no
 * longer has (a removal event that was missed) is marked removed, a part is deleted. A session
 * the agent no longer has at all (a session.deleted that was missed) is marked deleted, as that
 * event would have marked it (see markDeletedSessions).
 */

type AgentMessage = { info: unknown; parts: unknown[] };

/** Margin against clock differences between Warren and the sandbox, and same-millisecond updates. */
const SKEW_MS = 60_000;
/**
 * Sessions asked for per GET /session: OpenCode lists 100 unless told otherwise, newest first, and
 * has no next page. A list this long may be cut short, so it never counts as complete.
 */
const LIST_LIMIT = 10_000;

/** `asOf`: the caller's clock just before the request (see Authoritative.asOf). */
export async function sessionChangeSet(target: AgentTarget, externalSessionId: string, info: unknown, asOf: Date, signal?: AbortSignal) {
  const messages = await agentGet<AgentMessage[]>(target, `/session/${encodeURIComponent(externalSessionId)}/message`, signal);
  const set: ChangeSet = emptyChangeSet();
  const s = sessionChange(info);
  if (s) set.sessions.push(s);
  const authoritative: Authoritative = { sessionExternalId: externalSessionId, messages: [], asOf };
  for (const m of Array.isArray(messages) ? messages : []) {
    const change = messageChange(m?.info);
    if (!change || change.sessionExternalId !== externalSessionId) continue;
    set.messages.push(change);
    const partIds: string[] = [];
    for (const p of Array.isArray(m.parts) ? m.parts : []) {
      const part = partChange(p);
      if (part && part.messageExternalId === change.externalId) {
        set.parts.push(part);
        partIds.push(part.externalId);
      }
    }
    authoritative.messages.push({ externalId: change.externalId, partIds });
  }
  return { set, authoritative };
}

export async function reconcileSandbox(
  deps: { db: Db; now: () => Date },
  target: AgentTarget,
  opts: { since: Date | null; signal?: AbortSignal },
): Promise<{ sessions: number; fetched: number; deleted: number }> {
  const startedAt = deps.now();
  const start = opts.since ? `start=${Math.max(0, opts.since.getTime() - SKEW_MS)}&` : "";
  const listed = await agentGet<unknown[]>(target, `/session?${start}limit=${LIST_LIMIT}`, opts.signal);
  const infos = (Array.isArray(listed) ? listed : []).map((info) => ({ info, change: sessionChange(info) })).filter((x) => x.change !== null);
  const known = new Map<string, Date | null>();
  const ids = infos.map((x) => x.change!.externalId);
  for (let i = 0; i < ids.length; i += 500) {
    const rows = await deps.db
      .select({ ext: chatSessions.externalSessionId, updated: chatSessions.externalUpdatedAt, purged: chatSessions.purgedAt })
      .from(chatSessions)
      .where(and(eq(chatSessions.sandboxId, target.sandboxId), inArray(chatSessions.externalSessionId, ids.slice(i, i + 500))));
    for (const r of rows) if (r.ext) known.set(r.ext, r.purged ? new Date(8.64e15) : r.updated);
  }
  let fetched = 0;
  for (const { info, change } of infos) {
    const have = known.get(change!.externalId);
    if (have !== undefined && have !== null && change!.updatedAt && have >= change!.updatedAt) continue;
    const { set, authoritative } = await sessionChangeSet(target, change!.externalId, info, deps.now(), opts.signal);
    await applyChanges(deps.db, target.sandboxId, set, { now: deps.now(), authoritative: [authoritative] });
    fetched++;
  }
  // Without `since` the list above is already every session the agent lists.
  const deleted = await markDeletedSessions(deps, target, opts.since ? null : listed, opts.signal);
  await deps.db.execute(
    sql`insert into chat_sync_state (sandbox_id, last_reconciled_at, updated_at) values (${target.sandboxId}, ${ts(startedAt)}, ${ts(deps.now())})
        on conflict (sandbox_id) do update set last_reconciled_at = excluded.last_reconciled_at, updated_at = excluded.updated_at`,
  );
  return { sessions: infos.length, fetched, deleted };
}

/**
 * Sessions deleted in OpenCode while no Warren instance listened (the session.deleted event was
 * missed) are marked deleted through applyChanges, exactly as that event marks them. Only on
 * evidence, since the status is final:
 * - only sessions the agent itself reported (external_updated_at comes from its record alone:
 *   not imported ones, not stubs) that are still active (archived, deleted, purged: left alone);
 * - only when the agent's list was fetched whole (an error or a cut-short body throws, a full
 *   page is not known to be whole) and is not empty (a fresh or wiped agent store lists nothing;
 *   that is not the user deleting every session);
 * - only when GET /session/:id then answers OpenCode's NotFoundError: the list holds the agent's
 *   current project only (a `git init` in the workspace starts another), so absent from it is
 *   not yet deleted; and a session the stream wrote after the list was fetched is found there.
 */
async function markDeletedSessions(deps: { db: Db; now: () => Date }, target: AgentTarget, full: unknown[] | null, signal?: AbortSignal) {
  const active = await deps.db
    .select({ ext: chatSessions.externalSessionId })
    .from(chatSessions)
    .where(
      and(
        eq(chatSessions.sandboxId, target.sandboxId),
        eq(chatSessions.source, "opencode"),
        eq(chatSessions.status, "active"),
        isNull(chatSessions.purgedAt),
        isNotNull(chatSessions.externalUpdatedAt),
        isNotNull(chatSessions.externalSessionId),
      ),
    );
  if (active.length === 0) return 0;
  const listed = full ?? (await agentGet<unknown>(target, `/session?limit=${LIST_LIMIT}`, signal));
  if (!Array.isArray(listed) || listed.length === 0 || listed.length >= LIST_LIMIT) return 0;
  const present = new Set(listed.map((info) => sessionChange(info)?.externalId));
  const gone: SessionChange[] = [];
  for (const { ext } of active) {
    if (present.has(ext!)) continue;
    if ((await agentGetIfFound(target, `/session/${encodeURIComponent(ext!)}`, signal)) !== null) continue;
    gone.push({ externalId: ext!, title: null, updatedAt: null, createdAt: null, deleted: true, archived: false });
  }
  if (gone.length > 0) await applyChanges(deps.db, target.sandboxId, { ...emptyChangeSet(), sessions: gone }, { now: deps.now() });
  return gone.length;
}

/** POST …/sessions/:sessionId/sync — fetch one session and all its messages from the agent now. */
export async function forceSyncSession(ctx: ServiceContext, rt: SandboxRuntime, sandboxId: string, sessionId: string) {
  const sandbox = await findOwned(ctx.db, ctx, sandboxId);
  const session = await findSession(ctx, sessionId, sandbox.id);
  if (sandbox.status !== "running") {
    throw new AppError("INVALID_STATE", `The sandbox is ${sandbox.status}; start it to sync its chats`, { status: sandbox.status });
  }
  let target: AgentTarget;
  try {
    target = await agentTarget(rt, sandbox.id);
  } catch (err) {
    if (err instanceof AgentUnavailableError) throw new AppError("INVALID_STATE", `Cannot reach the sandbox's agent: ${err.message}`, { status: sandbox.status });
    throw err;
  }
  const ext = session.externalSessionId!;
  try {
    const asOf = ctx.now();
    const info = await agentGet<unknown>(target, `/session/${encodeURIComponent(ext)}`);
    const { set, authoritative } = await sessionChangeSet(target, ext, info, asOf);
    await applyChanges(ctx.db, sandbox.id, set, { now: ctx.now(), authoritative: [authoritative] });
  } catch (err) {
    if (err instanceof AgentUnavailableError || (err as Error).name === "TimeoutError") {
      throw new AppError("SERVICE_UNAVAILABLE", `The sandbox's agent did not answer: ${(err as Error).message}`);
    }
    throw err;
  }
  await ctx.db.transaction((tx) => recordActivity(tx, ctx, { action: "chat_session.sync", entityType: "chat_session", entityId: session.id }));
  return getSession(ctx, session.id, sandbox.id);
}

export { addEvent };
