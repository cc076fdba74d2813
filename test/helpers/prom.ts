// A small parser of the Prometheus text exposition format (version 0.0.4), for
// tests that read /metrics: written here from the format's description, not
// with prom-client (the library under test), so a wrong exposition fails.
//
//   # HELP name text
//   # TYPE name counter|gauge|histogram|summary|untyped
//   name{label="value",…} 123 [timestamp]
//
// Label values escape \\, \" and \n.
import { connect } from "node:net";

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Exposition {
  samples: Sample[];
  /** Metric family name → type. */
  types: Map<string, string>;
  help: Map<string, string>;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;

function parseLabels(text: string, at: number, line: string): [Record<string, string>, number] {
  const labels: Record<string, string> = {};
  let i = at + 1; // past "{"
  for (;;) {
    if (text[i] === "}") return [labels, i + 1];
    const m = /^([a-zA-Z_][a-zA-Z0-9_]*)="/.exec(text.slice(i));
    if (!m) throw new Error(`bad label at ${i}: ${line}`);
    i += m[0].length;
    let v = "";
    while (text[i] !== '"') {
      if (i >= text.length) throw new Error(`unterminated label value: ${line}`);
      if (text[i] === "\\") {
        const e = text[i + 1];
        v += e === "n" ? "\n" : e;
        i += 2;
      } else v += text[i++];
    }
    if (m[1] in labels) throw new Error(`label ${m[1]} twice: ${line}`);
    labels[m[1]] = v;
    i++;
    if (text[i] === ",") i++;
  }
}

// Prometheus reads values with Go's strconv.ParseFloat: NaN and Inf in any case
// (prom-client writes "Nan" for a lag it has not measured yet).
function parseValue(t: string, line: string): number {
  if (/^\+?inf(inity)?$/i.test(t)) return Infinity;
  if (/^-inf(inity)?$/i.test(t)) return -Infinity;
  if (/^nan$/i.test(t)) return NaN;
  const v = Number(t);
  if (t === "" || Number.isNaN(v)) throw new Error(`bad value: ${line}`);
  return v;
}

export function parseExposition(text: string): Exposition {
  const out: Exposition = { samples: [], types: new Map(), help: new Map() };
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    if (line.startsWith("#")) {
      const m = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) ?(.*)$/.exec(line);
      if (m?.[1] === "TYPE") {
        if (!/^(counter|gauge|histogram|summary|untyped)$/.test(m[3])) throw new Error(`bad TYPE: ${line}`);
        if (out.types.has(m[2])) throw new Error(`TYPE twice: ${line}`);
        out.types.set(m[2], m[3]);
      } else if (m?.[1] === "HELP") out.help.set(m[2], m[3]);
      continue;
    }
    const n = NAME.exec(line);
    if (!n) throw new Error(`bad sample: ${line}`);
    let i = n[0].length;
    let labels: Record<string, string> = {};
    if (line[i] === "{") [labels, i] = parseLabels(line, i, line);
    const rest = line.slice(i).trim().split(/\s+/);
    if (rest.length < 1 || rest.length > 2) throw new Error(`bad sample: ${line}`);
    out.samples.push({ name: n[0], labels, value: parseValue(rest[0], line) });
  }
  return out;
}

/** The samples named `name` whose labels include `match`. */
export function find(e: Exposition, name: string, match: Record<string, string> = {}): Sample[] {
  return e.samples.filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v));
}

/** The one sample named `name` with exactly these labels' values (others ignored), or undefined. */
export function value(e: Exposition, name: string, match: Record<string, string> = {}): number | undefined {
  const f = find(e, name, match);
  if (f.length > 1) throw new Error(`${name} ${JSON.stringify(match)}: ${f.length} samples`);
  return f[0]?.value;
}

/**
 * Writes raw bytes to a listener (127.0.0.1:PORT or a Unix socket) and
 * returns everything it answered before closing (latin1), for hostile-request tests.
 */
export function rawExchange(target: { port: number } | { path: string }, bytes: Buffer | string, timeoutMs = 8000): Promise<string> {
  return new Promise((resolve) => {
    const s = "path" in target ? connect(target.path) : connect(target.port, "127.0.0.1");
    let got = "";
    const t = setTimeout(() => s.destroy(), timeoutMs);
    s.on("data", (d) => (got += d.toString("latin1")));
    s.on("error", () => {});
    s.on("close", () => {
      clearTimeout(t);
      resolve(got);
    });
    s.on("connect", () => s.end(bytes));
  });
}
