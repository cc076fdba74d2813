// A controller's HTTPS API on 127.0.0.1 (in-memory store, its own CA) with
// VPN "v" made by `populate` and site "a" enrolled from a token: what the CE
// API tests (controller-ce-wan, controller-rekey) start from.
import { mkdtempSync, rmSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ControllerCa } from "../../host/controller/ca.ts";
import { Controller } from "../../host/controller/controller.ts";
import { KeySealer } from "../../host/controller/keys.ts";
import { ControllerClient } from "../../host/controller/api/client.ts";
import { startApi, type RunningApi } from "../../host/controller/api/server.ts";
import { ensureServerCert } from "../../host/controller/api/tls.ts";
import { openStore } from "../../host/controller/store/store.ts";
import { CeClient } from "../../host/agent/ce_client.ts";
import { enrol } from "../../host/agent/enrol.ts";

export interface EnrolledCe {
  ctl: Controller;
  api: RunningApi;
  /** Site "a"'s CE client, holding the certificate it enrolled for. */
  a: CeClient;
  /** The API's log lines. */
  logs: string[];
  close(): Promise<void>;
}

export async function enrolledCe(tag: string, populate: (operator: ControllerClient) => Promise<void>, stunPort?: number, now?: () => number): Promise<EnrolledCe> {
  const dir = mkdtempSync(join(tmpdir(), `wesp-${tag}-`));
  const logs: string[] = [];
  const ca = await ControllerCa.open(join(dir, "ca"));
  const ctl = new Controller(await openStore(":memory:", now ? { now } : {}), new KeySealer(randomBytes(32)));
  const api = await startApi({ controller: ctl, tls: await ensureServerCert(join(dir, "tls"), ca, []), ca, port: 0, log: (l) => logs.push(l), ...(stunPort ? { stunPort } : {}) });
  const operator = new ControllerClient({ url: api.url, token: await ctl.store.createOperatorToken("ops"), ca: ca.pem });
  await populate(operator);
  const t = await operator.createEnrolmentToken("v", "a");
  const e = await enrol(api.url, t.caFingerprint!, { token: t.token, vpn: "v", site: "a" });
  return {
    ctl, api, logs,
    a: new CeClient(api.url, { ca: e.caPem, cert: e.certPem, key: e.keyPem }),
    close: async () => {
      await api.close();
      await ctl.store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
