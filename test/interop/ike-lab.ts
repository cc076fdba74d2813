// The two-namespace lab of the IKE interop test and the transcript generator:
//
//   wesp IKE (wike…-W)  wl 10.99.0.1 ═══════ 10.99.0.2 wr  charon (wike…-C)  site 192.168.2.1
//
// Namespaces are named `wike<pid>-<n>-<label>` (a test Lab with prefix `wike`);
// `sweepStale("wike")` removes those of test processes that died without tearing down.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { Lab, sweepStale, waitFor, type LabProcess, type Netns } from "../helpers/netns.ts";
import assert from "node:assert/strict";
import { Charon } from "./strongswan.ts";
import { ikeOf } from "../e2e/ike-util.ts";
import type { IkePeerText } from "../../host/ike/config.ts";

export const WESP = "10.99.0.1";
export const CHARON_ADDR = "10.99.0.2";
export const NET_W = "192.168.1.0/24";
export const NET_C = "192.168.2.0/24";
export const PSK = "wesp-ike-interop-psk-0123456789";
/** `wike`, or under WESP_NS_PREFIX (a runner's own namespaces) `<that>ike`. */
const NS_PREFIX = process.env.WESP_NS_PREFIX ? `${process.env.WESP_NS_PREFIX}ike` : "wike";

export interface IkeTopo {
  lab: Lab;
  nsW: Netns;
  nsC: Netns;
}

/** The lab; `nsPrefix` keeps a test file's namespaces apart from the others' (default `wike`). */
export async function buildIkeTopo(nsPrefix = NS_PREFIX): Promise<IkeTopo> {
  sweepStale(nsPrefix);
  const lab = new Lab(nsPrefix);
  const nsW = await lab.ns("W");
  const nsC = await lab.ns("C");
  await lab.veth(nsW, "wl", nsC, "wr");
  await nsW.addr("wl", `${WESP}/24`);
  await nsC.addr("wr", `${CHARON_ADDR}/24`);
  // kernel-libipsec routes the remote net via ipsec0 from an address inside local_ts: give
  // charon's site one (a veth pair inside the namespace: this kernel has no dummy interfaces)
  await lab.veth(nsC, "site", nsC, "sitep");
  await nsC.addr("site", "192.168.2.1/24");
  return { lab, nsW, nsC };
}

export interface IkeCase {
  name: string;
  ike: string;
  esp: string;
  /** charon rekeys: the IKE SA and the CHILD_SA this many seconds after each is set up, exactly (rand_time 0). */
  rekey?: { ikeSeconds: number; childSeconds: number };
}

const PSK_AUTH = {
  local: `auth = psk\n      id = ${CHARON_ADDR}`,
  remote: `auth = psk\n      id = ${WESP}`,
  tail: `secrets {\n  ike-wesp {\n    id-a = ${CHARON_ADDR}\n    id-b = ${WESP}\n    secret = "${PSK}"\n  }\n}\n`,
};

/**
 * swanctl.conf for one case: a connection named after it, forced UDP encapsulation,
 * nothing rekeys unless the case says when. `auth`: the local and remote sections' bodies, lines for the
 * connection itself and what follows `connections` (secrets, authorities); the PSK by default.
 */
export function swanctlConf(c: IkeCase, auth: { local: string; remote: string; conn?: string; tail: string } = PSK_AUTH): string {
  const r = c.rekey;
  // a rekeyed CHILD_SA's hard lifetime well after its rekey: the old pair goes by DELETE, never by expiry
  const ikeRekey = r ? `${r.ikeSeconds}s\n    rand_time = 0` : "0";
  const childRekey = r ? `${r.childSeconds}s\n        rand_time = 0\n        life_time = ${r.childSeconds * 4}s` : "0\n        life_time = 0";
  return `connections {
  ${c.name} {
    version = 2
    local_addrs = ${CHARON_ADDR}
    remote_addrs = ${WESP}
    encap = yes
    proposals = ${c.ike}
    rekey_time = ${ikeRekey}
    dpd_delay = 0${auth.conn ? `\n    ${auth.conn}` : ""}
    local {
      ${auth.local}
    }
    remote {
      ${auth.remote}
    }
    children {
      ${c.name} {
        local_ts = ${NET_C}
        remote_ts = ${NET_W}
        esp_proposals = ${c.esp}
        mode = tunnel
        rekey_time = ${childRekey}
        start_action = none
      }
    }
  }
}
${auth.tail}`;
}

