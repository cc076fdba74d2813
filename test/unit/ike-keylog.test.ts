// WESP_ESP_KEYLOG (host/ike/keylog.ts): off unless set; one JSON line per CHILD_SA, file 0600.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { appendKeyLog, keyLogPath } from "../../host/ike/keylog.ts";
import type { ChildSaEstablished } from "../../host/ike/types.ts";

const child = (spiIn: number, authKeys: boolean): ChildSaEstablished => ({
  type: "childSaEstablished", ike: "p", spiIn, spiOut: 0xc0000001, suite: authKeys ? "aes-128-cbc-hmac-sha256" : "aes-128-gcm",
  keyIn: new Uint8Array([1, 2]), keyOut: new Uint8Array([3, 4]),
  authKeyIn: authKeys ? new Uint8Array([5]) : undefined, authKeyOut: authKeys ? new Uint8Array([6]) : undefined,
  esn: false, mode: "tunnel", encap: "udp",
  path: { localAddress: "192.0.2.1", localPort: 4500, remoteAddress: "198.51.100.2", remotePort: 4500 },
  tsLocal: [], tsRemote: [], lifetime: {} as ChildSaEstablished["lifetime"], initiator: true,
});

test("the key log is off unless WESP_ESP_KEYLOG names a file", () => {
  assert.equal(keyLogPath({}), undefined);
  assert.equal(keyLogPath({ WESP_ESP_KEYLOG: "" }), undefined);
  assert.equal(keyLogPath({ WESP_ESP_KEYLOG: "/tmp/k" }), "/tmp/k");
});

test("one JSON line per CHILD_SA, appended; the file is 0600 even if it was not", () => {
  const dir = mkdtempSync(join(tmpdir(), "wesp-keylog-"));
  try {
    const path = join(dir, "keys");
    writeFileSync(path, "");
    chmodSync(path, 0o644);
    appendKeyLog(path, child(0x80000001, false));
    appendKeyLog(path, child(0x80000002, true));
    assert.equal(statSync(path).mode & 0o777, 0o600);
    const lines = readFileSync(path, "utf8").trim().split("\n").map((l) => JSON.parse(l));
    assert.deepEqual(lines, [
      { peer: "p", suite: "aes-128-gcm", local: "192.0.2.1", remote: "198.51.100.2", spiIn: 0x80000001, spiOut: 0xc0000001, keyIn: "0102", keyOut: "0304" },
      { peer: "p", suite: "aes-128-cbc-hmac-sha256", local: "192.0.2.1", remote: "198.51.100.2", spiIn: 0x80000002, spiOut: 0xc0000001, keyIn: "0102", keyOut: "0304", authKeyIn: "05", authKeyOut: "06" },
    ]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
