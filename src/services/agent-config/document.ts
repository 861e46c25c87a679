import { and, asc, eq } from "drizzle-orm";
import { userAgentConfig, userAgentFiles } from "../../../db/schema";
import type { ServiceContext } from "../../context";
import type { Executor } from "../../database/client";
import { AppError, notFound } from "../../errors";
import { afterCursor, newestFirst, toPage } from "../../lib/pagination";
import type { AgentFileType } from "./names";
import { agentFilePath } from "./render";

export const LIMITS = {
  configBytes: 256 * 1024,
  agentsMdBytes: 256 * 1024,
  fileBytes: 256 * 1024,
  filesPerUser: 200,
} as const;

export type AgentFile = {
  type: AgentFileType;
  name: string;
  extension: "md" | "ts" | "js";
  /** Where the file lands in a sandbox, relative to HOME. */
  path: string;
  sizeBytes: number;
  createdAt: string;
  updatedAt: string;
  /** Only when asked for (include=content) or for a single file. */
  content?: string;
};

export type AgentConfigDocument = {
  config: Record<string, unknown>;
  agentsMd: string;
  files: AgentFile[];
  /** Increases on every change of the config, AGENTS.md or any file; 0 until the first write. */
  version: number;
  updatedAt: string | null;
};

type FileRow = typeof userAgentFiles.$inferSelect;

export function toAgentFile(row: FileRow, includeContent: boolean): AgentFile {
  return {
    type: row.type,
    name: row.name,
    extension: row.extension,
    path: agentFilePath(row.type, row.name, row.extension),
    sizeBytes: Buffer.byteLength(row.content, "utf8"),
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
    ...(includeContent ? { content: row.content } : {}),
  };
}

export const byteLength = (value: string) => Buffer.byteLength(value, "utf8");

/** 413 naming the field: the body as a whole was within MAX_BODY_BYTES, this value is not. */
export function assertMaxBytes(field: string, bytes: number, max: number): void {
  if (bytes <= max) return;
  throw new AppError("PAYLOAD_TOO_LARGE", `Body field "${field}" is ${bytes} bytes; the limit is ${max}`, {
    fields: [{ location: "body", field, message: `must be at most ${max} bytes`, code: "too_big" }],
    maxBytes: max,
  });
}

export async function readAgentConfig(db: Executor, userId: string, includeContent: boolean): Promise<AgentConfigDocument> {
  const [config] = await db.select().from(userAgentConfig).where(eq(userAgentConfig.userId, userId));
  const files = await db
    .select()
    .from(userAgentFiles)
    .where(eq(userAgentFiles.userId, userId))
    .orderBy(asc(userAgentFiles.type), asc(userAgentFiles.name));
  return {
    config: config?.config ?? {},
    agentsMd: config?.agentsMd ?? "",
    files: files.map((f) => toAgentFile(f, includeContent)),
    version: config?.version ?? 0,
    updatedAt: config?.updatedAt.toISOString() ?? null,
  };
}

/** The whole configuration in one document; reading never creates anything. */
export function getAgentConfig(ctx: ServiceContext, options: { includeContent: boolean }) {
  return readAgentConfig(ctx.db, ctx.userId, options.includeContent);
}

export async function getAgentFile(ctx: ServiceContext, type: AgentFileType, name: string): Promise<AgentFile & { version: number }> {
  const [row] = await ctx.db
    .select()
    .from(userAgentFiles)
    .where(and(eq(userAgentFiles.userId, ctx.userId), eq(userAgentFiles.type, type), eq(userAgentFiles.name, name)));
  if (!row) throw notFound(`Agent ${type}`, name);
  const [config] = await ctx.db.select({ version: userAgentConfig.version }).from(userAgentConfig).where(eq(userAgentConfig.userId, ctx.userId));
  return { ...toAgentFile(row, true), version: config?.version ?? 0 };
}

export async function listAgentFiles(
  ctx: ServiceContext,
  query: { type?: AgentFileType | undefined; includeContent: boolean; limit: number; cursor?: string | undefined },
) {
  const rows = await ctx.db
    .select()
    .from(userAgentFiles)
    .where(
      and(
        eq(userAgentFiles.userId, ctx.userId),
        query.type ? eq(userAgentFiles.type, query.type) : undefined,
        afterCursor(query.cursor, userAgentFiles),
      ),
    )
    .orderBy(...newestFirst(userAgentFiles))
    .limit(query.limit + 1);
  return toPage(rows, query.limit, (r) => toAgentFile(r, query.includeContent));
}
