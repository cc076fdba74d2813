// `npm run soak [-- --minutes N …]`: the long soak of docs/soak.md, as root.
// Exit 0 when every check passed, 1 when one failed or the soak could not run, 2 bad usage.
import { parseArgs } from "node:util";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DEFAULTS, formatResult, runSoak, type SoakOptions } from "./soak.ts";

const NUM: (keyof SoakOptions)[] = ["minutes", "rate", "pingRate", "seed", "window", "drop", "dup", "reorder", "delay", "reorderMax", "delayMinMs", "delayMaxMs", "dupDelayMaxMs", "sampleSec"];
const flag = (k: string) => k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

async function main(): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      options: {
        ...Object.fromEntries(NUM.map((k) => [flag(k), { type: "string" as const }])),
        suite: { type: "string" },
        out: { type: "string" },
        json: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    }).values as Record<string, string | boolean | undefined>;
  } catch (e) {
    console.error(`soak: ${(e as Error).message}`);
    return 2;
  }
  if (parsed.help) {
    console.log(`usage: npm run soak -- [--minutes N] [--seed N] [--rate PPS] [--window W] [--suite S]
       [--drop P] [--dup P] [--reorder P] [--delay P] [--reorder-max K] [--delay-min-ms MS]
       [--delay-max-ms MS] [--dup-delay-max-ms MS] [--ping-rate N] [--sample-sec S] [--out DIR] [--json]
defaults: ${JSON.stringify(DEFAULTS)}
env: WESP_SOAK_MINUTES, WESP_SOAK_SEED`);
    return 0;
  }
  const o: SoakOptions = { ...DEFAULTS };
  if (process.env.WESP_SOAK_MINUTES) o.minutes = Number(process.env.WESP_SOAK_MINUTES);
  if (process.env.WESP_SOAK_SEED) o.seed = Number(process.env.WESP_SOAK_SEED);
  for (const k of NUM) {
    const v = parsed[flag(k)];
    if (typeof v === "string") (o as unknown as Record<string, number>)[k] = Number(v);
  }
  if (typeof parsed.suite === "string") o.suite = parsed.suite;
  for (const k of NUM) {
    if (!Number.isFinite(o[k] as number) || (o[k] as number) < 0) {
      console.error(`soak: --${flag(k)} must be a non-negative number`);
      return 2;
    }
  }
  if (process.getuid?.() !== 0) {
    console.error("soak: needs root (network namespaces, TUN devices)");
    return 1;
  }
  o.outDir = typeof parsed.out === "string" ? parsed.out : join(tmpdir(), `wesp-soak-report-${new Date().toISOString().replace(/[:.]/g, "-")}`);
  o.log = (s) => console.log(`soak: ${s}`);
  try {
    const r = await runSoak(o);
    console.log(parsed.json ? JSON.stringify(r, null, 1) : "\n" + formatResult(r));
    return r.ok ? 0 : 1;
  } catch (e) {
    console.error(`soak: ${(e as Error).stack ?? e}`);
    return 1;
  }
}

process.exitCode = await main();
