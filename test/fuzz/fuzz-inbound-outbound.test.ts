// Fuzz: over a million random and mutated packets (bit flips, truncations,
// length-field lies, bogus SPIs, huge and zero lengths, garbage, NAT-T
// markers, lying descriptors) drawn from valid ESP / UDP-ESP / GRE / IP-in-IP
// packets of every suite and mode, through processInbound and
// processOutbound in batches of 256. The core must not trap or throw, must
// give every packet a verdict, and its counters must account for every
// packet: per direction, packets forwarded + Σ drops = packets sent, and each
// reason's counter equals the number of descriptors that carried it.
// Seeded: WESP_SEED=<n> replays a run; WESP_FUZZ_PACKETS changes the count.
import { test } from "node:test";
import assert from "node:assert/strict";
import { REASON_NAMES, type Counters } from "../../host/core/core.ts";
import { seedFromEnv } from "../helpers/gen.ts";
import { buildHarness, fillBatch, newTally, tallyBatch, type Tally } from "../helpers/fuzz_harness.ts";

const SEED = seedFromEnv();
const PACKETS = Number(process.env.WESP_FUZZ_PACKETS ?? 1_000_000);
const BATCH = 256;

function accounts(c: Counters, t: Tally, dir: string): void {
  let drops = 0n;
  for (let r = 1; r < REASON_NAMES.length; r++) {
    const name = REASON_NAMES[r];
    assert.equal(c.drops[name], BigInt(t.reasons[r]), `seed ${SEED} ${dir}: ${name} counter vs descriptors`);
    drops += c.drops[name];
  }
  assert.equal(c.packets, BigInt(t.passed), `seed ${SEED} ${dir}: forwarded`);
  assert.equal(c.packets + drops, BigInt(t.sent), `seed ${SEED} ${dir}: forwarded + drops = sent`);
}

test(`fuzz: ${PACKETS} mutated packets each way through the core, every one accounted for`, { timeout: 600_000 }, async () => {
  const h = await buildHarness(SEED);
  const { core } = h;
  const memory = core.memoryBytes();
  const tin = newTally(), tout = newTally();
  for (let sent = 0; sent < PACKETS; sent += BATCH) {
    const n = Math.min(BATCH, PACKETS - sent);
    fillBatch(h, "in", n);
    const pin = core.processInbound(n);
    const ein = tallyBatch(h, n, pin, tin);
    assert.equal(ein, null, `seed ${SEED} inbound batch at ${sent}: ${ein}`);
    fillBatch(h, "out", n);
    const pout = core.processOutbound(n);
    const eout = tallyBatch(h, n, pout, tout);
    assert.equal(eout, null, `seed ${SEED} outbound batch at ${sent}: ${eout}`);
    // FRAGMENT slots: the core cuts and seals them behind the ring (core.slots on)
    for (let k = core.fragmentOutbound(n); k > 0; k = core.fragmentOutbound(n)) {
      const ef = tallyBatch(h, k, null, tout, core.slots);
      assert.equal(ef, null, `seed ${SEED} fragments of the outbound batch at ${sent}: ${ef}`);
    }
  }
  const g = core.globalCounters();
  accounts(g.inbound, tin, "inbound");
  accounts(g.outbound, tout, "outbound");
  assert.equal(core.memoryBytes(), memory, "WASM memory grew");

  // The run reached deep into the core, not just its first length check.
  const seen = (t: Tally, names: string[]) => names.filter((n) => t.reasons[REASON_NAMES.indexOf(n as never)] === 0);
  assert.deepEqual(seen(tin, ["MALFORMED", "BAD_SLOT", "NO_SA", "REPLAY", "AUTH", "KEEPALIVE", "NOT_ESP", "GRE"]), [], "inbound reasons never hit");
  assert.deepEqual(seen(tout, ["MALFORMED", "NO_SA", "NO_POLICY", "DISCARD", "TOO_BIG", "SEQ_EXHAUSTED"]), [], "outbound reasons never hit");
  assert.ok(tin.verdicts[2] > 0 && tin.verdicts[3] > 0, "inbound: some packets reached TUN and some IKE reached the host");
  assert.ok(tout.verdicts[1] > 0 && tout.verdicts[4] > 0, "outbound: some packets sealed and some bypassed");
  const hist = (t: Tally) => Object.fromEntries(REASON_NAMES.map((n, i) => [n, t.reasons[i]]).filter(([, v]) => v));
  console.log(JSON.stringify({ seed: SEED, inbound: { sent: tin.sent, verdicts: tin.verdicts, drops: hist(tin) }, outbound: { sent: tout.sent, verdicts: tout.verdicts, drops: hist(tout) } }));
});
