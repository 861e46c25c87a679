import { OpenAPIHono, z } from "@hono/zod-openapi";
import type { ZodError } from "zod";
import { AppError, ERROR_CODES, type ErrorCode } from "../errors";
import type { AppEnv } from "../context";
import { unstorableJson } from "./text";

/** Where a request value came from, in words for error messages. */
const LOCATIONS: Record<string, string> = {
  json: "body",
  form: "form",
  query: "query parameter",
  param: "path parameter",
  header: "header",
  cookie: "cookie",
};

export type FieldError = { location: string; field: string; message: string; code: string };

function formatPath(path: ReadonlyArray<PropertyKey>): string {
  let out = "";
  for (const part of path) {
    if (typeof part === "number") out += `[${part}]`;
    else out += out ? `.${String(part)}` : String(part);
  }
  return out;
}

/**
 * A record key refused by its own rule ("is reserved by Warren"): zod reports it as "Invalid key
 * in record" and keeps the rule's words in the issue's own issues.
 */
function keyMessage(issue: ZodError["issues"][number]): string | undefined {
  if (issue.code !== "invalid_key" || issue.issues.length === 0) return undefined;
  return [...new Set(issue.issues.map((i) => i.message))].join("; ");
}

/** Turns zod issues into a 400 that names each field, never zod's raw output. */
export function validationError(error: ZodError, target: string): AppError {
  const location = LOCATIONS[target] ?? target;
  const fields: FieldError[] = error.issues.flatMap((issue): FieldError[] =>
    // An unknown key is a mistake in that field, so name the field itself, not its parent.
    issue.code === "unrecognized_keys"
      ? issue.keys.map((key) => ({
          location,
          field: formatPath([...issue.path, key]),
          message: "is not a known field",
          code: issue.code,
        }))
      : [{ location, field: formatPath(issue.path) || "(root)", message: keyMessage(issue) ?? issue.message, code: issue.code }],
  );
  return fieldsError(location, fields);
}

/** A 400 naming each field; the message names the first (and counts the others). */
function fieldsError(location: string, fields: FieldError[]): AppError {
  const first = fields[0];
  const summary = first
    ? first.field === "(root)"
      ? `Invalid ${location}: ${first.message}`
      : `Invalid ${location} field "${first.field}": ${first.message}`
    : `Invalid ${location}`;
  const more = fields.length > 1 ? ` (and ${fields.length - 1} more)` : "";
  return new AppError("VALIDATION_FAILED", summary + more, { fields });
}

/**
 * No query parameter here takes several values, and one given twice reached its schema as an
 * array ("limit=10&limit=20": "expected number, received NaN"). Said as what it is instead.
 */
function repeatedParameters(c: { req: { queries(): Record<string, string[]> } }): AppError | undefined {
  const location = LOCATIONS.query!;
  const fields = Object.entries(c.req.queries())
    .filter(([, values]) => values.length > 1)
    .map(([field, values]) => ({ location, field, message: `given ${values.length} times; give it once`, code: "repeated" }));
  return fields.length > 0 ? fieldsError(location, fields) : undefined;
}

/** Every router validates with this hook, so every validation failure has the same shape. */
export const validationHook = (
  result: { success: boolean; error?: unknown; data?: unknown; target: string },
  c: { req: { queries(): Record<string, string[]> } },
) => {
  if (!result.success) throw (result.target === "query" && repeatedParameters(c)) || validationError(result.error as ZodError, result.target);
  const problem = unstorableJson(result.data);
  if (problem) {
    const location = LOCATIONS[result.target] ?? result.target;
    throw fieldsError(location, [{ location, field: formatPath(problem.path) || "(root)", message: problem.message, code: problem.code }]);
  }
};

export function createRouter() {
  return new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
}

// ---- Shared OpenAPI schemas -------------------------------------------------------------------

export const ErrorEnvelope = z
  .object({
    error: z.object({
      code: z.enum(Object.keys(ERROR_CODES) as [ErrorCode, ...ErrorCode[]]),
      message: z.string(),
      details: z.unknown().optional(),
      requestId: z.string(),
    }),
  })
  .openapi("Error");

const ERROR_DESCRIPTIONS: Record<number, string> = {
  400: "Invalid input (VALIDATION_FAILED); details.fields names each field",
  401: "No valid session (UNAUTHENTICATED)",
  403: "A quota was reached (LIMIT_EXCEEDED)",
  404: "Not found, or not yours (NOT_FOUND)",
  409: "Conflicts with the current state (CONFLICT, INVALID_STATE)",
  412: "If-Match did not match the current version (PRECONDITION_FAILED)",
  413: "Body too large (PAYLOAD_TOO_LARGE)",
  415: "The body is not JSON: Content-Type missing or another type (UNSUPPORTED_MEDIA_TYPE)",
  429: "Too many requests (RATE_LIMITED)",
  500: "Unexpected error (INTERNAL); the body carries no internals",
  503: "The database or a dependency is unavailable (SERVICE_UNAVAILABLE)",
};

/** OpenAPI error responses for a route: the common ones plus any route-specific statuses. */
export function errorResponses(...extra: Array<keyof typeof ERROR_DESCRIPTIONS>) {
  const statuses = [...new Set([400, 401, 413, 429, 500, 503, ...extra])].sort();
  return Object.fromEntries(statuses.map((s) => [s, errorResponse(s)]));
}

const errorResponse = (status: keyof typeof ERROR_DESCRIPTIONS) => ({
  description: ERROR_DESCRIPTIONS[status]!,
  content: { "application/json": { schema: ErrorEnvelope } },
});

/**
 * Documents 415 on every operation that takes a body: @hono/zod-openapi refuses one that is not
 * JSON before the route runs (src/middleware/errors.ts says why in the envelope). Called once,
 * on the app's registry, after every router is mounted.
 */
export function documentBodyErrors(registry: OpenAPIHono["openAPIRegistry"]): void {
  for (const definition of registry.definitions) {
    if (definition.type !== "route" || !definition.route.request?.body) continue;
    const responses = definition.route.responses;
    if (responses[415]) continue;
    definition.route.responses = { ...responses, 415: errorResponse(415) };
  }
}

export const authSecurity: Array<Record<string, string[]>> = [{ bearerAuth: [] }, { cookieAuth: [] }];
