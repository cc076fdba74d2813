// bench/controller/ce_sas.ts's hub config takes its keys from one
// randomBytes call per config (keyHexes): each key still has the suite's
// length (AES-256-GCM: 32 key bytes + 4 salt bytes, RFC 4106 §8.1) and no
// two keys are alike, within a config or across two.
import { test } from "node:test";
import assert from "node:assert/strict";
import { hubConfig, keyHexes, KEYMAT_BYTES } from "../../bench/controller/ce_sas.ts";
import { parseConfig } from "../../host/config/load.ts";

type Hub = { peers: { sas: { key_in: string; key_out: string }[] }[] };
const keysOf = (c: Record<string, unknown>): string[] => (c as unknown as Hub).peers.flatMap((p) => p.sas.flatMap((s) => [s.key_in, s.key_out]));

test("keyHexes: n keys of the asked length, all distinct", () => {
  for (const [n, bytes] of [[1, 36], [7, 20], [1000, 36]] as const) {
    const ks = keyHexes(n, bytes);
    assert.equal(ks.length, n);
    for (const k of ks) assert.match(k, new RegExp(`^[0-9a-f]{${2 * bytes}}$`));
    assert.equal(new Set(ks).size, n, "no two alike");
  }
  assert.deepEqual(keyHexes(0), []);
});

test("a hub config: every SA direction its own AES-256-GCM key; two configs share none; the loader takes them", () => {
  const a = keysOf(hubConfig(500)), b = keysOf(hubConfig(500));
  assert.equal(a.length, 1000);
  for (const k of a) assert.equal(k.length, 2 * KEYMAT_BYTES);
  assert.equal(new Set(a).size, a.length, "distinct within a config");
  assert.equal(new Set([...a, ...b]).size, a.length + b.length, "distinct across configs");
  const r = parseConfig(JSON.stringify(hubConfig(3)), { baseDir: process.cwd(), source: "<hub>" });
  assert.equal(r.config.peers.length, 3);
});
