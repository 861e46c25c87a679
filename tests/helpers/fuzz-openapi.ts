import fc from "fast-check";
import { ERROR_CODES } from "../../src/errors";
import {
  applyMutation,
  encodeAny,
  hostileString,
  hostileValue,
  HOSTILE_NUMBERS,
  mutationArb,
  randomTypeId,
  validValue,
  type JsonSchema,
  type SchemaContext,
} from "./fuzz-schema";

/**
 * Requests generated from Warren's own OpenAPI document, for every operation in it: the
 * operation list is read from the document at run time, so routes added later are fuzzed
 * without touching this file.
 */

type ParamDoc = { name: string; in: "path" | "query" | "header" | "cookie"; required?: boolean; schema?: JsonSchema };

/** How an operation's responses must be read. Anything not "plain" is listed in the test output. */
export type OperationKind = "plain" | "event-stream" | "long-poll" | "proxy";

export type Operation = {
  /** "GET /api/v1/sandboxes/{id}" */
  id: string;
  method: string;
  template: string;
  params: ParamDoc[];
  body: { schema: JsonSchema; required: boolean } | undefined;
  secured: boolean;
  /** True when the operation takes Warren's session (bearerAuth / cookieAuth), the fuzzer's credential. */
  sessionAuth: boolean;
  statuses: Set<number>;
  kind: OperationKind;
};

type OpenApiDoc = {
  paths: Record<string, Record<string, any>>;
  components?: { schemas?: Record<string, JsonSchema> };
};

export function operationsOf(doc: OpenApiDoc): Operation[] {
  const ops: Operation[] = [];
  for (const [template, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      if (!["get", "post", "put", "patch", "delete"].includes(method)) continue;
      const params = (op.parameters ?? []) as ParamDoc[];
      const jsonBody = op.requestBody?.content?.["application/json"]?.schema as JsonSchema | undefined;
      const responses = (op.responses ?? {}) as Record<string, { content?: Record<string, unknown> }>;
      const streams = Object.values(responses).some((r) => r.content && "text/event-stream" in r.content);
      const kind: OperationKind = streams
        ? "event-stream"
        : params.some((p) => p.in === "query" && /timeout/i.test(p.name))
          ? "long-poll"
          : /\/\{path\}$/.test(template)
            ? "proxy"
            : "plain";
      ops.push({
        id: `${method.toUpperCase()} ${template}`,
        method: method.toUpperCase(),
        template,
        params,
        body: jsonBody ? { schema: jsonBody, required: op.requestBody?.required === true } : undefined,
        secured: Array.isArray(op.security) && op.security.length > 0,
        sessionAuth: ((op.security ?? []) as Array<Record<string, unknown>>).some((s) => "bearerAuth" in s || "cookieAuth" in s),
        statuses: new Set(Object.keys(responses).map(Number)),
        kind,
      });
    }
  }
  return ops;
}

// ---- What the fuzzer knows about the two users ---------------------------------------------

/** Real values to aim at: per operation, coherent path-parameter tuples; cursors of real lists. */
export type Pools = {
  /** template → tuples of path-parameter values that name real resources. */
  tuples: Map<string, Array<Record<string, string>>>;
  cursors: string[];
};

export type Listings = Map<string, unknown[]>;

/**
 * Path-parameter tuples for a template, from the longest parameterless list route it extends:
 * /api/v1/sandboxes/{id}/start ← items of GET /api/v1/sandboxes; a parameter is the item's field
 * of the same name, or (the first one after the list) the item's id. `extra` adds values known
 * from elsewhere (a device flow has no list route; its id came from the POST that created it).
 */
