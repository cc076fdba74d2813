// Issue 7: `wesp up` runs IKEv2 for the config's `ike` peers. Two CEs, each
// with one IKE peer (PSK), come up from `wesp up` alone — no static SA
// anywhere — and carry traffic:
//
//   hostA ─lan─ ceA ══ wan ══ ceB ─lan─ hostB      (forwarder-util.ts's lab)
//
// ceA initiates, ceB responds; a UDP stream from hostA runs from before ceA
// starts, and ceB counts no NO_SA drop: the first packets ceA seals find ceB's
// inbound SA. (ceB answers IKE_AUTH only once it is in its worker; here ceA's own
// install, as slow as ceB's, would hide an early answer: the check guards the
// outcome, not the hold itself.) For ESP in UDP (IKE moves to the NAT-T port
// after IKE_SA_INIT, where the data plane's socket hands it up behind the
// non-ESP marker) over IPv4, and raw ESP over IPv6 (IKE on 500 throughout):
// both CEs' status shows the IKE SA (roles, proposal) and one CHILD_SA whose
// SPIs mirror the other side's and are the data plane's; ping and a 1 MiB TCP
// transfer go both ways through the tunnel, over both inner families. A
// SIGTERM to ceA deletes its IKE SA: ceB hears the DELETE and drops the SAs
// at once (nothing left in its data plane), without waiting for a liveness check.
// The same over IPv4 with node.ike_port 1500 and NAT-T 14500 (IKE never on 500;
// still as root here: see forwarder-unprivileged.test.ts for the persistent TUN).
// Then ESP proposals with no overlap: ceA deletes each IKE SA that came up
// without its CHILD_SA, retries (1 s, 2 s) and raises the alarm (log and status).
import { describe, it } from "node:test";
import { writeFileSync } from "node:fs";
import assert from "node:assert/strict";
import { Lab, tcpEcho, waitFor } from "../helpers/netns.ts";
import { requireTools } from "../helpers/require.ts";
import { assertNoNamespacesLeft } from "./io-util.ts";
import { ADDR, buildSites, status, wesp, type Sites } from "./forwarder-util.ts";
import { ikeNode, ikeOf, ikeUp, writeConfig, type IkePorts } from "./ike-util.ts";
import { received, streamReceiver, streamSender, upCe } from "./lifecycle-util.ts";

const PSK = "wesp-up-ike-e2e-shared-key";
const NETS = { a: ["10.1.0.0/24", "fd00:1::/64"], b: ["10.2.0.0/24", "fd00:2::/64"] };

