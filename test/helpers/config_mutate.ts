// Config mutations for the config fuzz test (test/fuzz/config-fuzz.test.ts):
// structural edits of a parsed document (delete, duplicate, retype, extreme
// numbers, odd strings, deep nesting, prototype keys, swaps, renames, values
// taken from other fields) and text edits of its YAML or JSON form (bytes,
// lines, tags, anchors and alias bombs, garbage). Plus the oracle's helpers:
// every path a document has, and a config model written back as a document.
import { stringify } from "yaml";
import type { Config } from "../../host/config/model.ts";
import { formatPath, loadSchema, type PathSegments } from "../../host/config/schema_errors.ts";
import { scrubPath } from "../../host/config/redact.ts";
import { keyToHex } from "../../host/config/keys.ts";
import { lifetimeToDoc } from "../../host/config/normalize.ts";
import type { Rng } from "./gen.ts";

/* eslint-disable @typescript-eslint/no-explicit-any */
type Doc = any;

/** Every property name schema.json knows: an issue may name one that is missing from its object. */
export const SCHEMA_FIELDS: ReadonlySet<string> = (() => {
  const names = new Set<string>();
  const walk = (n: unknown) => {
    if (Array.isArray(n)) n.forEach(walk);
    else if (n && typeof n === "object") {
      for (const [k, v] of Object.entries(n)) {
        if (k === "properties" && v && typeof v === "object") Object.keys(v).forEach((p) => names.add(p));
        walk(v);
      }
    }
  };
  walk(loadSchema());
  return names;
})();

/** Plausible values per field, so mutations also get past the schema into the semantic checks. */
const POOL: Record<string, unknown[]> = {
  name: ["a", "b", "c", "site-a", "hq", "inet", "mpls", "wan", "x".repeat(32), "x".repeat(33), "-a", "a b", ""],
  address: ["192.0.2.1", "198.51.100.2", "203.0.113.3", "10.255.0.1", "10.2.0.1", "::1", "2001:db8::1", "fe80::1%eth0", "0.0.0.0", "255.255.255.255", "224.0.0.1", "::", "ff02::1", "1.2.3", "01.2.3.4", "::ffff:1.2.3.4", "192.0.2.1/32"],
  prefixes: [["10.2.0.0/16"], ["10.1.0.0/16"], ["0.0.0.0/0"], ["::/0"], ["fd00:2::/48", "fd00:2::/64"], [], ["10.2.0.1/16"], ["198.51.100.0/24"]],
  local_prefixes: [["10.1.0.0/16"], ["10.2.0.0/15"], [], ["::/0"], ["10.1.0.0/33"]],
  mode: ["tunnel", "transport-ipip", "transport-gre", "ipip", "gre", "Tunnel", ""],
  suite: ["aes-128-gcm", "aes-192-gcm", "aes-256-gcm", "chacha20-poly1305", "aes-128-cbc-hmac-sha256", "aes-256-cbc-hmac-sha256", "aes-128-cbc", "des"],
  encap: ["udp", "raw", "esp"],
  nat_t: [true, false, "auto", "yes"],
  trusted: [true, false],
  persistent: [true, false],
  reader: ["auto", "readv", "io_uring", ""],
  esn: [true, false],
  allow_no_integrity: [true, false],
  spi_in: [256, 255, 0, 4294967295, 4294967296, 0x1001, 0x1002, 0x2001, "0x1001", "0x100000000", "0X00000100", "0x", "4097"],
  spi_out: [256, 0x2001, 0x3001, 0x1001, "0xffffffff", -1],
  replay_window: [0, 1, 31, 32, 64, 1024, 65536, 65537],
  port: [1, 500, 4500, 65535, 0, 65536],
  ike_port: [500, 4500, 1500, 65535, 0, 65536],
  mtu: [576, 575, 1280, 1300, 1344, 1400, 9000, 65535, 65536],
  keepalive: [0, 1, 20, 3600, 3601],
  workers: [1, 2, 256, 257, 0],
  key: [0, 42, 4294967295, 4294967296],
  sequence: [true, false],
  seconds: [1, 0, 86400], bytes: [1, 2 ** 53, 0], packets: [1, 2 ** 32],
  socket: ["/run/wesp/x.sock", "rel.sock", `/${"s".repeat(120)}`, ""],
  key_in: ["00".repeat(36), "ab".repeat(20), "0x" + "cd".repeat(36), "zz".repeat(18), "abc", "AB".repeat(32), "ef".repeat(16)],
  key_in_file: ["k.key", "open.key", "missing.key", "/dev/null", "."],
  version: [1, 2, "1"],
};
POOL.key_out = POOL.key_in; POOL.auth_key_in = POOL.key_in; POOL.auth_key_out = POOL.key_in;
POOL.key_out_file = POOL.key_in_file; POOL.auth_key_in_file = POOL.key_in_file; POOL.auth_key_out_file = POOL.key_in_file;
POOL.wan = ["inet", "mpls", "internet", "nope", ...POOL.name];

