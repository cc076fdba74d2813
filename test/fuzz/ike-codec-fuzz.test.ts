// Hostile bytes through the IKEv2 decoder (host/ike/message.ts): ≥100,000
// mutations of valid messages (./ike-mutate.ts). Nothing may throw; every refusal
// carries a reason from DECODE_REASONS, a detail and an offset inside the input;
// whatever is accepted re-encodes to something that decodes to the same value.
// A failure prints its seed; WESP_SEED=<n> replays it.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { decodeMessage, encodeMessage } from "../../host/ike/message.ts";
import { DECODE_REASONS } from "../../host/ike/result.ts";
import { Rng, seedFromEnv } from "../helpers/gen.ts";
import { mutate, payloadOffsets } from "./ike-mutate.ts";
import { message } from "../unit/ike-gen.ts";

const ROUNDS = 120_000;

test(`IKE decoder: ${ROUNDS.toLocaleString("en")} mutated messages, no exception, every refusal has a reason`, () => {
  const seed = seedFromEnv();
  const r = new Rng(seed);
  const corpus = fc.sample(message, { numRuns: 400, seed }).map((m) => encodeMessage(m));
  const offsets = corpus.map(payloadOffsets);
  const reasons = new Map<string, number>();
  const known = new Set<string>(DECODE_REASONS);
  let accepted = 0;
  for (let i = 0; i < ROUNDS; i++) {
    const k = r.int(0, corpus.length - 1);
    const input = mutate(r, corpus[k], offsets[k], r.pick(corpus));
    let res;
    try {
      res = decodeMessage(input);
    } catch (e) {
      assert.fail(`seed ${seed} round ${i}: decoder threw ${(e as Error).stack}\ninput ${Buffer.from(input).toString("hex")}`);
    }
    if (res.ok) {
      accepted++;
      const again = decodeMessage(encodeMessage(res.value));
      assert.ok(again.ok, `seed ${seed} round ${i}: accepted message does not re-encode`);
      assert.deepEqual(again.value, res.value, `seed ${seed} round ${i}: re-encoding changed the message`);
      continue;
    }
    const e = res.error;
    assert.ok(known.has(e.reason), `seed ${seed} round ${i}: reason ${e.reason} not in DECODE_REASONS`);
    assert.ok(e.detail.length > 0, `seed ${seed} round ${i}: empty detail`);
    assert.ok(e.offset >= 0 && e.offset <= input.length, `seed ${seed} round ${i}: offset ${e.offset} outside ${input.length}`);
    reasons.set(e.reason, (reasons.get(e.reason) ?? 0) + 1);
  }
  const summary = [...reasons].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k}=${v}`).join(" ");
  console.log(`seed ${seed}: accepted ${accepted}, refused ${ROUNDS - accepted}: ${summary}`);
  // the mutations reach deep: nearly every reason the decoder has is seen
  assert.ok(reasons.size >= DECODE_REASONS.length - 2, `only ${reasons.size} reasons seen: ${summary}`);
  assert.ok(accepted > 0 && accepted < ROUNDS / 2, `accepted ${accepted}`);
});
