import { z } from "@hono/zod-openapi";
import { AppError } from "../errors";

/**
 * Versioned documents (preferences, agent configuration) use their version as a strong ETag,
 * quoted as RFC 9110 requires: version 3 is `"3"`. Writes honour If-Match so a stale device gets
 * 412 with the current document instead of silently overwriting a newer one.
 */

export const etagOf = (version: number) => `"${version}"`;

/** `*` matches any current document; otherwise the listed versions. Absent: no precondition. */
export type IfMatch = { any: true } | { any: false; versions: number[] } | undefined;

const TAG = /^"(\d{1,10})"$|^(\d{1,10})$|^W\/"\d{1,10}"$/;

export function parseIfMatch(header: string | undefined): IfMatch {
  if (header === undefined || header.trim() === "") return undefined;
  if (header.trim() === "*") return { any: true };
  const versions: number[] = [];
  for (const raw of header.split(",")) {
    const tag = raw.trim();
    const m = TAG.exec(tag);
    if (!m) {
      throw new AppError("VALIDATION_FAILED", 'Invalid header field "If-Match": expected an ETag such as "3"', {
        fields: [{ location: "header", field: "If-Match", message: 'expected an ETag such as "3"', code: "invalid_etag" }],
      });
    }
    // A weak tag never matches under If-Match's strong comparison (RFC 9110, 13.1.1).
    const digits = m[1] ?? m[2];
    if (digits !== undefined) versions.push(Number(digits));
  }
  return { any: false, versions };
}

/** Throws 412 carrying the current document (and its ETag) when the precondition fails. */
export function assertIfMatch(ifMatch: IfMatch, currentVersion: number, current: () => unknown, what: string): void {
  if (!ifMatch || ifMatch.any || ifMatch.versions.includes(currentVersion)) return;
  throw new AppError(
    "PRECONDITION_FAILED",
    `${what} changed since you read it: it is now at version ${currentVersion}; merge your change into details.current and retry with If-Match: "${currentVersion}"`,
    { currentVersion, current: current() },
    { ETag: etagOf(currentVersion) },
  );
}

/** Request headers of a conditional write, for the OpenAPI document. */
export const IfMatchHeaders = z.object({
  "if-match": z
    .string()
    .optional()
    .openapi({
      param: { name: "if-match", in: "header" },
      example: '"3"',
      description: "The ETag (version) you last read; a stale one gets 412 with the current document in details.current",
    }),
});

export const ETagHeader = {
  ETag: { schema: { type: "string" as const }, description: 'The document version as a quoted ETag, e.g. "3"' },
};
