import { createRoute, z } from "@hono/zod-openapi";
import { MANAGED_DIRECTORIES } from "../services/agent-config/render";
import { authSecurity, createRouter, errorResponses } from "../lib/openapi";
import { applyOnboarding, type SandboxFileWriter } from "../services/onboarding/apply";
import { MODEL_PREFERENCES, Requirements } from "../services/onboarding/requirements";
import { generate, getOnboarding, recommend, recordRequirements, skipOnboarding, startOnboarding } from "../services/onboarding/session";
import { ONBOARDING_STATUSES } from "../services/onboarding/state-machine";
import { workloadFilesLoader } from "../services/sandboxes/workload-files";
import type { SandboxRuntime } from "../services/sandboxes/runtime";
import type { McpSettings } from "../services/knowledge/sandbox-mcp";
import { IdParam } from "./sandbox-schemas";

const json = <T extends z.ZodTypeAny>(schema: T, description: string) => ({ description, content: { "application/json": { schema } } });

const ModelChoice = z
  .object({
    providerId: z.string(),
    modelId: z.string(),
    name: z.string(),
    contextWindow: z.number().nullable(),
    maxOutput: z.number().nullable(),
    inputPrice: z.number().nullable().openapi({ description: "USD per million input tokens" }),
    outputPrice: z.number().nullable().openapi({ description: "USD per million output tokens" }),
    reason: z.string(),
  })
  .openapi("ModelChoice");

const Recommendations = z
  .object({
    preference: z.enum(MODEL_PREFERENCES),
    primary: ModelChoice.nullable(),
    small: ModelChoice.nullable(),
    providers: z.array(z.string()).openapi({ description: "The caller's providers that were considered" }),
    considered: z.number().int(),
    notes: z.array(z.string()),
  })
  .openapi("ModelRecommendations");

const Generated = z
  .object({
    config: z.record(z.string(), z.unknown()).openapi({ description: "opencode.json keys (model, small_model)" }),
    agentsMd: z.string(),
    files: z.array(z.object({ type: z.enum(["agent", "command"]), name: z.string(), extension: z.literal("md"), content: z.string() })),
    sources: z.array(z.string()).openapi({ description: "Slugs of the knowledge templates used" }),
  })
  .openapi("OnboardingGenerated");

const Onboarding = z
  .object({
    id: z.string(),
    sandboxId: z.string(),
    status: z.enum(ONBOARDING_STATUSES),
    requirements: Requirements.nullable(),
    recommendations: Recommendations.nullable(),
    generated: Generated.nullable(),
    applied: z.boolean().openapi({ description: "An applied layer is written into the sandbox on every start" }),
    errorMessage: z.string().nullable(),
    appliedAt: z.string().nullable(),
    version: z.number().int(),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi("OnboardingSession");

const ApplyResult = Onboarding.extend({
  written: z.boolean().openapi({ description: "Written into the running sandbox now (false: it is stopped and gets them on start)" }),
  paths: z.array(z.string()).openapi({ description: "Files of the layer, relative to the sandbox's HOME" }),
}).openapi("OnboardingApplyResult");

const RecommendBody = z.object({ preference: z.enum(MODEL_PREFERENCES).optional() }).strict().openapi("OnboardingRecommend");

const base = "/sandboxes/{id}/onboarding";
const tags = ["Onboarding"];

/** Guided onboarding of one sandbox; every route is the sandbox owner's only (others get 404). */
export function onboardingRoutes(rt: SandboxRuntime, mcp: McpSettings) {
  // The agent-configuration path into a running sandbox; it repeats the agent's MCP token.
  const load = workloadFilesLoader({ db: rt.db, keyring: rt.keyring, logger: rt.logger, now: rt.now, mcp });
  const writer: SandboxFileWriter = {
    load: (userId, sandboxId) => load(userId, sandboxId, { rotateMcpToken: false }),
    write: (sandboxId, files) => rt.driver.writeFiles(sandboxId, files, { replaceDirectories: MANAGED_DIRECTORIES }),
  };
  const post = (path: string, summary: string) =>
    createRoute({ method: "post", path: `${base}${path}`, tags, summary, security: authSecurity, request: { params: IdParam }, responses: { 200: json(Onboarding, "The session"), ...errorResponses(404, 409) } });

  return createRouter()
    .openapi(
      createRoute({ method: "get", path: base, tags, summary: "The sandbox's onboarding session", security: authSecurity, request: { params: IdParam }, responses: { 200: json(Onboarding, "The session"), ...errorResponses(404) } }),
      async (c) => c.json(await getOnboarding(c.get("scope"), c.req.valid("param").id), 200),
    )
    .openapi(
      createRoute({
        method: "post",
        path: base,
        tags,
        summary: "Start onboarding (pending); repeating it returns the existing session",
        security: authSecurity,
        request: { params: IdParam },
        responses: { 201: json(Onboarding, "Started"), 200: json(Onboarding, "Already started"), ...errorResponses(404) },
      }),
      async (c) => {
        const { session, created } = await startOnboarding(c.get("scope"), c.req.valid("param").id);
        return c.json(session, created ? 201 : 200);
      },
    )
    .openapi(
      createRoute({
        method: "put",
        path: `${base}/requirements`,
        tags,
        summary: "Record what the project is (→ gathering); clears earlier recommendations and generated files",
        security: authSecurity,
        request: { params: IdParam, body: { required: true, content: { "application/json": { schema: Requirements } } } },
        responses: { 200: json(Onboarding, "The session"), ...errorResponses(404, 409) },
      }),
      async (c) => c.json(await recordRequirements(c.get("scope"), c.req.valid("param").id, c.req.valid("json")), 200),
    )
    .openapi(
      createRoute({
        method: "post",
        path: `${base}/recommendations`,
        tags,
        summary: "Recommend a primary and a small model from the caller's own providers (cheapest, fastest or largest-context)",
        security: authSecurity,
        request: { params: IdParam, body: { required: false, content: { "application/json": { schema: RecommendBody } } } },
        responses: { 200: json(Onboarding, "The session, with recommendations"), ...errorResponses(404, 409) },
      }),
      async (c) => {
        // The body is optional: an empty request uses the preference recorded with the requirements.
        const body = c.req.header("content-length") === "0" || !c.req.header("content-type") ? {} : c.req.valid("json");
        return c.json(await recommend(c.get("scope"), c.get("vault"), c.req.valid("param").id, body?.preference), 200);
      },
    )
    .openapi(post("/generate", "Generate opencode.json, AGENTS.md and agent and command files from knowledge templates (→ generating)"), async (c) =>
      c.json(await generate(c.get("scope"), c.get("vault"), c.req.valid("param").id), 200),
    )
    .openapi(
      createRoute({
        method: "post",
        path: `${base}/apply`,
        tags,
        summary: "Apply the generated files to the sandbox (→ applying → completed); idempotent",
        security: authSecurity,
        request: { params: IdParam },
        responses: { 200: json(ApplyResult, "Applied (or failed, with errorMessage)"), ...errorResponses(404, 409) },
      }),
      async (c) => c.json(await applyOnboarding(c.get("scope"), writer, c.req.valid("param").id), 200),
    )
    .openapi(post("/skip", "Skip onboarding (→ skipped)"), async (c) => c.json(await skipOnboarding(c.get("scope"), c.req.valid("param").id), 200));
}
