import { and, arrayContains, asc, count, eq, or, sql } from "drizzle-orm";
import { knowledgeDocuments } from "../../../db/schema";
import type { Executor } from "../../database/client";
import { queryRows } from "../../database/client";
import { notFound } from "../../errors";
import { afterCursor, newestFirst, toPage } from "../../lib/pagination";
import { toDocument, toSummary, type KnowledgeDocument, type KnowledgeSummary } from "./document";

/**
 * The knowledge base is shared reference material (not user-owned): any signed-in user and any
 * sandbox's MCP token may read it. Reads never write.
 */

const summaryColumns = {
  id: knowledgeDocuments.id,
  slug: knowledgeDocuments.slug,
  category: knowledgeDocuments.category,
  title: knowledgeDocuments.title,
  description: knowledgeDocuments.description,
  tags: knowledgeDocuments.tags,
  applicability: knowledgeDocuments.applicability,
  version: knowledgeDocuments.version,
  source: knowledgeDocuments.source,
  createdAt: knowledgeDocuments.createdAt,
  updatedAt: knowledgeDocuments.updatedAt,
};

export async function listKnowledge(
  db: Executor,
  q: { limit: number; cursor?: string | undefined; category?: string | undefined; tags?: string[] | undefined },
) {
  const rows = await db
    .select(summaryColumns)
    .from(knowledgeDocuments)
    .where(
      and(
        q.category ? eq(knowledgeDocuments.category, q.category) : undefined,
        q.tags?.length ? arrayContains(knowledgeDocuments.tags, q.tags) : undefined,
        afterCursor(q.cursor, knowledgeDocuments),
      ),
    )
    .orderBy(...newestFirst(knowledgeDocuments))
    .limit(q.limit + 1);
  return toPage(rows, q.limit, toSummary);
}

/** By id or by slug (agents remember slugs; both are unique). */
export async function getKnowledge(db: Executor, idOrSlug: string): Promise<KnowledgeDocument> {
  const [row] = await db
    .select()
    .from(knowledgeDocuments)
    .where(or(eq(knowledgeDocuments.id, idOrSlug), eq(knowledgeDocuments.slug, idOrSlug)))
    .limit(1);
  if (!row) throw notFound("Knowledge document", idOrSlug);
  return toDocument(row);
}

export async function knowledgeCategories(db: Executor): Promise<Array<{ category: string; count: number }>> {
  const rows = await db
    .select({ category: knowledgeDocuments.category, count: count() })
    .from(knowledgeDocuments)
    .groupBy(knowledgeDocuments.category)
    .orderBy(asc(knowledgeDocuments.category));
  return rows.map((r) => ({ category: r.category, count: Number(r.count) }));
}

export type SearchHit = KnowledgeSummary & { score: number; snippet: string };

/** Below this word similarity a title or description does not count as a fuzzy match. */
const TRIGRAM_THRESHOLD = 0.35;

/**
 * Ranked search. Full-text (websearch syntax: quoted phrases, OR, -exclusion) over the weighted
 * title/description/content vector, ranked by ts_rank_cd; plus pg_trgm word similarity on title
 * and description, which finds short and misspelled queries ("postgress", "kubernets") that
 * stemming cannot; plus an exact tag match. The score adds the three, so a document matching
 * both ways ranks first.
 */
export async function searchKnowledge(
  db: Executor,
  q: { q: string; limit: number; category?: string | undefined },
): Promise<SearchHit[]> {
  const text = q.q.trim();
  const rows = await queryRows<{
    id: string;
    slug: string;
    category: string;
    title: string;
    description: string;
    tags: string[];
    applicability: Record<string, unknown>;
    version: number;
    source: string;
    created_at: string | Date;
    updated_at: string | Date;
    score: number | string;
    snippet: string | null;
  }>(
    db,
    // The snippet highlights any of the words (an AND query found only in the title would
    // otherwise give the content's first lines).
    sql`with query as (select websearch_to_tsquery('english', ${text}) as tsq,
                              to_tsquery('english', coalesce(nullif(replace(querytree(websearch_to_tsquery('english', ${text})), '&', '|'), 'T'), '')) as any_word),
        scored as (
          select d.*, query.any_word,
            case when d.search_vector @@ query.tsq then ts_rank_cd(d.search_vector, query.tsq, 32) else 0 end as text_rank,
            greatest(word_similarity(${text}, d.title), word_similarity(${text}, d.description) * 0.8) as fuzzy,
            case when lower(${text}) = any(d.tags) then 1 else 0 end as tag_hit
          from knowledge_documents d, query
          where ${q.category ? sql`d.category = ${q.category} and` : sql``}
            (d.search_vector @@ query.tsq
             or word_similarity(${text}, d.title) >= ${TRIGRAM_THRESHOLD}
             or word_similarity(${text}, d.description) >= ${TRIGRAM_THRESHOLD}
             or lower(${text}) = any(d.tags))
        )
        select id, slug, category, title, description, tags, applicability, version, source, created_at, updated_at,
          (text_rank * 2 + fuzzy + tag_hit * 0.5)::float8 as score,
          case when text_rank > 0
            then ts_headline('english', content, any_word, 'MaxFragments=1, MaxWords=30, MinWords=10, StartSel=**, StopSel=**')
            else left(description, 240) end as snippet
        from scored
        order by score desc, id
        limit ${q.limit}`,
  );
  return rows.map((r) => ({
    ...toSummary({
      id: r.id,
      slug: r.slug,
      category: r.category,
      title: r.title,
      description: r.description,
      tags: r.tags,
      applicability: r.applicability,
      version: r.version,
      source: r.source,
      createdAt: new Date(r.created_at),
      updatedAt: new Date(r.updated_at),
    }),
    score: Math.round(Number(r.score) * 10_000) / 10_000,
    snippet: r.snippet ?? "",
  }));
}

/** Documents of some categories, for onboarding's template matching (small: the whole category). */
export async function documentsOfCategories(db: Executor, categories: string[]) {
  return db
    .select()
    .from(knowledgeDocuments)
    .where(or(...categories.map((c) => eq(knowledgeDocuments.category, c))))
    .orderBy(asc(knowledgeDocuments.slug));
}
