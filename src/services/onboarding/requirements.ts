import { z } from "@hono/zod-openapi";

export const PROJECT_TYPES = ["web-app", "api", "cli", "library", "data", "mobile", "other"] as const;
export const MODEL_PREFERENCES = ["cheapest", "fastest", "largest-context"] as const;
export type ModelPreference = (typeof MODEL_PREFERENCES)[number];

const token = z
  .string()
  .trim()
  .toLowerCase()
  .regex(/^[a-z0-9][a-z0-9+#._-]{0,39}$/, { error: "must be a short name like typescript, c++ or next.js" });

// Commands are text for AGENTS.md and command templates: never run by Warren, but they land in
// Markdown, so no line breaks.
const command = z
  .string()
  .trim()
  .min(1)
  .max(200)
  .regex(/^[^\r\n]*$/, { error: "must be one line" });

export const Requirements = z
  .object({
    projectType: z.enum(PROJECT_TYPES),
    languages: z.array(token).min(1, { error: "name at least one language" }).max(10),
    frameworks: z.array(token).max(20).default([]),
    description: z.string().trim().max(2000).default(""),
    modelPreference: z.enum(MODEL_PREFERENCES).default("cheapest"),
    testCommand: command.optional(),
    buildCommand: command.optional(),
    lintCommand: command.optional(),
  })
  .strict()
  .openapi("OnboardingRequirements");
export type Requirements = z.infer<typeof Requirements>;
