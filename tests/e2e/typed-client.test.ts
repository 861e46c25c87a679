import { describe, expect, test } from "bun:test";
import { hc } from "hono/client";
import type { AppType } from "../../src/app";
import { useServer } from "../helpers/server";

// The typed client a TypeScript frontend gets from `hc<AppType>`, against the real server. The
// expected type error marked below is part of the test: `bunx tsc --noEmit` fails if a wrong
// request body ever stops being a type error.

const server = useServer();

type ErrorEnvelope = { error: { code: string; message: string; requestId: string } };

/**
 * The client's types describe each route's success answers only; errors come from middleware in
 * the one envelope, so a frontend checks `res.ok` and reads the envelope itself.
 */
async function envelope(res: { status: number; json(): Promise<unknown> }): Promise<ErrorEnvelope> {
  return (await res.json()) as ErrorEnvelope;
}

/** A non-browser sign-up: the bearer token is the signed one from the set-auth-token header. */
async function bearerToken(email: string): Promise<string> {
  const res = await fetch(`${server().url}/api/auth/sign-up/email`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ email, password: "a long enough password", name: "Typed Client" }),
  });
  expect(res.status).toBe(200);
  const token = res.headers.get("set-auth-token");
  if (!token) throw new Error("sign-up answered without set-auth-token");
  return token;
}

describe("hc<AppType> from hono/client", () => {
  test("typed GET and PATCH /api/v1/me with a bearer token", async () => {
    const email = `typed.${Date.now()}@example.com`;
    const client = hc<AppType>(server().url, { headers: { authorization: `Bearer ${await bearerToken(email)}` } });

    const me = await client.api.v1.me.$get();
    expect(me.status).toBe(200);
    if (me.status !== 200) throw new Error("unreachable");
    const user = await me.json();
    // Typed fields: a rename on the server breaks this line at compile time.
    const fields: { id: string; email: string; emailVerified: boolean } = user;
    expect(fields.email).toBe(email);
    expect(user.id).toStartWith("usr_");

    const patched = await client.api.v1.me.$patch({ json: { name: "Renamed Through hc" } });
    expect(patched.status).toBe(200);
    if (patched.status !== 200) throw new Error("unreachable");
    expect((await patched.json()).name).toBe("Renamed Through hc");

    // A body of the wrong type is caught by tsc; sent anyway, the server refuses it in the envelope.
    // @ts-expect-error name must be a string
    const wrong = await client.api.v1.me.$patch({ json: { name: 42 } });
    expect(wrong.ok as boolean).toBe(false);
    expect(wrong.status as number).toBe(400);
    const body = await envelope(wrong);
    expect(body.error.code).toBe("VALIDATION_FAILED");
    expect(body.error.message).toContain('"name"');
  });

  test("without a token the typed client gets the 401 envelope", async () => {
    const res = await hc<AppType>(server().url).api.v1.me.$get();
    expect(res.status as number).toBe(401);
    expect((await envelope(res)).error.code).toBe("UNAUTHENTICATED");
  });
});