export function tuplesFor(template: string, listings: Listings, extra: Record<string, string[]> = {}): Array<Record<string, string>> {
  const names = [...template.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]!);
  if (names.length === 0) return [];
  const stem = template.slice(0, template.indexOf("{") - 1);
  let best: string | undefined;
  for (const list of listings.keys()) if ((stem === list || stem.startsWith(`${list}/`)) && (!best || list.length > best.length)) best = list;
  const out: Array<Record<string, string>> = [];
  const items = best ? (listings.get(best) ?? []) : [];
  for (const raw of items) {
    if (!raw || typeof raw !== "object") continue;
    const item = raw as Record<string, unknown>;
    const tuple: Record<string, string> = {};
    names.forEach((n, i) => {
      const v = typeof item[n] === "string" ? item[n] : i === 0 && typeof item.id === "string" ? item.id : undefined;
      if (typeof v === "string") tuple[n] = v;
    });
    // Only the parameters the listing can name, plus those known from elsewhere.
    for (const n of names) if (!(n in tuple) && extra[n]?.length) tuple[n] = extra[n]![0]!;
    if (names.every((n) => n in tuple)) out.push(tuple);
  }
  if (out.length === 0 && names.every((n) => extra[n]?.length)) out.push(Object.fromEntries(names.map((n) => [n, extra[n]![0]!])));
  return out;
}

// ---- Generated requests ----------------------------------------------------------------------

export type Auth = "bearer" | "cookie" | "none" | "forged";

/** A request as data: printable when a property fails, replayable by `send`. */
export type FuzzRequest = {
  op: string;
  /** What the generator aimed at, e.g. "path id: victim", "body: mutated replace". */
  notes: string[];
  method: string;
  /** Path and query, already encoded. */
  url: string;
  headers: Record<string, string>;
  auth: Auth;
  body?: string;
};

const b64 = (s: string) => Buffer.from(s, "utf8").toString("base64url");

/** Cursors: real ones (ours and the other user's), forged ones, and garbage. */
function cursorArb(real: string[]): fc.Arbitrary<string> {
  const forged = fc.oneof(
    fc.tuple(fc.date({ noInvalidDate: true }).map((d) => d.toISOString()), hostileString).map((k) => b64(JSON.stringify(k))),
    fc.tuple(hostileString, randomTypeId).map((k) => b64(JSON.stringify(k))),
    fc.jsonValue({ maxDepth: 2 }).map((v) => b64(JSON.stringify(v))),
    fc.constantFrom(b64('["275760-09-13T00:00:00.000Z","x"]'), b64('["-271821-04-20T00:00:00.000Z","x"]'), b64('["2020-01-01","\\u0000"]'), b64("[")),
    hostileString,
  );
  return real.length ? fc.oneof({ weight: 1, arbitrary: fc.constantFrom(...real) }, { weight: 3, arbitrary: forged }) : forged;
}

/** Schema-valid, hostile, or wrong-typed values for a query or header parameter, as strings. */
function scalarArb(p: ParamDoc, ctx: SchemaContext, pools: { own: Pools; victim: Pools }): fc.Arbitrary<{ value: string; note: string }> {
  const schema = p.schema ?? {};
  const valid = validValue(schema, ctx).map((v) => ({ value: typeof v === "string" ? v : JSON.stringify(v), note: "valid" }));
  const choices: Array<fc.WeightedArbitrary<{ value: string; note: string }>> = [
    { weight: 4, arbitrary: valid },
    { weight: 2, arbitrary: hostileString.map((value) => ({ value, note: "hostile" })) },
    { weight: 1, arbitrary: fc.constantFrom(...HOSTILE_NUMBERS).map((n) => ({ value: String(n), note: "number" })) },
    { weight: 1, arbitrary: fc.constantFrom("true", "false", "[]", "{}", "null", "1.5", "1e999", "0x10", " 1", "1 ", "١٢").map((value) => ({ value, note: "wrong type" })) },
  ];
  if (/cursor/i.test(p.name)) {
    choices.push({ weight: 4, arbitrary: cursorArb([...pools.own.cursors, ...pools.victim.cursors]).map((value) => ({ value, note: "cursor" })) });
  }
  return fc.oneof(...choices);
}

