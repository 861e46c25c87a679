import { z } from "zod";
import type { knowledgeDocuments } from "../../../db/schema";

/**
 * A knowledge document on disk: Markdown with a YAML front matter block.
 *
 *   ---
 *   category: project-template
 *   title: TypeScript API on Bun
 *   description: …
 *   tags: [typescript, bun]
 *   applicability: { projectTypes: [api], languages: [typescript], frameworks: [hono] }
 *   ---
 *   Markdown body…
 *
 * Agent patterns carry `agent: {name, description, mode}` and command templates carry
 * `command: {name, description}`: onboarding turns those into OpenCode agent and command files.
 */

const NAME = /^[a-z0-9][a-z0-9-]{0,99}$/;
const word = z.string().trim().toLowerCase().min(1).max(60);

export const Applicability = z
  .object({
    projectTypes: z.array(word).max(20).default([]),
    languages: z.array(word).max(20).default([]),
    frameworks: z.array(word).max(40).default([]),
  })
  .strict();
export type Applicability = z.infer<typeof Applicability>;

export const FrontMatter = z
  .object({
    slug: z.string().regex(NAME, "must be lowercase letters, digits and dashes (1–100)").optional(),
    category: z.string().regex(NAME, "must be lowercase letters, digits and dashes (1–100)"),
    title: z.string().trim().min(1).max(200),
    description: z.string().trim().max(1000).default(""),
    tags: z.array(word).max(30).default([]),
    applicability: Applicability.default({ projectTypes: [], languages: [], frameworks: [] }),
    version: z.number().int().min(1).max(1_000_000).optional(),
    agent: z
      .object({
        name: z.string().regex(NAME),
        description: z.string().trim().min(1).max(500),
        mode: z.enum(["primary", "subagent", "all"]).default("subagent"),
        tools: z.record(z.string(), z.boolean()).optional(),
      })
      .strict()
      .optional(),
    /** Project templates: the usual commands, used in AGENTS.md and command templates. */
    defaults: z
      .object({ testCommand: z.string().max(200), buildCommand: z.string().max(200), lintCommand: z.string().max(200), runCommand: z.string().max(200) })
      .partial()
      .strict()
      .optional(),
    command: z
      .object({
        name: z.string().regex(NAME),
        description: z.string().trim().min(1).max(500),
        agent: z.string().regex(NAME).optional(),
      })
      .strict()
      .optional(),
  })
  .strict();
export type FrontMatter = z.infer<typeof FrontMatter>;

export type ParsedDocument = { frontMatter: FrontMatter; raw: Record<string, unknown>; body: string };

export class DocumentError extends Error {
  override name = "DocumentError";
}

const FENCE = /^---[ \t]*\r?\n([\s\S]*?)\r?\n---[ \t]*(?:\r?\n|$)/;

/** Splits and validates one file; throws DocumentError naming the problem (and field). */
export function parseDocument(text: string): ParsedDocument {
  const source = text.replace(/^\uFEFF/, "");
  const match = FENCE.exec(source);
  if (!match) throw new DocumentError("no front matter: the file must start with a --- block");
  let raw: unknown;
  try {
    // Bun's built-in YAML parser (YAML 1.2): no dependency for a few keys of metadata.
    raw = Bun.YAML.parse(match[1]!);
  } catch (err) {
    throw new DocumentError(`front matter is not valid YAML: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) throw new DocumentError("front matter must be a mapping of keys to values");
  const parsed = FrontMatter.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = issue.path.join(".") || "(front matter)";
    throw new DocumentError(
      issue.code === "unrecognized_keys" ? `front matter field "${issue.keys.join('", "')}" is not a known field` : `front matter field "${field}": ${issue.message}`,
    );
  }
  const body = source.slice(match[0].length).replace(/^\s*\n/, "");
  if (body.trim() === "") throw new DocumentError("the document has no content after its front matter");
  return { frontMatter: parsed.data, raw: raw as Record<string, unknown>, body };
}

type Row = typeof knowledgeDocuments.$inferSelect;

export type KnowledgeSummary = {
  id: string;
  slug: string;
  category: string;
  title: string;
  description: string;
  tags: string[];
  applicability: Record<string, unknown>;
  version: number;
  source: string;
  createdAt: string;
  updatedAt: string;
};

export type KnowledgeDocument = KnowledgeSummary & { content: string; frontMatter: Record<string, unknown> };

export function toSummary(row: Omit<Row, "content" | "frontMatter" | "contentHash" | "searchVector"> & Partial<Row>): KnowledgeSummary {
  return {
    id: row.id,
    slug: row.slug,
    category: row.category,
    title: row.title,
    description: row.description,
    tags: row.tags,
    applicability: row.applicability,
    version: row.version,
    source: row.source,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}

export function toDocument(row: Row): KnowledgeDocument {
  return { ...toSummary(row), content: row.content, frontMatter: row.frontMatter };
}
