import { sql } from "drizzle-orm";
import { index, integer, jsonb, pgTable, text, uniqueIndex } from "drizzle-orm/pg-core";
import { ownerId } from "./auth";
import { createdAt, tsvector, tz, updatedAt } from "./columns";
import { sandboxes } from "./sandboxes";

/** Knowledge documents, seeded from Markdown files by an idempotent command. */
export const knowledgeDocuments = pgTable(
  "knowledge_documents",
  {
    id: text("id").primaryKey(),
    slug: text("slug").notNull().unique(),
    category: text("category").notNull(),
    title: text("title").notNull(),
    description: text("description").notNull().default(""),
    content: text("content").notNull(),
    frontMatter: jsonb("front_matter").$type<Record<string, unknown>>().notNull().default({}),
    tags: text("tags").array().notNull().default(sql`'{}'::text[]`),
    applicability: jsonb("applicability").$type<Record<string, unknown>>().notNull().default({}),
    version: integer("version").notNull().default(1),
    /** Hash of the source file, so re-seeding an unchanged file writes nothing. */
    contentHash: text("content_hash").notNull(),
    source: text("source").notNull().default("seed"),
    searchVector: tsvector("search_vector").generatedAlwaysAs(
      sql`setweight(to_tsvector('english', coalesce("title", '')), 'A') || setweight(to_tsvector('english', coalesce("description", '')), 'B') || setweight(to_tsvector('english', coalesce("content", '')), 'C')`,
    ),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    index("knowledge_documents_category_idx").on(t.category),
    // Keyset pages of the whole base, newest first (lib/pagination).
    index("knowledge_documents_created_idx").on(t.createdAt.desc(), t.id.desc()),
    index("knowledge_documents_tags_idx").using("gin", t.tags),
    index("knowledge_documents_search_idx").using("gin", t.searchVector),
    // Trigram similarity for short or misspelled queries (pg_trgm, created by the first migration).
    index("knowledge_documents_title_trgm_idx").using("gin", sql`${t.title} gin_trgm_ops`),
    index("knowledge_documents_description_trgm_idx").using("gin", sql`${t.description} gin_trgm_ops`),
  ],
);

/**
 * Short-lived tokens a sandbox's agent uses to reach the MCP endpoint. Only a hash is stored;
 * the token dies with its sandbox (cascade) and at expires_at.
 */
export const mcpTokens = pgTable(
  "mcp_tokens",
  {
    id: text("id").primaryKey(),
    sandboxId: text("sandbox_id")
      .notNull()
      .references(() => sandboxes.id, { onDelete: "cascade" }),
    userId: ownerId(),
    tokenHash: text("token_hash").notNull(),
    expiresAt: tz("expires_at").notNull(),
    createdAt: createdAt(),
  },
  (t) => [uniqueIndex("mcp_tokens_hash_uq").on(t.tokenHash), index("mcp_tokens_sandbox_idx").on(t.sandboxId)],
);
