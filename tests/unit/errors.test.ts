import { describe, expect, test } from "bun:test";
import { z } from "zod";
import { isDatabaseUnavailable } from "../../src/errors";
import { validationError } from "../../src/lib/openapi";
import { stripSecrets } from "../../src/services/activity/record";

describe("isDatabaseUnavailable", () => {
  const withCode = (code: string) => Object.assign(new Error("x"), { code });

  test("recognises connection failures anywhere in the cause chain", () => {
    for (const code of ["ECONNREFUSED", "CONNECTION_CLOSED", "CONNECT_TIMEOUT", "57P01", "57P03", "08006"]) {
      expect(isDatabaseUnavailable(withCode(code))).toBe(true);
      expect(isDatabaseUnavailable(new Error("wrapped", { cause: new Error("again", { cause: withCode(code) }) }))).toBe(true);
    }
  });

  test("does not treat query errors as an outage", () => {
    for (const code of ["23505", "42P01", "22P02"]) expect(isDatabaseUnavailable(withCode(code))).toBe(false);
    expect(isDatabaseUnavailable(new Error("plain"))).toBe(false);
    expect(isDatabaseUnavailable(null)).toBe(false);
    const loop: Error & { cause?: unknown } = new Error("loop");
    loop.cause = loop;
    expect(isDatabaseUnavailable(loop)).toBe(false);
  });
});

describe("validationError", () => {
  const schema = z.object({ name: z.string(), items: z.array(z.object({ id: z.number() })) }).strict();

  test("names every field path in words", () => {
    const result = schema.safeParse({ name: 1, items: [{ id: "x" }], extra: true });
    const error = validationError(result.error!, "json");
    expect(error.status).toBe(400);
    expect(error.code).toBe("VALIDATION_FAILED");
    expect(error.message).toStartWith('Invalid body field "');
    expect(error.message).toEndWith("(and 2 more)");
    const fields = (error.details as { fields: Array<{ field: string; location: string }> }).fields;
    expect(fields.map((f) => f.field).sort()).toEqual(["extra", "items[0].id", "name"]);
    expect(new Set(fields.map((f) => f.location))).toEqual(new Set(["body"]));
  });

  test("query and path parameters are labelled as such", () => {
    const q = z.object({ limit: z.coerce.number().int().min(1) });
    expect(validationError(q.safeParse({ limit: "0" }).error!, "query").message).toStartWith(
      'Invalid query parameter field "limit"',
    );
    expect(validationError(q.safeParse({ limit: "x" }).error!, "param").message).toStartWith('Invalid path parameter field "limit"');
  });
});

describe("stripSecrets", () => {
  test("replaces secret-looking keys at any depth and keeps the rest", () => {
    expect(
      stripSecrets({ provider: "openai", apiKey: "sk-123", nested: { refresh_token: "r", list: [{ password: "p", ok: 1 }] } }),
    ).toEqual({ provider: "openai", apiKey: "[redacted]", nested: { refresh_token: "[redacted]", list: [{ password: "[redacted]", ok: 1 }] } });
  });
});
