// `wesp up` against a live charon (kernel-libipsec), IKEv2 with a PSK, and ESP
// really flowing between the sites through wesp's TUN and charon's ipsec0:
//
//   siteL ──s── gl  ceL (wesp up)  wl ═══ 10.99.0.0/24 ═══ wr  ceR (charon)  gr ──s── siteR
//   192.168.1.2   .1               .1                      .2                .1   192.168.2.2
//
// 1. wesp initiates: the IKE SA and CHILD_SA come up from `wesp up` alone; the
//    SPIs in wesp's status are the ones charon lists; ping and TCP both ways; a
//    SIGTERM to wesp deletes the IKE SA at charon (DELETE, §1.4.1).
// 2. charon initiates, wesp responds (IKE_AUTH arrives on the NAT-T port, through
//    the data plane's socket): the same, traffic both ways.
// 3. Liveness (§2.4; draft-ietf-l3vpn-ce-based-02 §3.4): with dpd 2 s, charon is
//    killed (SIGKILL: no DELETE). wesp's liveness check goes unanswered and the peer
//    is declared dead (its SAs leave the data plane); set-ups are retried after
//    1, 2, 4, 4 s (retry min 1, max 4) as its log says; the alarm is raised once,
//    at the third failure in a row (alarm_after 3); when charon comes back, the next
//    retry brings the tunnel up again and traffic flows.
// 4. wesp with node.workers = 2 (one CHILD_SA per worker, RFC 9611 style): as
//    initiator it makes a second CHILD_SA with the same selectors right after
//    IKE_AUTH, as responder one second after charon's IKE_AUTH; charon (which knows
//    nothing of per-resource SAs) installs both; 16-flow numbered streams both ways
//    arrive whole, whichever worker each flow lands on.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { tcpEcho, waitFor, type LabProcess } from "../helpers/netns.ts";
import { status } from "../e2e/forwarder-util.ts";
import { ikeNode, ikeOf, ikeUp, writeConfig } from "../e2e/ike-util.ts";
import { received, sentCount, streamReceiver, streamSender } from "../e2e/lifecycle-util.ts";
import type { Charon } from "./strongswan.ts";
import { CHARON_ADDR, NET_C, NET_W, PSK, sameChild, startCharon as startCharonIn, WESP, type IkeCase } from "./ike-lab.ts";
import { labSkip, NET_L, NET_R, PINGS, SITE_L, SITE_R, useTopo, WAN_L, WAN_R, type Topo } from "./lab_setup.ts";
import { wespUp } from "./wesp-peer.ts";

/** charon's side (ike-lab.ts): wesp's default proposals, forced UDP encapsulation (kernel-libipsec carries only that), no DPD. */
const charonCase = (name: string): IkeCase => ({ name, ike: "aes128gcm16-prfsha256-ecp256", esp: "aes128gcm16" });

// ike-lab.ts's charon config names the addresses and nets of lab_setup.ts's ceL and ceR
assert.deepEqual([WESP, CHARON_ADDR, NET_W, NET_C], [WAN_L, WAN_R, NET_L, NET_R], "the two labs' addresses agree");

/** A charon on ceR whose only usable connection is `name`, to wesp. */
const startCharon = (t: Topo, name: string): Promise<Charon> => startCharonIn(t.ceR, charonCase(name));

/** wesp up in ceL with charon as its one IKE peer; resolves once it forwards. */
async function startWesp(t: Topo, tag: string, ike: Record<string, unknown>, workers = 1): Promise<{ w: LabProcess; sock: string }> {
  const dir = t.lab.dir;
  const doc = ikeNode(dir, `wesp-${tag}`, WAN_L, [NET_L], [{ name: "charon", address: WAN_R, prefixes: [NET_R], initiate: true, encap: "udp", psk: PSK, ike }]) as { node: { workers: number } };
  doc.node.workers = workers;
  const cfg = writeConfig(dir, `wesp-${tag}.json`, doc);
  const w = wespUp(t.ceL, cfg);
  await waitFor(() => !w.running || /forwarding on/.test(w.stderr), "wesp up forwarding", 60_000);
  assert.ok(w.running, `wesp up exited: ${w.stderr}`);
  return { w, sock: join(dir, `wesp-${tag}.sock`) };
}

