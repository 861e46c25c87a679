import { createHash, createHmac } from "node:crypto";
import { and, desc, eq, gt, lte, ne } from "drizzle-orm";
import { mcpTokens, sandboxes } from "../../../db/schema";
import type { Db } from "../../database/client";
import { notFound } from "../../errors";
import { newId } from "../../lib/ids";

/**
 * Per-sandbox MCP tokens. The plaintext exists only in the sandbox's opencode.json (mode 0600,
 * inside the sandbox); the database keeps its SHA-256 (and the row id it is derived from). A token is good for the sandbox it was
 * issued to, while that sandbox exists (rows cascade away with it) and is not being deleted,
 * while its owner still owns it, and until expires_at.
 */

export const MCP_TOKEN_PREFIX = "wmcp_";

export const hashMcpToken = (token: string) => createHash("sha256").update(token).digest("hex");

/**
 * The token of a row, derived from its id with a server secret: the database alone (a backup,
 * a read replica) cannot produce a token, while Warren can write the same token into a
 * sandbox's configuration again without storing it.
 */
export function deriveMcpToken(secret: string, tokenId: string): string {
  return `${MCP_TOKEN_PREFIX}${createHmac("sha256", secret).update(`warren-mcp-token:${tokenId}`).digest("base64url")}`;
}

export type IssuedMcpToken = { token: string; expiresAt: Date; tokenId: string };

/**
 * The sandbox's MCP token. `rotate` (every start) revokes the sandbox's earlier tokens and
 * issues a new one, so a token from a previous run dies with it. Without it (configuration
 * written into a running sandbox) the current token is written again if it still has more than
 * half its life, so rewriting the files changes no bytes; else a new one is added and the
 * agent's current token lives on until it expires.
 */
export async function issueMcpToken(
  db: Db,
  input: { userId: string; sandboxId: string; ttlMs: number; now: Date; rotate: boolean; secret: string },
): Promise<IssuedMcpToken> {
  return db.transaction(async (tx) => {
    const [owned] = await tx
      .select({ id: sandboxes.id })
      .from(sandboxes)
      .where(and(eq(sandboxes.id, input.sandboxId), eq(sandboxes.userId, input.userId)))
      .for("update");
    if (!owned) throw notFound("Sandbox", input.sandboxId);
    if (!input.rotate) {
      const [current] = await tx
        .select({ id: mcpTokens.id, expiresAt: mcpTokens.expiresAt, tokenHash: mcpTokens.tokenHash })
        .from(mcpTokens)
        .where(and(eq(mcpTokens.sandboxId, input.sandboxId), eq(mcpTokens.userId, input.userId), gt(mcpTokens.expiresAt, new Date(input.now.getTime() + input.ttlMs / 2))))
        .orderBy(desc(mcpTokens.expiresAt))
        .limit(1);
      const again = current && deriveMcpToken(input.secret, current.id);
      // After a change of AUTH_SECRET the derivation no longer matches: issue a new token instead.
      if (current && again && hashMcpToken(again) === current.tokenHash) return { token: again, expiresAt: current.expiresAt, tokenId: current.id };
    }
    await tx
      .delete(mcpTokens)
      .where(and(eq(mcpTokens.sandboxId, input.sandboxId), input.rotate ? undefined : lte(mcpTokens.expiresAt, input.now)));
    const tokenId = newId("mcpToken");
    const token = deriveMcpToken(input.secret, tokenId);
    const expiresAt = new Date(input.now.getTime() + input.ttlMs);
    await tx.insert(mcpTokens).values({
      id: tokenId,
      sandboxId: input.sandboxId,
      userId: input.userId,
      tokenHash: hashMcpToken(token),
      expiresAt,
      createdAt: input.now,
    });
    return { token, expiresAt, tokenId };
  });
}

export type McpCaller = { userId: string; sandboxId: string; tokenId: string };

/**
 * The caller a token stands for, or null: unknown, expired, issued for another sandbox than the
 * one the request names, or whose sandbox is gone, being deleted or no longer its owner's.
 */
export async function verifyMcpToken(db: Db, input: { token: string; sandboxId: string; now: Date }): Promise<McpCaller | null> {
  if (!input.token.startsWith(MCP_TOKEN_PREFIX) || input.token.length > 200) return null;
  const [row] = await db
    .select({ id: mcpTokens.id, userId: mcpTokens.userId, sandboxId: mcpTokens.sandboxId })
    .from(mcpTokens)
    .innerJoin(sandboxes, and(eq(sandboxes.id, mcpTokens.sandboxId), eq(sandboxes.userId, mcpTokens.userId)))
    .where(
      and(
        eq(mcpTokens.tokenHash, hashMcpToken(input.token)),
        eq(mcpTokens.sandboxId, input.sandboxId),
        gt(mcpTokens.expiresAt, input.now),
        ne(sandboxes.status, "deleting"),
      ),
    );
  return row ? { userId: row.userId, sandboxId: row.sandboxId, tokenId: row.id } : null;
}
