// wesp's IKEv2 (host/ike/) against a live strongSwan charon (kernel-libipsec, its
// own namespace and /run): wesp as initiator and as responder, PSK, the IKE
// proposals aes128gcm16-prfsha256-ecp256 and aes256-sha256-modp2048, ESP
// AES-GCM-16, ChaCha20-Poly1305 and AES-CBC + HMAC-SHA-256. Each case: both IKE
// SA and CHILD_SA come up (charon's `swanctl --list-sas` shows them ESTABLISHED
// and INSTALLED) and the CHILD_SA keys and SPIs wesp derived equal the ones
// charon logs (chd = 4, parsed by strongswan.ts). charon is told `encap = yes`
// (kernel-libipsec carries only UDP-encapsulated ESP), so NAT detection makes
// IKE_AUTH move to 4500 behind the non-ESP marker (RFC 7296 §2.23, RFC 3948).
//
//   wesp IKE (wikeL)  wl 10.99.0.1 ═══════ 10.99.0.2 wr  charon (wikeR)
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Lab, Netns, waitFor, type Spawned } from "../helpers/netns.ts";
import { requireTools } from "../helpers/require.ts";
import { Charon, parseChildSas, type ChildSa } from "./strongswan.ts";
import type { IkePeerText } from "../../host/ike/config.ts";

// ECP-256, MODP-2048 and AES-GCM come from charon's openssl and gcm plugins (Debian: standard-plugins)
const OPENSSL_PLUGIN = "/usr/lib/ipsec/plugins/libstrongswan-openssl.so";
const skip = requireTools(
  ["netns", "charon", "kernel-libipsec", "swanctl", {
    name: "strongSwan openssl plugin", present: () => existsSync(OPENSSL_PLUGIN),
    install: "apt-get install -y libstrongswan-standard-plugins", pkg: "libstrongswan-standard-plugins",
  }],
  { why: "IKEv2 interop with strongSwan charon" },
);

const WESP = "10.99.0.1";
const CHARON_ADDR = "10.99.0.2";
const NET_W = "192.168.1.0/24";
const NET_C = "192.168.2.0/24";
const PSK = "wesp-ike-interop-psk-0123456789";
const NS_PREFIX = "wike";

/** A Lab whose namespaces are named `wike<pid>-<n>-<label>` (this file's prefix, swept below). */
class IkeLab extends Lab {
  private static seq = 0;
  private readonly prefix = `${NS_PREFIX}${process.pid}-${IkeLab.seq++}-`;
  override async ns(label: string): Promise<Netns> {
    const ns = new Netns(this.prefix + label, this);
    this.namespaces.push(ns); // before creation: a half-made one is deleted too
    execFileSync("ip", ["netns", "add", ns.name]);
    await ns.ip("link", "set", "lo", "up");
    return ns;
  }
}

/** Deletes `wike…` namespaces left by test processes that no longer run. */
function sweepWike(): void {
  const list = execFileSync("ip", ["netns", "list"], { encoding: "utf8" });
  for (const line of list.split("\n")) {
    const m = new RegExp(`^(${NS_PREFIX}(\\d+)-\\S+)`).exec(line);
    if (!m || Number(m[2]) === process.pid) continue;
    let alive = true;
    try {
      process.kill(Number(m[2]), 0);
    } catch {
      alive = false;
    }
    if (!alive) execFileSync("ip", ["netns", "del", m[1]]);
  }
}

interface Case {
  name: string;
  ike: string;
  esp: string;
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

/** swanctl.conf for one case: a connection named after it, forced UDP encapsulation, nothing rekeys. */
function swanctlConf(c: Case): string {
  return `connections {
  ${c.name} {
    version = 2
    local_addrs = ${CHARON_ADDR}
    remote_addrs = ${WESP}
    encap = yes
    proposals = ${c.ike}
    rekey_time = 0
    dpd_delay = 0
    local {
      auth = psk
      id = ${CHARON_ADDR}
    }
    remote {
      auth = psk
      id = ${WESP}
    }
    children {
      ${c.name} {
        local_ts = ${NET_C}
        remote_ts = ${NET_W}
        esp_proposals = ${c.esp}
        mode = tunnel
        rekey_time = 0
        life_time = 0
        start_action = none
      }
    }
  }
}
secrets {
  ike-wesp {
    id-a = ${CHARON_ADDR}
    id-b = ${WESP}
    secret = "${PSK}"
  }
}
`;
}

interface WespEvent {
  type: string;
  [k: string]: unknown;
}

/** The JSON lines wesp's peer process has printed so far. */
const eventsOf = (p: Spawned): WespEvent[] => p.stdout.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as WespEvent);

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

describe("wesp IKEv2 ↔ strongSwan charon", { skip }, () => {
  let lab: IkeLab;
  let nsW: Netns;
  let nsC: Netns;
  before(async () => {
    sweepWike();
    lab = new IkeLab();
    nsW = await lab.ns("W");
    nsC = await lab.ns("C");
    await lab.veth(nsW, "wl", nsC, "wr");
    await nsW.addr("wl", `${WESP}/24`);
    await nsC.addr("wr", `${CHARON_ADDR}/24`);
    // kernel-libipsec routes the remote net via ipsec0 from an address inside local_ts: give charon's site one
    // (a veth pair inside the namespace: this kernel has no dummy interfaces)
    await lab.veth(nsC, "site", nsC, "sitep");
    await nsC.addr("site", "192.168.2.1/24");
  });
  after(async () => {
    await lab?.teardown();
  });

  for (const c of CASES) {
    test(`${c.initiator} initiates, IKE ${c.ike}, ESP ${c.esp}: both SAs up, CHILD_SA keys equal charon's`, async () => {
      // charon's own connection points at an address nobody has, so only ours matches
      const charon = new Charon(nsC, { name: c.name, local: CHARON_ADDR, remote: "10.99.0.99", localTs: [NET_C], remoteTs: [NET_W], psk: PSK, suites: ["aes128gcm16"] });
      let wesp: Spawned | undefined;
      try {
        await charon.start();
        const conf = join(charon.dir, "wike.conf");
        writeFileSync(conf, swanctlConf(c), { mode: 0o600 });
        await charon.swanctl("--load-all", "--file", conf);

        const peer: IkePeerText = {
          name: c.name, local: WESP, remote: CHARON_ADDR, psk: PSK, ike: [c.ike], esp: [c.esp],
          localTs: [NET_W], remoteTs: [NET_C], lifetimeSeconds: 3600, retransmit: { baseMs: 1000, tries: 4 },
        };
        const optsPath = join(lab.dir, `wesp-${c.name}.json`);
        writeFileSync(optsPath, JSON.stringify({ peer, role: c.initiator === "wesp" ? "initiator" : "responder" }));
        wesp = nsW.spawn([process.execPath, "--import", "tsx", join(import.meta.dirname, "ike-peer.ts"), optsPath]);
        const w = wesp;
        await waitFor(() => eventsOf(w).some((e) => e.type === "ready") || !w.running, "wesp IKE ready", 20_000);
        assert.ok(w.running, `wesp exited: ${w.stderr}`);
        if (c.initiator === "charon") await charon.swanctl("--initiate", "--child", c.name, "--timeout", "15");

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
      } catch (err) {
        console.error(`--- charon ${c.name} log tail ---\n${charon.log().split("\n").slice(-60).join("\n")}`);
        if (wesp) console.error(`--- wesp ---\n${wesp.stdout}\n${wesp.stderr}`);
        throw err;
      } finally {
        await wesp?.stop();
        await charon.stop();
      }
    });
  }
});
