import { createRoute, z } from "@hono/zod-openapi";
import { authSecurity, createRouter, errorResponses } from "../lib/openapi";
import { PageQuery, pageOf } from "../lib/pagination";
import { getKnowledge, knowledgeCategories, listKnowledge, searchKnowledge } from "../services/knowledge/queries";

const json = <T extends z.ZodTypeAny>(schema: T, description: string) => ({ description, content: { "application/json": { schema } } });

const slugLike = z.string().regex(/^[a-z0-9][a-z0-9-]{0,99}$/, { error: "must be lowercase letters, digits and dashes" });

export const KnowledgeSummary = z
  .object({
    id: z.string(),
    slug: z.string(),
    category: z.string(),
    title: z.string(),
    description: z.string(),
    tags: z.array(z.string()),
    applicability: z.record(z.string(), z.unknown()).openapi({ description: "projectTypes, languages, frameworks it applies to" }),
    version: z.number().int(),
    source: z.string().openapi({ description: "Which seed folder it came from" }),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi("KnowledgeSummary");

const KnowledgeDocument = KnowledgeSummary.extend({
  content: z.string().openapi({ description: "Markdown (without its front matter)" }),
  frontMatter: z.record(z.string(), z.unknown()),
}).openapi("KnowledgeDocument");

const ListQuery = PageQuery.extend({
  category: slugLike.optional().openapi({ param: { name: "category", in: "query" }, description: "Only this category" }),
  tag: z
    .string()
    .max(500)
    .optional()
    .transform((v, ctx) => {
      if (v === undefined) return undefined;
      const tags = v.split(",").map((t) => t.trim().toLowerCase()).filter(Boolean);
      if (tags.length === 0 || tags.length > 10 || tags.some((t) => t.length > 60)) {
        ctx.addIssue({ code: "custom", message: "must be 1–10 comma-separated tags of at most 60 characters" });
        return z.NEVER;
      }
      return tags;
    })
    .openapi({ param: { name: "tag", in: "query" }, description: "Only documents with all these tags (comma-separated)", type: "string" }),
});

const SearchQuery = z.object({
  q: z.string().trim().min(1, { error: "must not be empty" }).max(200).openapi({ param: { name: "q", in: "query" }, example: "fastapi tests" }),
  limit: z.coerce.number().int().min(1).max(50).default(10).openapi({ param: { name: "limit", in: "query" }, description: "1–50" }),
  category: slugLike.optional().openapi({ param: { name: "category", in: "query" } }),
});

const SearchHit = KnowledgeSummary.extend({
  score: z.number().openapi({ description: "Full-text rank plus trigram similarity; higher is better" }),
  snippet: z.string().openapi({ description: "Matching passage, matches in **bold**" }),
}).openapi("KnowledgeSearchHit");

const IdParam = z.object({
  id: z.string().min(1).max(200).openapi({ param: { name: "id", in: "path" }, description: "Document id or slug" }),
});

/** The shared knowledge base, readable by every signed-in user (not user-owned: no 404 by owner). */
export function knowledgeRoutes() {
  return createRouter()
    .openapi(
      createRoute({
        method: "get",
        path: "/knowledge",
        tags: ["Knowledge"],
        summary: "Knowledge documents, newest first (filter by category and tags)",
        security: authSecurity,
        request: { query: ListQuery },
        responses: { 200: json(pageOf(KnowledgeSummary, "KnowledgePage"), "A page of documents"), ...errorResponses() },
      }),
      async (c) => {
        const q = c.req.valid("query");
        return c.json(await listKnowledge(c.get("scope").db, { limit: q.limit, cursor: q.cursor, category: q.category, tags: q.tag }), 200);
      },
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/knowledge/search",
        tags: ["Knowledge"],
        summary: "Ranked search: PostgreSQL full text plus trigram similarity for short or misspelled queries",
        security: authSecurity,
        request: { query: SearchQuery },
        responses: { 200: json(z.object({ data: z.array(SearchHit) }).openapi("KnowledgeSearch"), "Best matches first"), ...errorResponses() },
      }),
      async (c) => c.json({ data: await searchKnowledge(c.get("scope").db, c.req.valid("query")) }, 200),
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/knowledge/categories",
        tags: ["Knowledge"],
        summary: "Categories with how many documents each holds",
        security: authSecurity,
        responses: {
          200: json(z.object({ data: z.array(z.object({ category: z.string(), count: z.number().int() })) }).openapi("KnowledgeCategories"), "Categories"),
          ...errorResponses(),
        },
      }),
      async (c) => c.json({ data: await knowledgeCategories(c.get("scope").db) }, 200),
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/knowledge/{id}",
        tags: ["Knowledge"],
        summary: "One document with its content, by id or slug",
        security: authSecurity,
        request: { params: IdParam },
        responses: { 200: json(KnowledgeDocument, "The document"), ...errorResponses(404) },
      }),
      async (c) => c.json(await getKnowledge(c.get("scope").db, c.req.valid("param").id), 200),
    );
}
