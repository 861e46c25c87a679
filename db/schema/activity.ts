import { boolean, index, jsonb, pgEnum, pgTable, text } from "drizzle-orm/pg-core";
import { user } from "./auth";
import { createdAt, tz } from "./columns";

export const actorType = pgEnum("actor_type", ["user", "system"]);

/**
 * Who did what. Written by service verbs in the same transaction as the change. The action list
 * is closed in code (src/services/activity), not in the database, so adding one needs no enum
 * migration. On account deletion user_id is set null and the row marked anonymised.
 */
export const activityLog = pgTable(
  "activity_log",
  {
    id: text("id").primaryKey(),
    userId: text("user_id").references(() => user.id, { onDelete: "set null" }),
    actorType: actorType("actor_type").notNull().default("user"),
    action: text("action").notNull(),
    entityType: text("entity_type"),
    entityId: text("entity_id"),
    reason: text("reason"),
    requestId: text("request_id"),
    ipAddress: text("ip_address"),
    userAgent: text("user_agent"),
    metadata: jsonb("metadata").$type<Record<string, unknown>>().notNull().default({}),
    anonymized: boolean("anonymized").notNull().default(false),
    createdAt: createdAt(),
  },
  (t) => [
    index("activity_log_user_created_idx").on(t.userId, t.createdAt.desc(), t.id.desc()),
    index("activity_log_user_entity_idx").on(t.userId, t.entityType, t.entityId),
    // Retention walks the oldest rows first.
    index("activity_log_created_idx").on(t.createdAt, t.id),
  ],
);

/** Archived activity with every piece of personal data removed. */
export const activityLogArchive = pgTable(
  "activity_log_archive",
  {
    id: text("id").primaryKey(),
    actorType: actorType("actor_type").notNull().default("user"),
    action: text("action").notNull(),
    entityType: text("entity_type"),
    entityId: text("entity_id"),
    reason: text("reason"),
    metadata: jsonb("metadata").$type<Record<string, unknown>>().notNull().default({}),
    originalCreatedAt: tz("original_created_at").notNull(),
    archivedAt: tz("archived_at").notNull().defaultNow(),
  },
  (t) => [
    index("activity_log_archive_created_idx").on(t.originalCreatedAt),
    index("activity_log_archive_action_idx").on(t.action),
  ],
);
