// wesp's IKEv2 certificate authentication against a live strongSwan charon
// (`auth = pubkey`): chains root → intermediate → end-entity from
// test/helpers/pki.ts, RSA (PKCS#1 v1.5 and RSASSA-PSS), ECDSA and Ed25519, wesp
// as initiator and as responder.
// wesp's identity is an FQDN in its subjectAltName, charon's its subject DN
// (ID_DER_ASN1_DN). Each case: both IKE SA and CHILD_SA come up, the CHILD_SA
// keys wesp derived equal the ones charon logs, and the certificates each side
// authenticated are the other's. With RSA-2048 the IKE_AUTH messages (two
// certificates each) pass 1280 bytes, so both sides send them as RFC 7383
// fragments (charon's default fragment_size 1280, wesp's too) and reassemble
// the other's: charon's log says so, and one case runs wesp at 576 bytes.
// A last case: charon's chain from a CA wesp does not trust is refused.
//
// Namespaces: wib<pid>-… (./ike-lab.ts).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { run, waitFor, type LabProcess } from "../helpers/netns.ts";
import { requireTools } from "../helpers/require.ts";
import { chain, type KeyAlg } from "../helpers/pki.ts";
import { Charon, parseChildSas } from "./strongswan.ts";
import { buildIkeTopo, CHARON_ADDR, eventsOf, NET_C, NET_W, PSK, startWesp, swanctlConf, type IkeTopo, type WespEvent } from "./ike-lab.ts";

const OPENSSL_PLUGIN = "/usr/lib/ipsec/plugins/libstrongswan-openssl.so";
const X509_PLUGIN = "/usr/lib/ipsec/plugins/libstrongswan-x509.so";
const skip = requireTools(
  ["netns", "charon", "kernel-libipsec", "swanctl", {
    name: "strongSwan openssl and x509 plugins", present: () => existsSync(OPENSSL_PLUGIN) && existsSync(X509_PLUGIN),
    install: "apt-get install -y libstrongswan-standard-plugins", pkg: "libstrongswan-standard-plugins",
  }],
  { why: "IKEv2 certificate interop with strongSwan charon" },
);

const CHARON_DN = "C=CH, O=wesp, CN=charon.wesp.test";
const WESP_FQDN = "wesp.wesp.test";
const IKE = "aes128gcm16-prfsha256-ecp256";
const ESP = "aes128gcm16";

interface Case {
  name: string;
  alg: KeyAlg;
  initiator: "wesp" | "charon";
  /** wesp's RFC 7383 fragment size (default 1280). */
  fragmentSize?: number;
  /** Whether the IKE_AUTH messages are big enough to be fragmented both ways. */
  fragments: boolean;
  /** charon's chain comes from a CA wesp does not trust: refused. */
  untrusted?: boolean;
  /** RSASSA-PSS both ways (charon `auth = ike:rsa/pss-sha256`, wesp `rsaPss`). */
  pss?: boolean;
}

const CASES: Case[] = [
  { name: "w-rsa", alg: "rsa", initiator: "wesp", fragments: true },
  { name: "c-rsa", alg: "rsa", initiator: "charon", fragments: true },
  { name: "w-p256", alg: "p256", initiator: "wesp", fragments: false },
  { name: "c-p384", alg: "p384", initiator: "charon", fragments: false },
  { name: "w-rsa-576", alg: "rsa", initiator: "wesp", fragmentSize: 576, fragments: true },
  { name: "c-rsa-pss", alg: "rsa", initiator: "charon", fragments: true, pss: true },
  { name: "w-ed25519", alg: "ed25519", initiator: "wesp", fragments: false },
  { name: "w-untrusted", alg: "p256", initiator: "wesp", fragments: false, untrusted: true },
];

