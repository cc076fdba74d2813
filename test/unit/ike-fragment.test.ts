// IKE fragmentation (RFC 7383) between two in-memory wesp endpoints: an RSA
// certificate chain in IKE_AUTH does not fit 1280 bytes, so both IKE_AUTH
// messages go as Encrypted Fragments. Lost, duplicated and reordered fragments,
// hostile Fragment Numbers and forged fragments are each met with the RFC's
// answer (§2.6) and counted. The fuzz pass over SKF, CERT, CERTREQ and AUTH is
// test/fuzz/ike-cert-fuzz.test.ts.
import { test } from "node:test";
import assert from "node:assert/strict";
import { A, B, child, config, kinds, lab } from "./ike-harness.ts";
import { chain } from "../helpers/pki.ts";
import { IdType } from "../../host/ike/constants.ts";
import type { CertAuth } from "../../host/ike/certs.ts";
import { MAX_FRAGMENTS } from "../../host/ike/fragment.ts";
import type { IkeSaConfig, Path } from "../../host/ike/types.ts";

const SKF = 53;
const isFragment = (b: Uint8Array) => b[16] === SKF;
const fragNo = (b: Uint8Array) => (b[32] << 8) | b[33];
const exchangeOf = (b: Uint8Array) => b[18];

const a = await chain("rsa", "frag-a", { subject: "C=CH, O=wesp, CN=a.wesp.test", dns: ["a.wesp.test"] });
const b = await chain("rsa", "frag-b", { subject: "C=CH, O=wesp, CN=b.wesp.test", dns: ["b.wesp.test"] });
const fqdn = (s: string) => ({ idType: IdType.FQDN, data: new TextEncoder().encode(s) });
const certsA: CertAuth = { chain: [a.leaf.cert, a.mid.cert], key: a.leaf.key, cas: [b.root.cert] };
const certsB: CertAuth = { chain: [b.leaf.cert, b.mid.cert], key: b.leaf.key, cas: [a.root.cert] };

function fragLab(o: { a?: Partial<IkeSaConfig>; b?: Partial<IkeSaConfig> } = {}) {
  return lab(
    { ...config("to-b", A, B), certs: certsA, localId: fqdn("a.wesp.test"), remoteId: fqdn("b.wesp.test"), ...o.a },
    { ...config("to-a", B, A), certs: certsB, localId: fqdn("b.wesp.test"), remoteId: fqdn("a.wesp.test"), ...o.b },
  );
}
/** Both sides up; counted refusals (duplicates, forgeries) aside. */
const up = (l: ReturnType<typeof fragLab>) => {
  const real = (es: typeof l.events.a) => kinds(es).filter((k) => k !== "refused");
  assert.deepEqual(real(l.events.a), ["ikeSaEstablished", "childSaEstablished"], JSON.stringify(l.events.a));
  assert.deepEqual(real(l.events.b), ["ikeSaEstablished", "childSaEstablished"], JSON.stringify(l.events.b));
};

/** A lab started with A's IKE_AUTH fragments held back (in `held`) instead of delivered; the network open again. */
function heldFragments() {
  const l = fragLab();
  const held: { bytes: Uint8Array; path: Path }[] = [];
  l.setNet((d) => {
    if (d.from !== "a" || !isFragment(d.bytes)) return d;
    held.push({ bytes: d.bytes, path: d.path });
    return undefined;
  });
  l.start();
  l.setNet((d) => d);
  return { l, held };
}

test("both IKE_AUTH messages go as fragments of at most 1280 bytes on the wire (IPv4 + UDP), reassembled on arrival", () => {
  const l = fragLab();
  l.start();
  up(l);
  const auth = l.wire.filter((w) => exchangeOf(w.out.bytes) === 35);
  assert.ok(auth.every((w) => isFragment(w.out.bytes)), "every IKE_AUTH datagram is an SKF");
  assert.ok(auth.filter((w) => w.from === "a").length >= 2 && auth.filter((w) => w.from === "b").length >= 2);
  assert.ok(auth.every((w) => w.out.bytes.length + 28 <= 1280), `sizes ${auth.map((w) => w.out.bytes.length)}`);
  assert.deepEqual(auth.filter((w) => w.from === "a").map((w) => fragNo(w.out.bytes)), [1, 2].concat(auth.filter((w) => w.from === "a").slice(2).map((_, i) => i + 3)));
  // the CHILD_SA's keys mirror as without fragments
  assert.equal(Buffer.from(child(l.events.a)[0].keyIn).toString("hex"), Buffer.from(child(l.events.b)[0].keyOut).toString("hex"));
});

