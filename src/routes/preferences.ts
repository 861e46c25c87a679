import { createRoute, z } from "@hono/zod-openapi";
import { ETagHeader, etagOf, IfMatchHeaders, parseIfMatch } from "../lib/etag";
import { authSecurity, createRouter, errorResponses } from "../lib/openapi";
import { cachedPage, notModified } from "../lib/page-cache";
import { storableString } from "../lib/text";
import { AGENT_NAME } from "../services/agent-config/names";
import type { ChangeNotifier } from "../services/events/notifier";
import { sessionIsActive } from "../services/events/session-check";
import { streamChanges, streamSlots } from "../services/events/sse";
import { getPreferences, readPreferences } from "../services/preferences/document";
import { patchPreferences, replacePreferences, resetPreferences } from "../services/preferences/write";

const catalogId = storableString().min(1).max(128);

const fields = {
  themeMode: z.enum(["light", "dark", "system"]),
  themePreset: z
    .string()
    .regex(/^[a-z0-9][a-z0-9-]{0,49}$/, { error: "must be 1–50 lowercase letters, digits or dashes" })
    .openapi({ example: "default" }),
  autoRefreshInterval: z
    .number()
    .int({ error: "must be a whole number of seconds" })
    .min(5, { error: "must be at least 5 seconds" })
    .max(300, { error: "must be at most 300 seconds" })
    .openapi({ description: "Seconds between automatic refreshes (5–300)", example: 30 }),
  inAppNotifications: z.boolean(),
  systemNotifications: z.boolean(),
  defaultResourceTierId: catalogId.nullable().openapi({ description: "A resource tier id; null = the catalog default", example: "starter" }),
  defaultFlavorId: catalogId.nullable().openapi({ description: "An enabled flavor id; null = the catalog default", example: "fullstack" }),
  defaultAddonIds: z
    .array(catalogId)
    .max(20)
    .refine((ids) => new Set(ids).size === ids.length, { error: "must not repeat an add-on" })
    .openapi({ description: "Enabled add-on ids compatible with the default flavor and tier", example: ["code-server"] }),
  defaultAgentId: AGENT_NAME.nullable().openapi({ description: "OpenCode agent for new sandboxes (built-in or one of yours)", example: "build" }),
  defaultProviderId: catalogId.nullable().openapi({ description: "A provider id from the catalog or your custom providers" }),
  defaultModelId: storableString().min(1).max(200).nullable().openapi({ description: "A model of defaultProviderId" }),
};

export const PreferencesSchema = z
  .object({
    ...fields,
    version: z.number().int().openapi({ description: "Increases on every change; 0 until the first write. Also the ETag." }),
    updatedAt: z.string().datetime().nullable(),
  })
  .openapi("Preferences");

const PreferencesReplace = z.object(fields).strict().openapi("PreferencesReplace");
const PreferencesPatch = z
  .object(fields)
  .partial()
  .strict()
  .refine((p) => Object.values(p).some((v) => v !== undefined), { error: "name at least one field to change" })
  .openapi("PreferencesPatch");

const ok = (description: string) => ({
  200: { description, headers: ETagHeader, content: { "application/json": { schema: PreferencesSchema } } },
});

export type PreferencesRouteDeps = { events: ChangeNotifier; heartbeatMs: number; maxStreamsPerUser: number };

export function preferencesRoutes({ events, heartbeatMs, maxStreamsPerUser }: PreferencesRouteDeps) {
  const slots = streamSlots(maxStreamsPerUser);
  return createRouter()
    .openapi(
      createRoute({
        method: "get",
        path: "/me/preferences",
        tags: ["Preferences"],
        summary: "The caller's preferences (defaults, version 0, when nothing is stored)",
        description: "With If-None-Match holding the current version's ETag: 304, no body.",
        security: authSecurity,
        responses: { ...ok("The preferences document"), ...notModified, ...errorResponses() },
      }),
      // From the page cache; the ETag stays the document's version, which writes take in If-Match.
      async (c) => cachedPage(c, "preferences", () => getPreferences(c.get("scope")), { etag: (doc) => etagOf(doc.version) }),
    )
    .openapi(
      createRoute({
        method: "put",
        path: "/me/preferences",
        tags: ["Preferences"],
        summary: "Replace the whole preferences document",
        description: "Every field is required. With If-Match, a stale version gets 412 and the current document.",
        security: authSecurity,
        request: {
          headers: IfMatchHeaders,
          body: { required: true, content: { "application/json": { schema: PreferencesReplace } } },
        },
        responses: { ...ok("The stored document, at its new version"), ...errorResponses(412) },
      }),
      async (c) => {
        const ifMatch = parseIfMatch(c.req.valid("header")["if-match"]);
        const doc = await replacePreferences(c.get("scope"), events, c.req.valid("json"), ifMatch);
        c.header("ETag", etagOf(doc.version));
        return c.json(doc, 200);
      },
    )
    .openapi(
      createRoute({
        method: "patch",
        path: "/me/preferences",
        tags: ["Preferences"],
        summary: "Change some preferences; the others keep their value",
        description: "Concurrent patches are applied one after another, never lost. If-Match makes the patch conditional.",
        security: authSecurity,
        request: {
          headers: IfMatchHeaders,
          body: { required: true, content: { "application/json": { schema: PreferencesPatch } } },
        },
        responses: { ...ok("The stored document, at its new version"), ...errorResponses(412) },
      }),
      async (c) => {
        const ifMatch = parseIfMatch(c.req.valid("header")["if-match"]);
        const doc = await patchPreferences(c.get("scope"), events, c.req.valid("json"), ifMatch);
        c.header("ETag", etagOf(doc.version));
        return c.json(doc, 200);
      },
    )
    .openapi(
      createRoute({
        method: "delete",
        path: "/me/preferences",
        tags: ["Preferences"],
        summary: "Reset the preferences to the defaults (as a new version, so other devices follow)",
        security: authSecurity,
        request: { headers: IfMatchHeaders },
        responses: { ...ok("The default document, at its new version"), ...errorResponses(412) },
      }),
      async (c) => {
        const ifMatch = parseIfMatch(c.req.valid("header")["if-match"]);
        const doc = await resetPreferences(c.get("scope"), events, ifMatch);
        c.header("ETag", etagOf(doc.version));
        return c.json(doc, 200);
      },
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/me/preferences/events",
        tags: ["Preferences"],
        summary: "Server-sent events: the preferences document after every change, from any device",
        description:
          "Each `preferences` event carries the whole document as data and its version as id. A comment line is sent " +
          "as a heartbeat (every 15 s by default); the stream ends with an `error` event once the session is signed out or revoked. Send Last-Event-ID (browsers do on reconnect): if you missed a " +
          "version, the current document comes at once; without it the current document is the first event.",
        security: authSecurity,
        request: {
          headers: z.object({
            "last-event-id": z
              .string()
              .optional()
              .openapi({ param: { name: "last-event-id", in: "header" }, description: "The last version you received" }),
          }),
        },
        responses: {
          200: { description: "An event stream", content: { "text/event-stream": { schema: z.string() } } },
          ...errorResponses(),
        },
      }),
      async (c) => {
        const scope = c.get("scope");
        const sessionId = c.get("session").id;
        return streamChanges(c, {
          notifier: events,
          topic: "preferences",
          userId: scope.userId,
          event: "preferences",
          load: () => readPreferences(scope.db, scope.userId),
          authorized: () => sessionIsActive(scope.db, sessionId, scope.userId, scope.now()),
          heartbeatMs,
          logger: scope.logger,
          slots,
        });
      },
    );
}