const ODD_STRINGS = [
  "", " ", "NaN", ".nan", "-.inf", "Infinity", "-0", "1e400", "0x", "null", "~", "true", "yes", "on",
  "\u0000", "\uFFFF", "\uD800", "\u202Ea.b", "١٢٣", "１２３", "ſ", "K", "é", "e\u0301", "🙂", "\t", "a\nb", "#", "&a", "*a", "!!str", "%YAML",
  "__proto__", "constructor", "../../etc/passwd", "%s%n", "${HOME}", "'", '"',
];
const NUMBERS = [0, -0, 1, -1, 0.5, -256, 255, 256, 2 ** 31, -(2 ** 31), 2 ** 32, 2 ** 53, 2 ** 53 + 2, 1e21, 1e308, -1e308, Number.MIN_VALUE, Number.MAX_SAFE_INTEGER];

function oddString(r: Rng): string {
  switch (r.int(0, 3)) {
    case 0: return r.pick(ODD_STRINGS);
    case 1: return r.pick(["a", "0", "f", "é", "🙂", "\u0000"]).repeat(r.pick([33, 300, 5000, 70_000]));
    case 2: return Array.from({ length: r.int(1, 40) }, () => String.fromCodePoint(r.pick([r.int(0, 0x7f), r.int(0x80, 0xffff), r.int(0x10000, 0x10ffff)]))).join("").replace(/[\uD800-\uDFFF]/g, "?");
    default: return r.pick(ODD_STRINGS) + r.pick(ODD_STRINGS);
  }
}

function deep(r: Rng, leaf: unknown): unknown {
  let v = leaf;
  const n = r.pick([5, 31, 33, 100, 200]);
  for (let i = 0; i < n; i++) v = r.bool() ? [v] : { a: v };
  return v;
}

function randomValue(r: Rng, field: string | number): unknown {
  const pool = typeof field === "string" ? POOL[field] : undefined;
  if (pool && r.bool(0.5)) return structuredClone(r.pick(pool));
  switch (r.int(0, 8)) {
    case 0: return r.pick(NUMBERS);
    case 1: return oddString(r);
    case 2: return r.pick([true, false, null]);
    case 3: return [];
    case 4: return {};
    case 5: return [r.pick(NUMBERS), oddString(r)];
    case 6: return { [r.pick([...SCHEMA_FIELDS])]: r.pick(NUMBERS) };
    case 7: return deep(r, 1);
    default: return r.pick(Object.values(POOL).flat());
  }
}

/** Every path in a document (objects' keys, arrays' indices), depth-first, at most `max`. */
export function pathsOf(doc: Doc, max = 5000): PathSegments[] {
  const out: PathSegments[] = [];
  const walk = (v: unknown, at: PathSegments) => {
    if (out.length >= max || at.length > 40) return;
    if (Array.isArray(v)) v.forEach((x, i) => { out.push([...at, i]); walk(x, [...at, i]); });
    else if (v && typeof v === "object") {
      for (const k of Object.keys(v)) { out.push([...at, k]); walk((v as Doc)[k], [...at, k]); }
    }
  };
  walk(doc, []);
  return out;
}

const get = (doc: Doc, at: PathSegments): Doc => at.reduce((v, k) => (v == null ? undefined : v[k]), doc);