const ASCII_HEADER_SAFE = (v: string) => {
  try {
    new Headers({ x: v });
    return true;
  } catch {
    return false;
  }
};

function pathParamArb(
  op: Operation,
  p: ParamDoc,
  ctx: SchemaContext,
): fc.Arbitrary<{ value: string; note: string; raw?: boolean }> {
  const raw = fc.constantFrom("%", "%ZZ", "%ED%A0%80", "%00", "..%2F..", "%2e%2e", "a%2Fb", "%C0%AF", "%FF%FE").map((value) => ({ value, note: "malformed percent-encoding", raw: true }));
  const choices: Array<fc.WeightedArbitrary<{ value: string; note: string; raw?: boolean }>> = [
    { weight: 2, arbitrary: validValue(p.schema ?? { type: "string" }, ctx).map((v) => ({ value: String(v), note: "schema-valid" })) },
    { weight: 3, arbitrary: hostileString.filter((s) => s.length > 0).map((value) => ({ value, note: "hostile" })) },
    { weight: 1, arbitrary: randomTypeId.map((value) => ({ value, note: "unknown id" })) },
    { weight: 1, arbitrary: raw },
  ];
  // The proxy's wildcard takes any sub-path, slashes included.
  if (op.kind === "proxy" && p.name === "path") {
    choices.push({ weight: 3, arbitrary: fc.constantFrom("session", "event", "doc", "session/x/message", "../../api/v1/me", "", "%2e%2e/%2e%2e").map((value) => ({ value, note: "sub-path", raw: true })) });
  }
  return fc.oneof(...choices);
}

type BodyChoice = { body?: string; contentType?: string; note: string };

const MALFORMED_JSON = [
  "{",
  '{"a":}',
  "[1,2",
  "nul",
  "{'a':1}",
  "",
  "\u0000",
  '{"name":"x"',
  "1e999",
  '{"name":1e999,"idleTimeoutMinutes":1e999}',
  `${"[".repeat(5000)}${"]".repeat(5000)}`,
  '{"a":1,"a":2}',
  "\ufeff{}",
  '"\\ud800"',
  "true",
  '{"__proto__":{"admin":true}}',
  '{"name":"\\u0000"}',
];

function bodyArb(op: Operation, ctx: SchemaContext, maxBodyBytes: number): fc.Arbitrary<BodyChoice> {
  if (op.method === "GET") return fc.constant({ note: "no body" });
  const malformed = fc.constantFrom(...MALFORMED_JSON).map((body) => ({ body, contentType: "application/json", note: "malformed JSON" }));
  const huge = fc.constant({ body: JSON.stringify({ name: "x".repeat(maxBodyBytes + 1024) }), contentType: "application/json", note: "over the body limit" });
  if (!op.body) {
    return fc.oneof(
      { weight: 8, arbitrary: fc.constant({ note: "no body" }) },
      { weight: 1, arbitrary: hostileValue.map((v) => ({ body: JSON.stringify(v), contentType: "application/json", note: "unexpected JSON body" })) },
      { weight: 1, arbitrary: malformed },
    );
  }
  const valid = validValue(op.body.schema, ctx);
  const asJson = (v: unknown, note: string): BodyChoice => ({ body: JSON.stringify(v) ?? "", contentType: "application/json", note });
  return fc.oneof(
    { weight: 6, arbitrary: valid.map((v) => asJson(v, "valid")) },
    { weight: 8, arbitrary: fc.tuple(valid, mutationArb).map(([v, m]) => asJson(applyMutation(v, m), `mutated (${m.kind})`)) },
    { weight: 2, arbitrary: malformed },
    {
      weight: 2,
      arbitrary: fc
        .tuple(valid, fc.constantFrom("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/json; charset=utf-16", "application/xml", ""))
        .map(([v, contentType]) => ({ body: JSON.stringify(v) ?? "", contentType, note: `content type "${contentType}"` })),
    },
    { weight: 1, arbitrary: fc.constant({ note: "no body" }) },
    { weight: 1, arbitrary: huge },
  );
}

