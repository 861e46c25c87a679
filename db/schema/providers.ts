import { sql } from "drizzle-orm";
import {
  index,
  integer,
  jsonb,
  numeric,
  pgEnum,
  pgTable,
  primaryKey,
  text,
  uniqueIndex,
} from "drizzle-orm/pg-core";
import { ownerId, user } from "./auth";
import { createdAt, tz, updatedAt } from "./columns";

export const providerAuthType = pgEnum("provider_auth_type", ["api_key", "oauth", "device_flow"]);

/**
 * AI providers. Built-in ones (owner_user_id null) come from the seeded models.dev snapshot and
 * the catalogue refresh job; custom OpenAI-compatible ones belong to one user and are visible to
 * that user only.
 */
export const providers = pgTable(
  "providers",
  {
    id: text("id").primaryKey(),
    ownerUserId: text("owner_user_id").references(() => user.id, { onDelete: "cascade" }),
    name: text("name").notNull(),
    authTypes: jsonb("auth_types").$type<Array<"api_key" | "oauth" | "device_flow">>().notNull().default(["api_key"]),
    envVars: jsonb("env_vars").$type<string[]>().notNull().default([]),
    npmPackage: text("npm_package"),
    baseUrl: text("base_url"),
    docUrl: text("doc_url"),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    index("providers_owner_idx").on(t.ownerUserId),
    uniqueIndex("providers_owner_name_uq")
      .on(t.ownerUserId, t.name)
      .where(sql`${t.ownerUserId} is not null`),
  ],
);

export const providerModels = pgTable(
  "provider_models",
  {
    providerId: text("provider_id")
      .notNull()
      .references(() => providers.id, { onDelete: "cascade" }),
    id: text("id").notNull(),
    name: text("name").notNull(),
    contextWindow: integer("context_window"),
    maxOutput: integer("max_output"),
    /** USD per million tokens. */
    inputPrice: numeric("input_price", { precision: 12, scale: 6, mode: "number" }),
    outputPrice: numeric("output_price", { precision: 12, scale: 6, mode: "number" }),
    cacheReadPrice: numeric("cache_read_price", { precision: 12, scale: 6, mode: "number" }),
    capabilities: jsonb("capabilities").$type<Record<string, unknown>>().notNull().default({}),
    releaseDate: text("release_date"),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [primaryKey({ columns: [t.providerId, t.id] })],
);

/** The last good copy of the public catalogue: when and from where it was fetched. */
export const providerCatalogState = pgTable("provider_catalog_state", {
  source: text("source").primaryKey(),
  fetchedAt: tz("fetched_at"),
  etag: text("etag"),
  providerCount: integer("provider_count").notNull().default(0),
  modelCount: integer("model_count").notNull().default(0),
  lastError: text("last_error"),
  lastAttemptAt: tz("last_attempt_at"),
});

/**
 * Per-user credentials. Secret columns hold vault envelopes (version, key id, IV, ciphertext,
 * tag), bound by AAD to user, provider and row; key_id duplicates the envelope's key id so that
 * rotation can find rows still on an old key without decrypting anything.
 */
export const providerCredentials = pgTable(
  "provider_credentials",
  {
    id: text("id").primaryKey(),
    userId: ownerId(),
    providerId: text("provider_id")
      .notNull()
      .references(() => providers.id, { onDelete: "cascade" }),
    authType: providerAuthType("auth_type").notNull(),
    secret: text("secret").notNull(),
    refreshSecret: text("refresh_secret"),
    keyId: text("key_id").notNull(),
    hint: text("hint").notNull(),
    baseUrl: text("base_url"),
    tokenExpiresAt: tz("token_expires_at"),
    scopes: jsonb("scopes").$type<string[]>(),
    lastUsedAt: tz("last_used_at"),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    uniqueIndex("provider_credentials_user_provider_uq").on(t.userId, t.providerId),
    index("provider_credentials_key_idx").on(t.keyId),
  ],
);

export const deviceFlowStatus = pgEnum("device_flow_status", [
  "pending",
  "completed",
  "expired",
  "denied",
  "cancelled",
  "error",
]);

/** OAuth device flows belong to the user who started them; the device code is a vault envelope. */
export const oauthDeviceFlows = pgTable(
  "oauth_device_flows",
  {
    id: text("id").primaryKey(),
    userId: ownerId(),
    providerId: text("provider_id")
      .notNull()
      .references(() => providers.id, { onDelete: "cascade" }),
    deviceCode: text("device_code").notNull(),
    keyId: text("key_id").notNull(),
    userCode: text("user_code").notNull(),
    verificationUri: text("verification_uri").notNull(),
    intervalSeconds: integer("interval_seconds").notNull().default(5),
    expiresAt: tz("expires_at").notNull(),
    status: deviceFlowStatus("status").notNull().default("pending"),
    errorMessage: text("error_message"),
    lastPolledAt: tz("last_polled_at"),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [index("oauth_device_flows_user_idx").on(t.userId), index("oauth_device_flows_expires_idx").on(t.expiresAt)],
);
