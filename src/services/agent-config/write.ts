import { and, count, eq } from "drizzle-orm";
import { userAgentConfig, userAgentFiles } from "../../../db/schema";
import type { ServiceContext } from "../../context";
import type { Tx } from "../../database/client";
import { AppError, notFound } from "../../errors";
import { assertIfMatch, type IfMatch } from "../../lib/etag";
import { newId } from "../../lib/ids";
import { recordActivity } from "../activity/record";
import { applyToSandboxes, type SandboxConfigApplier, type SandboxSync } from "./apply";
import { assertMaxBytes, byteLength, LIMITS, readAgentConfig, toAgentFile, type AgentConfigDocument, type AgentFile } from "./document";
import { EXTENSIONS_BY_TYPE, type AgentFileExtension, type AgentFileType } from "./names";

/**
 * One version covers the whole configuration (opencode.json, AGENTS.md and every file), since a
 * sandbox receives it as one set. Each write locks the user's config row (created on first write
 * with ON CONFLICT, so two first writes cannot race), checks If-Match against it, and bumps it.
 */
async function lockForWrite(tx: Tx, ctx: ServiceContext, ifMatch: IfMatch) {
  await tx.insert(userAgentConfig).values({ userId: ctx.userId, version: 0 }).onConflictDoNothing();
  const [locked] = await tx.select().from(userAgentConfig).where(eq(userAgentConfig.userId, ctx.userId)).for("update");
  if (!locked) throw new Error("user_agent_config row vanished inside its own transaction");
  if (ifMatch && !ifMatch.any && !ifMatch.versions.includes(locked.version)) {
    const current = await readAgentConfig(tx, ctx.userId, false);
    assertIfMatch(ifMatch, locked.version, () => current, "Your agent configuration");
  }
  return locked;
}

async function bumpVersion(tx: Tx, ctx: ServiceContext, version: number, changes: Partial<typeof userAgentConfig.$inferInsert> = {}) {
  const [row] = await tx
    .update(userAgentConfig)
    .set({ ...changes, version: version + 1, updatedAt: ctx.now() })
    .where(eq(userAgentConfig.userId, ctx.userId))
    .returning({ version: userAgentConfig.version });
  return row!.version;
}

export type AgentConfigInput = { config?: Record<string, unknown> | undefined; agentsMd?: string | undefined };

/** PUT (both fields) and PATCH (either): a given field replaces the stored one as a whole. */
export async function updateAgentConfig(
  ctx: ServiceContext,
  applier: SandboxConfigApplier,
  input: AgentConfigInput,
  ifMatch: IfMatch,
): Promise<AgentConfigDocument & { sandboxes: SandboxSync }> {
  if (input.config !== undefined) assertMaxBytes("config", byteLength(JSON.stringify(input.config)), LIMITS.configBytes);
  if (input.agentsMd !== undefined) assertMaxBytes("agentsMd", byteLength(input.agentsMd), LIMITS.agentsMdBytes);
  const doc = await ctx.db.transaction(async (tx) => {
    const locked = await lockForWrite(tx, ctx, ifMatch);
    const changes: Partial<typeof userAgentConfig.$inferInsert> = {};
    if (input.config !== undefined) changes.config = input.config;
    if (input.agentsMd !== undefined) changes.agentsMd = input.agentsMd;
    const version = await bumpVersion(tx, ctx, locked.version, changes);
    // Names of the fields only: opencode.json may hold a pasted provider key.
    await recordActivity(tx, ctx, {
      action: "agent_config.update",
      entityType: "agent_config",
      entityId: ctx.userId,
      metadata: { fields: Object.keys(changes).sort(), version },
    });
    return readAgentConfig(tx, ctx.userId, false);
  });
  return { ...doc, sandboxes: await applyToSandboxes(ctx, applier) };
}

export type AgentFileInput = { content: string; extension?: AgentFileExtension | undefined };