/** Set own property `k` (a "__proto__" key becomes an own property, as a parser makes it, not a prototype). */
function put(o: Doc, k: string | number, v: unknown): void {
  Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
}

export const STRUCTURAL = ["delete", "duplicate", "retype", "number", "string", "deep", "proto", "swap", "rename", "copy", "null", "add-field"] as const;

/** One structural mutation of `doc`, in place. */
export function mutateDoc(r: Rng, doc: Doc, op = r.pick(STRUCTURAL)): void {
  const paths = pathsOf(doc);
  if (paths.length === 0) return;
  const at = r.pick(paths);
  const parent = get(doc, at.slice(0, -1));
  const k = at[at.length - 1];
  if (parent == null || typeof parent !== "object") return;
  switch (op) {
    case "delete":
      if (Array.isArray(parent)) parent.splice(k as number, 1); else delete parent[k];
      break;
    case "duplicate":
      if (Array.isArray(parent)) parent.splice(k as number, 0, structuredClone(parent[k as number]));
      else put(parent, `${String(k)}${r.pick(["", "_", "2"])}`, structuredClone(parent[k]));
      break;
    case "retype": put(parent, k, randomValue(r, k)); break;
    case "number": put(parent, k, r.pick(NUMBERS) * r.pick([1, -1])); break;
    case "string": put(parent, k, oddString(r)); break;
    case "deep": put(parent, k, deep(r, parent[k])); break;
    case "proto": {
      const target = typeof parent[k] === "object" && parent[k] !== null && !Array.isArray(parent[k]) ? parent[k] : parent;
      if (Array.isArray(target)) break;
      put(target, r.pick(["__proto__", "constructor", "prototype", "toString", "hasOwnProperty", "__defineGetter__"]),
        r.pick([{ polluted: true }, { wan: [{ name: "p", address: "192.0.2.99" }], name: "p" }, "x", 1, null, [{ polluted: 1 }]]));
      break;
    }
    case "swap": {
      const other = r.pick(paths);
      const op2 = get(doc, other.slice(0, -1));
      if (op2 == null || typeof op2 !== "object") break;
      const a = parent[k], b = op2[other[other.length - 1]];
      put(parent, k, structuredClone(b));
      put(op2, other[other.length - 1], structuredClone(a));
      break;
    }
    case "rename": {
      if (Array.isArray(parent) || typeof k !== "string") break;
      const v = parent[k];
      delete parent[k];
      const variants = [k.toUpperCase(), k.slice(1), `${k}s`, k.replace("_", "-"), k.replace(/_(in|out)$/, "_$1_file"), k.replace(/_file$/, ""), r.pick([...SCHEMA_FIELDS])];
      put(parent, r.pick(variants), v);
      break;
    }
    case "copy": {
      const src = get(doc, r.pick(paths));
      put(parent, k, structuredClone(src));
      break;
    }
    case "null": put(parent, k, r.pick([null, "", [], {}])); break;
    case "add-field": {
      const target = typeof parent[k] === "object" && parent[k] !== null && !Array.isArray(parent[k]) ? parent[k] : parent;
      if (Array.isArray(target)) { target.push(randomValue(r, k)); break; }
      const f = r.pick([...SCHEMA_FIELDS]);
      put(target, f, randomValue(r, f));
      break;
    }
  }
}

export const TEXTUAL = ["bitflip", "bytes", "cut", "dup-line", "drop-line", "tag", "anchor", "bomb", "indent", "special", "garbage", "crlf"] as const;

