import { describe, expect, test } from "bun:test";
import { expectError } from "./expect";
import { signUp, type TestApp, type TestUser } from "./app";

/**
 * The shared security suite (ARCHITECTURE.md, Tests). Every user-scoped route's test file calls
 * it with its routes, so each route is checked for: no session, forged sessions (bearer and
 * cookie), a revoked session, bad input (4xx in the envelope, naming the field), and another
 * user's resource (404, never 403 and never the data).
 */
export type SecuredRoute = {
  /** How the route reads in test names, e.g. "GET /api/v1/me". */
  name: string;
  method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
  /** Path for a resource of `owner` (create it here when the route needs one). */
  path: (owner: TestUser) => string | Promise<string>;
  /** A valid body, sent where the route takes one. */
  body?: unknown;
  /** Requests the route must reject as bad input, with the field the error must name. */
  badInputs?: Array<{ path?: (owner: TestUser) => string | Promise<string>; body?: unknown; field: string }>;
  /** True when `path` names a resource owned by `owner`: another user must get 404. */
  ownedResource?: boolean;
  /** For owned resources: proves the intruder's request changed nothing of the owner's. */
  verifyUntouched?: (owner: TestUser, path: string) => Promise<void>;
};

export function securitySuite(name: string, t: () => TestApp, routes: SecuredRoute[]) {
  describe(`security: ${name}`, () => {
    for (const route of routes) {
      describe(route.name, () => {
        const send = async (path: string, init: { token?: string; cookie?: string; body?: unknown } = {}) => {
          const headers: Record<string, string> = {};
          if (init.cookie) headers.cookie = init.cookie;
          return t().request(path, {
            method: route.method,
            headers,
            ...(init.token ? { token: init.token } : {}),
            ...(init.body !== undefined ? { json: init.body } : {}),
          });
        };

        test("without a session it is 401 in the envelope", async () => {
          const owner = await signUp(t());
          const res = await send(await route.path(owner), { body: route.body });
          await expectError(res, 401, "UNAUTHENTICATED");
        });

        test("a forged bearer token or cookie is 401", async () => {
          const owner = await signUp(t());
          const path = await route.path(owner);
          const [id, signature] = owner.token.split(".");
          const forgeries = [
            { token: "not-a-token" },
            // A real token id with a signature made up by the attacker.
            { token: `${id}.${Buffer.from("forged-signature-forged-signature").toString("base64")}` },
            { token: `${"x".repeat(32)}.${signature}` },
            { cookie: "better-auth.session_token=forged.value" },
            { cookie: `better-auth.session_token=${id}` },
          ];
          for (const forged of forgeries) {
            const res = await send(path, { ...forged, body: route.body });
            await expectError(res, 401, "UNAUTHENTICATED");
          }
        });

        test("a signed-out session is 401", async () => {
          const owner = await signUp(t());
          const path = await route.path(owner);
          const out = await t().request("/api/auth/sign-out", {
            method: "POST",
            token: owner.token,
            headers: { origin: t().config.publicUrl },
          });
          expect(out.status).toBe(200);
          await expectError(await send(path, { token: owner.token, body: route.body }), 401, "UNAUTHENTICATED");
          await expectError(await send(path, { cookie: owner.cookie, body: route.body }), 401, "UNAUTHENTICATED");
        });

        for (const bad of route.badInputs ?? []) {
          test(`bad input naming "${bad.field}" is 400 in the envelope`, async () => {
            const owner = await signUp(t());
            const path = await (bad.path ?? route.path)(owner);
            const res = await send(path, { token: owner.token, body: bad.body ?? route.body });
            const error = await expectError(res, 400, "VALIDATION_FAILED");
            expect(error.message).toContain(bad.field);
            expect(error.details.fields.map((f: { field: string }) => f.field)).toContain(bad.field);
          });
        }

        if (route.ownedResource) {
          test("another user's resource is 404, and stays untouched", async () => {
            const owner = await signUp(t());
            const intruder = await signUp(t());
            const path = await route.path(owner);
            const res = await send(path, { token: intruder.token, body: route.body });
            const error = await expectError(res, 404, "NOT_FOUND");
            expect(JSON.stringify(error)).not.toContain(owner.email);
            await route.verifyUntouched?.(owner, path);
          });
        }
      });
    }
  });
}