async function run(s: Sites, encap: "udp" | "raw", outer: "v4" | "v6", ports: IkePorts = {}): Promise<void> {
  const dir = s.lab.dir;
  const tag = `${encap}-${outer}${ports.ike ? `-${ports.ike}` : ""}`;
  const cfgA = writeConfig(dir, `${tag}-a.json`, ikeNode(dir, "ceA", ADDR.ceAwan[outer], NETS.a, [{ name: "ceB", address: ADDR.ceBwan[outer], prefixes: NETS.b, initiate: true, encap, psk: PSK }], ports));
  const cfgB = writeConfig(dir, `${tag}-b.json`, ikeNode(dir, "ceB", ADDR.ceBwan[outer], NETS.b, [{ name: "ceA", address: ADDR.ceAwan[outer], prefixes: NETS.a, initiate: false, encap, psk: PSK }], ports));
  const sockA = `${dir}/ceA.sock`, sockB = `${dir}/ceB.sock`;
  const b = await upCe(s.ceB, cfgB);
  // a stream from hostA, running before ceA comes up: its first packets go out the moment ceA
  // installs the CHILD_SA, and ceB (the responder) must hold the SA by then (no NO_SA drop)
  const stop = `${dir}/${tag}-stop`;
  const rx = await streamReceiver(s.hostB, "0.0.0.0", 9100);
  const tx = streamSender(s.hostA, ADDR.hostB.v4, 9100, 1000, stop);
  const a = await upCe(s.ceA, cfgA);
  try {
    const stA = await ikeUp(sockA, "ceB");
    const stB = await ikeUp(sockB, "ceA");
    const [ia, ib] = [ikeOf(stA, "ceB"), ikeOf(stB, "ceA")];
    assert.equal(ia.role, "initiator");
    assert.equal(ib.role, "responder");
    assert.equal(ia.ikeSa, ib.ikeSa, "one IKE SA, the same SPIs on both sides");
    assert.equal(ia.proposal, "aes-gcm-128/prf-sha256/dh-19", "the default IKE proposal, aes128gcm16-prfsha256-ecp256");
    assert.equal(ia.failures, 0);
    assert.equal(ia.childSas.length, 1);
    assert.deepEqual([ia.childSas[0].spiIn, ia.childSas[0].spiOut], [ib.childSas[0].spiOut, ib.childSas[0].spiIn], "the CHILD_SA's SPIs mirror");
    assert.ok(ia.childSas[0].spiIn >= 256 && ib.childSas[0].spiIn >= 256);
    const dpA = stA.peers.find((p: any) => p.name === "ceB");
    assert.equal(dpA.encap, encap);
    assert.deepEqual(dpA.inbound.map((x: any) => x.spi), [ia.childSas[0].spiIn], "the data plane holds the negotiated inbound SA");
    if (ports.ike !== undefined) {
      // node.ike_port: IKE bound there on both CEs, and nothing on 500
      for (const ns of [s.ceA, s.ceB]) {
        const bound = (await ns.run(["ss", "-Hunl"])).split("\n").map((l) => l.trim().split(/\s+/)[3] ?? "").map((a) => Number(a.slice(a.lastIndexOf(":") + 1)));
        assert.ok(bound.includes(ports.ike) && bound.includes(ports.natt ?? 4500) && !bound.includes(500), `${ns.name} binds ${bound.join(", ")}`);
      }
    }

    await waitFor(() => received(rx).count > 500, "the stream through the tunnel", 20_000, 50);
    writeFileSync(stop, "");
    await tx.exited;
    const noSa = (await status(sockB)).global.inbound.drops.NO_SA;
    assert.equal(noSa, 0, "ceA's first ESP packets found ceB's inbound SA");
    for (const fam of ["v4", "v6"] as const) {
      assert.deepEqual(await s.hostA.ping(ADDR.hostB[fam], 3), { sent: 3, received: 3 }, `ping ${fam} A→B`);
      assert.deepEqual(await s.hostB.ping(ADDR.hostA[fam], 3), { sent: 3, received: 3 }, `ping ${fam} B→A`);
    }
    const ab = await tcpEcho(s.hostB, ADDR.hostB.v4, s.hostA, 1 << 20, 5101);
    assert.deepEqual(ab, { sent: 1 << 20, echoed: 1 << 20, equal: true }, "TCP A→B→A");
    const ba = await tcpEcho(s.hostA, ADDR.hostA.v6, s.hostB, 1 << 20, 5102);
    assert.deepEqual(ba, { sent: 1 << 20, echoed: 1 << 20, equal: true }, "TCP B→A→B (IPv6 inside)");

    const after = await status(sockA);
    const out = after.peers.find((p: any) => p.name === "ceB").outbound;
    assert.equal(out.spi, ia.childSas[0].spiOut);
    assert.ok(out.counters.packets > 700, `the tunnel carried the transfers (${out.counters.packets} packets out)`);
    const text = await wesp("status", "--control", sockA);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^ike ceB {2}up {2}initiator {2}aes-gcm-128\/prf-sha256\/dh-19/m);
    assert.match(text.stdout, new RegExp(`child in 0x${ia.childSas[0].spiIn.toString(16).padStart(8, "0")}`));

    // SIGTERM: ceA deletes its IKE SA (§1.4.1) before it goes; ceB drops the pair at once.
    await a.stop("SIGTERM", 10_000);
    assert.equal(a.exitCode, 0, a.stderr);
    await waitFor(() => /IKE SA \S+ deleted by the peer/.test(b.stderr), "ceB hears ceA's DELETE", 5000);
    const stB2 = await status(sockB);
    assert.deepEqual(ikeOf(stB2, "ceA").childSas, []);
    assert.equal(ikeOf(stB2, "ceA").state, "waiting", "a responder waits for the peer to come back");
    assert.equal(stB2.peers.find((p: any) => p.name === "ceA"), undefined, "no SA for ceA in ceB's data plane");
    assert.doesNotMatch(a.stderr + b.stderr, /refused \(internal\)/);
  } finally {
    writeFileSync(stop, "");
    await tx.stop();
    await rx.stop();
    await a.stop("SIGTERM", 10_000);
    await b.stop("SIGTERM", 10_000);
  }
  assert.equal(b.exitCode, 0, b.stderr);
}