test("a smaller fragmentSize makes more, smaller fragments; fragmentSize 0 on one side: no fragmentation, the message goes whole", () => {
  const small = fragLab({ a: { fragmentSize: 576 }, b: { fragmentSize: 576 } });
  small.start();
  up(small);
  const auth = small.wire.filter((w) => exchangeOf(w.out.bytes) === 35);
  assert.ok(auth.every((w) => w.out.bytes.length + 28 <= 576));
  const off = fragLab({ b: { fragmentSize: 0 } });
  off.start();
  up(off);
  const whole = off.wire.filter((w) => exchangeOf(w.out.bytes) === 35);
  assert.equal(whole.length, 2);
  assert.ok(whole.every((w) => !isFragment(w.out.bytes) && w.out.bytes.length > 1280));
});

test("a lost fragment: nothing is processed until the initiator retransmits every fragment (§2.6.1)", () => {
  const l = fragLab();
  let dropped = 0;
  l.setNet((d) => (d.from === "a" && isFragment(d.bytes) && fragNo(d.bytes) === 2 && dropped++ === 0 ? undefined : d));
  l.start();
  assert.deepEqual(l.events.b, [], "B waits for fragment 2");
  assert.equal(l.events.a.length, 0);
  l.tick(1000);
  up(l);
  assert.equal(dropped, 2, "the second copy of fragment 2 went through");
  assert.equal(l.b.counters.get("fragment-duplicate"), 1, "fragment 1 came twice");
});

test("duplicated fragments are counted and ignored; the response fragments come once", () => {
  const l = fragLab();
  const dup: { bytes: Uint8Array; path: Path }[] = [];
  l.setNet((d) => {
    if (d.from === "a" && isFragment(d.bytes) && fragNo(d.bytes) === 1) dup.push({ bytes: d.bytes, path: d.path });
    return d;
  });
  l.start();
  up(l);
  // fragment 1 of the request again, after B answered: §2.6.1, the response is sent again
  const before = l.wire.length;
  const again = l.b.receive(dup[0].bytes, dup[0].path);
  assert.ok(again.send.length >= 2 && again.send.every((s) => isFragment(s.bytes)), "all response fragments again");
  // fragment 2 again: ignored
  const second = l.wire.find((w) => w.from === "a" && isFragment(w.out.bytes) && fragNo(w.out.bytes) === 2)!;
  assert.deepEqual(l.b.receive(second.out.bytes, dup[0].path).send, []);
  assert.equal(l.wire.length, before);
});

test("reordered fragments (last first) reassemble; a duplicate within the reassembly is counted", () => {
  const { l, held } = heldFragments();
  assert.ok(held.length >= 2);
  const rev = [...held].reverse();
  l.inject("b", l.b.receive(rev[0].bytes, rev[0].path));
  l.inject("b", l.b.receive(rev[0].bytes, rev[0].path)); // the same fragment twice
  assert.equal(l.b.counters.get("fragment-duplicate"), 1);
  for (const f of rev.slice(1)) l.inject("b", l.b.receive(f.bytes, f.path));
  up(l);
});

test("hostile Fragment Numbers (0, above Total, Total over the bound) and forged fragments are counted drops", () => {
  const { l, held } = heldFragments();
  const f = held[0];
  const bent = (mut: (x: Uint8Array) => void) => {
    const x = new Uint8Array(f.bytes);
    mut(x);
    return l.b.receive(x, f.path);
  };
  const set16 = (x: Uint8Array, o: number, v: number) => { x[o] = v >> 8; x[o + 1] = v & 0xff; };
  bent((x) => set16(x, 32, 0)); // Fragment Number 0
  bent((x) => set16(x, 32, held.length + 1)); // above Total
  bent((x) => { set16(x, 32, 1); set16(x, 34, MAX_FRAGMENTS + 1); }); // Total over what we keep
  bent((x) => { x[x.length - 1] ^= 1; }); // ICV
  bent((x) => set16(x, 34, held.length + 1)); // Total changed: fails integrity (the numbers are authenticated)
  assert.equal(l.b.counters.get("fragment-number"), 3);
  assert.equal(l.b.counters.get("fragment-integrity"), 2);
  assert.deepEqual(l.events.b.filter((e) => e.type !== "refused"), [], "nothing but counted refusals");
  // the real fragments still complete the message
  for (const h of held) l.inject("b", l.b.receive(h.bytes, h.path));
  up(l);
});

test("fragments before fragmentation was announced are refused (RFC 7383 §2.3)", () => {
  const { l, held } = heldFragments();
  const bSa = [...l.b.sas.values()][0];
  bSa.ctx.fragmentation = false; // as if A had not announced it
  l.b.receive(held[0].bytes, held[0].path);
  assert.equal(l.b.counters.get("fragment-unannounced"), 1);
});
