import fc from "fast-check";

/**
 * fast-check arbitraries from the JSON Schemas of Warren's OpenAPI 3.1 document: values the
 * schema accepts, and hostile values and mutations that it must reject with a 4xx. Only the
 * keywords our zod-generated documents use are understood ($ref, type incl. arrays of types,
 * enum, const, anyOf/oneOf/allOf, properties/required/additionalProperties, items, min/max,
 * minLength/maxLength, pattern, format); anything else falls back to "any JSON value", which
 * is still a fair input to throw at a route.
 */

export type JsonSchema = {
  $ref?: string;
  type?: string | string[];
  enum?: unknown[];
  const?: unknown;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  allOf?: JsonSchema[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: boolean | JsonSchema;
  items?: JsonSchema;
  minItems?: number;
  maxItems?: number;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  format?: string;
  default?: unknown;
  example?: unknown;
};

export type SchemaContext = {
  /** components.schemas of the document, for $ref. */
  components: Record<string, JsonSchema>;
  /** Real values seen in the API (ids, names); strings are drawn from them now and then. */
  knownStrings: string[];
};

export function resolve(schema: JsonSchema, ctx: SchemaContext, depth = 0): JsonSchema {
  if (!schema.$ref || depth > 20) return schema;
  const name = schema.$ref.replace(/^#\/components\/schemas\//, "");
  const target = ctx.components[name];
  if (!target) throw new Error(`unresolvable $ref ${schema.$ref}`);
  return resolve(target, ctx, depth + 1);
}

// ---- Hostile values --------------------------------------------------------------------------

/** Strings that have broken web services before: encodings, injections, sizes, paths. */
export const HOSTILE_STRINGS: string[] = [
  "",
  " ",
  "\u0000",
  "a\u0000b",
  "\ud800", // lone high surrogate
  "\udfff", // lone low surrogate
  "x\ud83d", // a surrogate pair cut in half
  "\u202eevil\u202d", // right-to-left override
  "\u200f\u05e9\u05dc\u05d5\u05dd", // RTL mark and Hebrew
  "\ufeffbom",
  "\u200b",
  "👩‍👩‍👧‍👦",
  "e\u0301".repeat(200),
  "\u0007\u001b[31mred",
  "line\r\nInjected: header",
  "' OR '1'='1",
  "'; drop table sandboxes; --",
  "1; select pg_sleep(0) --",
  "\\x00",
  "%00",
  "%",
  "%ZZ",
  "../../etc/passwd",
  "..",
  ".",
  "/",
  "\\",
  "${jndi:ldap://127.0.0.1/x}",
  "<script>alert(1)</script>",
  "null",
  "undefined",
  "NaN",
  "-1",
  "0",
  "1e309",
  "9".repeat(400),
  "__proto__",
  "constructor",
  "a".repeat(70_000),
  "é".repeat(20_000),
];

/** Numbers at and past every boundary a column or a zod schema might have. */
export const HOSTILE_NUMBERS: number[] = [
  -1,
  0,
  -0,
  0.5,
  -0.5,
  1e-300,
  2 ** 31,
  -(2 ** 31) - 1,
  2 ** 53,
  -(2 ** 53),
  2 ** 63,
  1e308,
  -1e308,
  Number.MAX_SAFE_INTEGER + 2,
];

/** A typeid-shaped id that nobody owns (`sbx_…`, `ses_…`, and prefixes we do not use). */
export const randomTypeId = fc
  .tuple(
    fc.constantFrom("sbx", "usr", "ses", "chs", "msg", "cred", "prov", "flow", "op", "act", "x"),
    fc.string({ unit: fc.constantFrom(..."0123456789abcdefghjkmnpqrstvwxyz"), minLength: 26, maxLength: 26 }),
  )
  .map(([p, s]) => `${p}_${s}`);

export const hostileString: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...HOSTILE_STRINGS) },
  { weight: 2, arbitrary: fc.string({ unit: "binary", maxLength: 40 }) }, // any code point, lone surrogates included
  { weight: 1, arbitrary: fc.string({ unit: "grapheme", maxLength: 40 }) },
  { weight: 1, arbitrary: randomTypeId },
);

