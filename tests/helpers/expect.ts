import { expect } from "bun:test";
import type { ErrorCode } from "../../src/errors";

/** Asserts the error envelope: status, code, a message, and the request id of the response. */
export async function expectError(res: Response, status: number, code: ErrorCode) {
  const text = await res.text();
  let body: any;
  try {
    body = JSON.parse(text);
  } catch {
    throw new Error(`expected a JSON error envelope, got ${res.status}: ${text.slice(0, 200)}`);
  }
  expect({ status: res.status, code: body?.error?.code }).toEqual({ status, code });
  expect(typeof body.error.message).toBe("string");
  expect(body.error.message.length).toBeGreaterThan(0);
  expect(body.error.requestId).toBe(res.headers.get("x-request-id")!);
  expect(Object.keys(body)).toEqual(["error"]);
  return body.error as { code: ErrorCode; message: string; details?: any; requestId: string };
}
