// Issue 7: `wesp reload` of IKEv2 peers, two CEs from `wesp up` (forwarder-util.ts's lab):
//   0. a reload refused for a node field that needs a restart leaves IKE alone;
//   1. both sides' `ike` block changes (another ESP proposal): the peer's IKE restarts
//      (DELETE, SAs removed) and the new CHILD_SA uses the new proposal; traffic flows;
//   2. the peer removed from ceA: ceA sends a DELETE, both data planes drop the SAs;
//   3. the peer added back: up again, traffic flows;
//   4. a prefix added behind ceA (its local_prefixes, ceB's peer prefixes): the IKE SA
//      stays; ceA (the initiator) makes a CHILD_SA with the new selectors and deletes
//      the old one once it is in place — a numbered stream loses nothing.
// Unchanged IKE peers keeping their SAs across a reload is sa-negotiated.test.ts's.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Lab, waitFor } from "../helpers/netns.ts";
import { requireTools } from "../helpers/require.ts";
import { assertNoNamespacesLeft } from "./io-util.ts";
import { ADDR, buildSites, status, wesp, type Sites } from "./forwarder-util.ts";
import { ikeNode, ikeOf, ikeUp, writeConfig } from "./ike-util.ts";
import { received, sentCount, streamReceiver, streamSender, upCe } from "./lifecycle-util.ts";
import { writeFileSync } from "node:fs";

const PSK = "wesp-reload-ike-e2e-shared-key";
const NETS = { a: ["10.1.0.0/24", "fd00:1::/64"], b: ["10.2.0.0/24", "fd00:2::/64"] };

/**
 * `wesp reload` of IKE peers: a changed `ike` block restarts that peer's IKE (DELETE,
 * SAs removed, negotiated afresh with the new proposals); a removed peer gets a
 * DELETE and loses its SAs; a peer added back comes up again.
 */