/** PEM files for both sides in `dir`: each side's chain, key and the other's root. */
async function pki(dir: string, c: Case) {
  const w = await chain(c.alg, `${c.name} wesp`, { subject: `C=CH, O=wesp, CN=${WESP_FQDN}`, dns: [WESP_FQDN] });
  const ch = await chain(c.alg, `${c.name} charon`, { subject: CHARON_DN, dns: ["charon.wesp.test"] });
  const stranger = c.untrusted ? await chain(c.alg, `${c.name} stranger`, { subject: "CN=nobody" }) : undefined;
  const file = (n: string, text: string) => {
    const p = join(dir, `${c.name}-${n}.pem`);
    writeFileSync(p, text, { mode: 0o600 });
    return p;
  };
  return {
    wesp: { chain: [w.leaf.certPem, w.mid.certPem], key: w.leaf.keyPem, cas: [(stranger ?? ch).root.certPem], rsaPss: c.pss },
    charon: { cert: file("charon", ch.leaf.certPem), mid: file("charon-mid", ch.mid.certPem), key: file("charon-key", ch.leaf.keyPem), ca: file("wesp-root", w.root.certPem) },
    fingerprints: { wesp: w.leaf.cert.fingerprint256, charon: ch.leaf.cert.fingerprint256 },
  };
}

/** swanctl.conf: certificates both ways (`auth = pubkey`), forced UDP encapsulation, RFC 7383 fragmentation on. */
function certConf(c: Case, f: Awaited<ReturnType<typeof pki>>["charon"]): string {
  return swanctlConf({ name: c.name, ike: IKE, esp: ESP }, {
    conn: "fragmentation = yes\n    send_certreq = yes",
    local: `auth = ${c.pss ? "ike:rsa/pss-sha256" : "pubkey"}\n      certs = ${f.cert}`,
    remote: `auth = ${c.pss ? "ike:rsa/pss-sha256" : "pubkey"}\n      id = ${WESP_FQDN}\n      cacerts = ${f.ca}`,
    // the intermediate, so that charon sends it with its own certificate
    tail: `authorities {\n  charon-intermediate {\n    cacert = ${f.mid}\n  }\n}\n`,
  });
}

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
type ChildEvent = WespEvent & { spiIn: number; spiOut: number; keyIn: string; keyOut: string; authKeyIn?: string; authKeyOut?: string };

