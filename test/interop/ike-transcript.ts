// Generates test/unit/ike-transcript.json: fixed IKEv2 exchanges between a live
// strongSwan charon (initiator) and wesp (responder), with the secrets charon
// logs at `ike = 4` / `chd = 4` (shared DH secret, SKEYSEED, SK_*, CHILD_SA
// keys). test/unit/ike-transcript.test.ts then holds wesp's codec, key
// schedule, SK payload and AUTH to strongSwan's bytes without a charon.
//   node --import tsx test/interop/ike-transcript.ts > test/unit/ike-transcript.json
// (root, charon with kernel-libipsec and the openssl plugin, as the interop test).
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { waitFor } from "../helpers/netns.ts";
import { buildIkeTopo, dumps, eventsOf, PSK, startCharon, startWesp, type IkeCase } from "./ike-lab.ts";

const CASES: IkeCase[] = [
  { name: "tr-cbc", ike: "aes256-sha256-modp2048", esp: "aes128-sha256" },
  { name: "tr-gcm", ike: "aes128gcm16-prfsha256-ecp256", esp: "chacha20poly1305" },
];

const t = await buildIkeTopo();
const out: object[] = [];
try {
  for (const c of CASES) {
    const charon = await startCharon(t.nsC, c);
    const conf = join(charon.dir, "strongswan.conf");
    // `swanctl --reload-settings` makes charon re-read its loggers: ike 4 dumps the IKE SA keys (keymat_v2.c)
    writeFileSync(conf, readFileSync(conf, "utf8").replace("ike = 2", "ike = 4"));
    await charon.swanctl("--reload-settings");
    const w = await startWesp(t, c, "responder", { transcript: true });
    try {
      await charon.swanctl("--initiate", "--child", c.name, "--timeout", "15");
      await waitFor(() => eventsOf(w).some((e) => e.type === "childSaEstablished"), "wesp's CHILD_SA", 10_000);
      const grams = eventsOf(w).filter((e) => e.type === "datagram").map((e) => e.bytes as string);
      const d = dumps(charon.log());
      const one = (label: string) => {
        const v = d.get(label);
        if (!v || v.length !== 1) throw new Error(`charon log: ${v?.length ?? 0} dumps of "${label}"`);
        return v[0];
      };
      out.push({
        ike: c.ike,
        esp: c.esp,
        psk: PSK,
        // IKE_SA_INIT request (charon), response (wesp), IKE_AUTH request (charon), response (wesp)
        messages: grams.slice(0, 4),
        charon: {
          sharedSecret: one("shared Diffie Hellman secret"),
          skeyseed: one("SKEYSEED"),
          skD: one("Sk_d secret"), skAi: d.get("Sk_ai secret")?.[0] ?? "", skAr: d.get("Sk_ar secret")?.[0] ?? "",
          skEi: one("Sk_ei secret"), skEr: one("Sk_er secret"), skPi: one("Sk_pi secret"), skPr: one("Sk_pr secret"),
          child: {
            encI: one("encryption initiator key"), encR: one("encryption responder key"),
            integI: d.get("integrity initiator key")?.[0] ?? "", integR: d.get("integrity responder key")?.[0] ?? "",
          },
        },
      });
    } finally {
      await w.stop();
      await charon.stop();
    }
  }
} finally {
  await t.lab.teardown();
}
process.stdout.write(JSON.stringify({
  generatedBy: "test/interop/ike-transcript.ts: strongSwan 5.9.8 charon (initiator, encap = yes) ↔ wesp host/ike (responder)",
  cases: out,
}, null, 2) + "\n");