/**
 * ESP proposals with nothing in common: each IKE SA comes up and its CHILD_SA is
 * refused (NO_PROPOSAL_CHOSEN, §1.2). ceA must not keep that IKE SA (nothing
 * would carry the traffic): deleted, retried with backoff, the alarm at alarm_after.
 */
async function mismatch(s: Sites): Promise<void> {
  const dir = s.lab.dir;
  const ports = { ike: 1500, natt: 14500 };
  const retry = { min: 1, max: 2, alarm_after: 3 };
  const cfgA = writeConfig(dir, "mismatch-a.json", ikeNode(dir, "ceA", ADDR.ceAwan.v4, NETS.a, [{ name: "ceB", address: ADDR.ceBwan.v4, prefixes: NETS.b, initiate: true, encap: "udp", psk: PSK, ike: { retry, proposals: { esp: ["aes128gcm16"] } } }], ports));
  const cfgB = writeConfig(dir, "mismatch-b.json", ikeNode(dir, "ceB", ADDR.ceBwan.v4, NETS.b, [{ name: "ceA", address: ADDR.ceAwan.v4, prefixes: NETS.a, initiate: false, encap: "udp", psk: PSK, ike: { retry, proposals: { esp: ["aes256gcm16"] } } }], ports));
  const b = await upCe(s.ceB, cfgB);
  const a = await upCe(s.ceA, cfgA);
  try {
    await waitFor(async () => ikeOf(await status(`${dir}/ceA.sock`), "ceB")?.alarm === true, "ceA's alarm", 30_000, 100);
    const ia = ikeOf(await status(`${dir}/ceA.sock`), "ceB");
    assert.ok(ia.failures >= 3, JSON.stringify(ia));
    assert.notEqual(ia.state, "up");
    assert.deepEqual(ia.childSas, []);
    assert.match(ia.lastError, /no CHILD_SA: the responder refused the CHILD_SA with notify 14/);
    assert.match(a.stderr, /ike: peer ceB: down: no CHILD_SA: .*\n.*ike: peer ceB: retry in 1 s \(failures in a row: 1\)/);
    assert.match(a.stderr, /retry in 2 s \(failures in a row: 2\)/);
    assert.match(a.stderr, /alarm: ike: peer ceB: 3 failed attempts in a row \(last: no CHILD_SA/);
    assert.match(b.stderr, /IKE SA \S+ deleted by the peer/, "ceA deletes each childless IKE SA");
    assert.equal((await status(`${dir}/ceA.sock`)).peers.find((p: any) => p.name === "ceB"), undefined, "no SA for ceB in ceA's data plane");
  } finally {
    await a.stop("SIGTERM", 10_000);
    await b.stop("SIGTERM", 10_000);
  }
  assert.equal(a.exitCode, 0, a.stderr);
}

describe("wesp up with IKEv2 peers (PSK)", { skip: requireTools(["netns", "python3"], { why: "e2e wesp up with IKEv2" }) }, () => {
  it("ESP in UDP over IPv4, raw ESP over IPv6, node.ike_port 1500 with NAT-T 14500: up from `wesp up`, ping and TCP both ways, status, DELETE on stop; no ESP proposal in common: retried, the alarm", async () => {
    const lab = new Lab();
    try {
      const s = await buildSites(lab);
      await run(s, "udp", "v4");
      await run(s, "raw", "v6");
      await run(s, "udp", "v4", { ike: 1500, natt: 14500 });
      await mismatch(s);
    } finally {
      await lab.teardown();
      assertNoNamespacesLeft(lab);
    }
  });
});
