// wesp's IKEv2 held to strongSwan's bytes and secrets, without a live charon:
// test/unit/ike-transcript.json holds two exchanges recorded by
// test/interop/ike-transcript.ts (charon 5.9.8 initiating, wesp responding) with
// the secrets charon logged. From charon's shared DH secret and the nonces and
// SPIs in its IKE_SA_INIT request, wesp must derive charon's SKEYSEED, SK_* and
// CHILD_SA keys (RFC 7296 §2.14, §2.17), open charon's encrypted IKE_AUTH request
// (§3.14) and verify charon's PSK AUTH (§2.15); the codec must re-encode
// charon's messages to the very same bytes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { decodeMessage, encodeMessage, type Message } from "../../host/ike/message.ts";
import { selectProposal } from "../../host/ike/proposals.ts";
import { ikeSaConfig } from "../../host/ike/config.ts";
import { deriveChildSaKeys, deriveIkeSaKeys } from "../../host/ike/prf.ts";
import { openMessage, type SkKeys } from "../../host/ike/sk.ts";
import { pskAuth, signedOctets } from "../../host/ike/auth.ts";
import type { IdPayload, Payload } from "../../host/ike/payloads.ts";

interface Recorded {
  ike: string;
  esp: string;
  psk: string;
  messages: string[];
  charon: Record<"sharedSecret" | "skeyseed" | "skD" | "skAi" | "skAr" | "skEi" | "skEr" | "skPi" | "skPr", string> & { child: Record<"encI" | "encR" | "integI" | "integR", string> };
}
const FIXTURE = JSON.parse(readFileSync(join(import.meta.dirname, "ike-transcript.json"), "utf8")) as { cases: Recorded[] };
const bytes = (h: string) => Uint8Array.from(Buffer.from(h, "hex"));
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

function decoded(h: string): Message {
  const r = decodeMessage(bytes(h));
  assert.ok(r.ok, r.ok ? "" : `${r.error.reason}: ${r.error.detail}`);
  return r.value;
}
const find = <K extends Payload["kind"]>(ps: Payload[], kind: K) => ps.find((p) => p.kind === kind) as Extract<Payload, { kind: K }>;

test("the fixture holds two complete exchanges (an AEAD one and a CBC+HMAC one)", () => {
  assert.equal(FIXTURE.cases.length, 2);
  for (const c of FIXTURE.cases) assert.equal(c.messages.length, 4);
});

for (const c of FIXTURE.cases) {
  test(`strongSwan transcript, IKE ${c.ike}, ESP ${c.esp}: codec, keys, SK payload and AUTH agree with charon`, () => {
    const [m1, m2, m3, m4] = c.messages.map(decoded);
    // the codec reproduces charon's own bytes (and wesp's)
    c.messages.forEach((h, i) => assert.equal(hex(encodeMessage(decoded(h))), h, `message ${i + 1} re-encodes`));
    assert.deepEqual([m1.header.exchange, m3.header.exchange], [34, 35]);

    // §2.14 from charon's g^ir and the nonces and SPIs on the wire
    const cfg = ikeSaConfig({ name: "t", local: "10.99.0.1", remote: "10.99.0.2", psk: c.psk, ike: [c.ike], esp: [c.esp], localTs: ["192.168.1.0/24"], remoteTs: ["192.168.2.0/24"] });
    const chosen = selectProposal(find(m2.payloads, "sa").proposals, cfg.ikeProposals)!;
    const ni = find(m1.payloads, "nonce").data;
    const nr = find(m2.payloads, "nonce").data;
    const { skeyseed, keys } = deriveIkeSaKeys({
      prf: chosen.prf!, encr: chosen.encr, integ: chosen.integ, sharedSecret: bytes(c.charon.sharedSecret),
      ni, nr, spiI: m2.header.spiI, spiR: m2.header.spiR,
    });
    assert.equal(hex(skeyseed), c.charon.skeyseed, "SKEYSEED");
    for (const k of ["skD", "skAi", "skAr", "skEi", "skEr", "skPi", "skPr"] as const) assert.equal(hex(keys[k]), c.charon[k], k);

    // §3.14: charon's IKE_AUTH request opens with SK_ei/SK_ai, wesp's response with SK_er/SK_ar
    const skI: SkKeys = { encr: chosen.encr, integ: chosen.integ, encKey: keys.skEi, integKey: keys.skAi };
    const skR: SkKeys = { encr: chosen.encr, integ: chosen.integ, encKey: keys.skEr, integKey: keys.skAr };
    const req = openMessage(bytes(c.messages[2]), m3.payloads.at(-1), skI);
    assert.ok(req.ok, req.ok ? "" : req.error.detail);
    const resp = openMessage(bytes(c.messages[3]), m4.payloads.at(-1), skR);
    assert.ok(resp.ok, resp.ok ? "" : resp.error.detail);
    assert.equal(openMessage(bytes(c.messages[2]), m3.payloads.at(-1), skR).ok, false, "not with the other direction's keys");

    // §2.15: charon's AUTH over RealMessage1 | Nr | prf(SK_pi, IDi')
    const idi = req.value.find((p): p is IdPayload => p.kind === "id" && p.type === 35)!;
    assert.deepEqual([idi.idType, [...idi.data]], [1, [10, 99, 0, 2]]);
    const auth = find(req.value, "auth");
    assert.equal(auth.method, 2);
    const psk = new TextEncoder().encode(c.psk);
    assert.equal(hex(pskAuth(chosen.prf!, psk, signedOctets(chosen.prf!, bytes(c.messages[0]), nr, keys.skPi, idi))), hex(auth.data), "charon's AUTH verifies");
    assert.notEqual(hex(pskAuth(chosen.prf!, new TextEncoder().encode("not the psk"), signedOctets(chosen.prf!, bytes(c.messages[0]), nr, keys.skPi, idi))), hex(auth.data));

    // §2.17: the CHILD_SA's KEYMAT from SK_d and IKE_SA_INIT's nonces
    const esp = selectProposal(find(req.value, "sa").proposals, cfg.espProposals, "ignore")!;
    const k = deriveChildSaKeys(chosen.prf!, keys.skD, esp.encr, esp.integ, ni, nr);
    assert.deepEqual(
      { encI: hex(k.encI), encR: hex(k.encR), integI: hex(k.integI), integR: hex(k.integR) },
      c.charon.child,
    );
  });
}
