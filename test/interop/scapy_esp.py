#!/usr/bin/python3
"""A long-running ESP oracle built on scapy's SecurityAssociation (scapy 2.5).

Reads one JSON request per line on stdin and writes one JSON answer per line
on stdout, in order. Spawned once per test file by test/helpers/scapy.ts.

Request fields (hex strings for bytes; null where not used):
  op        "seal" | "open" | "version"
  suite     "aes-gcm-16" | "chacha20-poly1305" | "aes-cbc-hmac-sha256-128" | "aes-cbc"
  spi, seq  SPI and the low 32 bits of the sequence number
  esn_hi    high 32 bits with ESN (RFC 4303 §2.2.1), null without ESN
  key, salt, auth_key, iv
  mode      "payload":   seal: payload + nh -> esp;  open: esp -> payload, nh, padlen
            "tunnel":    seal: packet is the inner packet, outer says the tunnel
                         header -> packet;  open: whole packet -> inner packet
            "transport": seal: packet is a whole IP packet whose header stays;
                         open: whole packet -> packet with ESP removed
  outer     {"src","dst","ttl","tos","id","df","fl"} (tunnel seal only)
  udp       {"sport","dport"}: RFC 3948 encapsulation (seal), null otherwise
Answer: {"ok": true, ...} or {"ok": false, "error": "integrity" | "<exception class>", "message": ...}

Two of scapy's behaviours the caller must know (read from scapy/layers/ipsec.py):
  * For ESP, AuthAlgo.sign/verify are called without the ESN high bits, so
    scapy's HMAC ICV ignores ESN, against RFC 4303 §2.2.1. With ESN and HMAC
    this bridge puts EsnHmac in place of the SA's auth algo: the same scapy
    HMAC object, fed SPI..ciphertext || seq_hi as the RFC says.
  * With nat_t_header scapy sends a zero UDP checksum for IPv6 too (fine for
    IPv4 per RFC 3948 §2.1, not for IPv6 per RFC 8200 §8.1).
  * With nat_t_header over IPv4, _encrypt_esp serialises IP / UDP before the
    ESP is attached, so the UDP length comes out as 8. The bridge has the
    length recomputed (RFC 768: header plus data); nothing else is touched.
  * Transport-mode decrypt over IPv6 / UDP keeps the UDP header (it takes the
    ESP's underlayer for the IPv6 header). To open, the bridge first removes
    the UDP header as the RFC 3948 §3.2 receiver does, then lets scapy decrypt.
"""
import json
import struct
import sys

from scapy.all import IP, IPv6, UDP, Raw, raw
import scapy
from scapy.layers.ipsec import (AUTH_ALGOS, ESP, IPSecIntegrityError,
                                SecurityAssociation, _ESPPlain)

CRYPT = {
    "aes-gcm-16": ("AES-GCM", None),
    "chacha20-poly1305": ("CHACHA20-POLY1305", None),
    "aes-cbc-hmac-sha256-128": ("AES-CBC", "SHA2-256-128"),
    "aes-cbc": ("AES-CBC", None),
}


class EsnHmac:
    """HMAC over SPI..ciphertext || seq_hi (RFC 4303 §2.2.1) with scapy's own MAC object."""

    def __init__(self, algo, seq_hi):
        self.algo = algo
        self.seq_hi = seq_hi
        self.icv_size = algo.icv_size

    def _icv(self, esp_bytes, key):
        mac = self.algo.new_mac(key)
        mac.update(esp_bytes + struct.pack("!L", self.seq_hi))
        return mac.finalize()[:self.icv_size]

    def sign(self, pkt, key, esn_en=False, esn=0):
        pkt[ESP].data += self._icv(raw(pkt[ESP]), key)
        return pkt

    def verify(self, pkt, key, esn_en=False, esn=0):
        got = pkt.data[len(pkt.data) - self.icv_size:]
        clone = pkt.copy()
        clone.data = clone.data[:len(clone.data) - self.icv_size]
        want = self._icv(raw(clone), key)
        if got != want:
            raise IPSecIntegrityError("pkt_icv=%r, computed_icv=%r" % (got, want))


def unhex(s):
    return bytes.fromhex(s) if s else b""


