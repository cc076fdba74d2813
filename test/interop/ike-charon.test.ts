// wesp's IKEv2 (host/ike/) against a live strongSwan charon (kernel-libipsec, its
// own namespace and /run): wesp as initiator and as responder, PSK, the IKE
// proposals aes128gcm16-prfsha256-ecp256 and aes256-sha256-modp2048, ESP
// AES-GCM-16, ChaCha20-Poly1305 and AES-CBC + HMAC-SHA-256. Each case: both IKE
// SA and CHILD_SA come up (charon's `swanctl --list-sas` shows them ESTABLISHED
// and INSTALLED) and the CHILD_SA keys and SPIs wesp derived equal the ones
// charon logs (chd = 4, parsed by strongswan.ts). charon is told `encap = yes`
// (kernel-libipsec carries only UDP-encapsulated ESP), so NAT detection makes
// IKE_AUTH move to 4500 behind the non-ESP marker (RFC 7296 §2.23, RFC 3948).
// Then CHILD_SA rekeys (CREATE_CHILD_SA, §1.3.3) started by either side, with and
// without PFS: the new keys equal charon's and the old CHILD_SA is deleted. IKE SA
// rekeys by either side, and collisions: both rekeying the CHILD_SA (§2.8.1) or the
// IKE SA (§2.8.2) at once, wesp's request held back until charon's has crossed it.
//
// The lab (two namespaces named wike…) is in ./ike-lab.ts.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { waitFor, type LabProcess } from "../helpers/netns.ts";
import { requireTools } from "../helpers/require.ts";
import { parseChildSas, type Charon, type ChildSa } from "./strongswan.ts";
import { buildIkeTopo, dumps, eventsOf, NET_C, NET_W, startCharon, startWesp, type IkeCase, type IkeTopo, type WespEvent } from "./ike-lab.ts";

// ECP-256, MODP-2048 and AES-GCM come from charon's openssl and gcm plugins (Debian: standard-plugins)
const OPENSSL_PLUGIN = "/usr/lib/ipsec/plugins/libstrongswan-openssl.so";
const skip = requireTools(
  ["netns", "charon", "kernel-libipsec", "swanctl", {
    name: "strongSwan openssl plugin", present: () => existsSync(OPENSSL_PLUGIN),
    install: "apt-get install -y libstrongswan-standard-plugins", pkg: "libstrongswan-standard-plugins",
  }],
  { why: "IKEv2 interop with strongSwan charon" },
);

interface Case extends IkeCase {
  /** Who starts the exchange. */
  initiator: "wesp" | "charon";
  /** wesp's core suite and key sizes expected for the ESP proposal. */
  suite: string;
  encKeyBytes: number;
  integKeyBytes: number;
}

const CASES: Case[] = [
  { name: "w-gcm", ike: "aes128gcm16-prfsha256-ecp256", esp: "aes128gcm16", initiator: "wesp", suite: "aes-128-gcm", encKeyBytes: 20, integKeyBytes: 0 },
  { name: "w-chacha", ike: "aes256-sha256-modp2048", esp: "chacha20poly1305", initiator: "wesp", suite: "chacha20-poly1305", encKeyBytes: 36, integKeyBytes: 0 },
  { name: "w-cbc", ike: "aes128gcm16-prfsha256-ecp256", esp: "aes128-sha256", initiator: "wesp", suite: "aes-128-cbc-hmac-sha256", encKeyBytes: 16, integKeyBytes: 32 },
  { name: "c-chacha", ike: "aes128gcm16-prfsha256-ecp256", esp: "chacha20poly1305", initiator: "charon", suite: "chacha20-poly1305", encKeyBytes: 36, integKeyBytes: 0 },
  { name: "c-gcm", ike: "aes256-sha256-modp2048", esp: "aes128gcm16", initiator: "charon", suite: "aes-128-gcm", encKeyBytes: 20, integKeyBytes: 0 },
  { name: "c-cbc", ike: "aes256-sha256-modp2048", esp: "aes128-sha256", initiator: "charon", suite: "aes-128-cbc-hmac-sha256", encKeyBytes: 16, integKeyBytes: 32 },
];

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

