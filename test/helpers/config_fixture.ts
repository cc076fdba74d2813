// Config fixtures for the config and CLI tests: a valid two-peer node with
// fresh random keys, helpers to write it out, and a leak detector that looks
// for any of those keys (hex or base64, whole or in part) in a piece of output.

import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";

export const REPO = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
export const WESP_BIN = join(REPO, "bin/wesp.js");

/** Run bin/wesp.js (or another copy of it) as a child process. */
export function wesp(args: string[], bin = WESP_BIN, env: NodeJS.ProcessEnv = process.env) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: "utf8", timeout: 60_000, env });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

export function hexKey(bytes: number): string {
  return randomBytes(bytes).toString("hex");
}

/* eslint-disable @typescript-eslint/no-explicit-any */
export type Doc = any;

/**
 * A valid config: site-a with one Internet WAN port and two peers,
 * b (tunnel, AES-256-GCM) and c (transport-gre, AES-128-CBC + HMAC-SHA-256).
 */
export function baseConfig(): Doc {
  return {
    version: 1,
    node: {
      name: "site-a",
      wan: [{ name: "inet", address: "192.0.2.1" }],
      local_prefixes: ["10.1.0.0/16", "fd00:1::/48"],
    },
    peers: [
      {
        name: "b",
        address: "198.51.100.2",
        prefixes: ["10.2.0.0/16", "fd00:2::/48"],
        sas: [{ spi_in: 0x1001, spi_out: 0x2001, suite: "aes-256-gcm", key_in: hexKey(36), key_out: hexKey(36) }],
      },
      {
        name: "c",
        address: "203.0.113.3",
        prefixes: ["10.3.0.0/16"],
        mode: "transport-gre",
        gre: { key: 7 },
        sas: [{
          spi_in: 0x1002, spi_out: 0x3001, suite: "aes-128-cbc-hmac-sha256",
          key_in: hexKey(16), key_out: hexKey(16), auth_key_in: hexKey(32), auth_key_out: hexKey(32),
        }],
      },
    ],
  };
}

export function toYaml(doc: Doc): string {
  return stringify(doc);
}

export interface TempDir {
  path: string;
  write(name: string, text: string, mode?: number): string;
  remove(): void;
}

export function tempDir(): TempDir {
  const path = mkdtempSync(join(tmpdir(), "wesp-cfg-"));
  return {
    path,
    write(name, text, mode = 0o600) {
      const p = join(path, name);
      writeFileSync(p, text, { mode });
      return p;
    },
    remove() {
      rmSync(path, { recursive: true, force: true });
    },
  };
}

const KEY_FIELD = /^(auth_)?key_(in|out)$/;

/** Every inline key in a document (hex strings), plus any extra key texts given. */
export function keysOf(doc: Doc, extra: string[] = []): string[] {
  const keys = [...extra];
  const walk = (v: unknown) => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === "object") {
      for (const [k, x] of Object.entries(v)) {
        if (KEY_FIELD.test(k) && typeof x === "string") keys.push(x);
        else walk(x);
      }
    }
  };
  walk(doc);
  return keys;
}

/**
 * Fragments of `output` that reveal one of `keys`: any 6-byte window of a key
 * in hex (either case), or its base64 (standard or url-safe) beyond 8 characters.
 * Returns the offending descriptions (not the key text itself).
 */
export function findKeyLeaks(output: string, keys: string[]): string[] {
  const leaks: string[] = [];
  const lower = output.toLowerCase();
  keys.forEach((raw, n) => {
    const hex = raw.replace(/^0x/i, "").replace(/\s+/g, "").toLowerCase();
    if (!/^[0-9a-f]+$/.test(hex) || hex.length % 2 !== 0) {
      // Not decodable as hex: look for the text itself.
      if (raw.length >= 8 && output.includes(raw)) leaks.push(`key #${n} text`);
      return;
    }
    for (let i = 0; i + 12 <= hex.length; i += 2) {
      if (lower.includes(hex.slice(i, i + 12))) { leaks.push(`key #${n} hex bytes ${i / 2}..${i / 2 + 5}`); break; }
    }
    const bytes = Buffer.from(hex, "hex");
    const b64s = [bytes.toString("base64"), bytes.toString("base64url")];
    const found = b64s.some((b64) => {
      for (let i = 0; i + 12 <= b64.length - 2; i += 4) if (output.includes(b64.slice(i, i + 12))) return true;
      return false;
    });
    if (found) leaks.push(`key #${n} base64`);
  });
  return leaks;
}
