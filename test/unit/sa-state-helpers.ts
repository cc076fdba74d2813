// Shared by the state-directory tests (sa-journal, sa-state-sweep): a fresh
// state directory per test, and durable SA parameters with fresh key ids.
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import type { DurableParams } from "../../host/sa/seq_store.ts";
import { ensureStateDir } from "../../host/sa/state_file.ts";
import { keyId } from "../../host/sa/key_id.ts";

/** Runs `fn` in a fresh state directory (`prefix` names it under the temp dir), removed afterwards however `fn` ends. */
export async function inStateDir(prefix: string, fn: (dir: string) => void | Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  try {
    ensureStateDir(dir);
    await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** SA `i`'s durable parameters (odd: inbound) with a fresh key id, SPI spiBase + i. */
export const saParams = (stateDir: string, i: number, spiBase = 0x100): DurableParams => {
  const dir = i % 2 ? "in" : "out";
  return { stateDir, dir, keyId: keyId(dir, randomBytes(20)), spi: spiBase + i, suite: "aes-256-gcm", peer: `p${i}`, esn: false };
};

/** The names in the state directory's sa/, sorted. */
export const saFiles = (dir: string): string[] => readdirSync(join(dir, "sa")).sort();
