// SPD: the documented match order (priority, then insertion), selectors, and
// the flow cache held equal to an ordered scan and to a JS model across changes.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { coreAddr, corePrefix } from "../../host/config/addr.ts";
import { type PolicyParams } from "../../host/core/core.ts";
import { makeCore } from "./core-helpers.ts";

test("match order table", async () => {
  const core = await makeCore();
  const ids: Record<string, number> = {};
  const add = (name: string, p: PolicyParams) => (ids[name] = core.addPolicy(p));
  add("wide", { action: "protect", local: "10.0.0.0/8", remote: "10.0.0.0/8", saId: 0 });
  add("ssh", { action: "bypass", local: "10.1.0.0/16", remote: "10.2.0.0/16", proto: 6, remotePorts: [22, 22], priority: 10 });
  add("dns", { action: "discard", local: "10.1.0.0/16", remote: "0.0.0.0/0", proto: 17, remotePorts: [53, 53], priority: 10 });
  add("later-same-prio", { action: "protect", local: "10.1.0.0/16", remote: "10.2.0.0/16", proto: 6, priority: 10 });
  add("host", { action: "discard", local: "10.1.2.3", remote: "10.2.0.0/16", priority: 5 });
  add("v6", { action: "protect", local: "fd00::/8", remote: "fd00:2::/32", saId: 1, localPorts: [1000, 2000] });
  add("v6-any", { action: "bypass", local: "::/0", remote: "::/0" });
  const rows: [string, string, number, number, number, string | null][] = [
    // local, remote, proto, local port, remote port → expected entry
    ["10.1.0.1", "10.2.0.1", 6, 5555, 22, "ssh"],             // priority 10 before the wide priority-1000 entry
    ["10.1.0.1", "10.2.0.1", 6, 5555, 80, "later-same-prio"], // ssh's port misses; next at priority 10
    ["10.1.2.3", "10.2.0.1", 6, 5555, 22, "host"],            // priority 5 wins over 10
    ["10.1.0.1", "8.8.8.8", 17, 5000, 53, "dns"],
    ["10.1.0.1", "8.8.8.8", 17, 5000, 54, null],              // nothing matches: NO_POLICY
    ["10.3.0.1", "10.4.0.1", 1, 0, 0, "wide"],
    ["10.1.0.1", "10.2.0.1", 17, 5000, 22, "wide"],           // ssh and later-same-prio want TCP
    ["fd00:1::1", "fd00:2::1", 17, 1500, 9, "v6"],
    ["fd00:1::1", "fd00:2::1", 17, 2001, 9, "v6-any"],        // local port outside 1000-2000
    ["fd00:1::1", "fd00:3::1", 17, 1500, 9, "v6-any"],
    ["11.0.0.1", "10.2.0.1", 6, 1, 22, null],
  ];
  for (const [i, [l, r, proto, lp, rp, want]] of rows.entries()) {
    const got = core.lookupPolicy(l, r, proto, lp, rp);
    assert.equal(got, want === null ? -1 : ids[want], `row ${i + 1}: ${l} -> ${r} proto ${proto} ${lp}->${rp}`);
    assert.equal(core.lookupPolicy(l, r, proto, lp, rp), got, `row ${i + 1} again (from the flow cache)`);
  }
  // Removing an entry invalidates cached results at once.
  core.removePolicy(ids.ssh);
  assert.equal(core.lookupPolicy("10.1.0.1", "10.2.0.1", 6, 5555, 22), ids["later-same-prio"]);
  core.clearPolicies();
  assert.equal(core.lookupPolicy("10.1.0.1", "10.2.0.1", 6, 5555, 22), -1);
  assert.equal(core.policyCount(), 0);
});

interface Pol { id: number; prio: number; family: 4 | 6; local: string; remote: string; proto: number; lp: [number, number]; rp: [number, number] }

function inPrefix(addr: Uint8Array, p: string): boolean {
  const pf = corePrefix(p);
  for (let bit = 0; bit < pf.len; bit++) {
    const m = 0x80 >> (bit & 7);
    if ((addr[bit >> 3] & m) !== (pf.bytes[bit >> 3] & m)) return false;
  }
  return true;
}

