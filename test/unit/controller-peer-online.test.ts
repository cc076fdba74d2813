// "peer-online" (api/ce_api.ts, Controller.initiatorsTowards): when a CE opens
// its push channel, the CEs that initiate IKE towards it — the NAT'd side,
// else the newer site — hear "peer-online {peer}" on theirs, so they try at
// once instead of waiting out a retransmission or a retry backoff; nobody
// else hears it, and no version moves (nobody pulls). Over the real API with
// mTLS; three sites: a behind a NAT, b and c not.
import { test } from "node:test";
import assert from "node:assert/strict";
import { CeClient } from "../../host/agent/ce_client.ts";
import { enrol } from "../../host/agent/enrol.ts";
import { waitFor } from "../helpers/netns.ts";
import { enrolledCe } from "./controller-ce-fixture.ts";

test("a CE's push channel opening tells exactly the CEs that initiate towards it; no version moves", async () => {
  const tokens: Record<string, { token: string; caFingerprint?: string }> = {};
  const { ctl, api, a, close } = await enrolledCe("peer-online", async (operator) => {
    await operator.createVpn({ name: "v" }); // IKE keying, full mesh
    await operator.addSite("v", { name: "a", prefixes: ["10.1.0.0/16"], wan: [{ name: "inet", privateAddress: "192.168.1.2", publicAddress: "198.51.100.1", publicPort: 40001, natType: "symmetric" }] });
    for (const [i, s] of ["b", "c"].entries()) await operator.addSite("v", { name: s, prefixes: [`10.${i + 2}.0.0/16`], wan: [{ name: "inet", privateAddress: `192.0.2.${i + 2}` }] });
    for (const s of ["b", "c"]) tokens[s] = await operator.createEnrolmentToken("v", s);
  });
  const channels: { close(): void }[] = [];
  try {
    assert.deepEqual(await ctl.initiatorsTowards("v", "b"), ["a", "c"], "towards b: a (behind a NAT), c (newer)");
    assert.deepEqual(await ctl.initiatorsTowards("v", "c"), ["a"], "towards c: a (NAT); not b (older than c)");
    assert.deepEqual(await ctl.initiatorsTowards("v", "a"), [], "nobody initiates towards the NAT'd site");
    const client: Record<string, CeClient> = { a };
    for (const s of ["b", "c"]) {
      const e = await enrol(api.url, tokens[s].caFingerprint!, { token: tokens[s].token, vpn: "v", site: s });
      client[s] = new CeClient(api.url, { ca: e.caPem, cert: e.certPem, key: e.keyPem });
    }
    const heard: Record<string, string[]> = { a: [], b: [], c: [] };
    const open = async (s: string) => {
      channels.push(await client[s].events("/v1/ce/events", (ev) => heard[s].push(`${ev.event} ${ev.data}`), () => {}, 60_000));
      await waitFor(() => heard[s].some((l) => l.startsWith("hello")), `${s}'s hello`, 5000, 5);
    };
    const version = (await ctl.store.getVpn("v"))!.version;
    await open("a");
    await open("c");
    await waitFor(() => heard.a.includes('peer-online {"peer":"c"}'), "a hears c came up", 5000, 5);
    await open("b");
    await waitFor(() => heard.a.includes('peer-online {"peer":"b"}') && heard.c.includes('peer-online {"peer":"b"}'), "a and c hear b came up", 5000, 5);
    // give any stray event time to arrive before saying none came
    await new Promise((r) => setTimeout(r, 200));
    const online = (s: string) => heard[s].filter((l) => l.startsWith("peer-online"));
    assert.deepEqual(online("a"), ['peer-online {"peer":"c"}', 'peer-online {"peer":"b"}']);
    assert.deepEqual(online("c"), ['peer-online {"peer":"b"}'], "c heard of b only: nobody initiates towards a, and c's own channel is not news to c");
    assert.deepEqual(online("b"), [], "b initiates towards nobody (a is behind a NAT, c is newer)");
    assert.deepEqual([...heard.a, ...heard.b, ...heard.c].filter((l) => l.startsWith("change")), [], "no change event: nobody pulls");
    assert.equal((await ctl.store.getVpn("v"))!.version, version, "no version moved");
  } finally {
    for (const c of channels) c.close();
    await close();
  }
});