/** Ping both ways between the sites; every echo must come back. */
async function pingBothWays(t: Topo): Promise<void> {
  assert.deepEqual(await t.siteL.ping(SITE_R, PINGS), { sent: PINGS, received: PINGS }, "siteL → siteR");
  assert.deepEqual(await t.siteR.ping(SITE_L, PINGS), { sent: PINGS, received: PINGS }, "siteR → siteL");
}

describe("wesp up against charon: IKEv2 negotiates, ESP flows", { skip: labSkip("interop wesp up (IKE) against charon") }, () => {
  const getTopo = useTopo();

  test("wesp initiates: up, SPIs as charon lists them, ping and TCP both ways, DELETE at stop", async () => {
    const t = getTopo();
    const charon = await startCharon(t, "init");
    const { w, sock } = await startWesp(t, "init", { dpd: 0 });
    try {
      const st = await ikeUp(sock, "charon");
      assert.equal(ikeOf(st, "charon").role, "initiator");
      assert.equal(ikeOf(st, "charon").natDetected, true, "forced UDP encapsulation on both sides");
      await sameChild(st, charon);
      await pingBothWays(t);
      assert.deepEqual(await tcpEcho(t.siteR, SITE_R, t.siteL, 256 << 10, 5201), { sent: 256 << 10, echoed: 256 << 10, equal: true });
      await w.stop("SIGTERM", 10_000);
      assert.equal(w.exitCode, 0, w.stderr);
      await waitFor(() => /received DELETE for IKE_SA/.test(charon.log()), "charon receives wesp's DELETE", 5000);
    } finally {
      await w.stop("SIGTERM", 10_000);
      await charon.stop();
    }
  });

  test("charon initiates, wesp responds: up, ping both ways", async () => {
    const t = getTopo();
    const charon = await startCharon(t, "resp");
    const { w, sock } = await startWesp(t, "resp", { dpd: 0, initiate: false });
    try {
      await charon.swanctl("--initiate", "--child", "resp", "--timeout", "15");
      const st = await ikeUp(sock, "charon");
      assert.equal(ikeOf(st, "charon").role, "responder");
      await sameChild(st, charon);
      await pingBothWays(t);
    } finally {
      await w.stop("SIGTERM", 10_000);
      await charon.stop();
    }
  });

  for (const role of ["initiator", "responder"] as const) {
    test(`wesp with two workers as ${role}: a CHILD_SA per worker, both installed at charon, 16 flows each way carried`, async () => {
      const t = getTopo();
      const tag = `w2${role[0]}`;
      const charon = await startCharon(t, tag);
      const { w, sock } = await startWesp(t, tag, { dpd: 0, initiate: role === "initiator" }, 2);
      try {
        if (role === "responder") await charon.swanctl("--initiate", "--child", tag, "--timeout", "15");
        await waitFor(async () => (ikeOf(await status(sock), "charon")?.childSas ?? []).length === 2, "two CHILD_SAs", 20_000, 100);
        const pairs = ikeOf(await status(sock), "charon").childSas as { spiIn: number; spiOut: number; worker: number }[];
        assert.deepEqual(pairs.map((p) => p.worker).sort(), [0, 1], "one per worker");
        for (const p of pairs) assert.equal(p.spiIn % 2, p.worker, "the inbound SPI steers to its worker");
        const hex = (n: number) => n.toString(16).padStart(8, "0");
        await waitFor(async () => {
          const sas = await charon.listSas();
          return pairs.every((p) => new RegExp(`in\\s+${hex(p.spiOut)}`).test(sas) && new RegExp(`out\\s+${hex(p.spiIn)}`).test(sas));
        }, "charon lists both CHILD_SAs", 10_000, 200);
        const stop = join(t.lab.dir, `${tag}-stop`);
        const rxR = await streamReceiver(t.siteR, SITE_R, 9100);
        const rxL = await streamReceiver(t.siteL, SITE_L, 9101);
        const txL = streamSender(t.siteL, SITE_R, 9100, 200, stop, 16);
        const txR = streamSender(t.siteR, SITE_L, 9101, 200, stop, 16);
        await new Promise((r) => setTimeout(r, 3000));
        writeFileSync(stop, "");
        await Promise.all([txL.exited, txR.exited]);
        await waitFor(() => received(rxR).count >= sentCount(txL) && received(rxL).count >= sentCount(txR), "the streams drained", 5000, 50).catch(() => {});
        await rxR.stop();
        await rxL.stop();
        assert.equal(received(rxR).distinct, sentCount(txL), "L→R: every datagram, over 16 flows");
        assert.equal(received(rxL).distinct, sentCount(txR), "R→L: every datagram, over 16 flows");
        const dp = (await status(sock)).peers.find((p: any) => p.name === "charon");
        for (const wk of dp.workers) assert.ok(wk.outbound?.counters.packets > 0, `worker ${wk.worker} sealed some of the flows: ${JSON.stringify(dp.workers.map((x: any) => x.outbound?.counters.packets))}`);
        assert.equal((await status(sock)).global.inbound.drops.NO_SA ?? 0, 0, "every ESP packet reached the worker with its SA");
      } finally {
        await w.stop("SIGTERM", 10_000);
        await charon.stop();
      }
    });
  }

  test("charon killed: declared dead by a liveness check, retries with backoff, the alarm, back up when charon returns", async (tc) => {
    const t = getTopo();
    let charon = await startCharon(t, "dpd1");
    const dpd = 2;
    const { w, sock } = await startWesp(t, "dpd", { dpd, retry: { min: 1, max: 4, alarm_after: 3 } });
    try {
      const before = ikeOf(await ikeUp(sock, "charon"), "charon").childSas[0];
      await pingBothWays(t);
      const killedAt = Date.now();
      await charon.stop(true);
      await waitFor(() => /peer charon: down: timeout: no response to liveness check/.test(w.stderr), "wesp declares charon dead", 30_000, 50);
      tc.diagnostic(`declared dead ${((Date.now() - killedAt) / 1000).toFixed(1)} s after the kill (dpd ${dpd} s)`);
      const st = await status(sock);
      assert.equal(st.peers.find((p: any) => p.name === "charon"), undefined, "the dead peer's SAs left the data plane");
      await waitFor(() => /alarm: ike: peer charon: 3 failed attempts in a row/.test(w.stderr), "the alarm after 3 failures", 60_000, 100);
      const retries = [...w.stderr.matchAll(/peer charon: retry in ([\d.]+) s \(failures in a row: (\d+)\)/g)].map((m) => [Number(m[1]), Number(m[2])]);
      assert.deepEqual(retries.slice(0, 3), [[1, 1], [2, 2], [4, 3]], "retry after min, doubling up to max");
      assert.equal(ikeOf(await status(sock), "charon").alarm, true);
      assert.equal([...w.stderr.matchAll(/alarm: ike: peer charon/g)].length, 1, "one alarm until the peer is up again");

      charon = await startCharon(t, "dpd2");
      const after = ikeOf(await ikeUp(sock, "charon", 30_000), "charon");
      assert.equal(after.alarm, false, "the alarm clears when the peer is up");
      assert.equal(after.failures, 0);
      assert.notEqual(after.childSas[0].spiIn, before.spiIn, "a fresh CHILD_SA");
      assert.ok(retries.slice(3).every(([d]) => d === 4), `capped at max: ${JSON.stringify(retries)}`);
      await sameChild(await status(sock), charon);
      await pingBothWays(t);
    } finally {
      await w.stop("SIGTERM", 10_000);
      await charon.stop();
    }
  });
});
