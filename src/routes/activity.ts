import { createRoute, z } from "@hono/zod-openapi";
import { cachedPage, notModified } from "../lib/page-cache";
import { authSecurity, createRouter, errorResponses } from "../lib/openapi";
import { PageQuery, pageOf } from "../lib/pagination";
import { exportActivity } from "../services/activity/export";
import { activityStats, listActivity } from "../services/activity/query";
import { ACTIVITY_ACTIONS } from "../services/activity/record";

export const ActivityEntrySchema = z
  .object({
    id: z.string().openapi({ example: "act_01jd3k7x9q8m2v5n4b6c1t0rzy" }),
    action: z.string().openapi({ example: "sandbox.start", description: "entity.verb, from a closed list" }),
    actorType: z.enum(["user", "system"]),
    entityType: z.string().nullable(),
    entityId: z.string().nullable(),
    reason: z.string().nullable(),
    requestId: z.string().nullable(),
    ipAddress: z.string().nullable(),
    userAgent: z.string().nullable(),
    metadata: z.record(z.string(), z.unknown()),
    createdAt: z.string().datetime(),
  })
  .openapi("ActivityEntry");

const instant = (name: string, description: string) =>
  z
    .string()
    .datetime({ offset: true, error: "must be an ISO 8601 date-time such as 2026-11-21T12:00:00Z" })
    .optional()
    .openapi({ param: { name, in: "query" }, description, example: "2026-11-21T00:00:00Z" });

const Range = {
  from: instant("from", "Entries at or after this time"),
  to: instant("to", "Entries before this time"),
};

function checkRange(q: { from?: string | undefined; to?: string | undefined }, ctx: z.RefinementCtx) {
  if (q.from && q.to && new Date(q.to) <= new Date(q.from)) {
    ctx.addIssue({ code: "custom", path: ["to"], message: "must be later than from" });
  }
}

const Filters = {
  action: z
    .enum(ACTIVITY_ACTIONS)
    .optional()
    .openapi({ param: { name: "action", in: "query" }, description: "Only this action" }),
  entityType: z
    .string()
    .min(1)
    .max(64)
    .optional()
    .openapi({ param: { name: "entityType", in: "query" }, example: "sandbox" }),
  entityId: z
    .string()
    .min(1)
    .max(128)
    .optional()
    .openapi({ param: { name: "entityId", in: "query" } }),
  ...Range,
};

const ActivityQuery = PageQuery.extend(Filters).superRefine(checkRange);
const StatsQuery = z.object(Range).superRefine(checkRange);
const ExportQuery = z
  .object({
    format: z
      .enum(["json", "csv"])
      .default("json")
      .openapi({ param: { name: "format", in: "query" }, description: "json (an array) or csv (RFC 4180, with a header row)" }),
    ...Filters,
  })
  .superRefine(checkRange);

const ActivityStatsSchema = z
  .object({
    from: z.string().datetime().nullable(),
    to: z.string().datetime().nullable(),
    total: z.number().int(),
    byAction: z.array(z.object({ action: z.string(), count: z.number().int() })),
  })
  .openapi("ActivityStats");

const toDate = (s: string | undefined) => (s ? new Date(s) : undefined);

export function activityRoutes() {
  return createRouter()
    .openapi(
      createRoute({
        method: "get",
        path: "/me/activity",
        tags: ["Activity"],
        summary: "The caller's activity, newest first",
        security: authSecurity,
        request: { query: ActivityQuery },
        responses: {
          200: { description: "A page of entries", content: { "application/json": { schema: pageOf(ActivityEntrySchema, "ActivityPage") } } },
          ...notModified,
          ...errorResponses(),
        },
      }),
      async (c) => {
        const q = c.req.valid("query");
        return cachedPage(c, "activity", () => listActivity(c.get("scope"), { ...q, from: toDate(q.from), to: toDate(q.to) }));
      },
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/me/activity/stats",
        tags: ["Activity"],
        summary: "Counts by action of the caller's own activity in [from, to)",
        security: authSecurity,
        request: { query: StatsQuery },
        responses: {
          200: { description: "Counts by action", content: { "application/json": { schema: ActivityStatsSchema } } },
          ...errorResponses(),
        },
      }),
      async (c) => {
        const q = c.req.valid("query");
        return c.json(await activityStats(c.get("scope"), { from: toDate(q.from), to: toDate(q.to) }), 200);
      },
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/me/activity/export",
        tags: ["Activity"],
        summary: "Download the caller's activity (streamed; any size)",
        security: authSecurity,
        request: { query: ExportQuery },
        responses: {
          200: {
            description: "Every matching entry, newest first",
            content: {
              "application/json": { schema: z.array(ActivityEntrySchema) },
              "text/csv": { schema: z.string().openapi({ description: `Columns: id, createdAt, action, actorType, entityType, entityId, reason, requestId, ipAddress, userAgent, metadata (JSON)` }) },
            },
          },
          ...errorResponses(),
        },
      }),
      async (c) => {
        const q = c.req.valid("query");
        const stream = await exportActivity(c.get("scope"), q.format, { ...q, from: toDate(q.from), to: toDate(q.to) });
        const stamp = c.get("scope").now().toISOString().slice(0, 10);
        return c.body(stream, 200, {
          "content-type": q.format === "csv" ? "text/csv; charset=utf-8" : "application/json; charset=utf-8",
          "content-disposition": `attachment; filename="warren-activity-${stamp}.${q.format}"`,
          "cache-control": "no-store",
        });
      },
    );
}
