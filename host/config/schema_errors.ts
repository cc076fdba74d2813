// Validation against schema.json with Ajv, and the translation of Ajv's
// errors into `ConfigIssue`s that name the field: `peers[1].sas[0].key_out`.
//
// Messages are built from the schema and the error's params only, never from
// the offending value, so a misplaced key cannot end up in the output.

import { readFileSync } from "node:fs";
import Ajv2020, { type ErrorObject, type ValidateFunction } from "ajv/dist/2020.js";
import { packagePath } from "../util/package_root.ts";

/** A location in the document: property names and list indices. */
export type PathSegments = (string | number)[];

export interface RawIssue {
  at: PathSegments;
  message: string;
}

let validator: ValidateFunction | undefined;

/** The shipped JSON Schema (draft 2020-12). */
export function loadSchema(): Record<string, unknown> {
  return JSON.parse(readFileSync(packagePath("host/config/schema.json"), "utf8"));
}

function compiled(): ValidateFunction {
  if (!validator) {
    // `verbose` stays off: it would copy the offending data into each error.
    const ajv = new Ajv2020.default({ allErrors: true, strict: true, allowUnionTypes: true, useDefaults: false });
    validator = ajv.compile(loadSchema());
  }
  return validator;
}

/** Validate a parsed document; returns one issue per faulty field. */
export function validateSchema(doc: unknown): RawIssue[] {
  const validate = compiled();
  if (validate(doc)) return [];
  const issues: RawIssue[] = [];
  const seen = new Set<string>();
  for (const e of validate.errors ?? []) {
    const issue = translate(e, validate);
    if (!issue) continue;
    const key = formatPath(issue.at);
    // Several keywords can fail for one field (type and pattern, say): the first is enough.
    if (seen.has(key)) continue;
    seen.add(key);
    issues.push(issue);
  }
  return issues;
}

/** `["peers", 1, "sas", 0, "key_out"]` → `peers[1].sas[0].key_out`. */
export function formatPath(at: PathSegments): string {
  let s = "";
  for (const seg of at) {
    if (typeof seg === "number") s += `[${seg}]`;
    else s += s === "" ? seg : `.${seg}`;
  }
  return s;
}

function pointerToSegments(pointer: string): PathSegments {
  if (pointer === "") return [];
  return pointer
    .slice(1)
    .split("/")
    .map((p) => p.replace(/~1/g, "/").replace(/~0/g, "~"))
    .map((p) => (/^\d+$/.test(p) ? Number(p) : p));
}

const KEY_FIELD = /^(auth_)?key_(in|out)$/;

function translate(e: ErrorObject, validate: ValidateFunction): RawIssue | undefined {
  const at = pointerToSegments(e.instancePath);
  const field = String(at[at.length - 1] ?? "");
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case "required":
      return { at: [...at, String(p.missingProperty)], message: "is required" };
    case "additionalProperties": {
      const name = String(p.additionalProperty);
      const hint = suggest(name, knownProperties(at, validate));
      return { at: [...at, name], message: `unknown field${hint ? ` (did you mean "${hint}"?)` : ""}` };
    }
    case "type": {
      const want = Array.isArray(p.type) ? (p.type as string[]).map(article).join(" or ") : article(String(p.type));
      if (KEY_FIELD.test(field)) {
        return { at, message: "must be a string of hex digits (in YAML, quote it: an unquoted 0x… or all-digit value is read as a number)" };
      }
      return { at, message: `must be ${want}` };
    }
    case "enum":
      return { at, message: `must be one of: ${(p.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(", ")}` };
    case "const":
      return { at, message: `must be ${JSON.stringify(p.allowedValue)}` };
    case "minimum":
    case "maximum":
      return { at, message: rangeMessage(field, e) };
    case "minItems":
      return { at, message: `needs at least ${p.limit} item${p.limit === 1 ? "" : "s"}` };
    case "maxItems":
      return { at, message: field === "sas" ? "has at most 2 SAs (the current one and, during rekey, the next)" : `has at most ${p.limit} items` };
    case "minLength":
      return { at, message: KEY_FIELD.test(field) ? "is too short to be a key" : `must not be empty` };
    case "maxLength":
      return { at, message: KEY_FIELD.test(field) ? "is too long to be a key (at most 128 bytes)" : `is too long (at most ${p.limit} characters)` };
    case "pattern":
      return { at, message: patternMessage(at) };
    default:
      return { at, message: e.message ?? "is invalid" };
  }
}

function rangeMessage(field: string, e: ErrorObject): string {
  if (field === "spi_in" || field === "spi_out") {
    return "must be 256..4294967295 (SPIs 0..255 are reserved, RFC 4303 §2.1)";
  }
  const limit = (e.params as { limit: number }).limit;
  return e.keyword === "minimum" ? `must be at least ${limit}` : `must be at most ${limit}`;
}

function patternMessage(at: PathSegments): string {
  const field = String(at[at.length - 1]);
  if (at[1] === "tun" && field === "name") return "must be 1-15 characters (an interface name, IFNAMSIZ): letters, digits, '_', '.', '-'";
  if (field === "spi_in" || field === "spi_out") return 'must be a number or a "0x…" hex string of at most 8 digits';
  if (field === "name" || field === "wan") return "must be 1-32 characters: letters, digits, '_', '.', '-' (not starting with a symbol)";
  return "has a bad format";
}

function article(type: string): string {
  if (type === "integer" || type === "array" || type === "object") return `an ${type}`;
  return `a ${type}`;
}

/** The property names the schema allows at `at` (for "did you mean"). */
function knownProperties(at: PathSegments, validate: ValidateFunction): string[] {
  // Ajv's schemaPath is relative to the last $ref, so walk the schema along the data path instead.
  type S = { $ref?: string; properties?: Record<string, S>; items?: S; $defs?: Record<string, S> };
  const root = validate.schema as S;
  const deref = (n: S | undefined): S | undefined => (n?.$ref ? root.$defs?.[n.$ref.replace("#/$defs/", "")] : n);
  let node = deref(root);
  for (const seg of at) node = deref(typeof seg === "number" ? node?.items : node?.properties?.[seg]);
  return node?.properties ? Object.keys(node.properties) : [];
}

/** Closest known name within edit distance 2, or one the name abbreviates. */
function suggest(name: string, known: string[]): string | undefined {
  const lower = name.toLowerCase();
  if (lower.length >= 3) {
    const prefixed = known.filter((k) => k.startsWith(lower));
    if (prefixed.length === 1) return prefixed[0];
  }
  let best: string | undefined;
  let bestD = 3;
  for (const k of known) {
    const d = editDistance(name.toLowerCase(), k);
    if (d < bestD) { best = k; bestD = d; }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length];
}
