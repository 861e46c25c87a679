import { sql } from "drizzle-orm";
import { boolean, check, integer, jsonb, pgEnum, pgTable, text, uniqueIndex } from "drizzle-orm/pg-core";
import { ownerId, user } from "./auth";
import { createdAt, updatedAt } from "./columns";
import { containerFlavors, resourceTiers } from "./containers";
import { providers } from "./providers";

export const themeMode = pgEnum("theme_mode", ["light", "dark", "system"]);

/** One row per user, created on first write (reads of an absent row return defaults). */
export const userPreferences = pgTable(
  "user_preferences",
  {
    userId: text("user_id")
      .primaryKey()
      .references(() => user.id, { onDelete: "cascade" }),
    themeMode: themeMode("theme_mode").notNull().default("system"),
    themePreset: text("theme_preset").notNull().default("default"),
    autoRefreshInterval: integer("auto_refresh_interval").notNull().default(30),
    inAppNotifications: boolean("in_app_notifications").notNull().default(true),
    systemNotifications: boolean("system_notifications").notNull().default(false),
    defaultResourceTierId: text("default_resource_tier_id").references(() => resourceTiers.id, {
      onDelete: "set null",
    }),
    defaultFlavorId: text("default_flavor_id").references(() => containerFlavors.id, { onDelete: "set null" }),
    defaultAddonIds: jsonb("default_addon_ids").$type<string[]>().notNull().default([]),
    defaultAgentId: text("default_agent_id"),
    // Per-user default model (the legacy system had one global default shared by everyone).
    defaultProviderId: text("default_provider_id").references(() => providers.id, { onDelete: "set null" }),
    defaultModelId: text("default_model_id"),
    version: integer("version").notNull().default(1),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [check("user_preferences_refresh_range", sql`${t.autoRefreshInterval} between 5 and 300`)],
);

/** The user's OpenCode configuration: opencode.json and the global AGENTS.md. */
export const userAgentConfig = pgTable("user_agent_config", {
  userId: text("user_id")
    .primaryKey()
    .references(() => user.id, { onDelete: "cascade" }),
  config: jsonb("config").$type<Record<string, unknown>>().notNull().default({}),
  agentsMd: text("agents_md").notNull().default(""),
  version: integer("version").notNull().default(1),
  createdAt: createdAt(),
  updatedAt: updatedAt(),
});

export const agentFileType = pgEnum("agent_file_type", ["agent", "command", "tool", "plugin"]);
export const agentFileExtension = pgEnum("agent_file_extension", ["md", "ts", "js"]);

export const userAgentFiles = pgTable(
  "user_agent_files",
  {
    id: text("id").primaryKey(),
    userId: ownerId(),
    type: agentFileType("type").notNull(),
    name: text("name").notNull(),
    extension: agentFileExtension("extension").notNull(),
    content: text("content").notNull(),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [uniqueIndex("user_agent_files_user_type_name_uq").on(t.userId, t.type, t.name)],
);
