// Loading a config: YAML 1.2 (so JSON too) → JSON Schema (schema.json) →
// normalized model (normalize.ts) → cross-field checks (semantic.ts). A
// config over MAX_CONFIG_BYTES, under a larger cap the operator gave
// (`--max-config-bytes`), is read only as JSON (json_fast.ts) and its issues
// carry no line.
//
// Every problem is reported as a `ConfigIssue` naming the field by path
// (`peers[1].sas[0].key_out`) and, for files, the line. All issues found in a
// stage are reported together; a later stage runs only if the earlier ones
// passed, since its input would not be trustworthy. Messages are scrubbed of
// anything key-shaped (redact.ts) before they leave this module.

import { dirname, resolve } from "node:path";
import { fastJson, readJson } from "./json_fast.ts";
import { CST, isAlias, isMap, isNode, isPair, isScalar, isSeq, Lexer, LineCounter, parseDocument, type Document } from "yaml";
import { readFileAndMode, secretFileMode } from "./keys.ts";
import type { Config, ConfigIssue } from "./model.ts";
import { normalize, type NormalizeContext, type RawConfig } from "./normalize.ts";
import { scrub, scrubPath } from "./redact.ts";
import { formatPath, validateSchema, type PathSegments, type RawIssue } from "./schema_errors.ts";
import { checkSemantics } from "./semantic.ts";

export interface LoadOptions {
  /** Environment for defaults (XDG_RUNTIME_DIR); default process.env. */
  env?: NodeJS.ProcessEnv;
  /** User id for the default control socket path; default process.getuid(). */
  uid?: number;
  /**
   * The operator's cap on the config's size (`--max-config-bytes`), from
   * MAX_CONFIG_BYTES (the default) to MAX_CONFIG_BYTES_CEILING. Past
   * MAX_CONFIG_BYTES only JSON is read (json_fast.ts), its values capped in
   * proportion (valueCap); YAML stays under MAX_CONFIG_BYTES.
   */
  maxBytes?: number;
}

export interface ParseOptions extends LoadOptions {
  /** Where relative key files and socket paths are resolved from. */
  baseDir: string;
  /** Name used in messages; default "<text>". */
  source?: string;
  /**
   * Mode of the file the text was read from (loadConfigSync passes it). Inline
   * keys in a file group or others can write are refused, in one they can read
   * warned about: the rule of key files (keys.ts, secretFileMode).
   */
  fileMode?: number;
}

export interface LoadResult {
  config: Config;
  /** Problems that do not stop wesp (world-readable key files, all-zero keys, ...). */
  warnings: ConfigIssue[];
}

/**
 * The default cap, and YAML's always: larger than a config written by hand (a
 * thousand peers with inline keys is ~600 KiB); bounds the YAML parser's work
 * (about a millisecond and a document node per value). A hub of 10,000 peers
 * or more rendered as JSON needs `maxBytes`.
 */
export const MAX_CONFIG_BYTES = 4 << 20;
/**
 * The most `maxBytes` may raise the cap to: a JSON config of ~200,000 peers
 * with inline keys (≈ 330 bytes each), read by JSON.parse. A hard bound
 * still: a runaway or hostile file costs at most this much memory and time.
 */
export const MAX_CONFIG_BYTES_CEILING = 64 << 20;
/** Nesting depth refused before conversion; the deepest field of the format (peers[].sas[].lifetime.seconds) is 5. */
export const MAX_DEPTH = 32;
/** Values refused beyond, counting each alias expansion (a "billion laughs" stops here); per MAX_CONFIG_BYTES of cap (valueCap). */
export const MAX_VALUES = 200_000;
/**
 * Bound on the nesting the YAML parser is let recurse through, estimated from
 * the text (textNesting). Its recursion is per level, and at the stack's end V8
 * may abort the process (a regexp compiled there fails to allocate), not throw.
 */
export const MAX_TEXT_NESTING = 128;

/** Thrown when a config is invalid; `issues` name each field at fault. */
export class ConfigError extends Error {
  constructor(
    readonly source: string,
    readonly issues: ConfigIssue[],
    readonly warnings: ConfigIssue[] = [],
  ) {
    super(issues.map((i) => formatIssue(source, i)).join("\n"));
    this.name = "ConfigError";
  }
}

