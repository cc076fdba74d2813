// Shared by the state-directory tests (sa-journal, sa-state-sweep, sa-seq-file-keys): a
// fresh state directory per test, durable SA parameters with fresh key ids,
// and a store ticked until its journals are migrated.
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import type { DurableParams } from "../../host/sa/seq_store.ts";
import { ensureStateDir } from "../../host/sa/state_file.ts";
import assert from "node:assert/strict";
import { keyId } from "../../host/sa/key_id.ts";
import type { SeqStore } from "../../host/sa/seq_store.ts";
import type { Core } from "../../host/core/core.ts";
import { makeCore } from "./core-helpers.ts";

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

/** Ticks `store` until no journal record is left to migrate (the migration runs off the thread). */
export async function migrated(store: SeqStore): Promise<void> {
  const core = await makeCore();
  for (let i = 0; i < 4000 && store.journalStats().pending > 0; i++) {
    store.tick(core);
    await new Promise((r) => setTimeout(r, 5));
  }
  assert.equal(store.journalStats().pending, 0, "the migration finished");
}

/**
 * Seals `n` copies of `pkt` on outbound SA `saId` in batches of 64 (the core
 * needs as many slots), reporting each batch to `store` as the pipeline does
 * (ensure); the last sequence number the SA used.
 */
export function sendOut(core: Core, store: SeqStore, saId: number, pkt: Uint8Array, n: number): bigint {
  for (let left = n; left > 0; ) {
    const b = Math.min(left, 64);
    for (let j = 0; j < b; j++) core.writePacket(j, pkt);
    core.processOutbound(b);
    store.ensure(core, saId);
    left -= b;
  }
  return core.seqOf(saId, true) - 1n;
}