def make_sa(r):
    crypt, auth = CRYPT[r["suite"]]
    key = unhex(r["key"]) + unhex(r.get("salt"))
    esn = r.get("esn_hi")
    kw = {}
    outer = r.get("outer")
    if r["mode"] == "tunnel" and outer:
        if ":" in outer["src"]:
            kw["tunnel_header"] = IPv6(src=outer["src"], dst=outer["dst"], hlim=outer.get("ttl", 64),
                                       tc=outer.get("tos", 0), fl=outer.get("fl", 0))
        else:
            kw["tunnel_header"] = IP(src=outer["src"], dst=outer["dst"], ttl=outer.get("ttl", 64),
                                     tos=outer.get("tos", 0), id=outer.get("id", 0),
                                     flags="DF" if outer.get("df") else 0)
    elif r["mode"] == "tunnel":
        kw["tunnel_header"] = IP()  # open only needs to know it is tunnel mode
    if r.get("udp"):
        kw["nat_t_header"] = UDP(sport=r["udp"]["sport"], dport=r["udp"]["dport"])
    sa = SecurityAssociation(ESP, spi=r["spi"], seq_num=r["seq"], crypt_algo=crypt, crypt_key=key,
                             auth_algo=auth, auth_key=unhex(r.get("auth_key")) if auth else None,
                             esn_en=esn is not None, esn=esn or 0, **kw)
    if auth and esn is not None:
        sa.auth_algo = EsnHmac(AUTH_ALGOS[auth], esn)
    return sa


def seal_payload(sa, r):
    """The body of SecurityAssociation._encrypt_esp without the IP handling."""
    esp = _ESPPlain(spi=sa.spi, seq=r["seq"], iv=unhex(r["iv"]))
    esp.data = Raw(unhex(r["payload"]))
    esp.nh = r["nh"]
    esp = sa.crypt_algo.pad(esp)
    esp = sa.crypt_algo.encrypt(sa, esp, sa.crypt_key, sa.crypt_icv_size,
                                esn_en=sa.esn_en, esn=sa.esn)
    sa.auth_algo.sign(esp, sa.auth_key)
    return raw(esp)


def open_payload(sa, esp_bytes):
    esp = ESP(esp_bytes)
    sa.check_spi(esp)
    sa.auth_algo.verify(esp, sa.auth_key)
    icv = sa.crypt_icv_size or sa.crypt_algo.icv_size or sa.auth_algo.icv_size
    plain = sa.crypt_algo.decrypt(sa, esp, sa.crypt_key, icv, esn_en=sa.esn_en, esn=sa.esn)
    return {"payload": raw(plain.data).hex(), "nh": plain.nh, "padlen": plain.padlen}


def parse_ip(b):
    return IPv6(b) if b[0] >> 4 == 6 else IP(b)


def parse_esp(b):
    pkt = parse_ip(b)
    # scapy only dissects UDP as ESP on port 4500; take any UDP payload as ESP.
    if UDP in pkt and ESP not in pkt:
        udp = pkt[UDP]
        body = raw(udp.payload)
        udp.remove_payload()
        udp.add_payload(ESP(body))
    return pkt


def strip_udp(pkt):
    """RFC 3948 §3.2 decapsulation: IP / UDP / ESP becomes IP / ESP."""
    if UDP not in pkt:
        return pkt
    esp = pkt[ESP]
    esp.underlayer.underlayer.remove_payload()
    if pkt.version == 4:
        pkt.proto, pkt.len, pkt.chksum = 50, None, None
        return IP(raw(pkt / esp))
    pkt.nh, pkt.plen = 50, None
    return IPv6(raw(pkt / esp))


def handle(r):
    op = r["op"]
    if op == "version":
        return {"version": scapy.__version__}
    sa = make_sa(r)
    mode = r["mode"]
    if op == "seal":
        if mode == "payload":
            return {"esp": seal_payload(sa, r).hex()}
        pkt = parse_ip(unhex(r["packet"]))
        out = sa.encrypt(pkt, seq_num=r["seq"], iv=unhex(r["iv"]))
        if UDP in out:
            out[UDP].len = None
        return {"packet": raw(out).hex()}
    if op == "open":
        if mode == "payload":
            return open_payload(sa, unhex(r["esp"]))
        out = sa.decrypt(strip_udp(parse_esp(unhex(r["packet"]))))
        return {"packet": raw(out).hex()}
    raise ValueError("unknown op %r" % op)


def main():
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            ans = {"ok": True, **handle(json.loads(line))}
        except IPSecIntegrityError as e:
            ans = {"ok": False, "error": "integrity", "message": str(e)}
        except Exception as e:  # the caller asserts on the answer
            ans = {"ok": False, "error": type(e).__name__, "message": str(e)}
        sys.stdout.write(json.dumps(ans) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