/** One text mutation of a serialized config. */
export function mutateText(r: Rng, text: string, op = r.pick(TEXTUAL)): string {
  const lines = text.split("\n");
  const line = r.int(0, Math.max(0, lines.length - 1));
  switch (op) {
    case "bitflip": {
      const b = Buffer.from(text, "utf8");
      for (let n = r.int(1, 4); n > 0 && b.length > 0; n--) b[r.int(0, b.length - 1)] ^= 1 << r.int(0, 7);
      return b.toString("utf8");
    }
    case "bytes": {
      const at = r.int(0, text.length);
      return text.slice(0, at) + Buffer.from(r.bytes(r.int(1, 16))).toString("latin1") + text.slice(at);
    }
    case "cut": return text.slice(0, r.int(0, text.length));
    case "dup-line": lines.splice(line, 0, lines[line]); return lines.join("\n");
    case "drop-line": lines.splice(line, 1); return lines.join("\n");
    case "tag": {
      const tag = r.pick(["!!binary", "!!set", "!!omap", "!!pairs", "!!timestamp", "!!int", "!!float", "!!str", "!!bool", "!!null", "!!map", "!!seq", "!foo", "!<tag:yaml.org,2002:js/function>", "!!js/undefined"]);
      return text.replace(/: (\S)/g, (m, c, off) => (off >= text.indexOf(lines[line]) && r.bool(0.3) ? `: ${tag} ${c}` : m));
    }
    case "anchor": {
      // anchor a value and refer to it from elsewhere, or refer to an undefined anchor
      const withAnchor = text.replace(/: ([^\n]+)/, ": &x $1");
      const ls = withAnchor.split("\n");
      const j = r.int(0, ls.length - 1);
      ls[j] = ls[j].replace(/: [^\n]+/, r.pick([": *x", ": *nope", ": [*x, *x]", ": { <<: *x }"]));
      return ls.join("\n");
    }
    case "bomb": {
      const width = r.pick([2, 9, 10]), levels = r.pick([3, 6, 9]);
      let b = `l0: &l0 [${Array(width).fill('"lol"').join(",")}]\n`;
      for (let i = 1; i < levels; i++) b += `l${i}: &l${i} [${Array(width).fill(`*l${i - 1}`).join(",")}]\n`;
      return b + text.replace(/: \[[^\n\]]*\]/, `: *l${levels - 1}`);
    }
    case "indent": lines[line] = r.pick(["\t", " ", "   ", "- "]) + lines[line]; return lines.join("\n");
    case "special": {
      const s = r.pick([".nan", ".inf", "-.inf", "0o777", "0x1_0", "1_000", "+1", "1e3", "~", "null", "[]", "{}", "''", "|\n  x", ">-\n  y", "? a", "*undefined", "&a", "---", "...", "%YAML 1.1", "\"\\u0000\"", "\"\\uD800\"", "0b101", "2001-12-14t21:59:43.10-05:00"]);
      return text.replace(/: ([^\n]+)/g, (m, _v, off) => (r.bool(1 / Math.max(1, lines.length)) ? `: ${s}` : m)) + (r.bool(0.2) ? `\n${s}\n` : "");
    }
    case "garbage": return Buffer.from(r.bytes(r.int(0, 2000))).toString(r.pick(["latin1", "utf8"] as const));
    case "crlf": return text.replace(/\n/g, r.pick(["\r\n", "\r", "\n\n"]));
  }
}

/**
 * Block YAML with every key and scalar in JSON's quoting (valid YAML 1.2 double-quoted
 * scalars): reads back exactly as JSON.parse(JSON.stringify(v)), and is ~50x faster than
 * yaml's stringify, which is the cost that matters over 100,000 inputs.
 */
export function blockYaml(v: unknown): string {
  const emit = (x: unknown, ind: string): string => {
    if (Array.isArray(x)) return x.length === 0 ? " []" : x.map((y) => `\n${ind}-${emit(y, `${ind}  `)}`).join("");
    if (x !== null && typeof x === "object") {
      // As JSON.stringify: a key whose value is undefined is left out (a list item is null).
      const keys = Object.keys(x).filter((k) => (x as Doc)[k] !== undefined);
      return keys.length === 0 ? " {}" : keys.map((k) => `\n${ind}${JSON.stringify(k)}:${emit((x as Doc)[k], `${ind}  `)}`).join("");
    }
    return ` ${JSON.stringify(x) ?? "null"}`;
  };
  return `${emit(v, "").slice(1)}\n`;
}

/**
 * Serialize as YAML (yaml's block or flow style, or blockYaml) or JSON (compact
 * or indented). `plain` is true when the text reads back as JSON.parse(JSON.stringify(doc)).
 */