/**
 * A charon and a wesp for case `c`, the IKE SA and first CHILD_SA initiated by
 * `c.initiator`, then `body`; logs printed if it fails; both stopped after.
 */
async function withPeers(t: IkeTopo, c: IkeCase & { initiator: "wesp" | "charon"; cookieThreshold?: number }, body: (charon: Charon, wesp: LabProcess) => Promise<void>): Promise<void> {
  const charon = await startCharon(t.nsC, c);
  let wesp: LabProcess | undefined;
  try {
    wesp = await startWesp(t, c, c.initiator === "wesp" ? "initiator" : "responder", { cookieThreshold: c.cookieThreshold });
    if (c.initiator === "charon") await charon.swanctl("--initiate", "--child", c.name, "--timeout", "15");
    await body(charon, wesp);
  } catch (err) {
    console.error(`--- charon ${c.name} log tail ---\n${charon.log().split("\n").slice(-60).join("\n")}`);
    if (wesp) console.error(`--- wesp ---\n${wesp.stdout}\n${wesp.stderr}`);
    throw err;
  } finally {
    await wesp?.stop();
    await charon.stop();
  }
}

type ChildEvent = WespEvent & { spiIn: number; spiOut: number; keyIn: string; keyOut: string; authKeyIn?: string; authKeyOut?: string; rekeyOf?: number; initiator: boolean };

/**
 * Rekeys the CHILD_SA (started by `rekeyer`) and checks the result: wesp's new
 * pair replaces and deletes the old one, and its SPIs and keys equal charon's.
 */
async function rekeyChildAndCheck(charon: Charon, w: LabProcess, rekeyer: "wesp" | "charon"): Promise<void> {
  const kids = () => eventsOf(w).filter((e) => e.type === "childSaEstablished") as ChildEvent[];
  const deletes = () => eventsOf(w).filter((e) => e.type === "childSaDeleted");
  await waitFor(() => kids().length >= 1, "a CHILD_SA", 20_000, 50);
  const [nKids, nDeletes] = [kids().length, deletes().length];
  const first = kids().at(-1)!;
  if (rekeyer === "charon") await charon.swanctl("--rekey", "--child", String(charon.opts.name));
  else w.child.stdin!.write("rekey\n");
  await waitFor(() => deletes().length > nDeletes, "rekey and delete of the old CHILD_SA", 20_000, 50);
  const evs = eventsOf(w);
  const second = kids()[nKids];
  assert.ok(second, JSON.stringify(evs));
  assert.equal(second.rekeyOf, first.spiIn, "the new CHILD_SA replaces the old");
  assert.equal(second.initiator, rekeyer === "wesp", "exchange initiator");
  assert.deepEqual(deletes()[nDeletes].spisIn, [first.spiIn]);
  assert.ok(!evs.some((e) => e.type === "failed" || e.type === "childSaFailed"), JSON.stringify(evs));

  // charon derived the same keys for the new pair (KEYMAT with the CREATE_CHILD_SA nonces and,
  // with PFS, the new g^ir). strongswan.ts's parser knows only freshly established CHILD_SAs
  // (a rekeyed one is installed inbound first, then outbound), so read the key dumps directly.
  const log = charon.log();
  const d = dumps(log);
  const at = (label: string) => d.get(label)?.[nKids] ?? "";
  const spis = [...log.matchAll(/CHILD_SA \S+\{(\d+)\} established with SPIs ([0-9a-f]{8})_i ([0-9a-f]{8})_o/g)].filter((m) => Number(m[1]) === nKids + 1)[0];
  assert.ok(spis, "charon logged the new CHILD_SA");
  assert.equal(parseInt(spis[2], 16), second.spiOut, "wesp sends with charon's new inbound SPI");
  assert.equal(parseInt(spis[3], 16), second.spiIn);
  // "initiator" keys protect what the rekey's initiator sends (§2.17)
  const [wespOut, wespIn] = rekeyer === "wesp" ? ["initiator", "responder"] : ["responder", "initiator"];
  assert.equal(at(`encryption ${wespOut} key`), second.keyOut);
  assert.equal(at(`encryption ${wespIn} key`), second.keyIn);
  assert.equal(at(`integrity ${wespOut} key`), second.authKeyOut ?? "");
  assert.equal(at(`integrity ${wespIn} key`), second.authKeyIn ?? "");
  assert.notEqual(second.keyOut, first.keyOut);
  // only the new pair is left installed
  const hexSpi = (n: number) => n.toString(16).padStart(8, "0");
  await waitFor(async () => !(await charon.listSas()).includes(hexSpi(first.spiIn)), "old CHILD_SA gone from charon", 10_000, 100);
  const listed = await charon.listSas();
  assert.equal(listed.match(/INSTALLED/g)?.length, 1, listed);
  assert.match(listed, new RegExp(hexSpi(second.spiIn)));
}