/** "site-a.yaml:42: peers[1].sas[0].key_out: AES-256-GCM needs 36 bytes (32 key + 4 salt), got 20" */
export function formatIssue(source: string, issue: ConfigIssue): string {
  const where = issue.line !== undefined ? `${source}:${issue.line}` : source;
  return issue.path ? `${where}: ${issue.path}: ${issue.message}` : `${where}: ${issue.message}`;
}

/**
 * `maxBytes` checked (LoadOptions): the cap in force, MAX_CONFIG_BYTES when
 * none is given. A value out of range is the caller's error (the command line
 * checks `--max-config-bytes` first), so a RangeError.
 */
export function configCap(maxBytes: number | undefined): number {
  if (maxBytes === undefined) return MAX_CONFIG_BYTES;
  if (!Number.isSafeInteger(maxBytes) || maxBytes < MAX_CONFIG_BYTES || maxBytes > MAX_CONFIG_BYTES_CEILING) {
    throw new RangeError(`a config's size cap is ${MAX_CONFIG_BYTES}..${MAX_CONFIG_BYTES_CEILING} bytes (4..64 MiB), got ${maxBytes}`);
  }
  return maxBytes;
}

/** The values allowed under a cap of `maxBytes`: MAX_VALUES per MAX_CONFIG_BYTES (about 21 bytes a value; a peer takes ~25). */
export function valueCap(maxBytes: number): number {
  return Math.floor((MAX_VALUES * maxBytes) / MAX_CONFIG_BYTES);
}

/** "4 MiB", "6.5 MiB": a cap for messages. */
function mib(bytes: number): string {
  return `${+(bytes / (1 << 20)).toFixed(2)} MiB`;
}

/** What to do about a config over the cap `cap`. */
function overCap(cap: number): string {
  return cap < MAX_CONFIG_BYTES_CEILING
    ? `a JSON config may be larger with --max-config-bytes, up to ${MAX_CONFIG_BYTES_CEILING} (docs/config.md)`
    : "no config may be larger";
}

/** Read and check a config file; throws ConfigError. Key files are resolved relative to it. */
export function loadConfigSync(file: string, opts: LoadOptions = {}): LoadResult {
  const path = resolve(file);
  const cap = configCap(opts.maxBytes);
  let text: string;
  let mode: number;
  try {
    ({ text, mode } = readFileAndMode(path, cap));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? "error";
    // a file (or a device, a FIFO) is read up to the cap and no further
    const why = code === "EFBIG" ? `: it is over ${cap} bytes (${mib(cap)}); ${overCap(cap)}` : "";
    throw new ConfigError(path, [{ path: "", message: `cannot read the config file (${code})${why}` }]);
  }
  return parseConfig(text, { ...opts, baseDir: dirname(path), source: path, fileMode: mode });
}

/** Async form of `loadConfigSync`, for callers that prefer a promise. */
export async function loadConfig(file: string, opts: LoadOptions = {}): Promise<LoadResult> {
  return loadConfigSync(file, opts);
}

/** Check a config given as text (YAML or JSON), e.g. pushed by a controller; throws ConfigError. */
export function parseConfig(text: string, opts: ParseOptions): LoadResult {
  const source = opts.source ?? "<text>";
  const size = Buffer.byteLength(text);
  const cap = configCap(opts.maxBytes);
  if (size > cap) throw new ConfigError(source, [{ path: "", message: `is ${size} bytes; a config is at most ${cap} (${mib(cap)}): ${overCap(cap)}` }]);
  if (size > MAX_CONFIG_BYTES) return parseLargeJson(text, size, cap, opts, source);
  // JSON without a flaw (what a controller renders) skips the YAML parser; anything else,
  // and any issue or warning (their messages name lines), takes the path below
  const fast = fastJson(text, { maxDepth: MAX_DEPTH, maxValues: MAX_VALUES });
  const clean = fast && cleanConfig(fast, opts, source);
  if (clean) return clean;
  const nesting = textNesting(text);
  if (nesting.depth > MAX_TEXT_NESTING) {
    throw new ConfigError(source, [{ path: "", line: nesting.line, message: `not valid YAML/JSON: nested too deeply (more than ${MAX_TEXT_NESTING} levels of brackets, indentation and "- " at once)` }]);
  }
  const lines = new LineCounter();
  let doc: Document;
  try {
    // prettyErrors off: the pretty form quotes the source line, which may hold a key.
    // logLevel "error": the library's own warnings would go to process.emitWarning (stderr).
    doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true, logLevel: "error" });
  } catch (e) {
    // The parser recurses once per block nesting level: a few thousand levels overflow the stack.
    if (e instanceof RangeError) throw new ConfigError(source, [{ path: "", message: "not valid YAML/JSON: nested too deeply" }]);
    throw e;
  }
  if (doc.errors.length > 0) {
    throw new ConfigError(source, doc.errors.map((e) => ({
      path: "",
      line: lines.linePos(e.pos[0]).line,
      message: `not valid YAML/JSON: ${parserMessage(e.message)}`,
    })));
  }
  const shape = checkShape(doc);
  if (shape.length > 0) throw new ConfigError(source, shape.map((r) => ({ path: scrubPath(formatPath(r.at)), message: r.message, line: lineOf(doc, lines, r.at) })));
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    throw new ConfigError(source, [{ path: "", message: `not usable YAML: ${parserMessage((e as Error).message)}` }]);
  }
  if (raw === null || raw === undefined) {
    throw new ConfigError(source, [{ path: "", message: "is empty" }]);
  }
  const locate = (r: RawIssue): ConfigIssue => ({ path: scrubPath(formatPath(r.at)), message: scrub(r.message), line: lineOf(doc, lines, r.at) });
  return checkValue(raw, opts, source, locate);
}