test("flow cache = ordered scan = JS model, across adds and removes (fast-check)", async () => {
  const octet = fc.integer({ min: 0, max: 3 });
  const v4 = fc.tuple(octet, octet, octet).map(([a, b, c]) => `10.${a}.${b}.${c}`);
  const prefix = fc.tuple(v4, fc.constantFrom(0, 8, 16, 24, 30, 32)).map(([a, l]) => `${a}/${l}`);
  const v6 = fc.tuple(octet, octet).map(([a, b]) => `fd00:${a}::${b}`);
  const prefix6 = fc.tuple(v6, fc.constantFrom(0, 16, 32, 64, 128)).map(([a, l]) => `${a}/${l}`);
  const ports = fc.oneof(fc.constant<[number, number]>([0, 65535]), fc.integer({ min: 0, max: 3 }).map((p): [number, number] => [p, p + 1]));
  const policy = fc.oneof(
    fc.record({ family: fc.constant<4>(4), local: prefix, remote: prefix }),
    fc.record({ family: fc.constant<6>(6), local: prefix6, remote: prefix6 }),
  ).chain((a) => fc.record({ prio: fc.integer({ min: 0, max: 4 }), proto: fc.constantFrom(0, 6, 17), lp: ports, rp: ports }).map((b) => ({ ...a, ...b })));
  const query = fc.oneof(fc.tuple(v4, v4), fc.tuple(v6, v6)).chain(([l, r]) =>
    fc.record({ l: fc.constant(l), r: fc.constant(r), proto: fc.constantFrom(1, 6, 17), lp: fc.integer({ min: 0, max: 4 }), rp: fc.integer({ min: 0, max: 4 }) }));
  const step = fc.oneof(
    fc.record({ op: fc.constant("add" as const), p: policy }),
    fc.record({ op: fc.constant("del" as const), k: fc.nat() }),
    fc.record({ op: fc.constant("ask" as const), q: query }),
  );
  const core = await makeCore({ maxPolicies: 200 });
  await fc.assert(
    fc.asyncProperty(fc.array(step, { maxLength: 80 }), async (steps) => {
      core.clearPolicies();
      const model: Pol[] = [];
      for (const s of steps) {
        if (s.op === "add") {
          const id = core.addPolicy({ action: "protect", priority: s.p.prio, local: s.p.local, remote: s.p.remote, proto: s.p.proto, localPorts: s.p.lp, remotePorts: s.p.rp });
          // model: stable insert by priority
          let at = model.length;
          while (at > 0 && model[at - 1].prio > s.p.prio) at--;
          model.splice(at, 0, { id, ...s.p });
        } else if (s.op === "del") {
          if (model.length === 0) continue;
          const [gone] = model.splice(s.k % model.length, 1);
          core.removePolicy(gone.id);
        } else {
          const q = s.q;
          const la = coreAddr(q.l), ra = coreAddr(q.r);
          const want = model.find((p) =>
            p.family === la.family && (p.proto === 0 || p.proto === q.proto) &&
            (q.proto === 1 ? p.lp[0] === 0 && p.rp[0] === 0 : q.lp >= p.lp[0] && q.lp <= p.lp[1] && q.rp >= p.rp[0] && q.rp <= p.rp[1]) &&
            inPrefix(la.bytes, p.local) && inPrefix(ra.bytes, p.remote))?.id ?? -1;
          const lp = q.proto === 1 ? 0 : q.lp, rp = q.proto === 1 ? 0 : q.rp; // no ports for ICMP
          const cached = core.lookupPolicy(q.l, q.r, q.proto, lp, rp);
          const p = core.ex.scratchPtr();
          const mem = new Uint8Array(core.ex.memory.buffer);
          mem.set(la.bytes, p); mem.set(ra.bytes, p + 16);
          const scanned = core.ex.spdQueryLinear(la.family, q.proto, p, p + 16, lp, rp);
          assert.equal(scanned, want, `scan vs model for ${JSON.stringify(q)}`);
          assert.equal(cached, want, `cache vs model for ${JSON.stringify(q)}`);
        }
      }
    }),
    { numRuns: 300 },
  );
});

test("20,000 entries: lookups through the cache stay exact", async () => {
  const core = await makeCore({ maxPolicies: 20_000 });
  const ids: number[] = [];
  for (let i = 0; i < 20_000; i++) {
    ids.push(core.addPolicy({ action: "protect", local: `10.${(i >> 8) & 255}.${i & 255}.0/24`, remote: "172.16.0.0/12", saId: i % 7 }));
  }
  for (let k = 0; k < 3; k++) for (const i of [0, 1, 4095, 12345, 19999]) {
    assert.equal(core.lookupPolicy(`10.${(i >> 8) & 255}.${i & 255}.7`, "172.20.1.1", 6, 1, 2), ids[i]);
  }
  assert.equal(core.lookupPolicy("10.200.0.1", "172.20.1.1"), -1);
});