describe("wesp IKEv2 certificates ↔ strongSwan charon", { skip }, () => {
  let topo: IkeTopo | undefined;
  before(async () => {
    topo = await buildIkeTopo("wib");
  });
  after(async () => {
    await topo?.lab.teardown();
  });

  for (const c of CASES) {
    const title = c.untrusted
      ? `${c.initiator} initiates, ${c.alg}: charon's chain from a CA wesp does not trust is refused`
      : `${c.initiator} initiates, ${c.alg}${c.pss ? " RSASSA-PSS" : ""} chains${c.fragmentSize ? `, wesp fragments at ${c.fragmentSize}` : ""}: both SAs up, CHILD_SA keys equal charon's${c.fragments ? ", IKE_AUTH fragmented both ways" : ""}`;
    test(title, async () => {
      const t = topo!;
      const files = await pki(t.lab.dir, c);
      const charon = new Charon(t.nsC, { name: c.name, local: CHARON_ADDR, remote: "10.99.0.99", localTs: [NET_C], remoteTs: [NET_W], psk: PSK, suites: ["aes128gcm16"] });
      let w: LabProcess | undefined;
      try {
        await charon.start();
        // swanctl reads private keys from its private/ directory: a swanctl dir of this charon's own
        const sw = join(charon.dir, "swanctl");
        mkdirSync(join(sw, "private"), { recursive: true });
        copyFileSync(files.charon.key, join(sw, "private", "charon.pem"));
        const conf = join(sw, "swanctl.conf");
        writeFileSync(conf, certConf(c, files.charon), { mode: 0o600 });
        const loaded = await run(["swanctl", "--load-all", "--file", conf, "--uri", charon.uri], { env: { ...process.env, STRONGSWAN_CONF: join(charon.dir, "strongswan.conf"), SWANCTL_DIR: sw }, timeoutMs: 30_000 });
        assert.match(loaded, /loaded \w+ key from/, loaded);
        w = await startWesp(t, { name: c.name, ike: IKE, esp: ESP }, c.initiator === "wesp" ? "initiator" : "responder", {
          peer: { localId: WESP_FQDN, remoteId: CHARON_DN, certs: files.wesp, fragmentSize: c.fragmentSize },
        });
        if (c.initiator === "charon") await charon.swanctl("--initiate", "--child", c.name, "--timeout", "15").catch(() => "");
        const wesp = w;
        const done = () => eventsOf(wesp).some((e) => e.type === "childSaEstablished" || e.type === "failed" || e.type === "childSaFailed");
        await waitFor(done, "wesp's outcome", 25_000, 50);
        const evs = eventsOf(wesp);
        if (c.untrusted) {
          const f = evs.find((e) => e.type === "failed");
          assert.equal(f?.reason, "auth", JSON.stringify(evs));
          assert.match(String(f!.detail), /no trusted CA issued/);
          // RFC 7296 §2.21.2: wesp tells charon in an INFORMATIONAL, and charon drops the SA it had up
          await waitFor(() => /parsed INFORMATIONAL request \d+ \[ N\(AUTH_FAILED\) \]/.test(charon.log()), "charon hears AUTHENTICATION_FAILED", 10_000, 50);
          await waitFor(async () => !/INSTALLED|ESTABLISHED/.test(await charon.listSas()), "charon's SAs gone", 10_000, 100);
          return;
        }
        const kid = evs.find((e) => e.type === "childSaEstablished") as ChildEvent | undefined;
        assert.ok(kid, `wesp events: ${JSON.stringify(evs)}`);
        const listed = await charon.listSas();
        assert.match(listed, new RegExp(`${c.name}: #\\d+, ESTABLISHED, IKEv2`), listed);
        assert.match(listed, new RegExp(`${c.name}: #\\d+, reqid \\d+, INSTALLED, TUNNEL-in-UDP`), listed);
        assert.match(listed, new RegExp(`remote '${WESP_FQDN}'`), listed);
        const log = charon.log();
        // charon authenticated wesp with its certificate, by signature (RFC 7427)
        assert.match(log, new RegExp(`authentication of '${WESP_FQDN}' with (RSA|ECDSA|ED25519)[^\\n]*successful`), "charon verified wesp's signature");
        if (c.pss) {
          // RFC 7427 A.4: RSASSA-PSS both ways, wesp's verified by charon and charon's by wesp
          assert.match(log, new RegExp(`authentication of '${WESP_FQDN}' with RSA_EMSA_PSS_SHA2_256(_SALT_32)? successful`));
          assert.match(log, /\(myself\) with RSA_EMSA_PSS_SHA2_256(_SALT_32)? successful/);
        }
        const k = parseChildSas(log)[0];
        assert.ok(k, "charon logged the CHILD_SA keys");
        assert.equal(k.inbound.spi, kid.spiOut);
        assert.equal(k.outbound.spi, kid.spiIn);
        assert.equal(hex(k.inbound.encKey), kid.keyOut, "i→r / r→i keys (RFC 7296 §2.17)");
        assert.equal(hex(k.outbound.encKey), kid.keyIn);
        if (c.fragments) {
          // RFC 7383: charon reassembled wesp's fragments and sent its own in fragments
          assert.match(log, /received fragment #\d+ of \d+/, "charon received wesp's fragments");
          assert.match(log, /splitting IKE message \(\d+ bytes\) into \d+ fragments/, "charon fragmented its IKE_AUTH message, wesp reassembled it");
        }
        await charon.swanctl("--terminate", "--ike", c.name, "--timeout", "10");
        await waitFor(() => eventsOf(wesp).some((e) => e.type === "ikeSaDeleted"), "wesp sees charon's DELETE", 10_000, 50);
      } catch (err) {
        console.error(`--- charon ${c.name} log tail ---\n${charon.log().split("\n").slice(-80).join("\n")}`);
        if (w) console.error(`--- wesp ---\n${w.stdout}\n${w.stderr}`);
        throw err;
      } finally {
        await w?.stop();
        await charon.stop();
      }
    });
  }
});