/**
 * A config over MAX_CONFIG_BYTES, under the operator's `cap`: read only as
 * JSON (json_fast.ts: one object, no name twice, at most MAX_DEPTH deep and
 * valueCap(cap) values), never by the YAML parser; problems name their field
 * by path without a line (only the YAML path counts lines).
 */
function parseLargeJson(text: string, size: number, cap: number, opts: ParseOptions, source: string): LoadResult {
  const values = valueCap(cap);
  const r = readJson(text, { maxDepth: MAX_DEPTH, maxValues: values });
  if (!("value" in r)) {
    throw new ConfigError(source, [{
      path: "",
      line: r.at === undefined ? undefined : lineAt(text, r.at),
      message: `is ${size} bytes, over ${MAX_CONFIG_BYTES} (4 MiB), where a config is read only as JSON (one object, no field name twice, at most ${MAX_DEPTH} levels deep and ${values} values), and ${r.why}`,
    }]);
  }
  return checkValue(r.value, opts, source, withoutLine);
}

/** An issue named by its path alone, where there is no document to count lines in. */
function withoutLine(r: RawIssue): ConfigIssue {
  return { path: scrubPath(formatPath(r.at)), message: scrub(r.message) };
}

/** The 1-based line of index `at` in `text`. */
function lineAt(text: string, at: number): number {
  let line = 1;
  for (let i = text.indexOf("\n"); i >= 0 && i < at; i = text.indexOf("\n", i + 1)) line++;
  return line;
}

/**
 * The stages after parsing (docs/config.md: plain values, inline keys in a
 * file others may read, schema, fields, fields against each other) on the
 * parsed value; `locate` turns an issue's path into a reported one, with its
 * line when there is a document to count lines in. Throws ConfigError.
 */
function checkValue(parsed: unknown, opts: ParseOptions, source: string, locate: (r: RawIssue) => ConfigIssue): LoadResult {
  const tagged: RawIssue[] = [];
  const raw = plainValues(parsed, [], tagged);
  // Reported in file order, as a compiler would.
  const locateAll = (list: RawIssue[]): ConfigIssue[] => list.map(locate).sort((a, b) => (a.line ?? 0) - (b.line ?? 0));

  // Whole-file issues (path ""), on the line of the first inline key.
  const fileWarnings: ConfigIssue[] = [];
  const inline = opts.fileMode !== undefined ? inlineKeyFields(raw) : [];
  if (inline.length > 0) {
    const more = inline.length > 1 ? ` and ${inline.length - 1} more` : "";
    const rule = secretFileMode(`config file ${source} with inline keys (${formatPath(inline[0])}${more})`, opts.fileMode!);
    const line = locate({ at: inline[0], message: "" }).line;
    if (rule.error) throw new ConfigError(source, [{ path: "", line, message: scrub(`${rule.error}, or move the keys to key files (key_in_file, ...)`) }]);
    if (rule.warning) fileWarnings.push({ path: "", line, message: scrub(rule.warning) });
  }

  if (tagged.length > 0) throw new ConfigError(source, locateAll(tagged), fileWarnings);
  const schemaIssues = validateSchema(raw);
  if (schemaIssues.length > 0) throw new ConfigError(source, locateAll(schemaIssues), fileWarnings);

  const ctx = normalizeContext(opts);
  const config = normalize(raw as RawConfig, source, ctx);
  if (ctx.errors.length > 0) throw new ConfigError(source, locateAll(ctx.errors), [...fileWarnings, ...locateAll(ctx.warnings)]);

  const sem = checkSemantics(config);
  const warnings = [...fileWarnings, ...locateAll([...ctx.warnings, ...sem.warnings])];
  if (sem.errors.length > 0) throw new ConfigError(source, locateAll(sem.errors), warnings);
  return { config, warnings };
}