async function reloads(s: Sites): Promise<void> {
  const dir = s.lab.dir;
  let extraA: string[] = [];
  const peer = (me: "A" | "B", esp: string) => ({
    name: me === "A" ? "ceB" : "ceA", address: me === "A" ? ADDR.ceBwan.v4 : ADDR.ceAwan.v4, prefixes: me === "A" ? NETS.b : [...NETS.a, ...extraA],
    initiate: me === "A", encap: "udp" as const, psk: PSK, ike: { proposals: { esp: [esp] }, retry: { min: 1, max: 2 } },
  });
  const doc = (me: "A" | "B", peers: object[]) => ikeNode(dir, `ce${me}`, me === "A" ? ADDR.ceAwan.v4 : ADDR.ceBwan.v4, me === "A" ? [...NETS.a, ...extraA] : NETS.b, peers as never);
  const cfgA = writeConfig(dir, "reload-a.json", doc("A", [peer("A", "aes128gcm16")]));
  const cfgB = writeConfig(dir, "reload-b.json", doc("B", [peer("B", "aes128gcm16")]));
  const sockA = `${dir}/ceA.sock`, sockB = `${dir}/ceB.sock`;
  const b = await upCe(s.ceB, cfgB);
  const a = await upCe(s.ceA, cfgA);
  const reload = async (sock: string) => {
    const r = await wesp("reload", "--control", sock);
    assert.equal(r.code, 0, r.stderr);
  };
  try {
    const first = ikeOf(await ikeUp(sockA, "ceB"), "ceB").childSas[0];
    // 0. a reload the data plane refuses (a node field only a restart changes, with an ike change beside it): IKE is left alone
    const refused = doc("A", [peer("A", "aes256gcm16")]) as { node: { tun: { mtu: number } } };
    refused.node.tun.mtu = 1300;
    writeConfig(dir, "reload-a.json", refused);
    const no = await wesp("reload", "--control", sockA);
    assert.notEqual(no.code, 0);
    assert.match(no.stderr, /node\.tun changed/);
    const spis = (c: { spiIn: number; spiOut: number }[]) => c.map((x) => [x.spiIn, x.spiOut]);
    assert.deepEqual(spis(ikeOf(await status(sockA), "ceB").childSas), spis([first]), "the same CHILD_SA, untouched");
    assert.doesNotMatch(b.stderr, /deleted by the peer/);
    // 1. both sides' ike block changes (another ESP proposal): the peer restarts, the new CHILD_SA uses it
    writeConfig(dir, "reload-b.json", doc("B", [peer("B", "aes256gcm16")]));
    writeConfig(dir, "reload-a.json", doc("A", [peer("A", "aes256gcm16")]));
    await reload(sockB);
    await waitFor(() => /IKE SA \S+ deleted by the peer/.test(a.stderr), "the restart begins with ceB's DELETE to ceA", 5000);
    await reload(sockA);
    const st = await ikeUp(sockA, "ceB", 30_000, (c) => c.spiIn === first.spiIn);
    assert.equal(st.peers.find((p: any) => p.name === "ceB").suite, "aes-256-gcm", "negotiated afresh with the new proposal");
    await ikeUp(sockB, "ceA");
    assert.deepEqual(await s.hostA.ping(ADDR.hostB.v4, 3), { sent: 3, received: 3 });
    // 2. the peer removed from ceA: DELETE, its SAs gone on both sides
    const deletesBefore = (b.stderr.match(/deleted by the peer/g) ?? []).length;
    writeConfig(dir, "reload-a.json", doc("A", []));
    await reload(sockA);
    const stA = await status(sockA);
    assert.deepEqual([stA.ike ?? [], stA.peers], [[], []], "ceA: no IKE peer, no SA");
    await waitFor(() => (b.stderr.match(/deleted by the peer/g) ?? []).length > deletesBefore, "ceB hears the DELETE", 5000);
    await waitFor(async () => (await status(sockB)).peers.length === 0, "ceB drops the SAs", 5000);
    // 3. added back: up again, traffic flows
    writeConfig(dir, "reload-a.json", doc("A", [peer("A", "aes256gcm16")]));
    await reload(sockA);
    await ikeUp(sockA, "ceB");
    await ikeUp(sockB, "ceA");
    assert.deepEqual(await s.hostB.ping(ADDR.hostA.v4, 3), { sent: 3, received: 3 });
    // 4. a prefix added behind ceA, on both sides, under a numbered stream hostA → hostB: only the CHILD_SA changes
    const ike = ikeOf(await ikeUp(sockA, "ceB"), "ceB");
    const rx = await streamReceiver(s.hostB, ADDR.hostB.v4, 9200);
    const stop = `${dir}/stop-reselect`;
    const tx = streamSender(s.hostA, ADDR.hostB.v4, 9200, 300, stop);
    await waitFor(() => received(rx).distinct > 100, "stream flowing");
    const deletes = (b.stderr.match(/deleted by the peer/g) ?? []).length;
    extraA = ["10.11.0.0/24"];
    writeConfig(dir, "reload-b.json", doc("B", [peer("B", "aes256gcm16")]));
    writeConfig(dir, "reload-a.json", doc("A", [peer("A", "aes256gcm16")]));
    await reload(sockB);
    const ra = await wesp("reload", "--control", sockA);
    assert.equal(ra.code, 0, ra.stderr);
    assert.match(ra.stdout, /changed 1 \[ceB\], unchanged 0/, "reported as changed (its selectors), not restarted");
    assert.match(a.stderr, /ike: new traffic selectors for peers \[ceB\]: their IKE SAs stay; new CHILD_SAs replace the old ones/);
    await waitFor(async () => {
      const c = ikeOf(await status(sockA), "ceB").childSas as { spiIn: number }[];
      return c.length === 1 && c[0].spiIn !== ike.childSas[0].spiIn;
    }, "the new CHILD_SA alone", 20_000, 100);
    await new Promise((r) => setTimeout(r, 500));
    writeFileSync(stop, "");
    await tx.exited;
    await waitFor(() => received(rx).distinct >= sentCount(tx), "stream drained", 5000).catch(() => {});
    const got = received(rx);
    console.log(`# reselect under a stream: sent ${sentCount(tx)}, received ${got.distinct} distinct (${got.count})`);
    assert.equal(got.distinct, sentCount(tx), "zero loss while the CHILD_SA was replaced");
    assert.equal(got.count, got.distinct, "no duplicates");
    await rx.stop();
    const after = ikeOf(await status(sockA), "ceB");
    assert.equal(after.ikeSa, ike.ikeSa, "the same IKE SA");
    assert.equal((b.stderr.match(/deleted by the peer/g) ?? []).length, deletes, "no IKE SA deleted");
    assert.doesNotMatch(a.stderr + b.stderr, /refused \(internal\)|refused its SAs/);
  } finally {
    await a.stop("SIGTERM", 10_000);
    await b.stop("SIGTERM", 10_000);
  }
  assert.equal(a.exitCode, 0, a.stderr);
  assert.equal(b.exitCode, 0, b.stderr);
}

describe("wesp reload of IKEv2 peers", { skip: requireTools(["netns", "python3"], { why: "e2e wesp reload with IKEv2" }) }, () => {
  it("a changed ike block restarts the peer, a removed one gets a DELETE, an added one comes up, new prefixes keep the IKE SA", async () => {
    const lab = new Lab();
    try {
      await reloads(await buildSites(lab));
    } finally {
      await lab.teardown();
      assertNoNamespacesLeft(lab);
    }
  });
});
