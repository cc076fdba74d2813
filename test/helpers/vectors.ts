import { fileURLToPath } from "node:url";
// The shared ESP vector file (../shared/vectors/esp-vectors.json) as typed
// records, and the reference SA each one describes.
import { existsSync, readFileSync } from "node:fs";
import type { RefSa, RefSuite } from "./ref_esp.ts";
import { hex } from "../../host/core/raw_exports.ts";

export interface EspVector {
  id: string;
  suite: "aes-gcm-16" | "chacha20-poly1305" | "aes-cbc";
  integrity: string | null;
  mode: "payload" | "tunnel" | "transport";
  spi: string;
  seq: number;
  esn?: boolean;
  esn_hi?: number | null;
  key: string;
  salt?: string;
  auth_key: string | null;
  iv: string;
  plaintext_payload: string;
  next_header: number;
  padding?: string;
  padlen?: number;
  expected_esp: string;
  input_packet?: string;
  expected_packet?: string;
}

/** The published vectors beside the repository (../shared), as CI and the workspace lay them out. */
export const SHARED_VECTOR_FILE = fileURLToPath(new URL("../../../shared/vectors/esp-vectors.json", import.meta.url));
/** The copy the package ships (host/core/vectors), held identical by test/unit/core-selftest.test.ts. */
export const SHIPPED_VECTOR_FILE = fileURLToPath(new URL("../../host/core/vectors/esp-vectors.json", import.meta.url));
export const VECTOR_FILE = process.env.WESP_VECTORS ?? (existsSync(SHARED_VECTOR_FILE) ? SHARED_VECTOR_FILE : SHIPPED_VECTOR_FILE);

export function loadVectors(file = VECTOR_FILE): EspVector[] {
  return JSON.parse(readFileSync(file, "utf8")).vectors as EspVector[];
}

export function vectorSuite(v: EspVector): RefSuite {
  if (v.suite !== "aes-cbc") return v.suite;
  if (v.integrity === null) return "aes-cbc";
  if (v.integrity === "hmac-sha256-128") return "aes-cbc-hmac-sha256-128";
  throw new Error(`${v.id}: integrity ${v.integrity} not in the reference`);
}

export function vectorSa(v: EspVector): RefSa {
  return {
    suite: vectorSuite(v),
    spi: Number.parseInt(v.spi, 16),
    key: hex(v.key),
    salt: v.salt ? hex(v.salt) : undefined,
    authKey: v.auth_key ? hex(v.auth_key) : undefined,
    esn: v.esn === true,
  };
}

/** The 64-bit sequence number of a vector: esn_hi || seq with ESN, else seq. */
export const vectorSeq = (v: EspVector): bigint => (v.esn ? (BigInt(v.esn_hi ?? 0) << 32n) | BigInt(v.seq) : BigInt(v.seq));