/** Every request the fuzzer may send to one operation. */
export function requestArb(
  op: Operation,
  ctx: SchemaContext,
  pools: { own: Pools; victim: Pools },
  maxBodyBytes: number,
): fc.Arbitrary<FuzzRequest> {
  const pathParams = op.params.filter((p) => p.in === "path");
  const queryParams = op.params.filter((p) => p.in === "query");
  const headerParams = op.params.filter((p) => p.in === "header");
  const own = pools.own.tuples.get(op.template) ?? [];
  const victim = pools.victim.tuples.get(op.template) ?? [];

  type PathChoice = { values: Record<string, { value: string; raw?: boolean }>; note: string };
  const independent = fc
    .tuple(...pathParams.map((p) => pathParamArb(op, p, ctx)))
    .map((vals): PathChoice => ({
      values: Object.fromEntries(pathParams.map((p, i) => [p.name, vals[i]!])),
      note: pathParams.map((p, i) => `${p.name}: ${vals[i]!.note}`).join(", "),
    }));
  const fromTuples = (tuples: Array<Record<string, string>>, who: string) =>
    fc.constantFrom(...tuples).map((t): PathChoice => ({ values: Object.fromEntries(Object.entries(t).map(([k, v]) => [k, { value: v }])), note: `path: ${who}` }));
  const pathChoices: Array<fc.WeightedArbitrary<PathChoice>> = [];
  if (pathParams.length > 0) {
    pathChoices.push({ weight: 3, arbitrary: independent });
    if (own.length) pathChoices.push({ weight: 5, arbitrary: fromTuples(own, "own resource") });
    if (victim.length) pathChoices.push({ weight: 3, arbitrary: fromTuples(victim, "the other user's resource") });
  } else pathChoices.push({ weight: 1, arbitrary: fc.constant<PathChoice>({ values: {}, note: "" }) });

  const queryArb = fc
    .tuple(
      ...queryParams.map((p) =>
        fc.option(scalarArb(p, ctx, pools), { freq: p.required ? 8 : 2, nil: undefined }).map((v) => ({ p, v })),
      ),
    )
    .chain((entries) =>
      fc
        .array(fc.tuple(fc.oneof(hostileString, fc.constantFrom(...queryParams.map((p) => p.name), "limit", "cursor")), hostileString), { maxLength: 2 })
        .map((extras) => ({ entries, extras })),
    );

  const headerArb = fc.tuple(
    ...headerParams.map((p) =>
      fc
        .option(
          fc.oneof(
            scalarArb(p, ctx, pools),
            fc.constantFrom('"1"', '"0"', "*", 'W/"1"', '"-1"', '"99999999999999999999"', '"abc"', "1", "").map((value) => ({ value, note: "etag-like" })),
          ),
          { freq: 2, nil: undefined },
        )
        .map((v) => ({ p, v })),
    ),
  );

  const authArb = fc.oneof(
    { weight: 12, arbitrary: fc.constant<Auth>("bearer") },
    { weight: 2, arbitrary: fc.constant<Auth>("cookie") },
    { weight: 1, arbitrary: fc.constant<Auth>("none") },
    { weight: 1, arbitrary: fc.constant<Auth>("forged") },
  );

  return fc
    .record({ path: fc.oneof(...pathChoices), query: queryArb, headers: headerArb, body: bodyArb(op, ctx, maxBodyBytes), auth: authArb })
    .map(({ path, query, headers, body, auth }) => {
      const notes: string[] = [];
      if (path.note) notes.push(path.note);
      let url = op.template.replace(/\{([^}]+)\}/g, (_, name: string) => {
        const v = path.values[name];
        if (!v) return encodeAny("missing");
        if (v.raw) return v.value;
        // The proxy's sub-path keeps its slashes; everything else is one segment.
        return op.kind === "proxy" && name === "path" ? v.value.split("/").map(encodeAny).join("/") : encodeAny(v.value);
      });
      const qs: string[] = [];
      for (const { p, v } of query.entries) {
        if (!v) continue;
        qs.push(`${encodeAny(p.name)}=${encodeAny(v.value)}`);
        notes.push(`query ${p.name}: ${v.note}`);
      }
      for (const [k, v] of query.extras) {
        qs.push(`${encodeAny(k)}=${encodeAny(v)}`);
        notes.push("extra query parameter");
      }
      if (qs.length) url += `?${qs.join("&")}`;
      const h: Record<string, string> = {};
      for (const { p, v } of headers) {
        if (!v || !ASCII_HEADER_SAFE(v.value)) continue;
        h[p.name] = v.value;
        notes.push(`header ${p.name}: ${v.note}`);
      }
      if (body.contentType !== undefined && body.contentType !== "") h["content-type"] = body.contentType;
      notes.push(`body: ${body.note}`, `auth: ${auth}`);
      return { op: op.id, notes, method: op.method, url, headers: h, auth, ...(body.body !== undefined ? { body: body.body } : {}) };
    });
}