export function serialize(r: Rng, doc: Doc): { text: string; plain: boolean } {
  switch (r.int(0, 9)) {
    case 0: return { text: stringify(doc), plain: false };
    case 1: return { text: stringify(doc, { collectionStyle: "flow" }), plain: false };
    case 2: case 3: case 4: return { text: JSON.stringify(doc), plain: true };
    case 5: case 6: return { text: JSON.stringify(doc, null, 2), plain: true };
    default: return { text: blockYaml(doc), plain: true };
  }
}

/**
 * A loaded config written back as a document: every field explicit (defaults,
 * resolved nat_t, keys inline as hex). Loading it again must give the same model.
 */
export function configToDoc(c: Config): Doc {
  const n = c.node;
  return {
    version: 1,
    node: {
      name: n.name,
      wan: n.wan.map((w) => ({ name: w.name, address: w.address.text, port: w.port, encap: w.encap, trusted: w.trusted })),
      tun: { name: n.tun.name, mtu: n.tun.mtu, addresses: n.tun.addresses.map((a) => a.text), persistent: n.tun.persistent, reader: n.tun.reader },
      local_prefixes: n.localPrefixes.map((p) => p.text),
      control: { socket: n.control.socket },
      state_dir: n.stateDir,
      workers: n.workers,
      ike_port: n.ikePort,
      ...(n.metrics ? { metrics: { listen: "path" in n.metrics.listen ? n.metrics.listen.path : `${n.metrics.listen.host.includes(":") ? `[${n.metrics.listen.host}]` : n.metrics.listen.host}:${n.metrics.listen.port}` } } : {}),
    },
    peers: c.peers.map((p) => ({
      name: p.name, address: p.address.text, port: p.port, wan: p.wan, nat_t: p.natT, keepalive: p.keepalive,
      prefixes: p.prefixes.map((x) => x.text), mode: p.mode,
      ...(p.transit ? { transit: true } : {}),
      ...(p.backupFor !== undefined ? { backup_for: p.backupFor } : {}),
      ...(p.gre.key !== undefined || p.gre.sequence ? { gre: { ...(p.gre.key !== undefined ? { key: p.gre.key } : {}), sequence: p.gre.sequence } } : {}),
      ...(p.mtu !== undefined ? { mtu: p.mtu } : {}),
      sas: p.sas.map((sa) => ({
        spi_in: sa.spiIn, spi_out: sa.spiOut, suite: sa.suite,
        key_in: keyToHex(sa.keyIn), key_out: keyToHex(sa.keyOut),
        ...(sa.authKeyIn ? { auth_key_in: keyToHex(sa.authKeyIn), auth_key_out: keyToHex(sa.authKeyOut!) } : {}),
        replay_window: sa.replayWindow, esn: sa.esn,
        ...(sa.suite === "aes-128-cbc" ? { allow_no_integrity: true } : {}),
        ...(Object.keys(sa.lifetime).length ? { lifetime: lifetimeToDoc(sa.lifetime) } : {}),
      })),
    })),
  };
}

/**
 * Formatted paths an issue may name for `doc`: each path it has, and each
 * schema field under each object it has (a required field that is missing).
 */
export function namablePaths(doc: Doc): Set<string> {
  const out = new Set<string>();
  const walk = (v: unknown, at: PathSegments) => {
    if (at.length > 40) return;
    if (Array.isArray(v)) v.forEach((x, i) => { out.add(formatPath([...at, i])); walk(x, [...at, i]); });
    else if (v instanceof Map) {
      // YAML's `!!omap` (and a map with non-string keys) comes out of toJS as a Map; the
      // loader walks the document itself and names the paths inside it like any mapping's.
      for (const f of SCHEMA_FIELDS) out.add(formatPath([...at, f]));
      for (const [k, x] of v) { out.add(formatPath([...at, String(k)])); walk(x, [...at, String(k)]); }
    } else if (v && typeof v === "object") {
      for (const f of SCHEMA_FIELDS) out.add(formatPath([...at, f]));
      for (const k of Object.keys(v)) { out.add(formatPath([...at, k])); walk((v as Doc)[k], [...at, k]); }
    }
  };
  walk(doc, []);
  // The loader scrubs paths (a field name may be key material): it names them scrubbed.
  for (const p of [...out]) out.add(scrubPath(p));
  return out;
}
