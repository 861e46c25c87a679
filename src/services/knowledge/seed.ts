import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { basename, join, relative, resolve } from "node:path";
import { and, eq, inArray, notInArray } from "drizzle-orm";
import { knowledgeDocuments } from "../../../db/schema";
import type { Db } from "../../database/client";
import { newId } from "../../lib/ids";
import { DocumentError, parseDocument, type ParsedDocument } from "./document";

/** The starter set shipped with Warren (knowledge/ at the repository root). */
export const DEFAULT_KNOWLEDGE_DIR = resolve(import.meta.dir, "..", "..", "..", "knowledge");

export type SeedFile = { path: string; slug: string; hash: string; doc: ParsedDocument };
export type SeedProblem = { path: string; message: string };
export type SeedResult = {
  created: string[];
  updated: string[];
  unchanged: string[];
  pruned: string[];
};

export type SeedProgress =
  | { phase: "read"; total: number }
  | { phase: "write"; done: number; total: number; slug: string };

export class SeedError extends Error {
  override name = "SeedError";
  constructor(readonly problems: SeedProblem[]) {
    super(`${problems.length} knowledge file(s) are invalid; nothing was written:\n${problems.map((p) => `  ${p.path}: ${p.message}`).join("\n")}`);
  }
}

/** Slug of a file without one in its front matter: its file name, dashed (unique per run). */
export function slugFromPath(path: string): string {
  return basename(path)
    .replace(/\.md$/i, "")
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 100);
}

/**
 * Reads and validates every *.md file under `dir` (README.md files excepted: they describe the
 * folder). Every problem is collected, so one run reports them all.
 */
export function readKnowledgeDir(dir: string): { files: SeedFile[]; problems: SeedProblem[] } {
  const root = resolve(dir);
  const paths = Array.from(new Bun.Glob("**/*.md").scanSync({ cwd: root, onlyFiles: true }))
    .filter((p) => !/(^|\/)readme\.md$/i.test(p))
    .sort();
  const files: SeedFile[] = [];
  const problems: SeedProblem[] = [];
  const seen = new Map<string, string>();
  for (const path of paths) {
    const text = readFileSync(join(root, path), "utf8");
    try {
      const doc = parseDocument(text);
      const slug = doc.frontMatter.slug ?? slugFromPath(path);
      const other = seen.get(slug);
      if (other) {
        problems.push({ path, message: `slug "${slug}" is also used by ${other}` });
        continue;
      }
      seen.set(slug, path);
      files.push({ path: relative(root, join(root, path)), slug, hash: createHash("sha256").update(text).digest("hex"), doc });
    } catch (err) {
      if (!(err instanceof DocumentError)) throw err;
      problems.push({ path, message: err.message });
    }
  }
  return { files, problems };
}

/**
 * Idempotent seeding: a new slug is inserted, a changed file (by content hash) updates its row
 * and bumps its version (unless the front matter pins one), an unchanged file writes nothing.
 * All files are validated before anything is written, and everything is written in one
 * transaction: a bad file leaves the base as it was. With `prune`, documents of the same
 * `source` whose file is gone are deleted (other sources are never touched).
 */
export async function seedKnowledge(
  db: Db,
  options: { dir: string; source: string; prune?: boolean; now?: () => Date; onProgress?: (p: SeedProgress) => void },
): Promise<SeedResult> {
  const { files, problems } = readKnowledgeDir(options.dir);
  if (problems.length > 0) throw new SeedError(problems);
  options.onProgress?.({ phase: "read", total: files.length });
  const now = options.now ?? (() => new Date());
  const result: SeedResult = { created: [], updated: [], unchanged: [], pruned: [] };

  await db.transaction(async (tx) => {
    const slugs = files.map((f) => f.slug);
    const existing = new Map(
      slugs.length === 0
        ? []
        : (
            await tx
              .select({ slug: knowledgeDocuments.slug, hash: knowledgeDocuments.contentHash, version: knowledgeDocuments.version })
              .from(knowledgeDocuments)
              .where(inArray(knowledgeDocuments.slug, slugs))
              .for("update")
          ).map((r) => [r.slug, r]),
    );
    let done = 0;
    for (const file of files) {
      const before = existing.get(file.slug);
      const fm = file.doc.frontMatter;
      if (before && before.hash === file.hash) {
        result.unchanged.push(file.slug);
      } else {
        const values = {
          category: fm.category,
          title: fm.title,
          description: fm.description,
          content: file.doc.body,
          frontMatter: file.doc.raw,
          tags: [...new Set(fm.tags)],
          applicability: fm.applicability,
          version: fm.version ?? (before ? before.version + 1 : 1),
          contentHash: file.hash,
          source: options.source,
          updatedAt: now(),
        };
        await tx
          .insert(knowledgeDocuments)
          .values({ id: newId("knowledge"), slug: file.slug, createdAt: now(), ...values })
          .onConflictDoUpdate({ target: knowledgeDocuments.slug, set: values });
        (before ? result.updated : result.created).push(file.slug);
      }
      options.onProgress?.({ phase: "write", done: ++done, total: files.length, slug: file.slug });
    }
    if (options.prune) {
      const gone = await tx
        .delete(knowledgeDocuments)
        .where(and(eq(knowledgeDocuments.source, options.source), slugs.length ? notInArray(knowledgeDocuments.slug, slugs) : undefined))
        .returning({ slug: knowledgeDocuments.slug });
      result.pruned.push(...gone.map((g) => g.slug).sort());
    }
  });
  for (const list of Object.values(result)) list.sort();
  return result;
}