function normalizeContext(opts: ParseOptions): NormalizeContext {
  return { baseDir: opts.baseDir, env: opts.env ?? process.env, uid: opts.uid ?? process.getuid?.() ?? 0, errors: [], warnings: [] };
}

/**
 * The config from JSON.parse's value (json_fast.ts) by the same checks as
 * parseConfig's, if it passes every one with no warning; undefined otherwise
 * (parseConfig then reads the text again the YAML way, for messages with lines).
 */
function cleanConfig(fast: Record<string, unknown>, opts: ParseOptions, source: string): LoadResult | undefined {
  try {
    const r = checkValue(fast, opts, source, withoutLine);
    return r.warnings.length === 0 ? r : undefined;
  } catch (e) {
    if (e instanceof ConfigError) return undefined;
    throw e;
  }
}

/**
 * Keeps to JSON's values, which is what the schema judges: -0 (YAML "-0",
 * "-0.0") becomes 0, so the model holds no negative zero; a value a YAML tag
 * made into something else (!!binary → Buffer, !!set → Set, !!omap → Map,
 * !!timestamp → Date) is refused — Ajv would list a Buffer's inherited
 * methods as unknown fields. Depth is bounded by checkShape.
 */
function plainValues(v: unknown, at: PathSegments, issues: RawIssue[]): unknown {
  if (Object.is(v, -0)) return 0;
  if (v === null || typeof v !== "object") return v;
  const proto = Object.getPrototypeOf(v);
  if (!Array.isArray(v) && proto !== Object.prototype) {
    issues.push({ at: [...at], message: "must be a plain value: YAML tags such as !!binary, !!set, !!omap or !!timestamp make something else" });
    return v;
  }
  // `at` is one stack, copied only into an issue: a path array per value was
  // a million short-lived arrays for a hub's config (docs/bench.md "Start-up").
  const o = v as Record<string, unknown>;
  const list = Array.isArray(v);
  for (const k of Object.keys(o)) {
    at.push(list ? Number(k) : k);
    const x = plainValues(o[k], at, issues);
    at.pop();
    if (!Object.is(x, o[k])) o[k] = x;
  }
  return v;
}

/**
 * The yaml library's message, first line, without the text it quotes: it
 * appends the offending token (`…in YAML stream: "<token>"`), which may be a
 * key split by a stray character into pieces that `scrub` does not catch.
 */
function parserMessage(message: string): string {
  return scrub(message.split("\n")[0].replace(/: "(?:[^"\\]|\\.)*"?$/, "").replace(/"(?:[^"\\]|\\.)*"/g, '"…"'));
}

/**
 * What the conversion to plain objects needs and no valid config breaks:
 * field names are strings (a list, map or null as a key would be stringified
 * or dropped), nesting at most MAX_DEPTH deep. Walked without recursion;
 * aliases are not followed (toJS bounds them with maxAliasCount).
 */
