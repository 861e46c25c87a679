import { index, integer, jsonb, pgTable, primaryKey, text } from "drizzle-orm/pg-core";
import { ownerId } from "./auth";
import { createdAt, tz } from "./columns";

/**
 * Named leases for work that must run once across instances (leader election for jobs). A
 * holder renews before expires_at; a dead holder's lease simply lapses.
 */
export const leases = pgTable("leases", {
  name: text("name").primaryKey(),
  holder: text("holder").notNull(),
  expiresAt: tz("expires_at").notNull(),
  acquiredAt: tz("acquired_at").notNull().defaultNow(),
});

/** Stored responses for `Idempotency-Key` retries, per user and route. */
export const idempotencyKeys = pgTable(
  "idempotency_keys",
  {
    userId: ownerId(),
    key: text("key").notNull(),
    scope: text("scope").notNull(),
    requestHash: text("request_hash").notNull(),
    responseStatus: integer("response_status"),
    responseBody: jsonb("response_body").$type<unknown>(),
    createdAt: createdAt(),
    expiresAt: tz("expires_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.userId, t.scope, t.key] }), index("idempotency_keys_expires_idx").on(t.expiresAt)],
);