describe("wesp IKEv2 ↔ strongSwan charon", { skip }, () => {
  let topo: IkeTopo | undefined;
  before(async () => {
    topo = await buildIkeTopo();
  });
  after(async () => {
    await topo?.lab.teardown();
  });

  for (const c of CASES) {
    test(`${c.initiator} initiates, IKE ${c.ike}, ESP ${c.esp}: both SAs up, CHILD_SA keys equal charon's`, async () => {
      await withPeers(topo!, c, async (charon, w) => {

        const done = () => eventsOf(w).some((e) => e.type === "childSaEstablished" || e.type === "failed" || e.type === "childSaFailed");
        await waitFor(done, "wesp's CHILD_SA", 20_000, 50);
        const evs = eventsOf(w);
        const ike = evs.find((e) => e.type === "ikeSaEstablished");
        const kid = evs.find((e) => e.type === "childSaEstablished");
        assert.ok(ike && kid, `wesp events: ${JSON.stringify(evs)}`);
        assert.equal(ike.initiator, c.initiator === "wesp");
        assert.equal(ike.natDetected, true, "charon's encap = yes is seen as a NAT (§2.23)");
        assert.equal(kid.suite, c.suite);
        assert.equal(kid.encap, "udp");
        assert.deepEqual((kid.path as { localPort: number }).localPort, 4500, "IKE_AUTH on 4500");
        assert.deepEqual([kid.tsLocal, kid.tsRemote], [[NET_W], [NET_C]]);

        // charon's side, from vici and from its log
        const listed = await charon.listSas();
        assert.match(listed, new RegExp(`${c.name}: #\\d+, ESTABLISHED, IKEv2`), listed);
        assert.match(listed, new RegExp(`${c.name}: #\\d+, reqid \\d+, INSTALLED, TUNNEL-in-UDP`), listed);
        const kids: ChildSa[] = parseChildSas(charon.log());
        assert.equal(kids.length, 1, "one CHILD_SA in charon's log");
        const k = kids[0];
        assert.equal(k.initiator, c.initiator === "charon");
        // charon's inbound is what wesp sends, and the reverse
        assert.equal(k.inbound.spi, kid.spiOut, "wesp sends with charon's inbound SPI");
        assert.equal(k.outbound.spi, kid.spiIn, "charon sends with wesp's inbound SPI");
        for (const spi of [k.inbound.spi, k.outbound.spi]) assert.match(listed, new RegExp(spi.toString(16).padStart(8, "0")));
        assert.equal(hex(k.inbound.encKey), kid.keyOut, "i→r / r→i encryption keys (RFC 7296 §2.17)");
        assert.equal(hex(k.outbound.encKey), kid.keyIn);
        assert.equal(k.inbound.encKey.length, c.encKeyBytes);
        assert.equal(hex(k.inbound.integKey), kid.authKeyOut ?? "");
        assert.equal(hex(k.outbound.integKey), kid.authKeyIn ?? "");
        assert.equal(k.inbound.integKey.length, c.integKeyBytes);
        assert.equal(k.localTs, NET_C);
        assert.equal(k.remoteTs, NET_W);

        // INFORMATIONAL (§1.4.1): charon deletes the IKE SA, wesp answers and ends it
        await charon.swanctl("--terminate", "--ike", c.name, "--timeout", "10");
        await waitFor(() => eventsOf(w).some((e) => e.type === "ikeSaDeleted" && e.byPeer === true), "wesp sees charon's DELETE", 10_000, 50);
        assert.doesNotMatch(charon.log(), /retransmit \d+ of request/, "charon never had to retransmit");
      });
    });
  }

  interface RekeyCase extends IkeCase {
    /** Who starts the IKE SA, and who rekeys its CHILD_SA. */
    initiator: "wesp" | "charon";
    rekeyer: "wesp" | "charon";
  }
  const REKEYS: RekeyCase[] = [
    { name: "rk-c", ike: "aes128gcm16-prfsha256-ecp256", esp: "aes128gcm16", initiator: "wesp", rekeyer: "charon" },
    { name: "rk-c-pfs", ike: "aes128gcm16-prfsha256-ecp256", esp: "chacha20poly1305-x25519", initiator: "wesp", rekeyer: "charon" },
    { name: "rk-w-pfs", ike: "aes256-sha256-modp2048", esp: "aes128-sha256-ecp256", initiator: "charon", rekeyer: "wesp" },
  ];

  for (const c of REKEYS) {
    test(`${c.rekeyer} rekeys the CHILD_SA (${c.initiator} set up the IKE SA), ESP ${c.esp}: new keys equal charon's, the old CHILD_SA is deleted`, async () => {
      await withPeers(topo!, c, async (charon, w) => {
        await rekeyChildAndCheck(charon, w, c.rekeyer);
      });
    });
  }

  const IKE_REKEYS: RekeyCase[] = [
    { name: "ik-c", ike: "aes128gcm16-prfsha256-ecp256", esp: "aes128gcm16", initiator: "wesp", rekeyer: "charon" },
    { name: "ik-w", ike: "aes256-sha256-modp2048", esp: "chacha20poly1305", initiator: "charon", rekeyer: "wesp" },
  ];
  for (const c of IKE_REKEYS) {
    test(`${c.rekeyer} rekeys the IKE SA (${c.initiator} set up the first), IKE ${c.ike}: charon lists the new SPIs, the CHILD_SA stays, a CHILD_SA rekey over the new IKE SA agrees`, async () => {
      await withPeers(topo!, c, async (charon, w) => {
        await waitFor(() => eventsOf(w).some((e) => e.type === "childSaEstablished"), "first CHILD_SA", 20_000, 50);
        const old = eventsOf(w).find((e) => e.type === "ikeSaEstablished")!;
        if (c.rekeyer === "charon") await charon.swanctl("--rekey", "--ike", c.name);
        else w.child.stdin!.write("rekey-ike\n");
        await waitFor(() => eventsOf(w).some((e) => e.type === "ikeSaDeleted"), "IKE SA rekey and delete of the old one", 20_000, 50);
        const evs = eventsOf(w);
        const rekeyed = evs.find((e) => e.type === "ikeSaRekeyed")!;
        const deleted = evs.find((e) => e.type === "ikeSaDeleted")!;
        assert.ok(rekeyed, JSON.stringify(evs));
        assert.equal(rekeyed.sa, old.sa);
        assert.deepEqual([deleted.sa, deleted.why, deleted.byPeer], [old.sa, "rekeyed", c.rekeyer === "charon"]);
        const [spiI, spiR] = (rekeyed.newSa as string).split("_");
        await waitFor(async () => (await charon.listSas()).match(/ESTABLISHED/g)?.length === 1, "one IKE SA at charon", 10_000, 100);
        const listed = await charon.listSas();
        assert.match(listed, new RegExp(`${c.name}: #\\d+, ESTABLISHED, IKEv2, ${spiI}_i\\*? ${spiR}_r`), listed);
        assert.equal(listed.match(/INSTALLED/g)?.length, 1, "the CHILD_SA survived the IKE SA rekey");
        // SK_d of the new IKE SA agrees with charon's: a CHILD_SA rekey over it derives the same keys
        await rekeyChildAndCheck(charon, w, "charon");
        assert.ok(eventsOf(w).filter((e) => e.type === "childSaEstablished").at(-1)!.sa === rekeyed.newSa, "on the new IKE SA");
      });
    });
  }

  test("charon initiates against wesp demanding cookies (§2.6, threshold 0): charon retries with the cookie, both SAs come up, keys equal", async () => {
    const c = { name: "cookie", ike: "aes128gcm16-prfsha256-ecp256", esp: "aes128gcm16", initiator: "charon" as const, cookieThreshold: 0 };
    await withPeers(topo!, c, async (charon, w) => {
      await waitFor(() => eventsOf(w).some((e) => e.type === "childSaEstablished"), "wesp's CHILD_SA", 20_000, 50);
      assert.match(charon.log(), /parsed IKE_SA_INIT response 0 \[ N\(COOKIE\) \]/, "charon got the cookie challenge");
      const kid = eventsOf(w).find((e) => e.type === "childSaEstablished")!;
      const [k] = parseChildSas(charon.log());
      assert.equal(hex(k.inbound.encKey), kid.keyOut);
      assert.equal(hex(k.outbound.encKey), kid.keyIn);
    });
  });

  test("charon and wesp rekey the CHILD_SA at the same moment, the requests crossing (§2.8.1): one pair survives on both sides, with equal keys", async () => {
    const c = { name: "both", ike: "aes128gcm16-prfsha256-ecp256", esp: "aes128gcm16", initiator: "wesp" as const };
    await withPeers(topo!, c, async (charon, w) => {
      await waitFor(() => eventsOf(w).some((e) => e.type === "childSaEstablished"), "first CHILD_SA", 20_000, 50);
      // make the requests cross: wesp's rekey request (and its answer to charon's) is held
      // back until charon's request has arrived, so each side sees the other's while its own is open
      w.child.stdin!.write("hold\nrekey\n");
      // only once wesp's own request is made (and held) may charon's arrive; else wesp merely answers it
      await waitFor(() => eventsOf(w).some((e) => e.type === "done" && e.cmd === "rekey"), "wesp's rekey request made (held)", 10_000, 10);
      await charon.swanctl("--rekey", "--child", c.name);
      await waitFor(() => eventsOf(w).filter((e) => e.type === "childSaEstablished").length === 2, "charon's rekey answered (held)", 10_000, 20);
      w.child.stdin!.write("release\n");
      // settled: charon has one INSTALLED pair and wesp one CHILD_SA, and they are the same
      const live = () => {
        const kids = eventsOf(w).filter((e) => e.type === "childSaEstablished") as ChildEvent[];
        const gone = new Set(eventsOf(w).flatMap((e) => (e.type === "childSaDeleted" ? (e.spisIn as number[]) : [])));
        return kids.filter((k) => !gone.has(k.spiIn));
      };
      await waitFor(async () => live().length === 1 && (await charon.listSas()).match(/INSTALLED/g)?.length === 1, "one pair left on both sides", 15_000, 100);
      const [k] = live();
      const listed = await charon.listSas();
      const hexSpi = (n: number) => n.toString(16).padStart(8, "0");
      for (const spi of [k.spiOut, k.spiIn]) assert.match(listed, new RegExp(hexSpi(spi)), listed);
      const d = dumps(charon.log());
      const all = [...(d.get("encryption initiator key") ?? []), ...(d.get("encryption responder key") ?? [])];
      assert.ok(all.includes(k.keyIn) && all.includes(k.keyOut), "the surviving keys are among charon's");
      const kids = eventsOf(w).filter((e) => e.type === "childSaEstablished") as ChildEvent[];
      assert.equal(kids.filter((x) => x.rekeyOf === kids[0].spiIn).length, 2, "both rekeyed the first CHILD_SA: a collision");
      assert.match(charon.log(), /detected CHILD_REKEY collision/, "charon saw the collision too");
    });
  });

  test("charon and wesp rekey the IKE SA at the same moment, the requests crossing (§2.8.2): one IKE SA left, the same on both sides, holding the CHILD_SA; a CHILD_SA rekey over it agrees", async () => {
    const c = { name: "both-ike", ike: "aes128gcm16-prfsha256-ecp256", esp: "aes128gcm16", initiator: "wesp" as const };
    await withPeers(topo!, c, async (charon, w) => {
      await waitFor(() => eventsOf(w).some((e) => e.type === "childSaEstablished"), "first CHILD_SA", 20_000, 50);
      const old = eventsOf(w).find((e) => e.type === "ikeSaEstablished")!;
      // as for the CHILD_SA: wesp's request (and its answer to charon's) held until charon's has been answered
      w.child.stdin!.write("hold\nrekey-ike\n");
      await waitFor(() => eventsOf(w).some((e) => e.type === "done" && e.cmd === "rekey-ike"), "wesp's IKE SA rekey request made (held)", 10_000, 10);
      await charon.swanctl("--rekey", "--ike", c.name);
      // answering charon's crossing rekey adds its new IKE SA to wesp's endpoint (the old one and it: 2)
      const sas = () => eventsOf(w).filter((e) => e.type === "stats").at(-1)?.sas;
      await waitFor(() => (w.child.stdin!.write("stats\n"), sas() === 2), "charon's IKE SA rekey answered (held)", 10_000, 50);
      w.child.stdin!.write("release\n");
      const deleted = () => eventsOf(w).filter((e) => e.type === "ikeSaDeleted");
      await waitFor(async () => deleted().length === 2 && (await charon.listSas()).match(/ESTABLISHED/g)?.length === 1, "the old and the redundant IKE SA gone on both sides", 15_000, 100);
      const evs = eventsOf(w);
      assert.ok(!evs.some((e) => e.type === "failed" || e.type === "ikeRekeyFailed" || e.type === "childSaDeleted"), JSON.stringify(evs));
      const rekeyed = evs.filter((e) => e.type === "ikeSaRekeyed");
      assert.equal(rekeyed.length, 1, JSON.stringify(evs));
      assert.equal(rekeyed[0].sa, old.sa);
      assert.deepEqual(deleted().map((e) => `${e.sa === old.sa ? "old" : "new"}:${e.why}`).sort(), ["new:redundant", "old:rekeyed"]);
      const [spiI, spiR] = (rekeyed[0].newSa as string).split("_");
      const listed = await charon.listSas();
      assert.match(listed, new RegExp(`${c.name}: #\\d+, ESTABLISHED, IKEv2, ${spiI}_i\\*? ${spiR}_r`), listed);
      assert.equal(listed.match(/INSTALLED/g)?.length, 1, "the CHILD_SA survived on the kept IKE SA");
      assert.match(charon.log(), /detected IKE_REKEY collision/, "charon saw the collision too");
      w.child.stdin!.write("stats\n");
      await waitFor(() => eventsOf(w).filter((e) => e.type === "stats").length > 0 && sas() === 1, "one IKE SA left in wesp's endpoint", 5_000, 20);
      // SK_d of the kept IKE SA agrees with charon's
      await rekeyChildAndCheck(charon, w, "charon");
      assert.equal(eventsOf(w).filter((e) => e.type === "childSaEstablished").at(-1)!.sa, rekeyed[0].newSa, "on the kept IKE SA");
    });
  });
});
