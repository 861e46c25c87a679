import { integer, jsonb, pgEnum, pgTable, text, uniqueIndex } from "drizzle-orm/pg-core";
import { ownerId } from "./auth";
import { createdAt, tz, updatedAt } from "./columns";
import { sandboxes } from "./sandboxes";

export const onboardingStatus = pgEnum("onboarding_status", [
  "pending",
  "gathering",
  "generating",
  "applying",
  "completed",
  "skipped",
  "failed",
]);

/** One onboarding session per sandbox, moved only along the guarded state machine. */
export const onboardingSessions = pgTable(
  "onboarding_sessions",
  {
    id: text("id").primaryKey(),
    sandboxId: text("sandbox_id")
      .notNull()
      .references(() => sandboxes.id, { onDelete: "cascade" }),
    userId: ownerId(),
    status: onboardingStatus("status").notNull().default("pending"),
    requirements: jsonb("requirements").$type<Record<string, unknown>>(),
    recommendations: jsonb("recommendations").$type<Record<string, unknown>>(),
    generated: jsonb("generated").$type<Record<string, unknown>>(),
    /** The configuration layer last applied to the sandbox; written into it again on every start. */
    applied: jsonb("applied").$type<Record<string, unknown>>(),
    errorMessage: text("error_message"),
    appliedAt: tz("applied_at"),
    version: integer("version").notNull().default(1),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [uniqueIndex("onboarding_sessions_sandbox_uq").on(t.sandboxId)],
);