/** Any JSON value of the wrong kind for most schemas, large and odd ones included. */
export const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 3, arbitrary: hostileString },
  { weight: 2, arbitrary: fc.constantFrom(...HOSTILE_NUMBERS) },
  { weight: 1, arbitrary: fc.constantFrom<unknown>(null, true, false, [], {}, [null], { "": null }) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  // Deep nesting: recursive validators and JSON columns must not fall over (a jsonb 10,000 deep
  // was a 500 on PGlite; 40,000 is about the most JSON.stringify nests here).
  { weight: 1, arbitrary: fc.integer({ min: 50, max: 40_000 }).map((d) => nest(d)) },
);

function nest(depth: number): unknown {
  let v: unknown = "deep";
  for (let i = 0; i < depth; i++) v = i % 2 ? [v] : { a: v };
  return v;
}

// ---- Values the schema accepts ---------------------------------------------------------------

const MAX_GENERATED_STRING = 60;

function stringArb(s: JsonSchema, ctx: SchemaContext): fc.Arbitrary<string> {
  const min = s.minLength ?? 0;
  const max = Math.max(min, Math.min(s.maxLength ?? MAX_GENERATED_STRING, MAX_GENERATED_STRING));
  const fits = (v: string) => v.length >= min && v.length <= (s.maxLength ?? Infinity);
  let base: fc.Arbitrary<string>;
  if (s.format === "date-time") base = fc.date({ noInvalidDate: true, min: new Date(0), max: new Date(4e12) }).map((d) => d.toISOString());
  else if (s.format === "uri" || s.format === "url") base = fc.webUrl({ validSchemes: ["https"] });
  else if (s.format === "email") base = fc.emailAddress();
  else if (s.pattern) base = fc.stringMatching(new RegExp(s.pattern), { maxLength: max });
  else base = fc.string({ minLength: min, maxLength: max });
  const known = ctx.knownStrings.filter(fits).filter((k) => !s.pattern || new RegExp(s.pattern).test(k));
  const arb = known.length > 0 ? fc.oneof({ weight: 2, arbitrary: base }, { weight: 1, arbitrary: fc.constantFrom(...known) }) : base;
  return arb.filter(fits);
}

function numberArb(s: JsonSchema, integer: boolean): fc.Arbitrary<number> {
  const min = s.minimum ?? (s.exclusiveMinimum !== undefined ? s.exclusiveMinimum + (integer ? 1 : Number.EPSILON) : undefined);
  const max = s.maximum ?? (s.exclusiveMaximum !== undefined ? s.exclusiveMaximum - (integer ? 1 : Number.EPSILON) : undefined);
  if (integer) {
    return fc.integer({
      min: Math.max(min ?? -1_000_000, Number.MIN_SAFE_INTEGER),
      max: Math.min(max ?? 1_000_000, Number.MAX_SAFE_INTEGER),
    });
  }
  return fc.double({ noNaN: true, noDefaultInfinity: true, min: min ?? -1e6, max: max ?? 1e6 });
}

/** Values the schema accepts (as far as the document can say: server-side rules add more). */
export function validValue(schema: JsonSchema, ctx: SchemaContext, depth = 0): fc.Arbitrary<unknown> {
  const s = resolve(schema, ctx);
  if (depth > 6) return fc.constant(null);
  if (s.const !== undefined) return fc.constant(s.const);
  if (s.enum) return fc.constantFrom(...s.enum);
  const alternatives = s.anyOf ?? s.oneOf;
  if (alternatives) return fc.oneof(...alternatives.map((a) => validValue(a, ctx, depth + 1)));
  if (s.allOf) return validValue(Object.assign({}, ...s.allOf.map((a) => resolve(a, ctx))), ctx, depth + 1);
  const types = Array.isArray(s.type) ? s.type : s.type ? [s.type] : s.properties ? ["object"] : [];
  if (types.length === 0) return fc.jsonValue({ maxDepth: 2 });
  if (types.length > 1) return fc.oneof(...types.map((t) => validValue({ ...s, type: t }, ctx, depth)));
  switch (types[0]) {
    case "null":
      return fc.constant(null);
    case "boolean":
      return fc.boolean();
    case "integer":
      return numberArb(s, true);
    case "number":
      return numberArb(s, false);
    case "string":
      return stringArb(s, ctx);
    case "array":
      return fc.array(s.items ? validValue(s.items, ctx, depth + 1) : fc.jsonValue({ maxDepth: 1 }), {
        minLength: s.minItems ?? 0,
        maxLength: Math.max(s.minItems ?? 0, Math.min(s.maxItems ?? 4, 4)),
      });
    case "object": {
      const props = s.properties ?? {};
      const keys = Object.keys(props);
      if (keys.length === 0) {
        const extra = typeof s.additionalProperties === "object" ? validValue(s.additionalProperties, ctx, depth + 1) : fc.jsonValue({ maxDepth: 2 });
        return fc.dictionary(fc.string({ minLength: 1, maxLength: 12 }), extra, { maxKeys: 4 });
      }
      const model = Object.fromEntries(keys.map((k) => [k, validValue(props[k]!, ctx, depth + 1)]));
      return fc.record(model, { requiredKeys: (s.required ?? []).filter((k) => k in props) });
    }
    default:
      return fc.jsonValue({ maxDepth: 2 });
  }
}