function checkShape(doc: Document): RawIssue[] {
  // A stack of entries linked to their parents: paths are built only for a message.
  type Entry = { node: unknown; up: Entry | undefined; seg: string | number; depth: number };
  const pathOf = (e: Entry | undefined): PathSegments => {
    const at: PathSegments = [];
    for (; e?.up; e = e.up) at.unshift(e.seg);
    return at;
  };
  const targets = new Map<unknown, unknown>(); // Alias.resolve searches the whole document: once per alias
  const stack: Entry[] = [{ node: doc.contents, up: undefined, seg: "", depth: 0 }];
  let values = 0;
  while (stack.length > 0) {
    const e = stack.pop()!;
    const node = e.node;
    if (e.depth > MAX_DEPTH) return [{ at: pathOf(e), message: `is nested more than ${MAX_DEPTH} levels deep` }];
    if (++values > MAX_VALUES) return [{ at: [], message: `has more than ${MAX_VALUES} values (counting each use of an alias)` }];
    if (isAlias(node)) {
      if (!targets.has(node)) targets.set(node, node.resolve(doc));
      stack.push({ ...e, node: targets.get(node) });
    } else if (isMap(node)) {
      for (const pair of node.items) {
        const k = pair.key;
        if (!isScalar(k) || k.value === null || typeof k.value === "object") {
          return [{ at: pathOf(e), message: "has a field whose name is not a plain string (a list, map or empty key)" }];
        }
        stack.push({ node: pair.value, up: e, seg: String(k.value), depth: e.depth + 1 });
      }
    } else if (isSeq(node)) {
      // YAML 1.1's !!omap and !!pairs are sequences of key/value pairs. Their values are
      // walked (depth, field names) like a mapping's, and named as toJS lays them out: an
      // !!omap is a Map (`a.b`), !!pairs a list of one-field objects (`a[0].b`).
      const omap = node.tag === "tag:yaml.org,2002:omap";
      for (let i = 0; i < node.items.length; i++) {
        const v = node.items[i];
        if (!isPair(v)) {
          stack.push({ node: v, up: e, seg: i, depth: e.depth + 1 });
          continue;
        }
        const k = v.key;
        const item: Entry = omap ? e : { node: null, up: e, seg: i, depth: e.depth + 1 };
        if (!isScalar(k) || k.value === null || typeof k.value === "object") {
          return [{ at: pathOf(item), message: "has a field whose name is not a plain string (a list, map or empty key)" }];
        }
        stack.push({ node: v.value, up: item, seg: String(k.value), depth: item.depth + 1 });
      }
    }
  }
  return [];
}

/**
 * An over-estimate of the parser's recursion depth, from the lexer's tokens
 * (the lexer is iterative; quoted brackets are not counted): open flow
 * brackets, plus on each line its indentation and its "- ", "? ", ": "
 * indicators. Returns the largest, and the line where it is reached.
 */
function textNesting(text: string): { depth: number; line: number } {
  let flow = 0, indent = 0, indicators = 0, line = 1, lineStart = true;
  let depth = 0, at = 1;
  for (const token of new Lexer().lex(text)) {
    switch (CST.tokenType(token)) {
      case "newline": line++; indent = 0; indicators = 0; lineStart = true; continue;
      case "space": if (lineStart) indent = token.length; continue;
      // Inside brackets a ":" or "-" opens nothing: one-line JSON has one per field.
      case "seq-item-ind": case "explicit-key-ind": case "map-value-ind": if (flow === 0) indicators++; break;
      case "flow-map-start": case "flow-seq-start": flow++; break;
      case "flow-map-end": case "flow-seq-end": flow = Math.max(0, flow - 1); break;
      default: for (let i = token.indexOf("\n"); i >= 0; i = token.indexOf("\n", i + 1)) line++;
    }
    lineStart = false;
    if (flow + indent + indicators > depth) { depth = flow + indent + indicators; at = line; }
  }
  return { depth, line: at };
}

const INLINE_KEYS = ["key_in", "key_out", "auth_key_in", "auth_key_out"];

/** Paths of the inline keys in `peers[].sas[]` of a parsed document of any shape (before the schema). */
function inlineKeyFields(raw: unknown): PathSegments[] {
  const found: PathSegments[] = [];
  const peers = (raw as { peers?: unknown })?.peers;
  if (!Array.isArray(peers)) return found;
  peers.forEach((p: unknown, i) => {
    const sas = (p as { sas?: unknown })?.sas;
    if (!Array.isArray(sas)) return;
    sas.forEach((sa: unknown, k) => {
      if (sa === null || typeof sa !== "object") return;
      for (const f of INLINE_KEYS) if (Object.hasOwn(sa, f)) found.push(["peers", i, "sas", k, f]);
    });
  });
  return found;
}

/** Line of the deepest node on `at` that exists in the document (1-based). */
function lineOf(doc: Document, lines: LineCounter, at: PathSegments): number | undefined {
  for (let n = at.length; n >= 0; n--) {
    const node = n === 0 ? doc.contents : doc.getIn(at.slice(0, n), true);
    if (isNode(node) && node.range) return lines.linePos(node.range[0]).line;
  }
  return undefined;
}