// ---- Checking a response -----------------------------------------------------------------------

export type Answer = { status: number; contentType: string; text: string };

/** Reads a response: an event stream only as far as its status and headers (then cancelled). */
export async function readAnswer(op: Operation, res: Response): Promise<Answer> {
  const contentType = res.headers.get("content-type") ?? "";
  if (res.status < 400 && (op.kind === "event-stream" || contentType.startsWith("text/event-stream"))) {
    await res.body?.cancel();
    return { status: res.status, contentType, text: "" };
  }
  return { status: res.status, contentType, text: await res.text() };
}

/** Problems with one answer: a 5xx, or an error without the envelope. Empty when fine. */
export function problemsOf(op: Operation, res: Response, answer: Answer, secrets: string[]): string[] {
  const problems: string[] = [];
  if (answer.status >= 500) problems.push(`answered ${answer.status}`);
  for (const s of secrets) if (answer.text.includes(s)) problems.push(`response contains a secret or another user's data (${s.slice(0, 6)}…)`);
  if (op.kind === "event-stream" && answer.status === 200 && !answer.contentType.startsWith("text/event-stream")) {
    problems.push(`an event stream answered 200 with content-type ${answer.contentType}`);
  }
  if (answer.status < 400) return problems;
  let body: any;
  try {
    body = JSON.parse(answer.text);
  } catch {
    problems.push(`error body is not JSON: ${answer.text.slice(0, 200)}`);
    return problems;
  }
  const e = body?.error;
  const keysOk = body && typeof body === "object" && Object.keys(body).join() === "error";
  const errKeysOk = e && typeof e === "object" && Object.keys(e).every((k) => ["code", "message", "details", "requestId"].includes(k));
  if (!keysOk || !errKeysOk) problems.push(`not the error envelope: ${answer.text.slice(0, 200)}`);
  else {
    const code = e.code as keyof typeof ERROR_CODES;
    if (!(code in ERROR_CODES)) problems.push(`unknown error code ${JSON.stringify(e.code)}`);
    else if (ERROR_CODES[code] !== answer.status) problems.push(`code ${code} with status ${answer.status}`);
    if (typeof e.message !== "string" || e.message.length === 0) problems.push("empty error message");
    if (e.requestId !== res.headers.get("x-request-id")) problems.push("requestId differs from X-Request-Id");
  }
  return problems;
}

/** Shortens long strings for a readable failure report. */
export function printable(req: FuzzRequest): string {
  const cut = (s: string) => (s.length > 300 ? `${s.slice(0, 300)}… (${s.length} chars)` : s);
  return JSON.stringify({ ...req, url: cut(req.url), ...(req.body !== undefined ? { body: cut(req.body) } : {}) }, null, 2);
}
