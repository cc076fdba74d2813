// A fast way in for configs written as JSON (what a controller renders: a
// hub's config of 10,000 peers is ~4 MiB). The YAML 1.2 parser reads JSON too,
// but spends about a millisecond per peer building its document; JSON.parse
// takes a few percent of that. It may only be used where it gives exactly the
// value the YAML path would (load.ts falls back to that path for everything
// else, and for every config with an issue or a warning, whose messages carry
// the YAML path's line numbers):
//
//   - the text is one JSON object (RFC 8259 §4) that JSON.parse accepts — any
//     YAML-only syntax (comments, single quotes, \x escapes, …) makes
//     JSON.parse throw;
//   - no object has a name twice (RFC 8259 §4 leaves that to the parser;
//     JSON.parse keeps the last, the YAML path refuses it): scanned first;
//   - values nest at most `maxDepth` deep (brackets scanned before JSON.parse
//     is let near the text) and number at most `maxValues`, counted as the YAML
//     path's checkShape counts them (load.ts MAX_DEPTH, MAX_VALUES).
//
// Every byte is hostile: the scan is one pass with no recursion, strings are
// skipped by their escapes, and a name is decoded (JSON.parse of its token)
// only when it holds a backslash.

const QUOTE = 0x22, BACKSLASH = 0x5c, OPEN_OBJ = 0x7b, CLOSE_OBJ = 0x7d, OPEN_ARR = 0x5b, CLOSE_ARR = 0x5d, COMMA = 0x2c, COLON = 0x3a;

/** Whether the text's first non-blank character opens a JSON object. */
function looksLikeObject(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d || c === 0xfeff) continue;
    return c === OPEN_OBJ;
  }
  return false;
}

/** Index just past the string token starting at `i` (a quote), or -1 if it never ends. */
function stringEnd(text: string, i: number): number {
  for (let j = i + 1; j < text.length; j++) {
    const c = text.charCodeAt(j);
    if (c === BACKSLASH) j++;
    else if (c === QUOTE) return j + 1;
  }
  return -1;
}

/** Why a text is not taken (a message, never a quote of the text) and the index it was found at, if one. */
export interface JsonRefusal {
  why: string;
  at?: number;
}

/**
 * One pass over the text: a refusal if an object repeats a name, brackets
 * nest deeper than `maxDepth` or a string never ends; none where the rest of
 * the structure is broken (JSON.parse then decides). Names are compared
 * decoded, as JSON.parse would see them.
 */
function scan(text: string, maxDepth: number): JsonRefusal | undefined {
  // per open bracket: the names seen (objects) or null (arrays); whether the next string is a name
  const names: (Set<string> | null)[] = [];
  let expectName = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      const end = stringEnd(text, i);
      if (end < 0) return { why: "a string never ends", at: i };
      const top = names[names.length - 1];
      if (expectName && top) {
        const raw = text.slice(i + 1, end - 1);
        let name = raw;
        if (raw.includes("\\")) {
          try {
            name = JSON.parse(text.slice(i, end)) as string;
          } catch {
            return { why: "a field name is not a valid JSON string", at: i };
          }
        }
        if (top.has(name)) return { why: "an object has a field name twice", at: i };
        top.add(name);
        expectName = false;
      }
      i = end - 1;
    } else if (c === OPEN_OBJ || c === OPEN_ARR) {
      // maxDepth brackets hold values maxDepth - 1 deep (readJson)
      if (names.length >= maxDepth) return { why: `it nests more than ${maxDepth - 1} levels deep`, at: i };
      names.push(c === OPEN_OBJ ? new Set() : null);
      expectName = c === OPEN_OBJ;
    } else if (c === CLOSE_OBJ || c === CLOSE_ARR) {
      names.pop();
      expectName = false;
    } else if (c === COMMA) {
      expectName = names.length > 0 && names[names.length - 1] !== null;
    } else if (c === COLON) {
      expectName = false;
    }
  }
  return undefined;
}

/** Values (objects, arrays, scalars) and the deepest nesting of a parsed JSON value, without recursion. */
function measure(v: unknown, maxValues: number): { values: number; depth: number } {
  const stack: [unknown, number][] = [[v, 0]];
  let values = 0, depth = 0;
  while (stack.length) {
    const [x, d] = stack.pop()!;
    if (++values > maxValues) return { values, depth };
    if (d > depth) depth = d;
    if (x !== null && typeof x === "object") for (const k of Object.keys(x)) stack.push([(x as Record<string, unknown>)[k], d + 1]);
  }
  return { values, depth };
}

/**
 * The config text's value if it is a JSON object the YAML path would read
 * as the same value (above), else why not.
 */
export function readJson(text: string, limits: { maxDepth: number; maxValues: number }): { value: Record<string, unknown> } | JsonRefusal {
  if (!looksLikeObject(text)) return { why: "it does not start with a JSON object" };
  // a value at depth d sits inside d + 1 brackets when it is itself an object or array
  const refusal = scan(text, limits.maxDepth + 1);
  if (refusal) return refusal;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    // V8 gives "… at position N" for most errors, and quotes the text for some: only the position is kept
    const at = /at position (\d+)/.exec((e as Error).message);
    return { why: "it is not valid JSON", ...(at ? { at: Number(at[1]) } : {}) };
  }
  if (v === null || typeof v !== "object" || Array.isArray(v)) return { why: "it is not one JSON object" };
  const m = measure(v, limits.maxValues);
  if (m.values > limits.maxValues) return { why: `it has more than ${limits.maxValues} values` };
  if (m.depth > limits.maxDepth) return { why: `it nests more than ${limits.maxDepth} levels deep` };
  return { value: v as Record<string, unknown> };
}

/** readJson's value, or undefined (parseConfig then takes the YAML path). */
export function fastJson(text: string, limits: { maxDepth: number; maxValues: number }): Record<string, unknown> | undefined {
  const r = readJson(text, limits);
  return "value" in r ? r.value : undefined;
}
