// Controller-made keys (RFC 9061 §4.1.2, the IKE-less case: "the Security
// Controller ... generates the keys and the SPIs" and installs the SAs in
// both NSFs). One fresh random key per SA direction, of the suite's length
// (docs/config.md "Suites and key sizes": cipher key ‖ 4-byte salt), sealed
// before it reaches the store with AES-256-GCM under the controller's master
// key. The sealed record's AAD names its VPN, sender, receiver, generation and
// SPI, so a sealed key copied onto another row of the database fails to open.
//
//   sealed = nonce (12) ‖ ciphertext (key length) ‖ tag (16)
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { closeSync, fstatSync, openSync, readFileSync, writeSync } from "node:fs";
import type { ControllerSuite } from "./store/model.ts";

export const KEY_BYTES: Record<ControllerSuite, number> = {
  "aes-256-gcm": 36,
  "aes-128-gcm": 20,
  "chacha20-poly1305": 36,
};

export const MASTER_KEY_BYTES = 32;
const NONCE = 12;
const TAG = 16;

/** What a sealed key is bound to (its AAD). */
export interface SaIdentity {
  vpn: string;
  src: string;
  dst: string;
  generation: number;
  spi: number;
}

function aad(id: SaIdentity): Buffer {
  return Buffer.from(["wesp-sa-v1", id.vpn, id.src, id.dst, String(id.generation), String(id.spi)].join("\0"), "utf8");
}

export class KeySealError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "KeySealError";
  }
}

/** Seals and opens SA keys under one master key. Never logs or prints a key. */
export class KeySealer {
  private readonly master: Buffer;

  constructor(masterKey: Uint8Array) {
    if (masterKey.length !== MASTER_KEY_BYTES) throw new KeySealError(`the master key must be ${MASTER_KEY_BYTES} bytes, got ${masterKey.length}`);
    this.master = Buffer.from(masterKey);
  }

  seal(id: SaIdentity, key: Uint8Array): Uint8Array {
    const nonce = randomBytes(NONCE);
    const c = createCipheriv("aes-256-gcm", this.master, nonce, { authTagLength: TAG });
    c.setAAD(aad(id));
    return Buffer.concat([nonce, c.update(key), c.final(), c.getAuthTag()]);
  }

  /** The key of `id`; throws KeySealError when `sealed` was not made for `id` under this master key. */
  open(id: SaIdentity, sealed: Uint8Array): Buffer {
    if (sealed.length < NONCE + TAG + 1) throw new KeySealError(`sealed key of ${id.src}→${id.dst} spi ${id.spi} is truncated`);
    const b = Buffer.from(sealed);
    const d = createDecipheriv("aes-256-gcm", this.master, b.subarray(0, NONCE), { authTagLength: TAG });
    d.setAAD(aad(id));
    d.setAuthTag(b.subarray(b.length - TAG));
    try {
      return Buffer.concat([d.update(b.subarray(NONCE, b.length - TAG)), d.final()]);
    } catch {
      throw new KeySealError(`sealed key of ${id.src}→${id.dst} spi ${id.spi} does not open under this master key (wrong key, or a moved row)`);
    }
  }

  /** Overwrites the master key in memory. */
  wipe(): void {
    this.master.fill(0);
  }
}

/** A fresh random key for `suite` (cipher key ‖ salt). */
export function newSaKey(suite: ControllerSuite): Buffer {
  return randomBytes(KEY_BYTES[suite]);
}

/**
 * The master key in `path` (64 hex digits), made (mode 0600) when the file is
 * missing. A file that group or others can read or write is refused: whoever
 * reads it can open every SA key in the database.
 */
export function loadOrCreateMasterKey(path: string): Buffer {
  let fd: number;
  try {
    fd = openSync(path, "wx", 0o600);
    writeSync(fd, randomBytes(MASTER_KEY_BYTES).toString("hex") + "\n");
    closeSync(fd);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
  }
  fd = openSync(path, "r");
  try {
    const mode = fstatSync(fd).mode & 0o777;
    if (mode & 0o077) throw new KeySealError(`${path}: mode ${mode.toString(8).padStart(4, "0")} lets group or others at the master key; chmod 600 it`);
    const text = readFileSync(fd, "utf8").trim();
    if (!/^[0-9a-fA-F]{64}$/.test(text)) throw new KeySealError(`${path}: must hold ${MASTER_KEY_BYTES} bytes as 64 hex digits`);
    return Buffer.from(text, "hex");
  } finally {
    closeSync(fd);
  }
}
