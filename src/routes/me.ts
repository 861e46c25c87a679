import { createRoute, z } from "@hono/zod-openapi";
import { authSecurity, createRouter, errorResponses } from "../lib/openapi";
import { PageQuery, pageOf } from "../lib/pagination";
import { profileImage, profileName, toProfile, updateProfile } from "../services/account/profile";
import { listSessions, revokeSession } from "../services/account/sessions";

export const UserSchema = z
  .object({
    id: z.string().openapi({ example: "usr_01jd3k7x9q8m2v5n4b6c1t0rzy" }),
    name: z.string(),
    email: z.string().email(),
    emailVerified: z.boolean(),
    image: z.string().nullable(),
    createdAt: z.string().datetime().openapi({ example: "2026-11-21T12:00:00.000Z" }),
    updatedAt: z.string().datetime(),
  })
  .openapi("User");

const ProfileUpdate = z
  .object({
    name: profileName().optional(),
    image: profileImage().nullable().optional(),
  })
  .strict()
  .openapi("ProfileUpdate");

const DeviceSession = z
  .object({
    id: z.string(),
    current: z.boolean().openapi({ description: "True for the session making this request" }),
    ipAddress: z.string().nullable(),
    userAgent: z.string().nullable(),
    createdAt: z.string().datetime(),
    updatedAt: z.string().datetime(),
    expiresAt: z.string().datetime(),
  })
  .openapi("DeviceSession");

const SessionParams = z.object({
  sessionId: z
    .string()
    .min(1)
    .max(128)
    .openapi({ param: { name: "sessionId", in: "path" } }),
});

export function meRoutes() {
  return createRouter()
    .openapi(
      createRoute({
        method: "get",
        path: "/me",
        tags: ["Account"],
        summary: "The signed-in user",
        security: authSecurity,
        responses: {
          200: { description: "The caller", content: { "application/json": { schema: UserSchema } } },
          ...errorResponses(),
        },
      }),
      // The user requireUser resolved: read with the session, and dropped from the session cache
      // the moment the row changes on any instance (see src/auth/session-cache.ts).
      async (c) => c.json(toProfile(c.get("user")), 200),
    )
    .openapi(
      createRoute({
        method: "patch",
        path: "/me",
        tags: ["Account"],
        summary: "Change the caller's name or avatar",
        security: authSecurity,
        request: { body: { required: true, content: { "application/json": { schema: ProfileUpdate } } } },
        responses: {
          200: { description: "The updated user", content: { "application/json": { schema: UserSchema } } },
          ...errorResponses(),
        },
      }),
      async (c) => c.json(await updateProfile(c.get("scope"), c.req.valid("json")), 200),
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/me/sessions",
        tags: ["Account"],
        summary: "The caller's signed-in devices, newest first",
        security: authSecurity,
        request: { query: PageQuery },
        responses: {
          200: {
            description: "A page of sessions",
            content: { "application/json": { schema: pageOf(DeviceSession, "DeviceSessionPage") } },
          },
          ...errorResponses(),
        },
      }),
      async (c) => c.json(await listSessions(c.get("scope"), c.get("session").id, c.req.valid("query")), 200),
    )
    .openapi(
      createRoute({
        method: "delete",
        path: "/me/sessions/{sessionId}",
        tags: ["Account"],
        summary: "Sign one of the caller's devices out (takes effect immediately)",
        security: authSecurity,
        request: { params: SessionParams },
        responses: { 204: { description: "Signed out" }, ...errorResponses(404) },
      }),
      async (c) => {
        await revokeSession(c.get("scope"), c.req.valid("param").sessionId);
        return c.body(null, 204);
      },
    );
}
