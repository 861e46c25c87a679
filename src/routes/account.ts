import { createRoute, z } from "@hono/zod-openapi";
import { authSecurity, createRouter, errorResponses } from "../lib/openapi";
import { deleteAccount, DELETE_CONFIRMATION } from "../services/account/delete-account";
import { exportAccount } from "../services/account/export";
import { getAccountOverview } from "../services/account/overview";
import { UserSchema } from "./me";

const SignInMethodSchema = z
  .object({
    providerId: z.string().openapi({ example: "credential", description: '"credential" is email and password; else the provider ("github")' }),
    accountId: z.string(),
    scopes: z.array(z.string()),
    linkedAt: z.string().datetime(),
  })
  .openapi("SignInMethod");

const AccountSchema = z
  .object({
    user: UserSchema,
    signInMethods: z.array(SignInMethodSchema),
    counts: z.object({
      sandboxes: z.number().int(),
      chatSessions: z.number().int(),
      chatMessages: z.number().int(),
      credentials: z.number().int(),
    }),
  })
  .openapi("Account");

const DeleteAccountBody = z
  .object({
    confirm: z.literal(DELETE_CONFIRMATION, { error: `must be exactly "${DELETE_CONFIRMATION}"` }),
    password: z
      .string()
      .min(1)
      .max(256)
      .optional()
      .openapi({ description: "The account password; needed unless the session was signed in within the last few minutes" }),
  })
  .strict()
  .openapi("DeleteAccount");

const DeletedSchema = z
  .object({
    deleted: z.literal(true),
    sandboxesRemoved: z.number().int().openapi({ description: "Sandboxes whose workloads are being stopped and removed" }),
  })
  .openapi("AccountDeleted");

export type AccountRouteDeps = {
  /** How recent a session must be to delete without the password. */
  freshSessionMs: number;
  /** Starts removing the deleted sandboxes' workloads now; a job retries whatever fails. */
  removeWorkloads: (sandboxIds: string[]) => void;
};

export function accountRoutes(deps: AccountRouteDeps) {
  return createRouter()
    .openapi(
      createRoute({
        method: "get",
        path: "/me/account",
        tags: ["Account"],
        summary: "The caller's account: user, sign-in methods and counts",
        security: authSecurity,
        responses: {
          200: { description: "The account", content: { "application/json": { schema: AccountSchema } } },
          ...errorResponses(),
        },
      }),
      async (c) => c.json(await getAccountOverview(c.get("scope"), c.get("vault")), 200),
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/me/export",
        tags: ["Account"],
        summary: "Everything Warren holds about the caller, as one streamed JSON document",
        description:
          "Profile, sign-in methods, preferences, agent configuration and files, credential metadata (never " +
          "secrets), custom providers, sandboxes, chat sessions with all their messages, and activity.",
        security: authSecurity,
        responses: {
          200: {
            description: "The export (streamed)",
            content: {
              "application/json": {
                // Described, not typed: the body is a stream, written as the client reads it.
                schema: z.unknown().openapi({
                  description:
                    'One JSON object: {"format":"warren.account-export/1","exportedAt","profile","signInMethods","preferences",' +
                    '"agentConfig","agentFiles":[…],"credentials":[…],"customProviders":[…],"sandboxes":[…],' +
                    '"chatSessions":[{…,"messages":[{…,"removedAt","isStub"},…]}],"activity":[…]}. A message\'s "removedAt" is null, or the ' +
                    "time (ISO 8601) it was removed in the agent: such a message is kept as a tombstone and is hidden from the chat API. " +
                    '"isStub" is true for a message of which only some parts have arrived from the agent (also hidden from the chat API).',
                }),
              },
            },
          },
          ...errorResponses(),
        },
      }),
      async (c) => {
        const scope = c.get("scope");
        const stream = await exportAccount(scope, c.get("vault"));
        // The typed helpers describe JSON built in memory; this body is a stream written as the
        // client reads it, so the handler's type is widened here on purpose.
        return new Response(stream, {
          status: 200,
          headers: {
            "content-type": "application/json; charset=utf-8",
            "content-disposition": `attachment; filename="warren-account-${scope.now().toISOString().slice(0, 10)}.json"`,
            "cache-control": "no-store",
          },
        }) as never;
      },
    )
    .openapi(
      createRoute({
        method: "delete",
        path: "/me/account",
        tags: ["Account"],
        summary: "Delete the caller's account and everything it owns",
        description:
          `Needs {"confirm":"${DELETE_CONFIRMATION}"} and a session signed in within the last few minutes, or the ` +
          "password. Activity is kept anonymised; sandboxes are stopped and removed. The session ends.",
        security: authSecurity,
        request: { body: { required: true, content: { "application/json": { schema: DeleteAccountBody } } } },
        responses: {
          200: { description: "Deleted", content: { "application/json": { schema: DeletedSchema } } },
          ...errorResponses(412),
        },
      }),
      async (c) => {
        const body = c.req.valid("json");
        const auth = await c.get("auth").$context;
        const deleted = await deleteAccount(c.get("scope"), {
          session: { createdAt: new Date(c.get("session").createdAt) },
          password: body.password,
          freshSessionMs: deps.freshSessionMs,
          verifyPassword: (data) => auth.password.verify(data),
        });
        deps.removeWorkloads(deleted.sandboxIds);
        return c.json({ deleted: true as const, sandboxesRemoved: deleted.sandboxIds.length }, 200);
      },
    );
}