/**
 * A charon in `ns` with only `c`'s connection able to match: the Charon helper's
 * own connection points at an address nobody has.
 */
export async function startCharon(ns: Netns, c: IkeCase): Promise<Charon> {
  const charon = new Charon(ns, { name: c.name, local: CHARON_ADDR, remote: "10.99.0.99", localTs: [NET_C], remoteTs: [NET_W], psk: PSK, suites: ["aes128gcm16"] });
  await charon.start();
  const conf = join(charon.dir, "wike.conf");
  writeFileSync(conf, swanctlConf(c), { mode: 0o600 });
  await charon.swanctl("--load-all", "--file", conf);
  return charon;
}

/** The CHILD_SA `wesp up` sends on (its status `st`, peer "charon") is the one charon lists (its SPIs, hex, in `swanctl --list-sas`). */
export async function sameChild(st: any, charon: Charon): Promise<void> {
  const c = ikeOf(st, "charon").childSas[0];
  const sas = await charon.listSas();
  const hex = (n: number) => n.toString(16).padStart(8, "0");
  assert.match(sas, new RegExp(`in\\s+${hex(c.spiOut)}`), `charon's inbound SPI is wesp's outbound:\n${sas}`);
  assert.match(sas, new RegExp(`out\\s+${hex(c.spiIn)}`), `charon's outbound SPI is wesp's inbound:\n${sas}`);
}

export interface WespEvent {
  type: string;
  [k: string]: unknown;
}

/** The JSON lines wesp's peer process (ike-peer.ts) has printed so far. */
export const eventsOf = (p: LabProcess): WespEvent[] => p.stdout.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as WespEvent);

/**
 * Starts wesp's IKE (ike-peer.ts) in `ns` for case `c`; resolves once its sockets are bound.
 * `peer` overrides fields of its IkePeerText (certificates, identities, fragment size).
 */
export async function startWesp(t: IkeTopo, c: IkeCase, role: "initiator" | "responder", o: { transcript?: boolean; cookieThreshold?: number; peer?: Partial<IkePeerText> } = {}): Promise<LabProcess> {
  const { peer: more, ...opts } = o;
  const peer: IkePeerText = {
    name: c.name, local: WESP, remote: CHARON_ADDR, psk: PSK, ike: [c.ike], esp: [c.esp],
    localTs: [NET_W], remoteTs: [NET_C], lifetimeSeconds: 3600, retransmit: { baseMs: 1000, tries: 4 }, ...more,
  };
  const optsPath = join(t.lab.dir, `wesp-${c.name}.json`);
  writeFileSync(optsPath, JSON.stringify({ peer, role, ...opts }));
  // stdin open: the test can send commands ("rekey")
  const w = t.nsW.spawn([process.execPath, "--import", "tsx", join(import.meta.dirname, "ike-peer.ts"), optsPath], { stdin: true });
  await waitFor(() => eventsOf(w).some((e) => e.type === "ready") || !w.running, "wesp IKE ready", 20_000);
  if (!w.running) throw new Error(`wesp IKE exited: ${w.stderr}`);
  return w;
}

/** Every hex dump "<label> => N bytes @ …" in a charon log, by label, in order. */
export function dumps(log: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let cur: { label: string; need: number; hex: string } | undefined;
  for (const line of log.split("\n")) {
    const body = line.replace(/^\d+\[\w+\] /, "");
    const d = cur && /^\s*\d+: ((?:[0-9A-F]{2} ?)+)/.exec(body);
    if (cur && d) {
      cur.hex += d[1].replace(/ /g, "").toLowerCase();
      if (cur.hex.length >= cur.need * 2) {
        out.set(cur.label, [...(out.get(cur.label) ?? []), cur.hex.slice(0, cur.need * 2)]);
        cur = undefined;
      }
      continue;
    }
    const h = /^(.+?) => (\d+) bytes @/.exec(body);
    cur = h ? { label: h[1].trim(), need: Number(h[2]), hex: "" } : undefined;
  }
  return out;
}
