// The ESP key log: a debugging aid in the spirit of SSLKEYLOGFILE. Off unless the
// environment names a file (WESP_ESP_KEYLOG=PATH); then every CHILD_SA wesp
// negotiates appends one JSON line with its SPIs and keys (RFC 7296 §2.17 KEYMAT,
// split per direction), so a capture can be decrypted by tshark or scapy.
// Key material goes only to that file — created 0600, made 0600 if it already
// existed — never to a log line. Not for production: whoever reads the file reads
// the traffic.
import { closeSync, fchmodSync, openSync, writeSync } from "node:fs";
import type { ChildSaEstablished } from "./types.ts";

export const KEYLOG_ENV = "WESP_ESP_KEYLOG";

/** One line of the key log. Keys in hex: the cipher key (‖ salt for the AEADs) and the HMAC key, if any. */
export interface KeyLogLine {
  peer: string;
  suite: string;
  /** Outer addresses this side sends from and to. */
  local: string;
  remote: string;
  spiIn: number;
  spiOut: number;
  keyIn: string;
  keyOut: string;
  authKeyIn?: string;
  authKeyOut?: string;
}

/** The key log's path, or undefined when it is off (the default). */
export const keyLogPath = (env: NodeJS.ProcessEnv = process.env): string | undefined => env[KEYLOG_ENV] || undefined;

const hex = (b: Uint8Array | undefined) => (b ? Buffer.from(b).toString("hex") : undefined);

/** Appends `e`'s SPIs and keys to the key log at `path`; throws on I/O errors (the caller logs them, without keys). */
export function appendKeyLog(path: string, e: ChildSaEstablished): void {
  const line: KeyLogLine = {
    peer: e.ike, suite: e.suite, local: e.path.localAddress, remote: e.path.remoteAddress,
    spiIn: e.spiIn >>> 0, spiOut: e.spiOut >>> 0, keyIn: hex(e.keyIn)!, keyOut: hex(e.keyOut)!,
    ...(e.authKeyIn ? { authKeyIn: hex(e.authKeyIn), authKeyOut: hex(e.authKeyOut) } : {}),
  };
  const fd = openSync(path, "a", 0o600);
  try {
    fchmodSync(fd, 0o600);
    writeSync(fd, JSON.stringify(line) + "\n");
  } finally {
    closeSync(fd);
  }
}