/** Creates or replaces one file. */
export async function putAgentFile(
  ctx: ServiceContext,
  applier: SandboxConfigApplier,
  type: AgentFileType,
  name: string,
  input: AgentFileInput,
  ifMatch: IfMatch,
): Promise<{ file: AgentFile; created: boolean; version: number; sandboxes: SandboxSync }> {
  const allowed = EXTENSIONS_BY_TYPE[type];
  const extension = input.extension ?? allowed[0]!;
  if (!allowed.includes(extension)) {
    const message = `a ${type} must be a ${allowed.map((e) => `.${e}`).join(" or ")} file`;
    throw new AppError("VALIDATION_FAILED", `Invalid body field "extension": ${message}`, {
      fields: [{ location: "body", field: "extension", message, code: "invalid_extension" }],
    });
  }
  assertMaxBytes("content", byteLength(input.content), LIMITS.fileBytes);

  const result = await ctx.db.transaction(async (tx) => {
    const locked = await lockForWrite(tx, ctx, ifMatch);
    const where = and(eq(userAgentFiles.userId, ctx.userId), eq(userAgentFiles.type, type), eq(userAgentFiles.name, name));
    const [existing] = await tx.select({ id: userAgentFiles.id }).from(userAgentFiles).where(where);
    if (!existing) {
      // Counted under the config row lock, so parallel creates cannot overshoot the limit.
      const [counted] = await tx.select({ n: count() }).from(userAgentFiles).where(eq(userAgentFiles.userId, ctx.userId));
      const n = counted?.n ?? 0;
      if (n >= LIMITS.filesPerUser) {
        throw new AppError("LIMIT_EXCEEDED", `You have ${n} agent files; the limit is ${LIMITS.filesPerUser}`, { limit: LIMITS.filesPerUser });
      }
    }
    const now = ctx.now();
    const [row] = existing
      ? await tx.update(userAgentFiles).set({ content: input.content, extension, updatedAt: now }).where(where).returning()
      : await tx
          .insert(userAgentFiles)
          .values({ id: newId("agentFile"), userId: ctx.userId, type, name, extension, content: input.content, createdAt: now, updatedAt: now })
          .returning();
    if (!row) throw new Error("agent file write returned no row");
    const version = await bumpVersion(tx, ctx, locked.version);
    await recordActivity(tx, ctx, {
      action: "agent_file.put",
      entityType: "agent_file",
      entityId: row.id,
      metadata: { type, name, extension, created: !existing, sizeBytes: byteLength(input.content), version },
    });
    return { file: toAgentFile(row, true), created: !existing, version };
  });
  return { ...result, sandboxes: await applyToSandboxes(ctx, applier) };
}

export async function deleteAgentFile(
  ctx: ServiceContext,
  applier: SandboxConfigApplier,
  type: AgentFileType,
  name: string,
  ifMatch: IfMatch,
): Promise<{ version: number; sandboxes: SandboxSync }> {
  const version = await ctx.db.transaction(async (tx) => {
    // Not found before the precondition: another user's file name must read the same as a missing one.
    const where = and(eq(userAgentFiles.userId, ctx.userId), eq(userAgentFiles.type, type), eq(userAgentFiles.name, name));
    const [existing] = await tx.select({ id: userAgentFiles.id }).from(userAgentFiles).where(where);
    if (!existing) throw notFound(`Agent ${type}`, name);
    const locked = await lockForWrite(tx, ctx, ifMatch);
    const deleted = await tx.delete(userAgentFiles).where(where).returning({ id: userAgentFiles.id });
    if (deleted.length === 0) throw notFound(`Agent ${type}`, name);
    const next = await bumpVersion(tx, ctx, locked.version);
    await recordActivity(tx, ctx, { action: "agent_file.delete", entityType: "agent_file", entityId: existing.id, metadata: { type, name, version: next } });
    return next;
  });
  return { version, sandboxes: await applyToSandboxes(ctx, applier) };
}
