// The protected messages of an IKE SA after IKE_SA_INIT: the Encrypted payload
// (RFC 7296 §3.14, sk.ts) or, once both sides announced IKEV2_FRAGMENTATION_SUPPORTED,
// its Encrypted Fragments when a message is too big for the path (RFC 7383, fragment.ts).
import { PayloadType } from "./constants.ts";
import { skKeys, type SaContext } from "./context.ts";
import { DEFAULT_FRAGMENT_SIZE, maxMessageBytes, sealFragmented, type Reassembly } from "./fragment.ts";
import type { Header, Message } from "./message.ts";
import type { Payload } from "./payloads.ts";
import { openMessage, sealMessage } from "./sk.ts";

export type Opened = { kind: "ok"; payloads: Payload[] } | { kind: "stored" } | { kind: "drop"; reason: string; detail: string };

/** An SK message, or its SKF fragments when both sides support RFC 7383 and it is too big for the path. */
export function sealProtected(c: SaContext, h: Header, inner: Payload[]): Uint8Array[] {
  const out = skKeys(c).out;
  if (!c.fragmentation) return [sealMessage(h, inner, out)];
  const natt = c.path.localPort === c.cfg.ports.natt && c.cfg.ports.natt !== c.cfg.ports.ike;
  return sealFragmented(h, inner, out, maxMessageBytes(c.cfg.fragmentSize ?? DEFAULT_FRAGMENT_SIZE, c.path.remoteAddress, natt));
}

/**
 * The payloads inside a protected message: its SK payload opened, or (RFC 7383)
 * its SKF fragment added to `buf`, complete once every fragment authenticated.
 */
export function openProtected(c: SaContext, m: Message, raw: Uint8Array, buf: Reassembly): Opened {
  const last = m.payloads[m.payloads.length - 1];
  if (last?.kind === "sk" && last.type === PayloadType.SKF) {
    // RFC 7383 §2.3: fragments only once both sides announced the support
    if (!c.fragmentation) return { kind: "drop", reason: "fragment-unannounced", detail: "an Encrypted Fragment without IKEV2_FRAGMENTATION_SUPPORTED" };
    const r = buf.add(m.header.messageId, raw, last, skKeys(c).in, c.deps.now());
    return r.kind === "complete" ? { kind: "ok", payloads: r.payloads } : r;
  }
  const r = openMessage(raw, last, skKeys(c).in);
  return r.ok ? { kind: "ok", payloads: r.value } : { kind: "drop", reason: r.error.reason, detail: r.error.detail };
}
