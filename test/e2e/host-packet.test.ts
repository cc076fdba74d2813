// IKE's way through the data plane's NAT-T socket (RFC 3948 §2.2, RFC 7296
// §2.23): datagrams behind the non-ESP marker reach the main thread's IKE
// side (Forwarder onHostPacket), marker stripped, with their sender; ESP and
// keepalives on the same port do not; answers leave from 4500 behind the
// marker (Forwarder.sendHost). Real TUN and sockets, in a namespace.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { requireTools } from "../helpers/require.ts";
import { Lab } from "../helpers/netns.ts";

describe("IKE datagrams through the NAT-T socket", { skip: requireTools(["netns"], { why: "e2e IKE host packets" }) }, () => {
  test("marked datagrams are handed up and answered; ESP and keepalives are not", async () => {
    const lab = new Lab();
    try {
      const ns = await lab.ns("host");
      const out = await ns.run([process.execPath, "--import", "tsx", "test/e2e/host-packet-child.ts"], { timeoutMs: 60_000 });
      const r = JSON.parse(out.trim().split("\n").at(-1)!);
      assert.deepEqual(r.handedUp, [
        { wan: 0, family: 4, from: "127.0.0.2:5000", local: "127.0.0.1", text: "IKE_SA_INIT request, 28+ bytes of it........" },
        { wan: 0, family: 4, from: "127.0.0.2:5000", local: "127.0.0.1", text: "another one" },
      ]);
      assert.deepEqual(r.answers, [{ marker: "00000000", text: "IKE_SA_INIT response" }]);
      assert.equal(r.toHost, 2);
      assert.equal(r.keepalives, 1);
      assert.equal(r.espDrops, 1, "the ESP-looking datagram is the core's: it fails its ICV, not handed up");
    } finally {
      await lab.teardown();
    }
  });
});
