import { createRoute, z } from "@hono/zod-openapi";
import { authSecurity, createRouter, errorResponses } from "../lib/openapi";

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

export function meRoutes() {
  return createRouter().openapi(
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
    (c) => {
      const u = c.get("user");
      return c.json(
        {
          id: u.id,
          name: u.name,
          email: u.email,
          emailVerified: u.emailVerified,
          image: u.image ?? null,
          createdAt: new Date(u.createdAt).toISOString(),
          updatedAt: new Date(u.updatedAt).toISOString(),
        },
        200,
      );
    },
  );
}