// ---- Mutations ---------------------------------------------------------------------------------

export type Mutation =
  | { kind: "replace"; at: number; value: unknown }
  | { kind: "drop"; at: number }
  | { kind: "extra"; at: number; key: string; value: unknown }
  | { kind: "whole"; value: unknown };

export const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant("replace" as const), at: fc.nat(), value: hostileValue }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("drop" as const), at: fc.nat() }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("extra" as const),
      at: fc.nat(),
      key: fc.oneof(fc.constantFrom("__proto__", "constructor", "id", "userId", "ownerId", "admin", "\u0000", "\ud800", ""), fc.string({ maxLength: 12 })),
      value: hostileValue,
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("whole" as const), value: hostileValue }) },
);

type Slot = { parent: Record<string, unknown> | unknown[]; key: string | number };

function slots(value: unknown, out: Slot[] = [], depth = 0): Slot[] {
  if (depth > 8 || value === null || typeof value !== "object") return out;
  const entries: Array<[string | number, unknown]> = Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value);
  for (const [key, child] of entries) {
    out.push({ parent: value as Record<string, unknown>, key });
    slots(child, out, depth + 1);
  }
  return out;
}

function containers(value: unknown, out: Array<Record<string, unknown>> = [], depth = 0): Array<Record<string, unknown>> {
  if (depth > 8 || value === null || typeof value !== "object") return out;
  if (!Array.isArray(value)) out.push(value as Record<string, unknown>);
  for (const child of Object.values(value)) containers(child, out, depth + 1);
  return out;
}

/** Applies a mutation to a (fresh, generated) valid value; returns the mutated value. */
export function applyMutation(value: unknown, m: Mutation): unknown {
  if (m.kind === "whole") return m.value;
  const copy = structuredClone(value);
  if (m.kind === "extra") {
    const objs = containers(copy);
    if (objs.length === 0) return m.value;
    // defineProperty, so that "__proto__" becomes an own key that JSON.stringify sends.
    Object.defineProperty(objs[m.at % objs.length]!, m.key, { value: m.value, enumerable: true, writable: true, configurable: true });
    return copy;
  }
  const all = slots(copy);
  if (all.length === 0) return m.kind === "replace" ? m.value : undefined;
  const slot = all[m.at % all.length]!;
  if (m.kind === "replace") (slot.parent as Record<string | number, unknown>)[slot.key] = m.value;
  else if (Array.isArray(slot.parent)) slot.parent.splice(slot.key as number, 1);
  else delete slot.parent[slot.key as string];
  return copy;
}

// ---- Percent-encoding that can carry any string --------------------------------------------

/**
 * encodeURIComponent throws on lone surrogates; a client can still send their WTF-8 bytes
 * (%ED%A0%80), which the server must treat as bad input like any other malformed value.
 */
export function encodeAny(value: string): string {
  try {
    return encodeURIComponent(value);
  } catch {
    let out = "";
    for (const ch of value) {
      const cp = ch.codePointAt(0)!;
      if (cp >= 0xd800 && cp <= 0xdfff) {
        out += [0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f)].map((b) => `%${b.toString(16).toUpperCase()}`).join("");
      } else out += encodeURIComponent(ch);
    }
    return out;
  }
}
