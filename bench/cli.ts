// What the end-to-end benchmarks' command lines share (`wesp bench tunnel`,
// `wesp bench ike`): option values checked into numbers and lists, and the
// prologue — a bad option exits 2 naming it, --help prints the usage and exits
// 0, anything else needs root (network namespaces) or exits 3.

export class Usage extends Error {}

export function int(v: string | undefined, name: string, min: number, max: number, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new Usage(`${name} must be an integer in ${min}..${max}, got "${v}"`);
  return n;
}

export function list(v: string | undefined, name: string, allowed: readonly string[]): string[] | null {
  if (v === undefined) return null;
  const xs = v.split(",").map((s) => s.trim()).filter(Boolean);
  const bad = xs.filter((x) => !allowed.includes(x));
  if (bad.length || !xs.length) throw new Usage(`${name}: unknown ${bad.join(", ") || "(empty)"}; choose from ${allowed.join(", ")}`);
  return xs;
}

/**
 * `parse(args)` (null for --help) into options, or the exit code to return:
 * 2 for a bad option, 0 after printing `help`, 3 when not root (`why` says what for).
 */
export function prologue<O>(command: string, args: string[], parse: (args: string[]) => O | null, help: string, why: string): O | number {
  let o: O | null;
  try {
    o = parse(args);
  } catch (e) {
    process.stderr.write(`${command}: ${(e as Error).message}\nRun '${command} --help' for usage.\n`);
    return 2;
  }
  if (!o) {
    process.stdout.write(help);
    return 0;
  }
  if (process.getuid?.() !== 0) {
    process.stderr.write(`${command}: needs root (${why})\n`);
    return 3;
  }
  return o;
}
